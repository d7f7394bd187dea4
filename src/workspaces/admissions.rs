//! Who is inside a workspace: every HTTP request and WebSocket admitted to it holds an
//! [`Admission`] until it is done, so that unloading can close the door and then wait until
//! everyone already inside has left (mini-redis's shutdown, per workspace).

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// The door of one workspace.
#[derive(Debug)]
pub struct Admissions {
    open: AtomicBool,
    /// Each admission holds a receiver; [`watch::Sender::closed`] resolves once none is left.
    inside: watch::Sender<()>,
}

/// Held while a request or socket is inside its workspace.
#[derive(Debug)]
pub struct Admission {
    _ticket: watch::Receiver<()>,
}

impl Default for Admissions {
    fn default() -> Self {
        Self {
            open: AtomicBool::new(true),
            inside: watch::channel(()).0,
        }
    }
}

impl Admissions {
    /// Lets one more in, unless the door is closed.
    pub fn admit(&self) -> Option<Admission> {
        if !self.open.load(Ordering::SeqCst) {
            return None;
        }
        let admission = Admission {
            _ticket: self.inside.subscribe(),
        };
        // Closed meanwhile: `all_left` may already have counted no one inside, so this one
        // must not get in now.
        if !self.open.load(Ordering::SeqCst) {
            return None;
        }
        Some(admission)
    }

    /// Lets no one in any more; false if it was closed already (someone else is unloading).
    pub fn close(&self) -> bool {
        self.open.swap(false, Ordering::SeqCst)
    }

    /// Whether it still lets people in.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Resolves once no admission is held (at once if none is).
    pub async fn all_left(&self) {
        self.inside.closed().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    // Paused time: the timeout that must expire does so at once, without a real wait.
    #[tokio::test(start_paused = true)]
    async fn closing_waits_for_those_inside_and_lets_no_one_else_in() {
        let door = Admissions::default();
        let inside = door.admit().expect("an open door admits");
        door.close();
        assert!(door.admit().is_none(), "a closed door admits no one");
        let waiting = tokio::time::timeout(Duration::from_secs(1), door.all_left()).await;
        assert!(waiting.is_err(), "one is still inside");
        drop(inside);
        tokio::time::timeout(Duration::from_secs(5), door.all_left())
            .await
            .expect("everyone left");
    }
}
