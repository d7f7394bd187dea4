//! The writer thread: group commit of everything queued, then the receipts.
//!
//! One thread owns the only writing connection. It blocks for the first submission, drains
//! whatever else is queued (up to a cap), applies all of it in one transaction and commits
//! once, so a burst of N submissions costs one fsync instead of N. Only then are the receipts
//! of that group completed: nothing is acknowledged before it is on disk.

use std::cell::Cell;
use std::ffi::c_int;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use prometheus_client::metrics::histogram::Histogram;
use rusqlite::hooks::Wal;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::checkpoints::{self, Turn};
use super::codec::{
    agent_json, delivery_columns, event_columns, json, nanos, nanos_opt, ChatColumns, MessageColumns, Stored,
};
use super::leases::{Epoch, Epochs};
use super::progress::Progress;
use super::records::{AgentRecord, Change, ChatRecord, CustomerRecord, OutboxRecord};
use super::stored_bytes::{self, Added, StoredBytes};
use super::workspace_rows;
use super::{StoreError, WsKey};
use crate::clock::{Stopwatch, Timestamp};
use crate::core::analytics::Event;
use crate::core::chat::{Delivery, Message};
use crate::core::queue::Skills;
use crate::ids::{AgentId, ChatId};

/// One caller's submission, waiting for its group to commit.
pub(crate) struct Job {
    /// Its place in submission order, from 1: the write point it reaches.
    pub(crate) seq: u64,
    /// The workspace every change of it belongs to.
    pub(crate) ws: WsKey,
    /// The lease epoch it was made under (R28), checked in its group's transaction; `None`
    /// for a workspace nobody leases (SQLite, one node on PostgreSQL), never checked.
    pub(crate) epoch: Option<Epoch>,
    pub(crate) changes: Vec<Change>,
    pub(crate) done: oneshot::Sender<Result<(), StoreError>>,
}

/// What the writer thread is handed, in order: submissions, and a resume after a failure.
pub(crate) enum ToWriter {
    Job(Job),
    /// Write again on a fresh connection after the first failure stopped the writer
    /// ([`Store::resume_writing`](super::Store::resume_writing)); answered once done.
    Resume {
        /// Its place in submission order: a write point taken after it waits for it, and is
        /// reached once the writer resumed (not failed by what failed before).
        seq: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// The outcome of a submission: `Ok` once its changes are committed to disk.
///
/// Await it from async code, or call [`Receipt::wait`] from a plain thread.
#[must_use = "a receipt says whether the changes were stored"]
#[derive(Debug)]
pub struct Receipt {
    rx: oneshot::Receiver<Result<(), StoreError>>,
}

impl Receipt {
    /// A receipt and the sender that completes it.
    pub(crate) fn pending() -> (oneshot::Sender<Result<(), StoreError>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self { rx })
    }

    /// The receipt of changes committed already, outside the writer.
    pub(crate) fn committed() -> Self {
        let (done, receipt) = Self::pending();
        let _ = done.send(Ok(()));
        receipt
    }

    /// Blocks the current thread until the group is committed (or failed).
    ///
    /// Do not call it on an async runtime's thread (tokio panics); await the receipt there.
    pub fn wait(self) -> Result<(), StoreError> {
        self.rx.blocking_recv().unwrap_or(Err(StoreError::WriterStopped))
    }
}

impl Future for Receipt {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(StoreError::WriterStopped)))
    }
}

/// Upper bounds of the commit duration buckets, in seconds: 100 µs to 5 s in steps of about
/// 2.5x. A commit with `synchronous=FULL` is an fsync (about a millisecond on an SSD); the top
/// buckets catch a slow or saturated disk.
const COMMIT_BUCKETS: [f64; 15] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Upper bounds of the group size buckets (submissions per group): powers of two up to the
/// default group cap.
const GROUP_BUCKETS: [f64; 13] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];

/// What the writer has done, for /metrics. Atomics, and two histograms observed once per
/// group (each behind an uncontended lock of its own that only a scrape shares).
#[derive(Debug)]
pub(crate) struct Counters {
    /// Groups formed (counted before their commit, so tests can see the writer take one).
    pub(crate) started: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) changes: AtomicU64,
    pub(crate) failed_groups: AtomicU64,
    /// The last submission's number (what `Store::submit` handed the writer last).
    pub(crate) submitted: AtomicU64,
    /// The last decided submission's number: every one up to it is committed or failed.
    pub(crate) decided: AtomicU64,
    /// A commit failed: the writer writes nothing more until a restart, or until it resumes
    /// on PostgreSQL.
    pub(crate) stopped: AtomicBool,
    /// Times the writer resumed writing after a failure (PostgreSQL only).
    pub(crate) resumes: AtomicU64,
    /// Submissions refused because their workspace's lease moved on (R28).
    pub(crate) fenced: AtomicU64,
    /// Seconds each committed group took, from its transaction's start through its commit
    /// (the fsync included).
    pub(crate) commit_seconds: Histogram,
    /// Submissions in each committed group.
    pub(crate) group_size: Histogram,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            started: AtomicU64::new(0),
            groups: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            failed_groups: AtomicU64::new(0),
            submitted: AtomicU64::new(0),
            decided: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            resumes: AtomicU64::new(0),
            fenced: AtomicU64::new(0),
            commit_seconds: Histogram::new(COMMIT_BUCKETS),
            group_size: Histogram::new(GROUP_BUCKETS),
        }
    }
}

/// How long SQLite's writer lets the log grow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// See `StoreOptions::log_frames`.
    pub(crate) log_frames: u32,
}

thread_local! {
    /// Frames in the write-ahead log after the writer's last commit, as SQLite's log hook
    /// reports them. The hook is a plain function, so the count lives here; only the writer
    /// thread commits on its connection.
    static LOG_FRAMES: Cell<u32> = const { Cell::new(0) };
}

fn note_log_frames(_: &Wal, frames: c_int) -> rusqlite::Result<()> {
    LOG_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
    Ok(())
}

/// The writer thread's body: runs until every sender of `jobs` is dropped, then returns after
/// the last group is committed.
pub(crate) fn run(
    mut backend: impl GroupCommit,
    jobs: mpsc::Receiver<ToWriter>,
    counters: Arc<Counters>,
    stored: &StoredBytes,
    group_cap: usize,
    progress: &Progress,
) {
    // The first failure stops all writing: memory already holds the failed changes, and
    // writing later ones on top (a message after a missing one, a chat without its new
    // customer) would leave the database in a state no run of the engine produced. What is
    // on disk stays a prefix of what happened; the engine answers storage_unavailable until
    // it is restarted (after the disk is freed), and restarts from that prefix.
    //
    // A submission refused because its workspace's lease moved on (`StoreError::Fenced`) is
    // no such failure: the group commits without it, and the other workspaces carry on. That
    // workspace stops being written all the same: epochs only rise, so every later submission
    // under the old epoch is refused by the same check, and what is on disk of the old owner
    // stays a prefix of what it did.
    //
    // On PostgreSQL the writer may resume on a fresh connection (a session ended while its
    // node was stopped, a database restart), but only when asked, and the one who asks
    // guarantees that nothing which ran ahead of the database is still in memory
    // (`Store::resume_writing`). The failed submissions stay failed (`Progress` keeps them).
    let mut stopped: Option<StoreError> = None;
    // A resume met while draining a group: handled once that group is decided, in order.
    let mut next: Option<ToWriter> = None;
    loop {
        let first = match next.take().map_or_else(|| jobs.recv().ok(), Some) {
            None => break,
            Some(ToWriter::Resume { seq, reply }) => {
                let outcome = resume(&mut backend, &mut stopped, &counters, progress, seq);
                let _ = reply.send(outcome);
                continue;
            }
            Some(ToWriter::Job(job)) => job,
        };
        let mut queued = first.changes.len();
        let mut group = vec![first];
        while queued < group_cap {
            match jobs.try_recv() {
                Ok(ToWriter::Job(job)) => {
                    queued += job.changes.len();
                    group.push(job);
                }
                Ok(resume) => {
                    next = Some(resume);
                    break;
                }
                Err(_) => break,
            }
        }
        counters.started.fetch_add(1, Ordering::Relaxed);
        let stopwatch = Stopwatch::start();
        let result = match &stopped {
            Some(e) => Err(e.clone()),
            None => backend.commit(&group).map(|committed| {
                stored.committed(&committed.added);
                committed.epochs
            }),
        };
        if let (Err(e), None) = (&result, &stopped) {
            tracing::error!(error = %e, "the store stops writing: every later change is refused until a restart (or a resume, on PostgreSQL)");
            stopped = Some(e.clone());
            counters.stopped.store(true, Ordering::Relaxed);
        }
        // Each submission's outcome: the group's failure, its refusal, or committed.
        let outcomes: Vec<Result<(), StoreError>> = group
            .iter()
            .map(|job| match &result {
                Err(e) => Err(e.clone()),
                Ok(epochs) => epochs.refusal(job).map_or(Ok(()), Err),
            })
            .collect();
        match &result {
            Ok(_) => {
                let mut written = 0;
                for (job, outcome) in group.iter().zip(&outcomes) {
                    match (outcome, job.epoch) {
                        (Err(refusal), Some(held)) => {
                            counters.fenced.fetch_add(1, Ordering::Relaxed);
                            // Before the waiters wake below: their write points see it.
                            if progress.fenced(job.ws, held, job.seq, refusal) {
                                tracing::warn!(error = %refusal, "the workspace's writes under a lost lease are refused");
                            }
                        }
                        _ => written += job.changes.len(),
                    }
                }
                counters.commit_seconds.observe(stopwatch.elapsed().as_secs_f64());
                counters.group_size.observe(group.len() as f64);
                counters.groups.fetch_add(1, Ordering::Relaxed);
                counters.changes.fetch_add(written as u64, Ordering::Relaxed);
            }
            Err(e) => {
                counters.failed_groups.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, submissions = group.len(), "store group commit failed");
            }
        }
        let (first, last) = (group[0].seq, group[group.len() - 1].seq);
        // Before the waiters wake: whoever was told it is on disk sees it counted.
        counters.decided.store(last, Ordering::Relaxed);
        progress.decided(first, last, result.as_ref().err());
        for (job, outcome) in group.into_iter().zip(outcomes) {
            // A caller that stopped waiting does not need telling.
            let _ = job.done.send(outcome);
        }
        // After the receipts: the group just committed does not wait for it.
        if result.is_ok() {
            backend.after_commit();
        }
    }
    progress.writer_gone();
    backend.close();
}

/// Handles the resume numbered `seq`, in the writer's order: every submission sent before it
/// is decided already (failed, if the writer is stopped), every one after it is written on
/// the fresh connection. The resume's own number is decided as the resume went.
fn resume(
    backend: &mut impl GroupCommit,
    stopped: &mut Option<StoreError>,
    counters: &Counters,
    progress: &Progress,
    seq: u64,
) -> Result<(), StoreError> {
    let outcome = match stopped {
        // Nothing failed: there is nothing to resume from.
        None => Ok(()),
        Some(_) => backend.reconnect().inspect(|()| {
            *stopped = None;
            counters.resumes.fetch_add(1, Ordering::Relaxed);
            counters.stopped.store(false, Ordering::Relaxed);
            tracing::warn!("the store writes again, on a fresh connection; what failed before stays failed");
        }),
    };
    match &outcome {
        Ok(()) => progress.resumed(),
        Err(_) => progress.resume_failed(),
    }
    counters.decided.store(seq, Ordering::Relaxed);
    progress.decided(seq, seq, stopped.as_ref());
    outcome
}

/// What a backend committed of a group.
pub(crate) struct Committed {
    /// The bytes of messages it added per workspace, added to `workspaces.stored_bytes` in
    /// the group's transaction.
    pub(crate) added: Added,
    /// The lease epochs it read for the group's fenced submissions: those it refused by
    /// [`Epochs::refusal`] it did not apply.
    pub(crate) epochs: Epochs,
}

/// What the writer thread commits a group through: one backend's writing connection.
pub(crate) trait GroupCommit {
    /// Applies `group` in one transaction, all or nothing: every change of every submission
    /// but those refused because their lease's epoch moved on (R28), of which nothing is
    /// applied.
    fn commit(&mut self, group: &[Job]) -> Result<Committed, StoreError>;

    /// Upkeep after a committed group, once its receipts are sent.
    fn after_commit(&mut self) {}

    /// Upkeep when the writer stops.
    fn close(&mut self) {}

    /// Replaces the writing connection with a fresh one, after a failure: what the old one
    /// had prepared is forgotten. The error if there is no new connection, or if the backend
    /// never resumes (SQLite: its failures are the disk's, and one engine restarts).
    fn reconnect(&mut self) -> Result<(), StoreError>;
}

/// SQLite's writing connection.
pub(crate) struct SqliteWriter {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// Taken to checkpoint, in turn with the checkpointer thread.
    turn: Turn,
}

impl SqliteWriter {
    pub(crate) fn new(conn: Connection, path: PathBuf, limits: Limits, turn: Turn) -> Self {
        conn.wal_hook(Some(note_log_frames));
        Self {
            conn,
            path,
            limits,
            turn,
        }
    }
}

impl GroupCommit for SqliteWriter {
    fn commit(&mut self, group: &[Job]) -> Result<Committed, StoreError> {
        // No submission carries an epoch here (`Store::fenced_workspace` refuses SQLite), so
        // none is refused.
        let added = commit(&mut self.conn, &self.path, group)?;
        Ok(Committed {
            added,
            epochs: Epochs::default(),
        })
    }

    fn after_commit(&mut self) {
        let frames = LOG_FRAMES.with(Cell::get);
        if frames > self.limits.log_frames {
            checkpoints::rewind(&self.conn, &self.turn, frames, self.limits.log_frames);
        }
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        Err(StoreError::NeedsPostgres {
            what: "resuming writing after a failure",
            path: self.path.clone(),
        })
    }

    fn close(&mut self) {
        // Lets SQLite refresh its planner statistics where they drifted; cheap and optional.
        let _ = self.conn.execute_batch("PRAGMA optimize");
    }
}

/// Applies every change of `group` in one transaction; all or nothing. Answers the bytes of
/// messages it added per workspace (counted in the same transaction).
fn commit(conn: &mut Connection, path: &Path, group: &[Job]) -> Result<Added, StoreError> {
    let err = |e| StoreError::sqlite(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)?;
    let mut added = Added::new();
    for job in group {
        for change in &job.changes {
            let bytes = apply(&tx, path, job.ws, change)?;
            if bytes > 0 {
                *added.entry(job.ws).or_default() += bytes;
            }
        }
    }
    stored_bytes::record(&tx, &added).map_err(err)?;
    // Dropping `tx` on an error above rolls the whole group back.
    tx.commit().map_err(err)?;
    Ok(added)
}

/// Why one change could not be applied: its value cannot be stored, or SQLite refused it.
enum Failure {
    Value(StoreError),
    Sql(rusqlite::Error),
}

impl Failure {
    fn into_store(self, path: &Path) -> StoreError {
        match self {
            Failure::Value(e) => e,
            Failure::Sql(e) => StoreError::sqlite(path, e),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Value(e)
    }
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Failure::Sql(e)
    }
}

/// Applies one change; answers the bytes of message it stored (a new message's text and
/// payload), 0 for every other change.
fn apply(conn: &Connection, path: &Path, ws: WsKey, change: &Change) -> Result<u64, StoreError> {
    if let Change::AppendMessage { chat, seq, message } = change {
        return append_message(conn, ws, chat, *seq, message).map_err(|failure| failure.into_store(path));
    }
    let result = match change {
        Change::UpsertCustomer(customer) => upsert_customer(conn, ws, customer),
        Change::UpsertChat(chat) => upsert_chat(conn, ws, chat),
        Change::AppendMessage { .. } => Ok(()),
        Change::Analytics(event) => record_event(conn, ws, event),
        Change::SetAgentLimit { agent, limit } => set_agent_limit(conn, ws, agent, *limit),
        Change::SetAgentSkills { agent, skills } => set_agent_skills(conn, ws, agent, skills),
        Change::SetDelivery {
            chat,
            seq,
            delivery,
            provider_id,
        } => set_delivery(conn, ws, chat, *seq, delivery, provider_id.as_deref()),
        Change::Outbox(record) => outbox_insert(conn, ws, record),
        Change::OutboxAttempt {
            id,
            attempts,
            next_at,
            error,
        } => outbox_attempt(conn, ws, *id, *attempts, next_at, error),
        Change::OutboxFailed { id, reason } => outbox_failed(conn, ws, *id, reason),
        Change::OutboxDone { id } => outbox_done(conn, ws, *id),
        Change::UpsertAgent(agent) => upsert_agent(conn, ws, agent),
        Change::RemoveAgent { agent } => remove_agent(conn, ws, agent),
        Change::CreateWorkspace { id, name, created_at } => {
            workspace_rows::insert(conn, ws, id, name.as_deref(), created_at)
        }
        Change::SetWorkspaceState(state) => workspace_rows::set_state(conn, ws, *state).map_err(Failure::Sql),
        Change::SetWorkspaceAdminKey(digest) => {
            workspace_rows::set_admin_key(conn, ws, digest).map_err(Failure::Sql)
        }
        Change::SetWorkspaceSettings(settings) => {
            workspace_rows::set_settings(conn, ws, settings).map_err(Failure::Sql)
        }
        Change::SetWorkspaceLimits(limits) => {
            workspace_rows::set_limits(conn, ws, limits).map_err(Failure::Sql)
        }
        Change::PurgeWorkspace { batch } => workspace_rows::purge(conn, ws, *batch).map_err(Failure::Sql),
        Change::DeleteWorkspace => workspace_rows::delete(conn, ws).map_err(Failure::Sql),
    };
    result.map(|()| 0).map_err(|failure| failure.into_store(path))
}

/// Only the digits of a phone number, so that spacing and `+` do not matter to search.
pub(crate) fn phone_digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

fn upsert_customer(conn: &Connection, ws: WsKey, c: &CustomerRecord) -> Result<(), Failure> {
    let p = &c.profile;
    let before: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT name, email, phone FROM customers WHERE ws = ?1 AND id = ?2")?
        .query_row(params![ws, c.id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    let key: i64 = conn
        .prepare_cached(
            "INSERT INTO customers (ws, id, name, email, phone, identities, opted_out, pushed, assigned_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (ws, id) DO UPDATE SET
                name = excluded.name, email = excluded.email, phone = excluded.phone,
                identities = excluded.identities, opted_out = excluded.opted_out,
                pushed = excluded.pushed, assigned_agent = excluded.assigned_agent
             RETURNING key",
        )?
        .query_row(
            params![
                ws,
                c.id.as_str(),
                p.name,
                p.email,
                p.phone,
                super::codec::identities_json(&c.identities)?,
                super::codec::channels_json(&c.opted_out)?,
                super::codec::channels_json(&c.pushed)?,
                c.assigned_agent.as_ref().map(|a| a.as_str()),
            ],
            |r| r.get(0),
        )?;
    // The search index is rewritten only when what it indexes changed (an opt-out or a push
    // leaves it alone).
    let searchable = (p.name.clone(), p.email.clone(), p.phone.clone());
    if before.as_ref() != Some(&searchable) {
        if before.is_some() {
            conn.prepare_cached("DELETE FROM customer_search WHERE rowid = ?1")?
                .execute([key])?;
        }
        // `ws` is indexed as the token `w<key>` that scoped searches match (`WsKey::search_filter`).
        conn.prepare_cached(
            "INSERT INTO customer_search (rowid, ws, name, email, phone) VALUES (?1, 'w' || ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            key,
            ws,
            p.name,
            p.email,
            p.phone.as_deref().map(phone_digits)
        ])?;
    }
    Ok(())
}

/// A new chat's row; the parameters are `ChatColumns` in order, as for [`UPDATE_CHAT`].
const INSERT_CHAT: &str =
    "INSERT INTO chats (ws, id, customer, channel, state, owner, reopened_by, reopened_at,
                                  snooze, created_at, queued_at, last_customer_message_at, closed_at,
                                  close_reason, newest_at, routing)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// The update of a chat's row for each set of indexed columns whose values changed (bit 0:
/// customer, 1: state, 2: owner, 3: newest_at), made once: the unindexed columns always
/// (comparing them would cost more than writing them to a page that is written anyway), the
/// indexed ones only if changed.
static UPDATE_CHAT: LazyLock<[String; 16]> = LazyLock::new(|| {
    std::array::from_fn(|changed| {
        let mut set = String::from(
            "channel = ?4, reopened_by = ?7, reopened_at = ?8, snooze = ?9, created_at = ?10,
             queued_at = ?11, last_customer_message_at = ?12, closed_at = ?13,
             close_reason = ?14, routing = ?16",
        );
        let indexed = [
            ", customer = ?3",
            ", state = ?5",
            ", owner = ?6",
            ", newest_at = ?15",
        ];
        for (bit, column) in indexed.iter().enumerate() {
            if changed & (1 << bit) != 0 {
                set.push_str(column);
            }
        }
        format!("UPDATE chats SET {set} WHERE ws = ?1 AND id = ?2")
    })
});

/// Writes chat `c`'s row: inserted when new, else updated in only the indexed columns whose
/// values changed.
///
/// SQLite rewrites an index's entry for every column an `UPDATE` sets, whether its value
/// changed or not, and each rewritten entry dirties a page that the commit writes to the log.
/// Every chat index (`store/schema.rs`) holds `newest_at`, which changes only when a chat is
/// closed or reopened; a message, a snooze or a delivery leaves all four as they were. Setting
/// every column made such an update write five pages instead of one or two (measured on a
/// table of 100,000 chats).
fn upsert_chat(conn: &Connection, ws: WsKey, c: &ChatRecord) -> Result<(), Failure> {
    let c = ChatColumns::of(c)?;
    let indexed = conn
        .prepare_cached("SELECT customer, state, owner, newest_at FROM chats WHERE ws = ?1 AND id = ?2")?
        .query_row(params![ws, c.id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    let sql = match indexed {
        None => INSERT_CHAT,
        Some((customer, state, owner, newest_at)) => {
            let changed = usize::from(customer != c.customer)
                | usize::from(state != c.state) << 1
                | usize::from(owner.as_deref() != c.owner) << 2
                | usize::from(newest_at != c.newest_at) << 3;
            UPDATE_CHAT[changed].as_str()
        }
    };
    conn.prepare_cached(sql)?.execute(params![
        ws,
        c.id,
        c.customer,
        c.channel,
        c.state,
        c.owner,
        c.reopened_by,
        c.reopened_at,
        c.snooze,
        c.created_at,
        c.queued_at,
        c.last_customer_message_at,
        c.closed_at,
        c.close_reason,
        c.newest_at,
        c.routing,
    ])?;
    Ok(())
}

/// Inserts a message; answers the bytes of its text and payload, 0 if it was stored already (a
/// replay), so that each message is counted once.
fn append_message(
    conn: &Connection,
    ws: WsKey,
    chat: &ChatId,
    seq: u64,
    m: &Message,
) -> Result<u64, Failure> {
    let m = MessageColumns::of(seq, m)?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO messages (ws, chat, seq, at, author, agent, kind, text, payload, provider_id,
                               delivery, delivery_reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (ws, chat, seq) DO NOTHING",
        )?
        .execute(params![
            ws,
            chat.as_str(),
            m.seq,
            m.at,
            m.author,
            m.agent,
            m.kind,
            m.text,
            m.payload,
            m.provider_id,
            m.delivery,
            m.delivery_reason
        ])?;
    Ok(if inserted == 0 { 0 } else { m.stored_bytes() })
}

fn set_delivery(
    conn: &Connection,
    ws: WsKey,
    chat: &ChatId,
    seq: u64,
    delivery: &Delivery,
    provider_id: Option<&str>,
) -> Result<(), Failure> {
    let (name, reason) = delivery_columns(Some(delivery));
    conn.prepare_cached(
        "UPDATE messages SET delivery = ?4, delivery_reason = ?5,
                             provider_id = COALESCE(?6, provider_id)
         WHERE ws = ?1 AND chat = ?2 AND seq = ?3",
    )?
    .execute(params![ws, chat.as_str(), seq as i64, name, reason, provider_id])?;
    Ok(())
}

fn outbox_insert(conn: &Connection, ws: WsKey, r: &OutboxRecord) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO outbox (ws, id, customer, chat, seq, message, idempotency_key, attempts, next_at,
                             last_error, failed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (ws, id) DO NOTHING",
    )?
    .execute(params![
        ws,
        r.id as i64,
        r.customer.as_str(),
        r.chat.as_str(),
        r.seq.map(|s| s as i64),
        r.message,
        r.idempotency_key,
        r.attempts,
        nanos_opt(r.next_at.as_ref())?,
        r.last_error,
        r.failed
    ])?;
    Ok(())
}

fn outbox_attempt(
    conn: &Connection,
    ws: WsKey,
    id: u64,
    attempts: u32,
    next_at: &Timestamp,
    error: &str,
) -> Result<(), Failure> {
    conn.prepare_cached(
        "UPDATE outbox SET attempts = ?3, next_at = ?4, last_error = ?5 WHERE ws = ?1 AND id = ?2",
    )?
    .execute(params![ws, id as i64, attempts, nanos(next_at)?, error])?;
    Ok(())
}

fn outbox_failed(conn: &Connection, ws: WsKey, id: u64, reason: &str) -> Result<(), Failure> {
    conn.prepare_cached("UPDATE outbox SET failed = ?3, next_at = NULL WHERE ws = ?1 AND id = ?2")?
        .execute(params![ws, id as i64, reason])?;
    Ok(())
}

fn outbox_done(conn: &Connection, ws: WsKey, id: u64) -> Result<(), Failure> {
    conn.prepare_cached("DELETE FROM outbox WHERE ws = ?1 AND id = ?2")?
        .execute(params![ws, id as i64])?;
    Ok(())
}

fn record_event(conn: &Connection, ws: WsKey, e: &Event) -> Result<(), Failure> {
    let (kind, reason, waited_ms, to_accept_ms, within_sla) = event_columns(&e.kind)?;
    conn.prepare_cached(
        "INSERT INTO analytics_events (ws, at, agent, channel, kind, reason, waited_ms, to_accept_ms,
                                       within_sla, queue)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        ws,
        nanos(&e.at)?,
        e.agent.as_str(),
        e.channel.stored(),
        kind,
        reason,
        waited_ms,
        to_accept_ms,
        within_sla,
        e.queue.as_ref().map(|q| q.as_str())
    ])?;
    Ok(())
}

fn set_agent_skills(conn: &Connection, ws: WsKey, agent: &AgentId, skills: &Skills) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO agent_skills (ws, agent, skills) VALUES (?1, ?2, ?3)
         ON CONFLICT (ws, agent) DO UPDATE SET skills = excluded.skills",
    )?
    .execute(params![ws, agent.as_str(), json(skills)?])?;
    Ok(())
}

fn set_agent_limit(conn: &Connection, ws: WsKey, agent: &AgentId, limit: u32) -> Result<(), Failure> {
    conn.prepare_cached(
        "INSERT INTO agent_limits (ws, agent, max_active) VALUES (?1, ?2, ?3)
         ON CONFLICT (ws, agent) DO UPDATE SET max_active = excluded.max_active",
    )?
    .execute(params![ws, agent.as_str(), limit])?;
    Ok(())
}

fn upsert_agent(conn: &Connection, ws: WsKey, a: &AgentRecord) -> Result<(), Failure> {
    let (queues, skills, channel_limits) = agent_json(a)?;
    // No token in the record: the agent keeps the one stored, as it keeps its token in memory.
    conn.prepare_cached(
        "INSERT INTO agents (ws, agent, name, role, max_active, queues, skills, channel_limits, token_sha256)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (ws, agent) DO UPDATE SET
            name = excluded.name, role = excluded.role, max_active = excluded.max_active,
            queues = excluded.queues, skills = excluded.skills,
            channel_limits = excluded.channel_limits,
            token_sha256 = COALESCE(excluded.token_sha256, agents.token_sha256)",
    )?
    .execute(params![
        ws,
        a.id.as_str(),
        a.name,
        a.role.stored(),
        a.limit,
        queues,
        skills,
        channel_limits,
        a.token_sha256.as_ref().map(|h| h.as_bytes().as_slice()),
    ])?;
    // The profile replaced limit and skills in memory: live changes made before it would
    // otherwise come back over it on the next start.
    delete_live_settings(conn, ws, &a.id)
}

fn remove_agent(conn: &Connection, ws: WsKey, agent: &AgentId) -> Result<(), Failure> {
    conn.prepare_cached("DELETE FROM agents WHERE ws = ?1 AND agent = ?2")?
        .execute(params![ws, agent.as_str()])?;
    delete_live_settings(conn, ws, agent)
}

/// Forgets the limit and skills set live for `agent`.
fn delete_live_settings(conn: &Connection, ws: WsKey, agent: &AgentId) -> Result<(), Failure> {
    conn.prepare_cached("DELETE FROM agent_limits WHERE ws = ?1 AND agent = ?2")?
        .execute(params![ws, agent.as_str()])?;
    conn.prepare_cached("DELETE FROM agent_skills WHERE ws = ?1 AND agent = ?2")?
        .execute(params![ws, agent.as_str()])?;
    Ok(())
}
