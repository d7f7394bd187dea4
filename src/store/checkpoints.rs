//! Copying SQLite's write-ahead log back into the database file, and letting the log start
//! over, so that it stays short however long the writes go on.
//!
//! Two threads checkpoint: the checkpointer ([`start`]) copies the log in the background every
//! [`CHECKPOINT_EVERY`], so that no commit waits for the database file's sync; the writer
//! ([`rewind`]) checkpoints between two groups, the one moment nothing is appended, so that
//! the next commit can start the log over. SQLite lets only one connection checkpoint at a
//! time and answers the other "busy" at once, without waiting; they take turns through
//! [`Turn`], so that the writer can wait for its turn when it must, instead of finding the
//! checkpoint lock taken group after group while the log grows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;
use crate::lock_order::{Level, Ordered};

/// How often the checkpointer copies the log back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// Past this many times its limit, the writer waits for the checkpointer to finish rather
/// than let the log grow further.
const WAIT_PAST: u32 = 4;

/// Whose turn it is to checkpoint: held for the length of one checkpoint.
#[derive(Clone)]
pub(crate) struct Turn(Arc<TurnInner>);

struct TurnInner {
    lock: Ordered<()>,
    /// How often the writer has waited for its turn.
    waits: AtomicU64,
}

impl Turn {
    pub(crate) fn new() -> Self {
        Self(Arc::new(TurnInner {
            lock: Ordered::new(Level::StoreCheckpoint, ()),
            waits: AtomicU64::new(0),
        }))
    }

    /// Takes the turn, as a checkpoint that takes long would hold it.
    #[cfg(test)]
    pub(crate) fn hold(&self) -> crate::lock_order::Guard<'_, ()> {
        self.0.lock.lock()
    }

    /// How often the writer has waited for its turn.
    pub(crate) fn waits(&self) -> u64 {
        self.0.waits.load(Ordering::Relaxed)
    }
}

/// The checkpointer thread: stops (and is joined) when dropped.
pub(crate) struct Checkpointer {
    pub(crate) turn: Turn,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the thread that checkpoints the log at `path` in the background (`PASSIVE`: it never
/// waits for, nor holds up, the writer or readers) until the returned [`Checkpointer`] is
/// dropped. It does the copying; the writer makes the log start over ([`rewind`]).
pub(crate) fn start(path: &Path, turn: Turn) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path).map_err(|e| StoreError::sqlite(path, e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| StoreError::sqlite(path, e))?;
    let (stop, stopped) = mpsc::channel::<()>();
    let path: PathBuf = path.to_path_buf();
    let ours = turn.clone();
    let thread = std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            // Wakes every interval until the store is dropped (the sender goes away).
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(CHECKPOINT_EVERY) {
                let _turn = ours.0.lock.lock();
                if let Err(e) = checkpoint(&conn) {
                    tracing::warn!(path = %path.display(), error = %e, "checkpoint failed; retried");
                }
            }
        })
        .map_err(|e| StoreError::WriterStart { source: Arc::new(e) })?;
    Ok(Checkpointer {
        turn,
        stop: Some(stop),
        thread: Some(thread),
    })
}

/// Lets the writer's next commit start the log over from its beginning, by copying back now
/// every frame the log holds (`frames`, past the store's `limit`).
///
/// The checkpointer alone never lets the log start over while commits keep coming: SQLite
/// rewinds the log only at the start of a transaction, and only when every frame in it has
/// been copied back, and by the time a checkpoint has copied what it saw, the writer has
/// appended more. The log then grows without end (850 MB in 15 s of the reopen storm), and
/// every commit writes to fresh blocks that the file system must first zero. Here, between
/// two groups, nothing is appended: a checkpoint copies the few frames the checkpointer has
/// not (and syncs the database file once), and the next commit rewinds.
///
/// While the checkpointer is at work the writer goes on committing and tries again after its
/// next group, so that no acknowledgement waits for the database file's sync. But a sync can
/// take long on a busy disk, and commits keep coming: past [`WAIT_PAST`] times its limit, the
/// writer waits for its turn instead (the log reached 1,865 frames of a limit of 64 in a test
/// beside a loaded build before it did).
pub(crate) fn rewind(conn: &Connection, turn: &Turn, frames: u32, limit: u32) {
    let _turn = match turn.0.lock.try_lock() {
        Some(held) => held,
        None if frames > limit.saturating_mul(WAIT_PAST) => {
            turn.0.waits.fetch_add(1, Ordering::Relaxed);
            turn.0.lock.lock()
        }
        None => return,
    };
    if let Err(e) = checkpoint(conn) {
        tracing::debug!(error = %e, "log not rewound yet; tried again after the next group");
    }
}

/// Copies back what the log holds that no reader still needs, without waiting for anyone.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
}
