//! Asking a node's placement loop for a round now, and waiting for one that began after the
//! ask.
//!
//! The loop reads the `workspaces` table once a round, so a workspace another node created a
//! moment ago is unknown here until the next one. Two callers cannot wait that long: the
//! platform API's create (its 201 should mean the workspace is placed, so that the agents
//! created next are not told `not_found`), and a request for a workspace this node has never
//! heard of (behind a load balancer, the create may have landed on another node): one fresh
//! round decides between relaying it and `not_found`. Waiters share rounds, and asked-for
//! rounds are spaced by [`MIN_GAP`], so a flood of unknown ids costs the database at most one
//! round per gap.

use std::time::Duration;

use tokio::sync::{watch, Notify};

/// The least time between the starts of two rounds asked for (ticks keep their own pace).
pub(crate) const MIN_GAP: Duration = Duration::from_millis(50);

/// Rounds asked for, started and finished.
#[derive(Debug)]
pub struct Rounds {
    wanted: Notify,
    /// (started, finished), counted since the node started.
    progress: watch::Sender<(u64, u64)>,
}

impl Default for Rounds {
    fn default() -> Self {
        Self {
            wanted: Notify::new(),
            progress: watch::channel((0, 0)).0,
        }
    }
}

impl Rounds {
    /// Asks for a round and waits, at most `bound`, until one that began after this call has
    /// finished: it read every change committed before the call. False if none did in time
    /// (the database is slow or unreachable, or the loop is handing everything over).
    pub async fn fresh(&self, bound: Duration) -> bool {
        let mut progress = self.progress.subscribe();
        let (started, finished) = *progress.borrow_and_update();
        // A round under way may have read the table before the caller's change: the one
        // after it is the first that surely did not.
        let target = if started > finished {
            finished + 2
        } else {
            finished + 1
        };
        self.wanted.notify_one();
        let done = async move {
            progress
                .wait_for(|&(_, finished)| finished >= target)
                .await
                .is_ok()
        };
        tokio::time::timeout(bound, done).await.unwrap_or(false)
    }

    /// Resolves when a round is asked for (at once if one was asked for since the last call).
    pub(crate) async fn asked(&self) {
        self.wanted.notified().await;
    }

    /// Rounds finished since the node started (`/metrics`).
    pub fn finished(&self) -> u64 {
        self.progress.borrow().1
    }

    pub(crate) fn begin(&self) {
        self.progress.send_modify(|(started, _)| *started += 1);
    }

    pub(crate) fn end(&self) {
        self.progress.send_modify(|(_, finished)| *finished += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_fresh_round_is_one_that_began_after_the_ask() {
        let rounds = std::sync::Arc::new(Rounds::default());
        // A round under way when asked does not count.
        rounds.begin();
        let waiter = tokio::spawn({
            let rounds = rounds.clone();
            async move { rounds.fresh(Duration::from_secs(5)).await }
        });
        // The loop: it sees the ask, finishes the round under way, then runs the asked one.
        rounds.asked().await;
        rounds.end();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "the round under way began before the ask");
        rounds.begin();
        rounds.end();
        assert!(waiter.await.expect("joins"), "the round after the ask counts");
    }

    #[tokio::test]
    async fn an_idle_loop_answers_with_its_next_round_and_a_stuck_one_within_the_bound() {
        let rounds = std::sync::Arc::new(Rounds::default());
        let waiter = tokio::spawn({
            let rounds = rounds.clone();
            async move { rounds.fresh(Duration::from_secs(5)).await }
        });
        rounds.asked().await;
        rounds.begin();
        rounds.end();
        assert!(waiter.await.expect("joins"));
        // Nobody runs rounds: the wait ends at its bound, answering false.
        assert!(!rounds.fresh(Duration::from_millis(20)).await);
    }
}
