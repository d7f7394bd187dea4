//! The supervisors' board (R15): every change of queues, agents and reopened chats, numbered in
//! one sequence, logged for resume, and sent out in batches by one task.
//!
//! The engine appends a change under the lock that made it (the router's for queues and agents,
//! the customer's for reopened chats), so the sequence follows the order things happened.
//! Appending is cheap: encode once, log, wake the task. The task sends what came since its
//! last round as one frame per subscription, at most once per batch interval, so that two
//! hundred supervisors cost two hundred writes per round rather than per change, and no
//! agent's request waits for a supervisor's socket.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use bytes::{BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch, Notify};

use super::fanout::{ConnHandle, ConnId, CutOff, Frame, Kick};
use crate::ids::{AgentId, ChatId, QueueId};
use crate::protocol::supervisor::{BoardChange, BoardEvent, ReopenedChat, SupervisorServerFrame};

/// Events per `pushes` frame, so that a long backlog does not make one huge frame.
const EVENTS_PER_FRAME: usize = 256;

/// What a supervisor connection watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Watch {
    /// Nothing yet: it has not subscribed.
    Nothing,
    /// Every queue.
    All,
    /// These queues.
    Queues(Vec<QueueId>),
}

impl Watch {
    /// Whether a change of `queue` (none: of no queue in particular, like an agent's row)
    /// is shown.
    pub fn shows(&self, queue: Option<&QueueId>) -> bool {
        match self {
            Watch::Nothing => false,
            Watch::All => true,
            Watch::Queues(queues) => queue.is_none_or(|q| queues.contains(q)),
        }
    }
}

/// One logged change.
#[derive(Clone, Debug)]
struct Entry {
    seq: u64,
    /// The queue it belongs to; none for agents and KPIs, which every subscription shows.
    queue: Option<QueueId>,
    /// For an agent's row or the KPIs: a later one in the same batch makes it redundant.
    supersedes: Option<Slot>,
    /// The event, encoded once.
    json: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Agent(AgentId),
    Kpis,
}

#[derive(Debug, Default)]
struct Feed {
    seq: u64,
    log: VecDeque<Entry>,
    logged_bytes: usize,
    /// Reopened chats waiting for their customer: part of the board, kept here so that a
    /// board and its sequence number are read under one lock.
    reopened: BTreeMap<ChatId, ReopenedChat>,
}

#[derive(Debug)]
struct Subscriber {
    id: ConnId,
    agent: AgentId,
    tx: mpsc::Sender<Frame>,
    kicked: Arc<Kick>,
    watch: Watch,
    /// The last sequence number this connection has been given (or its board covered).
    cursor: u64,
}

#[derive(Debug, Default)]
struct Subscribers {
    /// The last sequence number the task has sent out.
    sent: u64,
    list: Vec<Subscriber>,
}

/// What the subscription of a connection got.
#[derive(Debug, PartialEq, Eq)]
pub enum Subscribed {
    /// The missed changes were queued on the connection, this many events.
    Replayed(u64),
    /// Some are gone (or it asked for none): it needs a board.
    NeedsBoard,
}

/// The board's sequence, log and subscribers.
#[derive(Debug)]
pub struct Supervision {
    feed: Mutex<Feed>,
    subscribers: Mutex<Subscribers>,
    wake: Notify,
    next_conn: AtomicU64,
    outbox_capacity: usize,
    log_capacity: usize,
    log_bytes: usize,
    /// Supervisor connections cut off for not reading.
    pub kicked_total: AtomicU64,
}

impl Supervision {
    /// Outboxes hold `outbox_capacity` frames; the log keeps the last `log_capacity` events,
    /// at most `log_bytes` of them (a resume from before gets a board).
    pub fn new(outbox_capacity: usize, log_capacity: usize, log_bytes: usize) -> Self {
        Self {
            feed: Mutex::default(),
            subscribers: Mutex::default(),
            wake: Notify::new(),
            // Apart from agents' connection ids, which start at 1: these are only ever logged.
            next_conn: AtomicU64::new(1 << 62),
            outbox_capacity,
            log_capacity,
            log_bytes,
            kicked_total: AtomicU64::new(0),
        }
    }

    /// The last sequence number appended.
    pub fn seq(&self) -> u64 {
        self.feed.lock().seq
    }

    /// How many supervisor connections there are.
    pub fn connections(&self) -> usize {
        self.subscribers.lock().list.len()
    }

    /// How many connections `agent` has open here.
    pub fn connections_of(&self, agent: &AgentId) -> usize {
        self.subscribers
            .lock()
            .list
            .iter()
            .filter(|s| &s.agent == agent)
            .count()
    }

    /// Registers a supervisor connection; it gets nothing until it subscribes.
    pub fn connect(&self, agent: &AgentId) -> ConnHandle {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.outbox_capacity);
        let kicked = Arc::new(Kick::default());
        self.subscribers.lock().list.push(Subscriber {
            id,
            agent: agent.clone(),
            tx: tx.clone(),
            kicked: kicked.clone(),
            watch: Watch::Nothing,
            cursor: 0,
        });
        ConnHandle {
            id,
            outbox: rx,
            kicked,
            replies: tx,
        }
    }

    /// Cuts off one connection, if it is still there.
    pub fn cut_off(&self, conn: ConnId, why: CutOff) {
        let mut subs = self.subscribers.lock();
        if let Some(i) = subs.list.iter().position(|s| s.id == conn) {
            subs.list.remove(i).kicked.kick(why);
        }
    }

    /// Forgets a connection.
    pub fn disconnect(&self, conn: ConnId) {
        self.subscribers.lock().list.retain(|s| s.id != conn);
    }

    /// Appends a change. `queue` says whose subscribers see it (none: everyone's).
    pub(super) fn append(&self, queue: Option<QueueId>, change: BoardChange) {
        let supersedes = match &change {
            BoardChange::AgentChanged { agent } => Some(Slot::Agent(agent.id.clone())),
            BoardChange::KpisChanged { .. } => Some(Slot::Kpis),
            _ => None,
        };
        let mut feed = self.feed.lock();
        match &change {
            BoardChange::ChatReopened { chat } => {
                feed.reopened.insert(chat.chat_id.clone(), chat.clone());
            }
            BoardChange::ReopenEnded { chat_id, .. } => {
                feed.reopened.remove(chat_id);
            }
            _ => {}
        }
        feed.seq += 1;
        let seq = feed.seq;
        let json =
            Bytes::from(serde_json::to_vec(&BoardEvent { seq, change }).expect("board events serialize"));
        feed.logged_bytes += json.len();
        feed.log.push_back(Entry {
            seq,
            queue,
            supersedes,
            json,
        });
        while feed.log.len() > self.log_capacity || feed.logged_bytes > self.log_bytes {
            let Some(old) = feed.log.pop_front() else { break };
            feed.logged_bytes -= old.json.len();
        }
        drop(feed);
        self.wake.notify_one();
    }

    /// Whether `chat` is on the board as reopened.
    pub(super) fn is_reopened(&self, chat: &ChatId) -> bool {
        self.feed.lock().reopened.contains_key(chat)
    }

    /// The sequence number and the reopened chats `watch` shows, read together; `with` runs
    /// under the same lock, so that what it reads is as of that number too.
    pub(super) fn board_part<R>(
        &self,
        watch: &Watch,
        with: impl FnOnce() -> R,
    ) -> (u64, Vec<ReopenedChat>, R) {
        let feed = self.feed.lock();
        let reopened = feed
            .reopened
            .values()
            .filter(|c| watch.shows(Some(&c.queue)))
            .cloned()
            .collect();
        (feed.seq, reopened, with())
    }

    /// Subscribes `conn` to `watch` after `after_seq`: queues the missed events on it and
    /// then `reply`; or says a board is needed, changing nothing.
    pub(super) fn resume(
        &self,
        conn: ConnId,
        watch: Watch,
        after_seq: u64,
        reply: impl FnOnce(u64) -> Frame,
    ) -> Subscribed {
        let mut subs = self.subscribers.lock();
        let sent = subs.sent;
        let feed = self.feed.lock();
        let oldest = feed.log.front().map_or(feed.seq + 1, |e| e.seq);
        if after_seq > feed.seq || after_seq + 1 < oldest {
            return Subscribed::NeedsBoard;
        }
        let missed: Vec<Entry> = feed
            .log
            .iter()
            .filter(|e| e.seq > after_seq && e.seq <= sent)
            .cloned()
            .collect();
        drop(feed);
        let (frames, count) = batch(&missed, after_seq, &watch);
        let Some(sub) = subs.list.iter_mut().find(|s| s.id == conn) else {
            return Subscribed::NeedsBoard;
        };
        // A replay that cannot fit the outbox would cut the connection off on every attempt.
        if sub.tx.capacity() <= frames.len() + 1 {
            return Subscribed::NeedsBoard;
        }
        for frame in frames {
            let _ = sub.tx.try_send(frame);
        }
        let _ = sub.tx.try_send(reply(count));
        sub.watch = watch;
        sub.cursor = sent.max(after_seq);
        Subscribed::Replayed(count)
    }

    /// Subscribes `conn` to `watch` with a board as of `board_seq`: queues `reply` (the board),
    /// then whatever the task already sent out after that number.
    pub(super) fn start(&self, conn: ConnId, watch: Watch, board_seq: u64, reply: Frame) {
        let mut subs = self.subscribers.lock();
        let sent = subs.sent;
        let missed: Vec<Entry> = if sent > board_seq {
            let feed = self.feed.lock();
            feed.log
                .iter()
                .filter(|e| e.seq > board_seq && e.seq <= sent)
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        let (frames, _) = batch(&missed, board_seq, &watch);
        let Some(sub) = subs.list.iter_mut().find(|s| s.id == conn) else {
            return;
        };
        let complete = missed.first().is_none_or(|e| e.seq == board_seq + 1);
        let mut queued = sub.tx.try_send(reply).is_ok();
        for frame in frames {
            queued = queued && sub.tx.try_send(frame).is_ok();
        }
        if !queued || !complete {
            // Too far behind already: it reconnects and tries again.
            self.kicked_total.fetch_add(1, Ordering::Relaxed);
            sub.kicked.kick(CutOff::SlowConsumer);
        }
        sub.watch = watch;
        sub.cursor = sent.max(board_seq);
    }

    /// One round of the task: sends every subscriber what was appended since the last round.
    pub fn round(&self) {
        let mut subs = self.subscribers.lock();
        let sent = subs.sent;
        let (fresh, oldest) = {
            let feed = self.feed.lock();
            let oldest = feed.log.front().map_or(feed.seq + 1, |e| e.seq);
            let fresh: Vec<Entry> = feed.log.iter().filter(|e| e.seq > sent).cloned().collect();
            (fresh, oldest)
        };
        let Some(last) = fresh.last().map(|e| e.seq) else {
            return;
        };
        // Frames for the common case (up to date, same watch) are made once and shared.
        let mut made: Vec<(Watch, Vec<Frame>)> = Vec::new();
        let kicked_total = &self.kicked_total;
        subs.list.retain_mut(|sub| {
            if sub.watch == Watch::Nothing || sub.cursor >= last {
                sub.cursor = sub.cursor.max(last);
                return true;
            }
            if sub.cursor + 1 < oldest {
                // What it missed fell out of the log before it could be sent: it resumes
                // and gets a board.
                kicked_total.fetch_add(1, Ordering::Relaxed);
                sub.kicked.kick(CutOff::SlowConsumer);
                return false;
            }
            let frames = if sub.cursor <= sent {
                match made.iter().find(|(w, _)| *w == sub.watch) {
                    Some((_, frames)) => frames.clone(),
                    None => {
                        let frames = batch(&fresh, sent, &sub.watch).0;
                        made.push((sub.watch.clone(), frames.clone()));
                        frames
                    }
                }
            } else {
                batch(&fresh, sub.cursor, &sub.watch).0
            };
            sub.cursor = last;
            for frame in frames {
                match sub.tx.try_send(frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        kicked_total.fetch_add(1, Ordering::Relaxed);
                        sub.kicked.kick(CutOff::SlowConsumer);
                        return false;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            true
        });
        subs.sent = last;
    }

    /// Runs rounds as changes come, at most one per `interval`, until `shutdown`; `before`
    /// runs first in every round (the engine appends its KPIs there).
    pub async fn run(
        &self,
        interval: StdDuration,
        mut before: impl FnMut(),
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            before();
            self.round();
            // Changes that come meanwhile wait for the next round: that is the batching.
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Wakes the task without a change (the KPIs changed).
    pub(super) fn nudge(&self) {
        self.wake.notify_one();
    }
}

/// The `pushes` frames of the entries after `after` that `watch` shows, dropping an agent's
/// row or the KPIs where a later one follows; and how many events they hold.
fn batch(entries: &[Entry], after: u64, watch: &Watch) -> (Vec<Frame>, u64) {
    let mut later: HashSet<&Slot> = HashSet::new();
    let mut keep: Vec<&Entry> = Vec::new();
    for entry in entries.iter().rev() {
        if entry.seq <= after {
            break;
        }
        if !watch.shows(entry.queue.as_ref()) {
            continue;
        }
        if let Some(slot) = &entry.supersedes {
            if !later.insert(slot) {
                continue;
            }
        }
        keep.push(entry);
    }
    keep.reverse();
    let count = keep.len() as u64;
    let frames = keep
        .chunks(EVENTS_PER_FRAME)
        .map(|chunk| {
            let size = chunk.iter().map(|e| e.json.len() + 1).sum::<usize>() + 40;
            let mut out = BytesMut::with_capacity(size);
            out.put_slice(br#"{"type":"pushes","events":["#);
            for (i, entry) in chunk.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&entry.json);
            }
            out.put_slice(b"]}");
            Arc::new(out.freeze())
        })
        .collect();
    (frames, count)
}

/// Serializes a frame of the supervisor socket.
pub fn encode(frame: &SupervisorServerFrame) -> Frame {
    Arc::new(Bytes::from(
        serde_json::to_vec(frame).expect("supervisor frames serialize"),
    ))
}
