//! Pushes to agents: one hub per agent with its sequence number, a replay log for resume
//! (R17), and every live connection's bounded outbox.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use crate::lock_order::{Level, Ordered};
use crate::refusal::Close;
use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, Notify};

use crate::ids::AgentId;
use crate::protocol::{Push, ServerFrame};

/// A text frame (UTF-8 JSON), serialized once and shared by every connection it goes to.
/// A thin pointer on purpose: every outbox's queue blocks hold 32 of them, idle or not.
pub type Frame = Arc<Bytes>;

/// Identifies one connection (a tab, a device).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Why the engine cut a connection off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutOff {
    /// Its outbox filled up: the client did not read fast enough. It should resume.
    SlowConsumer,
    /// Its agent was removed.
    AgentRemoved,
    /// The token it was opened with expired and was not refreshed.
    TokenExpired,
    /// Its workspace stopped being served here (unloaded): it should reconnect and resume.
    WorkspaceClosed,
}

impl CutOff {
    /// How the connection is closed (its code and reason: `refusal.rs`).
    pub fn close(self) -> Close {
        match self {
            CutOff::SlowConsumer => Close::SlowConsumer,
            CutOff::AgentRemoved => Close::AgentRemoved,
            CutOff::TokenExpired => Close::TokenExpired,
            CutOff::WorkspaceClosed => Close::WorkspaceClosed,
        }
    }
}

/// The engine's signal to a connection's task that it has been cut off.
#[derive(Debug)]
pub struct Kick {
    notify: Notify,
    why: Ordered<Option<CutOff>>,
}

impl Default for Kick {
    fn default() -> Self {
        Self {
            notify: Notify::new(),
            why: Ordered::default_at(Level::CutOff),
        }
    }
}

impl Kick {
    pub(crate) fn kick(&self, why: CutOff) {
        self.why.lock().get_or_insert(why);
        self.notify.notify_one();
    }

    /// Resolves once the connection has been cut off, with the reason.
    pub async fn kicked(&self) -> CutOff {
        self.notify.notified().await;
        self.why.lock().unwrap_or(CutOff::SlowConsumer)
    }
}

/// What the gateway holds for one connection.
#[derive(Debug)]
pub struct ConnHandle {
    /// Its id.
    pub id: ConnId,
    /// Frames to write, in order.
    pub outbox: mpsc::Receiver<Frame>,
    /// Signalled when the engine cut the connection off.
    pub kicked: Arc<Kick>,
    /// The sender side, for replies, which share the outbox with pushes.
    pub replies: mpsc::Sender<Frame>,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    tx: mpsc::Sender<Frame>,
    kicked: Arc<Kick>,
}

#[derive(Debug, Default)]
struct Hub {
    seq: u64,
    log: VecDeque<(u64, Frame)>,
    logged_bytes: usize,
    conns: Vec<Conn>,
    /// Bumped on every connect, so a grace timer set before a reconnect knows it is stale.
    epoch: u64,
}

/// The outcome of a resume request.
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    /// The missed pushes were queued on the connection.
    Replayed(u64),
    /// Some are no longer in the log: the client needs a snapshot.
    Gone,
}

/// Every agent's hub.
#[derive(Debug)]
pub struct Fanout {
    hubs: DashMap<AgentId, Arc<Ordered<Hub>>>,
    next_conn: AtomicU64,
    outbox_capacity: usize,
    log_capacity: usize,
    log_bytes: usize,
    /// Connections cut off for not reading.
    pub kicked_total: AtomicU64,
    /// Pushes made, each counted once however many connections it went to.
    pub pushes_total: AtomicU64,
    /// Where every agent's sequence numbers start (see [`Fanout::starting_at`]).
    first_seq: u64,
    /// Set once every connection was cut off for good (see [`Fanout::close_everyone`]).
    closed: OnceLock<CutOff>,
}

impl Fanout {
    /// Outboxes hold `outbox_capacity` frames; each agent's log keeps its last pushes, at
    /// most `log_capacity` of them and `log_bytes` in all (older ones: resume gets a snapshot).
    pub fn new(outbox_capacity: usize, log_capacity: usize, log_bytes: usize) -> Self {
        Self {
            hubs: DashMap::new(),
            next_conn: AtomicU64::new(1),
            outbox_capacity,
            log_capacity,
            log_bytes,
            kicked_total: AtomicU64::new(0),
            pushes_total: AtomicU64::new(0),
            first_seq: 0,
            closed: OnceLock::new(),
        }
    }

    /// Sequence numbers start after `first_seq` instead of 0. An engine restarted on its
    /// database starts them past any number its previous run gave out (it passes a number
    /// from the clock), so a client resuming with a number from before the restart is sent
    /// a snapshot, never a replay of the new run's pushes that happen to follow that number.
    pub fn starting_at(mut self, first_seq: u64) -> Self {
        self.first_seq = first_seq;
        self
    }

    fn hub(&self, agent: &AgentId) -> Arc<Ordered<Hub>> {
        // Clone the Arc out so that no map shard stays locked while the hub is. A read lock
        // on the shard first: the hub exists for every agent that ever connected.
        if let Some(hub) = self.hubs.get(agent) {
            return hub.clone();
        }
        let first_seq = self.first_seq;
        self.hubs
            .entry(agent.clone())
            .or_insert_with(|| {
                Arc::new(Ordered::new(
                    Level::Hub,
                    Hub {
                        seq: first_seq,
                        ..Hub::default()
                    },
                ))
            })
            .clone()
    }

    /// Registers a new connection of `agent`. Returns it and the last sequence number pushed
    /// before it joined: every later push reaches its outbox.
    pub fn connect(&self, agent: &AgentId) -> (ConnHandle, u64) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::channel(self.outbox_capacity);
        let kicked = Arc::new(Kick::default());
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        hub.epoch += 1;
        hub.conns.push(Conn {
            id,
            tx: tx.clone(),
            kicked: kicked.clone(),
        });
        // Read under the hub's lock, after the connection is in: either `close_everyone` sees
        // it in the hub, or this sees what it set (it sets the reason before visiting hubs).
        if let Some(why) = self.closed.get() {
            if let Some(conn) = hub.conns.pop() {
                conn.kicked.kick(*why);
            }
        }
        let handle = ConnHandle {
            id,
            outbox: rx,
            kicked,
            replies: tx,
        };
        (handle, hub.seq)
    }

    /// Forgets a connection. Returns the epoch if it was the agent's last one.
    pub fn disconnect(&self, agent: &AgentId, conn: ConnId) -> Option<u64> {
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        hub.conns.retain(|c| c.id != conn);
        hub.conns.is_empty().then_some(hub.epoch)
    }

    /// Cuts off every connection of `agent`.
    pub fn close_all(&self, agent: &AgentId, why: CutOff) {
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        for conn in hub.conns.drain(..) {
            conn.kicked.kick(why);
        }
    }

    /// Cuts off every connection of every agent, and every later one as soon as it is made:
    /// the engine no longer serves anyone (its workspace is unloaded).
    pub fn close_everyone(&self, why: CutOff) {
        let _ = self.closed.set(why);
        let hubs: Vec<Arc<Ordered<Hub>>> = self.hubs.iter().map(|h| h.clone()).collect();
        for hub in hubs {
            for conn in hub.lock().conns.drain(..) {
                conn.kicked.kick(why);
            }
        }
    }

    /// Cuts off one connection of `agent`, if it is still there.
    pub fn cut_off(&self, agent: &AgentId, conn: ConnId, why: CutOff) {
        let Some(hub) = self.hubs.get(agent).map(|h| h.clone()) else {
            return;
        };
        let mut hub = hub.lock();
        if let Some(i) = hub.conns.iter().position(|c| c.id == conn) {
            hub.conns.remove(i).kicked.kick(why);
        }
    }

    /// Whether the agent has no connection and none came since `epoch`.
    pub fn gone_since(&self, agent: &AgentId, epoch: u64) -> bool {
        let hub = self.hub(agent);
        let hub = hub.lock();
        hub.conns.is_empty() && hub.epoch == epoch
    }

    /// How many connections the agent has.
    pub fn connections(&self, agent: &AgentId) -> usize {
        let hub = self.hubs.get(agent).map(|h| h.clone());
        hub.map_or(0, |h| h.lock().conns.len())
    }

    /// All connections.
    pub fn total_connections(&self) -> usize {
        let hubs: Vec<Arc<Ordered<Hub>>> = self.hubs.iter().map(|h| h.clone()).collect();
        hubs.iter().map(|h| h.lock().conns.len()).sum()
    }

    /// The last sequence number pushed to the agent.
    pub fn seq(&self, agent: &AgentId) -> u64 {
        let hub = self.hubs.get(agent).map(|h| h.clone());
        hub.map_or(0, |h| h.lock().seq)
    }

    /// Pushes `event` to every connection of `agent`, numbered and logged for resume.
    pub fn push(&self, agent: &AgentId, event: Push) {
        self.pushes_total.fetch_add(1, Ordering::Relaxed);
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        hub.seq += 1;
        let seq = hub.seq;
        let frame = encode(&ServerFrame::Push { seq, event });
        // Bounded by count and by bytes, so a busy agent's log cannot grow past its share.
        hub.logged_bytes += frame.len();
        hub.log.push_back((seq, frame.clone()));
        while hub.log.len() > self.log_capacity || hub.logged_bytes > self.log_bytes {
            let Some((_, old)) = hub.log.pop_front() else {
                break;
            };
            hub.logged_bytes -= old.len();
        }
        let kicked = &self.kicked_total;
        hub.conns.retain(|c| deliver(c, frame.clone(), kicked));
    }

    /// Queues every push after `after_seq` on `conn`, or says they are gone.
    pub fn resume(&self, agent: &AgentId, conn: ConnId, after_seq: u64) -> Resumed {
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        if after_seq > hub.seq {
            return Resumed::Gone;
        }
        let oldest = hub.log.front().map_or(hub.seq + 1, |(s, _)| *s);
        if after_seq + 1 < oldest {
            return Resumed::Gone;
        }
        let missed: Vec<Frame> = hub
            .log
            .iter()
            .filter(|(s, _)| *s > after_seq)
            .map(|(_, f)| f.clone())
            .collect();
        let count = missed.len() as u64;
        let kicked = &self.kicked_total;
        let Some(i) = hub.conns.iter().position(|c| c.id == conn) else {
            return Resumed::Gone;
        };
        // A replay that cannot fit the outbox (leaving room for the reply) would cut the
        // connection off on every attempt: a snapshot instead.
        if hub.conns[i].tx.capacity() <= missed.len() {
            return Resumed::Gone;
        }
        for frame in missed {
            if !deliver(&hub.conns[i], frame, kicked) {
                hub.conns.remove(i);
                break;
            }
        }
        Resumed::Replayed(count)
    }
}

/// Queues a frame on a connection; a full outbox cuts the connection off (it resumes later).
fn deliver(conn: &Conn, frame: Frame, kicked: &AtomicU64) -> bool {
    match conn.tx.try_send(frame) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            kicked.fetch_add(1, Ordering::Relaxed);
            conn.kicked.kick(CutOff::SlowConsumer);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Serializes a server frame. Our own types always serialize.
pub fn encode(frame: &ServerFrame) -> Frame {
    let mut out = Vec::with_capacity(512);
    serde_json::to_writer(&mut out, frame).expect("server frames serialize");
    Arc::new(exact(out))
}

/// `Bytes` holding exactly `out`'s bytes. `Bytes::from(Vec)` keeps the vector's whole
/// capacity, and a frame can live long in an agent's replay log: an idle agent's one
/// `presence_changed` push (≈ 90 bytes) held 512 there. Shrinking a small heap block is done
/// in place by the allocator, without a copy.
pub(crate) fn exact(mut out: Vec<u8>) -> Bytes {
    out.shrink_to_fit();
    Bytes::from(out)
}
