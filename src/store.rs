//! The durable store: an embedded SQLite database that the engine records every acknowledged
//! change in, restores from on start, and answers archive search and history from (issue 5).
//! Or, for a cluster (issue 19), a PostgreSQL database behind the same API
//! ([`Store::open_postgres`], `store/postgres.rs`); what follows holds for both, with SQLite's
//! WAL reads being PostgreSQL's MVCC reads there.
//!
//! - [`WorkspaceStore::submit`] hands one workspace's changes to one writer thread, which
//!   commits everything queued in one transaction (group commit) and only then completes the
//!   [`Receipt`]s: an acknowledged change is on disk.
//! - Reads ([`WorkspaceStore::load`], [`WorkspaceStore::search_archive`],
//!   [`WorkspaceStore::history`]) run on separate read-only connections, on one workspace's
//!   rows; in WAL mode they never wait for the writer.
//! - Every workspace writes through the same writer (R27): a [`WorkspaceStore`] is a
//!   workspace's handle on the shared [`Store`], and one group commit holds the changes of
//!   every workspace that submitted meanwhile.
//!
//! Every submission is numbered; [`Store::write_point`] and [`WritePoint::reached`] let a
//! caller that did not keep the receipts (the engine submits under its locks, the gateway
//! answers later) wait until everything submitted so far is on disk.

mod archive;
mod checkpoints;
mod codec;
mod error;
mod history;
mod leases;
mod nodes;
pub(crate) mod postgres;
mod progress;
mod readers;
mod records;
mod schema;
mod scoped;
mod snapshot;
mod stored_bytes;
mod workspace_rows;
mod writer;
mod ws_key;

#[cfg(test)]
mod tests;

use crate::lock_order::{Level, Ordered};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::Connection;

pub use archive::{ArchiveCursor, ArchivePage, ArchiveQuery, ArchiveRow, Scope, MAX_PAGE};
pub use error::StoreError;
pub use history::{HistoryEntry, HistoryPage, MAX_HISTORY_PAGE};
pub use leases::{Epoch, Lease};
pub use nodes::{ClusterView, LeaseRow, NodeRow};
pub use records::{AgentRecord, Change, ChatRecord, CustomerRecord, OutboxRecord, Snapshot};
pub use scoped::WorkspaceStore;
pub use workspace_rows::{CreateError, NewWorkspace, WorkspaceRow, WorkspaceState, PURGE_BATCH};
pub use writer::Receipt;
pub use ws_key::WsKey;

use progress::{Fence, Progress};
use readers::Readers;
use stored_bytes::StoredBytes;
use workspace_rows::NextKey;
use writer::{Counters, Job, SqliteWriter, ToWriter};

/// How hard a commit presses data onto the disk before its receipt completes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Durability {
    /// `synchronous=FULL`: every commit is fsynced; an acknowledged change survives a process
    /// crash and a power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: in WAL mode the log is fsynced only at checkpoints. An
    /// acknowledged change survives a process crash (it is in the OS's cache), but a power loss
    /// or kernel crash may lose the last commits. The database is never corrupted either way.
    Normal,
}

/// How a store is opened.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Commit durability; see [`Durability`].
    pub durability: Durability,
    /// Refuse to grow the file beyond about this many bytes: writes past it fail with
    /// [`StoreError::DiskFull`], as on a full disk. `None`: no limit.
    pub max_size_bytes: Option<u64>,
    /// A group takes further submissions only while it holds fewer than this many changes
    /// (the rest wait for the next group), so one transaction stays short. A submission is
    /// never split: it is applied whole, in one group.
    pub group_cap: usize,
    /// Once the write-ahead log holds more than this many frames (a page each), the writer
    /// makes it start over from its beginning (`checkpoints::rewind`), so that it stays about
    /// this long however long the writes go on.
    pub log_frames: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            max_size_bytes: None,
            group_cap: 4096,
            log_frames: 4096,
        }
    }
}

/// What the writer has done since the store was opened.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StoreStats {
    /// Transactions committed.
    pub groups_committed: u64,
    /// Changes in those transactions.
    pub changes_written: u64,
    /// Transactions that failed (their receipts got the error).
    pub groups_failed: u64,
    /// Submissions handed to the writer and not decided yet (neither committed nor failed).
    pub pending_submissions: u64,
    /// A commit failed, so the store writes nothing more (and every change is refused) until
    /// the engine is restarted, or, on PostgreSQL, until it resumes ([`Store::resume_writing`]).
    pub stopped: bool,
    /// Times the store resumed writing after a failure ([`Store::resume_writing`]).
    pub resumes: u64,
    /// Submissions refused because their workspace's lease had moved on to another node
    /// ([`StoreError::Fenced`], R28); nothing of them was written.
    pub fenced_submissions: u64,
    /// Times SQLite's writer waited for the checkpointer before its next group, its log past
    /// four times its limit (`store/checkpoints.rs`): checkpoints slower than the writes, a
    /// sign of a slow or saturated disk. Always 0 on PostgreSQL.
    pub log_waits: u64,
}

/// An open store. Dropping it writes what is queued, then stops the writer thread.
pub struct Store {
    /// The SQLite file, or the PostgreSQL database's URL without its password.
    path: PathBuf,
    jobs: Option<mpsc::Sender<ToWriter>>,
    writer: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    reads: Reads,
    /// Stops (by being dropped) and joins the thread that checkpoints the log.
    checkpointer: Option<checkpoints::Checkpointer>,
    /// The last submission's number; held while sending, so numbers reach the writer in order.
    submitted: Ordered<u64>,
    progress: Arc<Progress>,
    /// The key the next workspace created gets, on SQLite (`workspace_rows.rs`); `None` on
    /// PostgreSQL, whose sequence hands keys out to every node.
    next_ws_key: Option<NextKey>,
    /// Bytes of messages each workspace stores, as committed (the writer counts them).
    stored_bytes: Arc<StoredBytes>,
}

/// Where reads go: the backend's own connections beside the writer's.
enum Reads {
    Sqlite(Readers),
    // Boxed: its connection settings are large, and a store has one of these.
    Postgres(Box<postgres::PgReads>),
}

/// Everything submitted up to some moment; [`WritePoint::reached`] resolves once it is all on
/// disk. A point with no store behind it (an in-memory engine) is reached at once.
#[derive(Clone, Debug, Default)]
#[must_use = "a write point is only useful to wait on"]
pub struct WritePoint {
    /// The last submission's number, and the lease its workspace's handle writes under, if
    /// any (a point of a fenced handle also fails once one of its submissions was refused).
    wait: Option<(u64, Fence, Arc<Progress>)>,
}

impl WritePoint {
    /// A point that is always reached: nothing to wait for.
    pub fn none() -> Self {
        Self { wait: None }
    }

    /// Whether it is known to be reached already (nothing to wait for, no failure): false
    /// while a submission up to it is in flight, or if the store has failed.
    pub fn is_reached(&self) -> bool {
        match &self.wait {
            None => true,
            Some((seq, fence, progress)) => matches!(progress.outcome(*seq, *fence), Some(Ok(()))),
        }
    }

    /// Waits until every submission up to the point is committed; the store's failure if it
    /// failed at or before the point (it writes nothing after a failure),
    /// [`StoreError::Fenced`] if the point is a fenced workspace's and one of its submissions
    /// up to it was refused, or [`StoreError::WriterStopped`] if the writer is gone.
    pub async fn reached(self) -> Result<(), StoreError> {
        match self.wait {
            None => Ok(()),
            Some((seq, fence, progress)) => progress.wait(seq, fence).await,
        }
    }
}

#[cfg(test)]
impl Store {
    /// The `application_name` of the writer's PostgreSQL session, to end it from another.
    pub(crate) fn writer_session(&self) -> &str {
        match &self.reads {
            Reads::Postgres(pg) => pg.writer_session(),
            Reads::Sqlite(_) => panic!("a store on PostgreSQL"),
        }
    }

    /// SQLite's read connections, for the tests that look past the API (its query plans).
    pub(crate) fn sqlite_readers(&self) -> &Readers {
        match &self.reads {
            Reads::Sqlite(readers) => readers,
            Reads::Postgres(_) => panic!("a store on SQLite"),
        }
    }
}

/// Write points that a test reaches by hand, without a database: for the code that waits on
/// them (the gateway's replies).
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct ManualCommits {
    progress: Arc<Progress>,
}

#[cfg(test)]
impl ManualCommits {
    /// The point of submission `seq` (from 1).
    pub(crate) fn point(&self, seq: u64) -> WritePoint {
        WritePoint {
            wait: Some((seq, None, self.progress.clone())),
        }
    }

    /// Submissions `first..=last` are committed, or failed with `failure`.
    pub(crate) fn decide(&self, first: u64, last: u64, failure: Option<&StoreError>) {
        self.progress.decided(first, last, failure);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the database at `path`, creating its directory if missing, and
    /// brings its schema up to date.
    pub fn open(path: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source: Arc::new(e),
            })?;
        }
        let mut conn = Connection::open(path).map_err(|e| StoreError::sqlite(path, e))?;
        configure(&conn, &options).map_err(|e| StoreError::sqlite(path, e))?;
        schema::migrate(&mut conn, path)?;
        let next_ws_key =
            NextKey::after(workspace_rows::largest_key(&conn).map_err(|e| StoreError::sqlite(path, e))?);
        let stored_bytes = Arc::new(StoredBytes::read(&conn).map_err(|e| StoreError::sqlite(path, e))?);

        let limits = writer::Limits {
            log_frames: options.log_frames,
        };
        let turn = checkpoints::Turn::new();
        let writer = SqliteWriter::new(conn, path.to_path_buf(), limits, turn.clone());
        let mut store = Store::start(
            path.to_path_buf(),
            writer,
            &options,
            Reads::Sqlite(Readers::new(path.to_path_buf())),
            Some(next_ws_key),
            stored_bytes,
        )?;
        store.checkpointer = Some(checkpoints::start(path, turn)?);
        Ok(store)
    }

    /// Opens the PostgreSQL database at `url` (`postgres://user:password@host:port/db`) and
    /// brings its schema up to date (issue 19). Writes and reads behave as on SQLite: one writer
    /// with group commit, acknowledged only once committed. Of the options, `durability` sets
    /// `synchronous_commit` and `group_cap` caps a group; the size limit and the log's length
    /// are SQLite's only (PostgreSQL's full disk still answers [`StoreError::DiskFull`]).
    pub fn open_postgres(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        let db = postgres::Database::parse(url, &options)?;
        let name = db.name();
        let (writer, reads, stored_bytes) = postgres::open(db)?;
        Store::start(
            name,
            writer,
            &options,
            Reads::Postgres(Box::new(reads)),
            None,
            Arc::new(stored_bytes),
        )
    }

    /// Starts the writer thread on `backend`'s writing connection.
    fn start(
        path: PathBuf,
        backend: impl writer::GroupCommit + Send + 'static,
        options: &StoreOptions,
        reads: Reads,
        next_ws_key: Option<NextKey>,
        stored_bytes: Arc<StoredBytes>,
    ) -> Result<Store, StoreError> {
        let (jobs, queue) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let progress = Arc::new(Progress::default());
        let group_cap = options.group_cap.max(1);
        let writer = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn({
                let (counters, progress, stored) = (counters.clone(), progress.clone(), stored_bytes.clone());
                move || writer::run(backend, queue, counters, &stored, group_cap, &progress)
            })
            .map_err(|e| StoreError::WriterStart { source: Arc::new(e) })?;
        Ok(Store {
            path,
            checkpointer: None,
            jobs: Some(jobs),
            writer: Some(writer),
            counters,
            reads,
            submitted: Ordered::new(Level::StoreSubmit, 0),
            progress,
            next_ws_key,
            stored_bytes,
        })
    }

    /// Whether this store is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.reads, Reads::Postgres(_))
    }

    /// The database file (on PostgreSQL: the database's URL without its password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `changes`, all of workspace `ws`, for the next group commit. They are applied
    /// together with whatever else is queued (of any workspace), all or nothing; the receipt
    /// completes once they are committed. Engines submit through their [`WorkspaceStore`].
    pub(crate) fn submit_as(&self, ws: WsKey, changes: Vec<Change>) -> Receipt {
        self.submit_under(ws, None, changes)
    }

    /// [`submit_as`](Self::submit_as) under lease `epoch` (R28) if given: refused with
    /// [`StoreError::Fenced`], nothing of it written, once the lease's epoch moved on.
    pub(crate) fn submit_under(&self, ws: WsKey, epoch: Option<Epoch>, changes: Vec<Change>) -> Receipt {
        let (done, receipt) = Receipt::pending();
        if let Some(jobs) = &self.jobs {
            let mut submitted = self.submitted.lock();
            *submitted += 1;
            self.counters.submitted.store(*submitted, Ordering::Relaxed);
            // If the writer is gone the job (and `done`) is dropped: the receipt says so.
            let _ = jobs.send(ToWriter::Job(Job {
                seq: *submitted,
                ws,
                epoch,
                changes,
                done,
            }));
        }
        receipt
    }

    /// Lets a store that stopped writing (its first failed group) write again, on a fresh
    /// connection to PostgreSQL: the session ended (idle in a transaction while its node was
    /// stopped, `postgres.rs`), the database restarted or failed over. Blocking: call it from a
    /// plain thread (`spawn_blocking`). `Ok` once the writer writes again (at once if it had
    /// not stopped); the connection's error if the database cannot be reached yet (ask again
    /// later); [`StoreError::NeedsPostgres`] on SQLite, whose failures are the disk's: one
    /// engine stops until it is restarted.
    ///
    /// The caller guarantees the precondition that makes this sound: nothing that ran ahead
    /// of the database is still in memory. The writer stops on its first failure because
    /// memory already holds the failed changes, and writing later ones on top would leave the
    /// database in a state no run produced; so no engine that submitted before the failure
    /// may still submit. A cluster node asks only once it holds no lease and has no workspace
    /// loaded (`cluster/node.rs`): what it loads next is restored from the database.
    ///
    /// Every submission sent before the resume is decided first, as the writer would have
    /// (failed, while it is stopped), and those that failed stay failed: a receipt or write
    /// point asked about them later still answers the error. Fencing refusals stay too. A
    /// write point taken once the resume was asked for is reached when it resumed, and the
    /// submissions after it are written as usual.
    pub fn resume_writing(&self) -> Result<(), StoreError> {
        let Some(jobs) = &self.jobs else {
            return Err(StoreError::WriterStopped);
        };
        let (reply, resumed) = tokio::sync::oneshot::channel();
        {
            // In submission order, numbered like a submission: the writer decides what was
            // sent before first, and a write point taken after this one waits for the resume
            // instead of answering the failure of what was sent before.
            let mut submitted = self.submitted.lock();
            self.progress.resume_asked(*submitted);
            *submitted += 1;
            self.counters.submitted.store(*submitted, Ordering::Relaxed);
            // If the writer is gone the message (and `reply`) is dropped: answered below.
            let _ = jobs.send(ToWriter::Resume {
                seq: *submitted,
                reply,
            });
        }
        resumed.blocking_recv().unwrap_or(Err(StoreError::WriterStopped))
    }

    /// Everything submitted so far, to wait on with [`WritePoint::reached`]. A point of the
    /// whole store does not answer for fenced workspaces' refused submissions (their own
    /// handles' points do: [`WorkspaceStore::write_point`]).
    pub fn write_point(&self) -> WritePoint {
        self.write_point_under(None)
    }

    /// Everything submitted so far; under `fence`, also failed once a submission under that
    /// lease was refused.
    pub(crate) fn write_point_under(&self, fence: Fence) -> WritePoint {
        let seq = *self.submitted.lock();
        WritePoint {
            wait: (seq > 0).then(|| (seq, fence, self.progress.clone())),
        }
    }

    /// The writer's counters, for /metrics.
    pub fn stats(&self) -> StoreStats {
        let c = &self.counters;
        // Decided first: the submitted number only grows, so it is read at least as large.
        let decided = c.decided.load(Ordering::Relaxed);
        StoreStats {
            groups_committed: c.groups.load(Ordering::Relaxed),
            changes_written: c.changes.load(Ordering::Relaxed),
            groups_failed: c.failed_groups.load(Ordering::Relaxed),
            pending_submissions: c.submitted.load(Ordering::Relaxed).saturating_sub(decided),
            stopped: c.stopped.load(Ordering::Relaxed),
            resumes: c.resumes.load(Ordering::Relaxed),
            fenced_submissions: c.fenced.load(Ordering::Relaxed),
            log_waits: self.checkpointer.as_ref().map_or(0, |c| c.turn.waits()),
        }
    }

    /// Seconds each committed group took, its fsync included, for /metrics.
    pub fn commit_durations(&self) -> &Histogram {
        &self.counters.commit_seconds
    }

    /// Submissions in each committed group, for /metrics.
    pub fn group_sizes(&self) -> &Histogram {
        &self.counters.group_size
    }

    /// The schema version this build writes.
    pub fn schema_version() -> i64 {
        schema::LATEST
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        drop(self.checkpointer.take());
        // Closing the queue lets the writer finish what is queued and return.
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(path = %self.path.display(), "store writer thread panicked");
            }
        }
    }
}

/// The most the writing connection's page cache holds, in KiB (`PRAGMA cache_size`).
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// Sets up the writing connection: WAL (readers beside the writer), the durability asked
/// for, and a size limit if any.
fn configure(conn: &Connection, options: &StoreOptions) -> rusqlite::Result<()> {
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Returns the mode in force; a file system without shared memory would say "delete",
    // which still works, only with readers waiting for the writer.
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "SQLite refused WAL mode; reads will wait for writes");
    }
    let synchronous = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    // The writer's page cache: SQLite's 2 MiB default holds the hot index pages of one
    // contact centre, but with many workspaces in one file each group's changes land on
    // pages all over the `ws`-prefixed indexes, and the writer spent its time reading them
    // back from the OS (100 workspaces × 50 agents: about 156 µs of CPU per storm operation
    // against 139 µs with 64 MiB; load-tests/README.md, "Issue 18"). A bound, not an
    // allocation: pages are taken as they are used.
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    // Checkpoints run on a thread of their own (`checkpoints::start`): inside a commit, as
    // SQLite does by default every 1,000 pages, one fsyncs the whole database file while
    // every acknowledgement waits (stalls of up to 0.5 s under load).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    // After a checkpoint has copied it all back, the log is cut to this size.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    if let Some(bytes) = options.max_size_bytes {
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        let pages = i64::try_from(bytes).unwrap_or(i64::MAX) / page_size.max(1);
        conn.pragma_update(None, "max_page_count", pages.max(1))?;
    }
    Ok(())
}
