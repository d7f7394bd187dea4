//! The outbox's runtime (R24): waits for each commit, then sends its items — one at a time
//! per chat, so a chat's messages arrive in the order they were made, and up to
//! [`IN_FLIGHT`] chats at once, so one slow platform or customer does not hold up the rest.
//! A failed attempt is made again after a backoff (or the platform's `Retry-After`), recorded
//! so that it survives a restart; after the last attempt the message fails, visibly.
//!
//! In a cluster it asks before each attempt whether this node still holds the workspace
//! ([`Ownership`], R28): a node that lost it (stopped past its lease, say) sends nothing more
//! of it, while the node that took it over sends what is left.
//!
//! Stopped (its workspace let go of), it starts nothing more and gives the attempts on their
//! way [`SETTLE_ON_STOP`] to be answered, so that what the platform took is recorded as taken
//! instead of being sent again by the next engine to load the workspace.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::connector::Connector;
use super::send_thread;
use super::{Dispatch, OutboxItem, Retry};
use crate::channels::SendOutcome;
use crate::engine::Engine;
use crate::ids::ChatId;
use crate::runtime_thread::RuntimeThread;

/// How many chats may have a message on its way at once.
pub const IN_FLIGHT: usize = 64;

/// How often an attempt that found this node not holding its workspace asks again: until the
/// lease is renewed (it ran out by a moment) or the workspace is let go of (the sender stops).
const OWNERSHIP_RECHECK: Duration = Duration::from_millis(100);

/// Whether this engine still decides for its workspace: in a cluster, while this node holds
/// the lease under which it was loaded, by this node's own clock (R28). Outside a cluster the
/// sender has none and always sends.
pub trait Ownership: std::fmt::Debug + Send + Sync {
    /// Whether it holds the workspace now.
    fn holds(&self) -> bool;
}

/// How long a stopped sender waits for the answers to attempts on their way. A workspace
/// handed over to another node would otherwise have that node send again every message the
/// platform had just taken (allowed by the idempotency key, R24, but needless); a platform
/// slower than this still gets the message twice. Short, because it delays the unload (and a
/// process's stop) while a platform hangs.
pub const SETTLE_ON_STOP: Duration = Duration::from_secs(1);

/// Sends what the engine hands over through `connector`, until the engine's end is dropped
/// and everything handed over has been tried.
pub async fn run_outbox(
    engine: Arc<Engine>,
    dispatches: mpsc::UnboundedReceiver<Dispatch>,
    connector: Connector,
    retry: Retry,
) {
    let (_never, running) = watch::channel(false);
    run_outbox_until(engine, dispatches, connector, retry, None, None, running).await;
}

/// [`run_outbox`], or until `stop` turns true or its sender goes: then nothing more is
/// started, attempts on their way get [`SETTLE_ON_STOP`] to be answered and settled, and the
/// rest is left (attempts still unanswered, items waiting out a backoff or for their commit).
/// That loses nothing: every item is in the store's outbox until its platform took it, and the
/// next engine on that store sends it (under the same idempotency key). It is how a
/// workspace's engine is let go of, since this task holds it and the engine holds the other
/// end of `dispatches`.
pub async fn run_outbox_until(
    engine: Arc<Engine>,
    dispatches: mpsc::UnboundedReceiver<Dispatch>,
    connector: Connector,
    retry: Retry,
    sends: Option<Handle>,
    owner: Option<Arc<dyn Ownership>>,
    stop: watch::Receiver<bool>,
) {
    let (ready_tx, ready) = mpsc::unbounded_channel();
    let committer = tokio::spawn(wait_for_commits(engine.clone(), dispatches, ready_tx));
    // Where the sends run: the process's sending thread, else one of this sender's own,
    // dropped when this ends (shut down without blocking), after the scheduler: its sends
    // still in flight are aborted with the JoinSet that holds them.
    let own = match sends {
        Some(_) => None,
        None => send_thread::start()
            .inspect_err(|e| tracing::warn!(error = %e, "no thread of its own for the outbox: it sends on the engine's workers"))
            .ok(),
    };
    let sends = sends
        .or_else(|| own.as_ref().map(RuntimeThread::handle))
        .unwrap_or_else(Handle::current);
    let scheduler = Scheduler {
        engine,
        connector: Arc::new(connector),
        sends,
        retry,
        queues: HashMap::new(),
        busy: HashSet::new(),
        waiting: VecDeque::new(),
        flying: JoinSet::new(),
        owner,
        stop,
        stopping: false,
    };
    // It ends once the committer has (the engine's end went) and what it passed on has been
    // tried, or once stopped.
    scheduler.run(ready).await;
    committer.abort();
    let _ = committer.await;
}

/// Resolves once `stop` reads true or its sender is gone.
async fn until_stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Passes items on once the commit they wait for is on disk, in the order they were handed
/// over (commits complete in that order too); items of a change that was not committed are
/// not sent.
async fn wait_for_commits(
    engine: Arc<Engine>,
    mut dispatches: mpsc::UnboundedReceiver<Dispatch>,
    ready: mpsc::UnboundedSender<OutboxItem>,
) {
    while let Some(Dispatch { items, committed }) = dispatches.recv().await {
        let durable = match committed {
            None => true,
            Some(receipt) => receipt.await.is_ok(),
        };
        if !durable {
            engine.outbox_uncommitted(&items);
            continue;
        }
        for item in items {
            if ready.send(item).is_err() {
                return;
            }
        }
    }
}

struct Scheduler {
    engine: Arc<Engine>,
    connector: Arc<Connector>,
    /// Where the sends themselves run (see [`send_thread`]); their outcomes are settled here.
    sends: Handle,
    retry: Retry,
    /// Items per chat, oldest first.
    queues: HashMap<ChatId, VecDeque<OutboxItem>>,
    /// Chats with an item on its way (or waiting out its backoff).
    busy: HashSet<ChatId>,
    /// Chats with items that wait for a free place in flight, in arrival order.
    waiting: VecDeque<ChatId>,
    /// Each attempt's outcome; none for one not made (stopped during its backoff).
    flying: JoinSet<(OutboxItem, Option<SendOutcome>)>,
    /// Asked before each attempt; none outside a cluster.
    owner: Option<Arc<dyn Ownership>>,
    /// The sender's stop signal; each attempt watches it too.
    stop: watch::Receiver<bool>,
    /// Stopped: nothing more is started.
    stopping: bool,
}

impl Scheduler {
    async fn run(mut self, mut ready: mpsc::UnboundedReceiver<OutboxItem>) {
        let mut open = true;
        let mut stop = self.stop.clone();
        loop {
            if !open && self.flying.is_empty() {
                return;
            }
            tokio::select! {
                () = until_stopped(&mut stop) => break,
                item = ready.recv(), if open => match item {
                    Some(item) => {
                        let chat = item.chat().clone();
                        self.queues.entry(chat.clone()).or_default().push_back(item);
                        self.start(chat);
                    }
                    None => open = false,
                },
                Some(done) = self.flying.join_next(), if !self.flying.is_empty() => self.finished(done),
            }
        }
        // Stopped: the attempts on their way are settled if answered in time (those in a
        // backoff end at once, unmade); the rest are dropped with the JoinSet.
        self.stopping = true;
        let _ = tokio::time::timeout(SETTLE_ON_STOP, async {
            while let Some(done) = self.flying.join_next().await {
                self.finished(done);
            }
        })
        .await;
    }

    fn finished(&mut self, done: Result<(OutboxItem, Option<SendOutcome>), tokio::task::JoinError>) {
        match done {
            Ok((item, Some(outcome))) => self.settle(item, outcome),
            // Not made: it stays in the store's outbox for the next engine.
            Ok((_, None)) => {}
            Err(e) => tracing::error!(error = %e, "an outbox attempt panicked"),
        }
    }

    /// Sends the next item of `chat` unless it has one on its way or too many are, or the
    /// sender is stopping.
    fn start(&mut self, chat: ChatId) {
        if self.stopping || self.busy.contains(&chat) {
            return;
        }
        if self.flying.len() >= IN_FLIGHT {
            if !self.waiting.contains(&chat) {
                self.waiting.push_back(chat);
            }
            return;
        }
        let Some(item) = self.queues.get_mut(&chat).and_then(VecDeque::pop_front) else {
            self.queues.remove(&chat);
            return;
        };
        self.busy.insert(chat);
        let goes_out = self.connector.goes_out(&item);
        let (engine, connector) = (self.engine.clone(), self.connector.clone());
        let mut stop = self.stop.clone();
        let owner = self.owner.clone();
        let send = async move {
            // The backoff of an earlier attempt, or the platform's `Retry-After`; a stop ends
            // it without an attempt.
            if let Some(at) = item.next_at {
                tokio::select! {
                    () = engine.wait_until(at) => {}
                    () = until_stopped(&mut stop) => return (item, None),
                }
            }
            // Not while another node may hold the workspace: that one sends it (R28).
            while owner.as_ref().is_some_and(|o| !o.holds()) {
                tokio::select! {
                    () = tokio::time::sleep(OWNERSHIP_RECHECK) => {}
                    () = until_stopped(&mut stop) => return (item, None),
                }
            }
            if *stop.borrow() {
                return (item, None);
            }
            let outcome = connector.send(&item, engine.now()).await;
            (item, Some(outcome))
        };
        // A message only logged stays on the engine's runtime: the log's lock is the
        // workers' too, and the low-priority thread must hold nothing they wait for.
        match goes_out {
            true => self.flying.spawn_on(send, &self.sends),
            false => self.flying.spawn(send),
        };
    }

    fn settle(&mut self, mut item: OutboxItem, outcome: SendOutcome) {
        let chat = item.chat().clone();
        self.busy.remove(&chat);
        match outcome {
            SendOutcome::Sent { provider_id } => self.engine.outbox_taken(&item, provider_id),
            SendOutcome::Failed { reason } => self.engine.outbox_failed(&item, reason),
            SendOutcome::Retry { after, reason } => {
                item.attempts += 1;
                if item.attempts >= self.retry.attempts {
                    let reason = format!("gave up after {} attempts: {reason}", item.attempts);
                    self.engine.outbox_failed(&item, reason);
                } else {
                    // A platform's `Retry-After` is heeded up to a day; a longer one is a mistake.
                    let wait = after
                        .unwrap_or_default()
                        .max(self.retry.backoff(item.attempts))
                        .min(std::time::Duration::from_secs(86_400));
                    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::days(1));
                    item.next_at = Some(self.engine.now() + wait);
                    self.engine.outbox_retry(&item, &reason);
                    // Back at the front: nothing of the chat goes before it (order per chat).
                    self.queues.entry(chat.clone()).or_default().push_front(item);
                }
            }
        }
        self.start(chat);
        while self.flying.len() < IN_FLIGHT {
            let Some(next) = self.waiting.pop_front() else {
                break;
            };
            self.start(next);
        }
    }
}

#[cfg(test)]
mod tests;
