//! The supervisors' board (R15): every change of queues, agents and reopened chats, numbered in
//! one sequence, logged for resume, and sent out in batches by one task.
//!
//! The engine appends a change under the lock that made it (the router's for queues and agents,
//! the customer's for reopened chats), so the sequence follows the order things happened.
//! Appending is cheap: log the event, wake the task. An event is encoded once, when the first
//! subscriber needs it (off the agents' requests, and not at all while nobody watches: encoding
//! every change was a third of an agent's reopen in `benches/core.rs`), and from then on kept
//! only as its JSON. The task sends what came since its last round as one frame per
//! subscription, at most once per batch interval, so that two hundred supervisors cost two
//! hundred writes per round rather than per change, and no agent's request waits for a
//! supervisor's socket. The subscribers are served in groups
//! spread across the interval, so that their writes do not come as one burst.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use crate::lock_order::{Level, Ordered};
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, watch, Notify};

use super::fanout::{ConnHandle, ConnId, CutOff, Frame, Kick};
use crate::ids::{AgentId, ChatId, QueueId};
use crate::protocol::supervisor::{BoardChange, BoardEvent, ReopenedChat, SupervisorServerFrame};

mod weight;

/// Events per `pushes` frame, so that a long backlog does not make one huge frame.
const EVENTS_PER_FRAME: usize = 256;

/// What `"seq":N,` adds to an event's JSON, at most.
const SEQ_WEIGHT: usize = r#""seq":,"#.len() + 20;

/// Subscribers are served in this many groups, one after the other across the batch
/// interval: two hundred supervisors waking together to write their frames made the agents'
/// pushes that fell in that burst wait for it (p99 4x, load-tests/README.md).
pub const ROUND_GROUPS: u64 = 10;

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
    /// The event, and its JSON once a subscriber needed it.
    event: Arc<Logged>,
}

/// An event of the log: encoded at most once, by whoever needs it first, and then kept only
/// as its JSON.
#[derive(Debug)]
struct Logged {
    /// What it is counted at against the log's bytes: its typed form's own size plus about
    /// its JSON's length ([`weight::weigh`]), which its strings and maps take about as much
    /// of. Encoded, it takes less.
    weight: usize,
    form: Ordered<Form>,
}

#[derive(Debug)]
enum Form {
    Typed(Box<BoardEvent>),
    Json(Bytes),
}

impl Logged {
    fn new(event: BoardEvent, weight: usize) -> Self {
        Self {
            weight,
            form: Ordered::new(Level::BoardEntry, Form::Typed(Box::new(event))),
        }
    }

    /// Its JSON, encoded now if nobody needed it before.
    fn json(&self) -> Bytes {
        let mut form = self.form.lock();
        match &*form {
            Form::Json(json) => json.clone(),
            Form::Typed(event) => {
                let json = super::fanout::exact(serde_json::to_vec(event).expect("board events serialize"));
                // Every test that sends a board event checks its weight bounds it.
                debug_assert!(
                    json.len() <= self.weight,
                    "board event weighed {} for {} bytes of JSON",
                    self.weight,
                    json.len()
                );
                *form = Form::Json(json.clone());
                json
            }
        }
    }
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

impl Feed {
    /// The logged entries after `after` up to `upto`, found by position: sequence numbers are
    /// consecutive in the log. Scanning the log (64k entries) for them in every round took a
    /// quarter of a core at 2,000 events/s, holding the lock the agents' appends wait on.
    fn between(&self, after: u64, upto: u64) -> Vec<Entry> {
        let Some(oldest) = self.log.front().map(|e| e.seq) else {
            return Vec::new();
        };
        let start = usize::try_from(after.saturating_add(1).saturating_sub(oldest)).unwrap_or(usize::MAX);
        self.log
            .range(start.min(self.log.len())..)
            .take_while(|e| e.seq <= upto)
            .cloned()
            .collect()
    }
}

#[derive(Debug)]
struct Subscriber {
    id: ConnId,
    agent: AgentId,
    tx: mpsc::Sender<Frame>,
    kicked: Arc<Kick>,
    watch: Watch,
    /// The last sequence number this connection has been given, or its board covered, or the
    /// task passed over because it showed nothing to it.
    cursor: u64,
    /// The round group it is served in.
    group: u64,
}

#[derive(Debug, Default)]
struct Subscribers {
    list: Vec<Subscriber>,
    /// Set once every connection was cut off for good (see [`Supervision::close_everyone`]).
    closed: Option<CutOff>,
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
    feed: Ordered<Feed>,
    subscribers: Ordered<Subscribers>,
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
        Self::starting_at(outbox_capacity, log_capacity, log_bytes, 0)
    }

    /// As [`Supervision::new`], with the board's sequence numbers starting after `first_seq`
    /// (see `Fanout::starting_at`: a resume from before a restart gets a board).
    pub fn starting_at(
        outbox_capacity: usize,
        log_capacity: usize,
        log_bytes: usize,
        first_seq: u64,
    ) -> Self {
        Self {
            feed: Ordered::new(
                Level::BoardFeed,
                Feed {
                    seq: first_seq,
                    ..Feed::default()
                },
            ),
            subscribers: Ordered::default_at(Level::BoardSubscribers),
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
        // From here on: a cursor of 0 would make its group's next round copy the whole log.
        let cursor = self.seq();
        let mut subs = self.subscribers.lock();
        match subs.closed {
            Some(why) => kicked.kick(why),
            None => subs.list.push(Subscriber {
                id,
                agent: agent.clone(),
                tx: tx.clone(),
                kicked: kicked.clone(),
                watch: Watch::Nothing,
                cursor,
                group: id.0 % ROUND_GROUPS,
            }),
        }
        drop(subs);
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

    /// Cuts off every connection, and every later one as soon as it is made: the engine no
    /// longer serves anyone (its workspace is unloaded).
    pub fn close_everyone(&self, why: CutOff) {
        let mut subs = self.subscribers.lock();
        subs.closed = Some(why);
        for sub in subs.list.drain(..) {
            sub.kicked.kick(why);
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
        // Weighed before the lock; the sequence number is counted at its longest.
        let weight = std::mem::size_of::<BoardEvent>() + weight::weigh(&change) + SEQ_WEIGHT;
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
        feed.logged_bytes += weight;
        feed.log.push_back(Entry {
            seq,
            queue,
            supersedes,
            event: Arc::new(Logged::new(BoardEvent { seq, change }, weight)),
        });
        // The newest entry stays, however big: the task has not sent it yet. The last one
        // evicted is dropped after the lock (the log is full in steady state: one a change).
        let mut evicted = None;
        while feed.log.len() > 1 && (feed.log.len() > self.log_capacity || feed.logged_bytes > self.log_bytes)
        {
            let Some(old) = feed.log.pop_front() else { break };
            feed.logged_bytes -= old.event.weight;
            evicted = Some(old);
        }
        drop(feed);
        drop(evicted);
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
        self.encode_after(after_seq);
        let mut subs = self.subscribers.lock();
        let Some(sub) = subs.list.iter_mut().find(|s| s.id == conn) else {
            return Subscribed::NeedsBoard;
        };
        // What the task passed this connection by is replayed now; what came after, the
        // task's next round for it sends.
        let sent = sub.cursor;
        let feed = self.feed.lock();
        let oldest = feed.log.front().map_or(feed.seq + 1, |e| e.seq);
        if after_seq > feed.seq || after_seq + 1 < oldest {
            return Subscribed::NeedsBoard;
        }
        let missed = feed.between(after_seq, sent);
        drop(feed);
        let (frames, count) = batch(&missed, after_seq, &watch);
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
        self.encode_after(board_seq);
        let mut subs = self.subscribers.lock();
        let Some(sub) = subs.list.iter_mut().find(|s| s.id == conn) else {
            return;
        };
        let sent = sub.cursor;
        let missed = if sent > board_seq {
            self.feed.lock().between(board_seq, sent)
        } else {
            Vec::new()
        };
        let (frames, _) = batch(&missed, board_seq, &watch);
        let complete = missed.first().is_none_or(|e| e.seq == board_seq + 1);
        let mut queued = sub.tx.try_send(reply).is_ok();
        for frame in frames {
            queued = queued && sub.tx.try_send(frame).is_ok();
        }
        if !queued || !complete {
            // Too far behind already: it reconnects and tries again.
            self.kicked_total.fetch_add(1, Ordering::Relaxed);
            sub.kicked.kick(CutOff::SlowConsumer);
            subs.list.retain(|s| s.id != conn);
            return;
        }
        sub.watch = watch;
        sub.cursor = sent.max(board_seq);
    }

    /// One round of the task for one group of subscribers: sends each what was appended
    /// since it was last served.
    pub fn round(&self, group: u64) {
        // What the group is about to be sent is encoded first, outside the subscriber list's
        // lock, which connects, disconnects and the other groups' rounds wait on.
        let behind = self
            .subscribers
            .lock()
            .list
            .iter()
            .filter(|s| s.group == group && s.watch != Watch::Nothing)
            .map(|s| s.cursor)
            .min();
        if let Some(after) = behind {
            self.encode_after(after);
        }
        let mut subs = self.subscribers.lock();
        let Some(from) = subs
            .list
            .iter()
            .filter(|s| s.group == group)
            .map(|s| s.cursor)
            .min()
        else {
            return;
        };
        let (fresh, oldest) = {
            let feed = self.feed.lock();
            let oldest = feed.log.front().map_or(feed.seq + 1, |e| e.seq);
            let fresh = feed.between(from, u64::MAX);
            (fresh, oldest)
        };
        let Some(last) = fresh.last().map(|e| e.seq) else {
            return;
        };
        // Frames for the common case (up to date, same watch) are made once and shared.
        let mut made: Vec<(Watch, u64, Vec<Frame>)> = Vec::new();
        let kicked_total = &self.kicked_total;
        subs.list.retain_mut(|sub| {
            if sub.group != group {
                return true;
            }
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
            let frames = match made
                .iter()
                .find(|(w, after, _)| *w == sub.watch && *after == sub.cursor)
            {
                Some((_, _, frames)) => frames.clone(),
                None => {
                    let frames = batch(&fresh, sub.cursor, &sub.watch).0;
                    made.push((sub.watch.clone(), sub.cursor, frames.clone()));
                    frames
                }
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
    }

    /// Runs rounds as changes come, at most one per `interval` for each group, until
    /// `shutdown`; `before` runs first in every interval (the engine appends its KPIs there).
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
            // Changes that come meanwhile wait for the group's next round: that is the
            // batching; the groups take their turns across the interval, on ticks from the
            // cycle's start (ten sleeps, each rounded up to the timer's millisecond, stretched
            // it by a quarter): group 0 now, the cycle over after the tenth step.
            // (A zero interval is allowed: no batching; tokio's interval needs a period.)
            let step = (interval / ROUND_GROUPS as u32).max(StdDuration::from_micros(100));
            let mut steps = tokio::time::interval(step);
            // After a stall the groups spread out again rather than run back to back.
            steps.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for group in (0..ROUND_GROUPS).map(Some).chain([None]) {
                tokio::select! {
                    _ = steps.tick() => {}
                    _ = shutdown.changed() => return,
                }
                if let Some(group) = group {
                    self.round(group);
                }
            }
        }
    }

    /// Encodes the logged events after `after` that nobody has needed yet, holding no lock but
    /// each event's own while it is encoded.
    fn encode_after(&self, after: u64) {
        let pending = self.feed.lock().between(after, u64::MAX);
        for entry in &pending {
            entry.event.json();
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
            let events: Vec<Bytes> = chunk.iter().map(|e| e.event.json()).collect();
            let size = events.iter().map(|json| json.len() + 1).sum::<usize>() + 40;
            let mut out = BytesMut::with_capacity(size);
            out.put_slice(br#"{"type":"pushes","events":["#);
            for (i, json) in events.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(json);
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// What one step of a schedule does.
    #[derive(Clone, Debug)]
    enum Step {
        Append,
        Round(u64),
        /// Reads a board as of now for connection `n` (if it has not subscribed yet)...
        Board(usize),
        /// ...and subscribes it with that board, rounds and appends having come in between.
        Start(usize),
        /// Subscribes connection `n` (if it has not yet) resuming `back` events ago.
        Resume(usize, u64),
    }

    fn step(conns: usize) -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => Just(Step::Append),
            3 => (0..ROUND_GROUPS).prop_map(Step::Round),
            1 => (0..conns).prop_map(Step::Board),
            1 => (0..conns).prop_map(Step::Start),
            1 => (0..conns, 0..8u64).prop_map(|(n, back)| Step::Resume(n, back)),
        ]
    }

    /// The sequence numbers of the events queued on an outbox.
    fn received(outbox: &mut mpsc::Receiver<Frame>) -> Vec<u64> {
        let mut seqs = Vec::new();
        while let Ok(frame) = outbox.try_recv() {
            let value: serde_json::Value = serde_json::from_slice(&frame).expect("frames are JSON");
            if let Some(events) = value["events"].as_array() {
                seqs.extend(
                    events
                        .iter()
                        .map(|e| e["seq"].as_u64().expect("events have a seq")),
                );
            }
        }
        seqs
    }

    const CONNECTIONS: usize = 23;

    /// Appends the removal of agent `id`: a change every subscription shows.
    fn remove_agent(supervision: &Supervision, id: String) {
        supervision.append(
            None,
            BoardChange::AgentRemoved {
                agent_id: AgentId::from(id),
            },
        );
    }

    /// R15: an event bigger than the whole log's byte budget is still sent, not evicted
    /// before the task could send it.
    #[test]
    fn r15_an_event_bigger_than_the_log_budget_still_reaches_subscribers() {
        let supervision = Supervision::new(16, 100, 8);
        let mut conn = supervision.connect(&AgentId::from("sue"));
        let board = Arc::new(Bytes::from_static(b"{}"));
        supervision.start(conn.id, Watch::All, supervision.seq(), board);
        remove_agent(&supervision, "an-agent-with-a-long-id".into());
        supervision.round(conn.id.0 % ROUND_GROUPS);
        assert_eq!(received(&mut conn.outbox), vec![1]);
    }

    /// R15: while nobody watches, the log keeps its events without encoding them, counted at
    /// their weight; the first subscriber that needs them has each encoded, once, and then the
    /// log keeps only the JSON.
    #[test]
    fn r15_events_are_encoded_only_when_a_subscriber_needs_them() {
        let supervision = Supervision::new(16, 100, 1 << 20);
        for n in 1..=3 {
            remove_agent(&supervision, format!("agent-{n}"));
        }
        for group in 0..ROUND_GROUPS {
            supervision.round(group);
        }
        {
            let feed = supervision.feed.lock();
            assert!(
                feed.log
                    .iter()
                    .all(|e| matches!(*e.event.form.lock(), Form::Typed(_))),
                "nobody watches: nothing is encoded"
            );
            let weights: usize = feed.log.iter().map(|e| e.event.weight).sum();
            assert_eq!(feed.logged_bytes, weights);
        }
        let mut conn = supervision.connect(&AgentId::from("sue"));
        let reply = |_| Arc::new(Bytes::from_static(b"{}"));
        assert_eq!(
            supervision.resume(conn.id, Watch::All, 0, reply),
            Subscribed::Replayed(3)
        );
        assert_eq!(received(&mut conn.outbox), vec![1, 2, 3]);
        let feed = supervision.feed.lock();
        for entry in &feed.log {
            let Form::Json(json) = &*entry.event.form.lock() else {
                panic!("event {} was not kept as its JSON once encoded", entry.seq);
            };
            assert!(
                json.len() <= entry.event.weight,
                "event {} weighed {} for {} bytes",
                entry.seq,
                entry.event.weight,
                json.len()
            );
        }
    }

    /// R15: the log's bytes are the weights of the events it holds, however many fell out to
    /// keep it within its bound.
    #[test]
    fn r15_the_log_counts_what_it_holds_after_evicting_by_bytes() {
        let bound = 4 * (std::mem::size_of::<BoardEvent>() + 100);
        let supervision = Supervision::new(16, 1_000, bound);
        for n in 1..=50 {
            remove_agent(&supervision, format!("agent-{n}-{}", "x".repeat(n)));
        }
        let feed = supervision.feed.lock();
        let weights: usize = feed.log.iter().map(|e| e.event.weight).sum();
        assert_eq!(feed.logged_bytes, weights);
        assert!(weights <= bound, "{weights} bytes held, bound {bound}");
        assert!(feed.log.len() < 50, "nothing was evicted");
        assert_eq!(feed.log.back().map(|e| e.seq), Some(50));
    }

    /// R17: the entries after a sequence number are found by position, also once the oldest
    /// have fallen out of the log.
    #[test]
    fn r17_the_log_finds_the_entries_between_two_numbers_after_eviction() {
        let supervision = Supervision::new(16, 4, 1 << 20);
        for n in 1..=10 {
            remove_agent(&supervision, format!("a{n}"));
        }
        let feed = supervision.feed.lock();
        let seqs = |after, upto| -> Vec<u64> { feed.between(after, upto).iter().map(|e| e.seq).collect() };
        assert_eq!(seqs(0, u64::MAX), vec![7, 8, 9, 10]);
        assert_eq!(seqs(6, u64::MAX), vec![7, 8, 9, 10]);
        assert_eq!(seqs(8, 9), vec![9]);
        assert_eq!(seqs(8, 8), Vec::<u64>::new());
        assert_eq!(seqs(10, u64::MAX), Vec::<u64>::new());
        assert_eq!(seqs(12, u64::MAX), Vec::<u64>::new());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// R15, R17: however appends, subscriptions and the groups' rounds interleave, every
        /// subscriber gets every event after its board (or its resume point) exactly once, in
        /// order, once all groups have had their round.
        #[test]
        fn r15_grouped_rounds_give_every_subscriber_each_event_once_in_order(
            steps in prop::collection::vec(step(CONNECTIONS), 1..300),
        ) {
            let supervision = Supervision::new(4096, 100_000, 1 << 24);
            let mut conns: Vec<(ConnHandle, Option<u64>)> = (0..CONNECTIONS)
                .map(|n| (supervision.connect(&AgentId::from(format!("s{n}"))), None))
                .collect();
            let mut boards: Vec<Option<u64>> = vec![None; CONNECTIONS];
            let mut appended = 0u64;
            for step in steps {
                match step {
                    Step::Append => {
                        appended += 1;
                        remove_agent(&supervision, format!("a{appended}"));
                    }
                    Step::Round(group) => supervision.round(group),
                    Step::Board(n) if conns[n].1.is_none() => boards[n] = Some(supervision.seq()),
                    Step::Start(n) if conns[n].1.is_none() => {
                        if let Some(seq) = boards[n].take() {
                            let board = Arc::new(Bytes::from_static(b"{}"));
                            supervision.start(conns[n].0.id, Watch::All, seq, board);
                            conns[n].1 = Some(seq);
                        }
                    }
                    Step::Resume(n, back) if conns[n].1.is_none() => {
                        let after = supervision.seq().saturating_sub(back);
                        let reply = |_| Arc::new(Bytes::from_static(b"{}"));
                        let got = supervision.resume(conns[n].0.id, Watch::All, after, reply);
                        prop_assert!(matches!(got, Subscribed::Replayed(_)));
                        conns[n].1 = Some(after);
                    }
                    Step::Board(_) | Step::Start(_) | Step::Resume(..) => {}
                }
            }
            for group in 0..ROUND_GROUPS {
                supervision.round(group);
            }
            for (conn, from) in &mut conns {
                let got = received(&mut conn.outbox);
                let expected: Vec<u64> = match from {
                    Some(from) => (*from + 1..=appended).collect(),
                    None => Vec::new(),
                };
                prop_assert_eq!(got, expected, "connection {:?}", conn.id);
            }
        }
    }
}
