//! The runtime around the core: state in concurrent maps, timers, and pushes.
//!
//! # Where data enters and which lock it takes
//!
//! Every operation is synchronous and holds no lock across an `.await` (there are none).
//! Locks are taken in one order, outermost first, and never in another; `lock_order.rs`
//! lists every level and debug builds check each acquisition against it:
//!
//! 0. one caller's replies kept for retries (`retries`), held while its request runs, so that
//!    one id sent twice at once runs once (R17).
//! 1. one customer's file (`customers`): all rules about that customer's chats run under it,
//!    so R01 and "exactly one reopen wins" (R03) hold by construction. Never two at once.
//! 2. the router (`router`): capacity, queues and offers, for every load change.
//! 3. the timers; then the supervisors' subscribers and feed (board changes are appended
//!    under the router and the customer); then the live KPIs.
//! 4. each agent's fan-out hub, and a connection's cut-off reason under it.
//! 5. the store's submit lock, then its progress and its read pool (innermost): a change is
//!    submitted under the customer's lock, so the order of commits is the order of changes.
//!
//! Map shard guards (`DashMap`) are never held while taking any of these: the `Arc` inside is
//! cloned out first. Pushes caused under a lock are delivered under it, so an agent sees the
//! events of one chat (or of routing) in the order they happened.

mod agents;
pub mod analytics;
mod archive;
mod board;
mod customers;
mod directory;
mod effects;
mod expiry;
pub mod fanout;
pub mod id_source;
mod ingress;
mod journal;
pub mod outbound;
mod outbox;
mod requests;
mod restore;
pub mod retries;
pub mod supervision;
pub mod ticker;
pub mod timers;
mod views;
mod watching;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::Duration;
use dashmap::DashMap;

use crate::clock::{SharedClock, Timestamp};
use crate::core::{
    Channel, ChatState, CustomerFile, Policies, Presence, QueuePlan, Rejection, Router, RouterEvent, Skills,
};
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};
use crate::lock_order::{Level, Ordered};
pub use crate::protocol::agent::AgentStatus;
pub use crate::protocol::supervisor::{QueueView, WaitingView};
use crate::protocol::{ChatView, OfferView, Push};
use crate::refusal::Refusal;
use crate::store::{WorkspaceStore, WritePoint, WsKey};
use analytics::{Analytics, LiveKpis};
use customers::Customers;
use directory::Directory;
use fanout::{Fanout, Frame};
use id_source::IdSource;
use outbound::Outbound;
pub use restore::Restored;
use retries::{Retries, Side};
use supervision::Supervision;
use timers::{Timer, Timers};
use watching::ArchiveWatchers;

/// A customer's file, behind its lock ([`Level::Customer`]).
type SharedFile = Arc<Ordered<CustomerFile>>;

/// How the engine behaves; see `config.rs` for the file format and defaults.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Every channel's policy.
    pub policies: Policies,
    /// How long an agent has to accept an offer (R06).
    pub accept_timeout: Duration,
    /// How long an agent without connections keeps its presence (R17).
    pub grace: Duration,
    /// Frames a connection's outbox holds before the connection is cut off as too slow.
    pub outbox_capacity: usize,
    /// Pushes kept per agent for resume (R17).
    pub log_capacity: usize,
    /// Bytes of pushes kept per agent for resume: the bound that matters under traffic.
    pub log_bytes: usize,
    /// Queues, the channels they take and their plans (R19–R21); a channel in none gets a
    /// queue of its own name that always takes offers.
    pub queues: Vec<QueueSetup>,
    /// What every chat of a channel requires (R19).
    pub channel_needs: BTreeMap<Channel, Skills>,
    /// The automatic notice a customer gets when an agent reopens its chat (R04).
    pub reopen_notice: String,
    /// How often, at most, supervisors get a frame of the board's changes.
    pub board_interval: std::time::Duration,
    /// Board changes kept for supervisors' resume; the bound must hold more than one batch
    /// interval's changes at full load, or every supervisor is sent a fresh board.
    pub board_log_capacity: usize,
    /// Bytes of board changes kept: each counted at about the memory it takes unencoded (its
    /// typed form's size plus its JSON's length); a supervisor's first need of it encodes it,
    /// and from then on only its JSON is kept (`engine/supervision.rs`).
    pub board_log_bytes: usize,
}

/// One queue of the configuration.
#[derive(Clone, Debug)]
pub struct QueueSetup {
    /// Its id.
    pub id: QueueId,
    /// The channels whose new chats come to it (unless they ask for another queue).
    pub channels: Vec<Channel>,
    /// How it routes (R19–R21).
    pub plan: QueuePlan,
    /// What a customer who comes while it is closed is told, once (R21).
    pub after_hours_reply: String,
}

impl QueueSetup {
    /// A queue for `channels` that always takes offers, with no skills, priority or SLA.
    pub fn plain(id: impl Into<QueueId>, channels: Vec<Channel>) -> Self {
        Self {
            id: id.into(),
            channels,
            plan: QueuePlan::default(),
            after_hours_reply: DEFAULT_AFTER_HOURS_REPLY.into(),
        }
    }
}

/// What a customer who writes while its queue is closed is told, unless the queue says more.
pub const DEFAULT_AFTER_HOURS_REPLY: &str =
    "Thanks for your message. We are closed right now; an agent will answer as soon as we open.";

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            policies: Policies::default(),
            accept_timeout: Duration::seconds(30),
            grace: Duration::seconds(60),
            outbox_capacity: 1024,
            log_capacity: 512,
            log_bytes: 64 * 1024,
            queues: Vec::new(),
            channel_needs: BTreeMap::new(),
            reopen_notice:
                "An agent has reopened your conversation. Reply here to continue, or send #STOP to end it."
                    .into(),
            board_interval: std::time::Duration::from_millis(50),
            board_log_capacity: 64 * 1024,
            board_log_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The routing engine.
pub struct Engine {
    clock: SharedClock,
    config: EngineConfig,
    queue_of: HashMap<Channel, QueueId>,
    /// The agents' profiles and their tokens' digests.
    directory: Directory,
    /// The customers' files, and which holds which chat and address.
    customers: Customers,
    router: Ordered<Router>,
    timers: Timers,
    fanout: Fanout,
    /// Which connections show which archive entries.
    watchers: ArchiveWatchers,
    /// What an offer of a queued chat shows, captured under its customer's lock at enqueue,
    /// since routing may offer it later while holding only the router.
    offer_cards: DashMap<ChatId, ChatView>,
    outbound: Outbound,
    /// Messages the platforms took, by channel and their id of it: for status webhooks (R25).
    sent_messages: DashMap<(Channel, String), outbox::SentMessage>,
    /// Statuses that came before the outbox had recorded their message as taken (R25).
    early_statuses: outbox::EarlyStatuses,
    /// Messages that finally failed, by chat and place: what a retry sends again (R24).
    failed_outbox: DashMap<(ChatId, u64), outbound::OutboxItem>,
    /// This run's start, in the ids' clock: part of every idempotency key, so that keys of a
    /// restarted engine never repeat an earlier run's.
    boot: u64,
    /// Where customer and chat ids come from: shared with every other workspace's engine of
    /// the process when the registry built it ([`Engine::sharing_ids`]).
    ids: IdSource,
    /// When the routing timer is set for, in nanoseconds (0: none pending); changed under the
    /// router's lock.
    routing_tick: AtomicI64,
    supervision: Supervision,
    analytics: Analytics,
    /// Replies kept so that a retried request runs once (R17).
    retries: Retries,
    /// Where acknowledged changes are recorded, under this engine's workspace in the store
    /// that every workspace shares; `None` for an engine kept in memory only.
    store: Option<WorkspaceStore>,
}

impl Engine {
    /// An engine with no agents and no customers.
    pub fn new(config: EngineConfig, clock: SharedClock, outbound: Outbound) -> Arc<Self> {
        Self::with_store(config, clock, outbound, None)
    }

    /// An engine with no agents and no customers that records every change in `store`
    /// before it is acknowledged; [`Engine::restore`] brings back what the store holds.
    pub fn with_store(
        config: EngineConfig,
        clock: SharedClock,
        outbound: Outbound,
        store: Option<WorkspaceStore>,
    ) -> Arc<Self> {
        let ids = IdSource::starting_at(clock.now());
        Self::sharing_ids(config, clock, outbound, store, ids)
    }

    /// [`Engine::with_store`], making its customer and chat ids from `ids`: the counter every
    /// workspace of the process shares (R27), so that no id is ever two workspaces'.
    pub fn sharing_ids(
        config: EngineConfig,
        clock: SharedClock,
        outbound: Outbound,
        store: Option<WorkspaceStore>,
        ids: IdSource,
    ) -> Arc<Self> {
        let mut queue_of = HashMap::new();
        let mut router = Router::new(config.accept_timeout);
        let now = clock.now();
        for queue in &config.queues {
            router.set_queue(queue.id.clone(), queue.plan.clone(), now);
            for channel in &queue.channels {
                queue_of.insert(*channel, queue.id.clone());
            }
        }
        for (channel, needs) in &config.channel_needs {
            router.set_channel_needs(*channel, needs.clone());
        }
        for channel in Channel::ALL {
            let queue = queue_of
                .entry(channel)
                .or_insert_with(|| QueueId::from(channel.as_str()));
            router.add_queue(queue.clone());
        }
        // This run's start in the ids' clock: sequence numbers and idempotency keys of a
        // restarted engine start past the last run's.
        let first_id = IdSource::seed(clock.now());
        // Only an engine with a database outlives its clients' sequence numbers.
        let first_seq = if store.is_some() { first_id } else { 0 };
        let retries = Retries::new(config.grace);
        let fanout =
            Fanout::new(config.outbox_capacity, config.log_capacity, config.log_bytes).starting_at(first_seq);
        let supervision = Supervision::starting_at(
            config.outbox_capacity,
            config.board_log_capacity,
            config.board_log_bytes,
            first_seq,
        );
        Arc::new(Self {
            clock,
            config,
            queue_of,
            directory: Directory::default(),
            customers: Customers::default(),
            router: Ordered::new(Level::Router, router),
            timers: Timers::default(),
            fanout,
            watchers: ArchiveWatchers::default(),
            offer_cards: DashMap::new(),
            outbound,
            sent_messages: DashMap::new(),
            early_statuses: outbox::EarlyStatuses::default(),
            failed_outbox: DashMap::new(),
            boot: first_id,
            ids,
            routing_tick: AtomicI64::new(0),
            supervision,
            analytics: Analytics::default(),
            retries,
            store,
        })
    }

    /// The reply to a request that changes something, sent with `id` by `caller` (its
    /// [`retries::fingerprint`] is `fingerprint`): `run`'s,
    /// or, for a retry of the same request with the same id within the grace period, the
    /// first reply again (R17, `engine/retries.rs`).
    pub fn once(
        &self,
        side: Side,
        caller: &AgentId,
        id: &str,
        fingerprint: u64,
        run: impl FnOnce() -> Frame,
    ) -> Result<Frame, Refusal> {
        self.retries.once(side, caller, id, fingerprint, self.now(), run)
    }

    /// The clock the engine reads, for what must read the same one.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The clock the engine reads.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The pending timers.
    pub fn timers(&self) -> &Timers {
        &self.timers
    }

    /// The fan-out, for connection counts.
    pub fn fanout(&self) -> &Fanout {
        &self.fanout
    }

    /// The supervisors' board feed, for connection counts.
    pub fn supervision(&self) -> &Supervision {
        &self.supervision
    }

    /// Cuts off every agent and supervisor connection with `why`, and every later one as soon
    /// as it is made: the engine stops serving anyone (its workspace is being unloaded).
    pub fn close_connections(&self, why: fanout::CutOff) {
        self.fanout.close_everyone(why);
        self.supervision.close_everyone(why);
    }

    /// What became of messages to customers this run (R24), for /metrics.
    pub fn outbox_counters(&self) -> &outbound::OutboxCounters {
        &self.outbound.counters
    }

    /// The KPI events of this run (reopen outcomes, queue waits), for /metrics.
    pub fn live_kpis(&self) -> &LiveKpis {
        self.analytics.live()
    }

    /// The store as this engine's workspace sees it, if the engine records its changes.
    pub fn store(&self) -> Option<&WorkspaceStore> {
        self.store.as_ref()
    }

    /// The workspace this engine's rows are stored under (`default` for one kept in memory).
    pub fn ws(&self) -> WsKey {
        self.store.as_ref().map_or(WsKey::DEFAULT, WorkspaceStore::ws)
    }

    /// Everything submitted to the store so far: an acknowledgement waits until it is
    /// [reached](WritePoint::reached), so that nothing acknowledged is lost in a crash.
    pub fn write_point(&self) -> WritePoint {
        self.store
            .as_ref()
            .map_or_else(WritePoint::none, |s| s.write_point())
    }

    fn new_id(&self, prefix: &str) -> String {
        format!("{prefix}{:x}", self.ids.next())
    }

    /// Runs a router operation that may refuse; delivers its events if it did not.
    fn try_router(
        &self,
        f: impl FnOnce(&mut Router) -> Result<Vec<RouterEvent>, Rejection>,
    ) -> Result<(), Refusal> {
        self.with_router(|r| match f(r) {
            Ok(events) => (Ok(()), events),
            Err(e) => (Err(e.into()), Vec::new()),
        })
    }

    /// Runs `f` on the router and delivers the routing events it caused before letting go.
    fn with_router<R>(&self, f: impl FnOnce(&mut Router) -> (R, Vec<RouterEvent>)) -> R {
        let mut router = self.router.lock();
        let (result, events) = f(&mut router);
        self.deliver(&mut router, events);
        result
    }

    /// Turns routing events into timers and pushes, and tells supervisors how seats and
    /// queues changed; under the router's lock, so that they go out in the order they
    /// happened.
    fn deliver(&self, router: &mut Router, events: Vec<RouterEvent>) {
        for event in events {
            match event {
                RouterEvent::Offered {
                    chat,
                    agent,
                    queue,
                    expires_at,
                    ..
                } => {
                    self.timers.schedule(
                        expires_at,
                        Timer::OfferExpiry {
                            chat: chat.clone(),
                            agent: agent.clone(),
                        },
                    );
                    if let Some(card) = self.offer_cards.get(&chat).map(|c| c.clone()) {
                        // What the offer asks of the agent, as the router saw it (R19).
                        let (requires, step) = router
                            .offer(&chat)
                            .map(|o| (router.standing(&o.waiting, self.now()).needs, o.waiting.step))
                            .unwrap_or_default();
                        self.fanout.push(
                            &agent,
                            Push::ChatOffered(OfferView {
                                chat: card,
                                queue,
                                expires_at,
                                requires,
                                step,
                            }),
                        );
                    }
                }
                RouterEvent::OfferWithdrawn { chat, agent, reason } => {
                    self.fanout.push(
                        &agent,
                        Push::OfferWithdrawn {
                            chat_id: chat,
                            reason: reason.into(),
                        },
                    );
                }
                RouterEvent::PresenceChanged { agent, presence } => {
                    self.fanout.push(
                        &agent,
                        Push::PresenceChanged {
                            presence: presence.into(),
                        },
                    );
                }
                // The operation that queued the chat holds its customer's file and replies
                // (`Effects::follow_up`); a restored chat was told before the restart.
                RouterEvent::ArrivedAfterHours { .. } => {}
            }
        }
        self.schedule_routing_tick(router);
        let changes = router.take_changes();
        if !changes.seats.is_empty() || !changes.queues.is_empty() {
            self.publish_router_changes(router, changes);
        }
    }

    /// Makes sure the ticker wakes for the router's next step timeout or queue opening
    /// (R19, R21); under the router's lock, so deadlines are seen in the order they were set.
    fn schedule_routing_tick(&self, router: &Router) {
        let Some(at) = router.next_deadline() else { return };
        let nanos = at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        let scheduled = self.routing_tick.load(Ordering::Relaxed);
        // Already due no later, and not yet fired: nothing to do.
        if scheduled <= nanos && scheduled > self.now().timestamp_nanos_opt().unwrap_or(0) {
            return;
        }
        self.routing_tick.store(nanos, Ordering::Relaxed);
        self.timers.schedule(at, Timer::Routing);
    }

    /// Moves waiting chats on to wider steps and opens queues whose hours began.
    pub(crate) fn tick_routing(&self) {
        let now = self.now();
        self.routing_tick.store(0, Ordering::Relaxed);
        self.with_router(|r| ((), r.tick(now)));
    }

    /// Panics if the engine's books do not balance; for tests, with no operation in flight.
    pub fn check_invariants(&self) {
        let files = self.customers.files();
        let mut load: HashMap<AgentId, u32> = HashMap::new();
        let mut queued = Vec::new();
        for file in files {
            let file = file.lock();
            file.check_invariants();
            for chat in &file.chats {
                if let Some(owner) = chat.stage.load_owner() {
                    *load.entry(owner.clone()).or_default() += 1;
                }
                if chat.state() == ChatState::Queued {
                    queued.push(chat.id.clone());
                }
            }
        }
        let router = self.router.lock();
        router.check_invariants();
        for (agent, seat) in router.seats() {
            assert_eq!(
                seat.load,
                load.get(agent).copied().unwrap_or(0),
                "load of {agent} does not match its active and snoozed chats"
            );
        }
        let mut routed: Vec<ChatId> = router
            .queues(self.now())
            .into_iter()
            .flat_map(|(_, w)| w.into_iter().map(|w| w.chat.clone()))
            .chain(router.offers().map(|o| o.waiting.chat.clone()))
            .collect();
        routed.sort();
        queued.sort();
        assert_eq!(
            routed, queued,
            "queued chats and the router's queues and offers differ"
        );
    }

    /// The router's seat of an agent: (presence, load, limit, overrides); for tests and admin.
    pub fn seat(&self, agent: &AgentId) -> Option<(Presence, u32, u32, u64)> {
        self.router
            .lock()
            .seat(agent)
            .map(|s| (s.presence, s.load, s.limit, s.overrides))
    }

    /// Times a chat took an agent over its limit since the engine started (R06).
    pub fn overrides_total(&self) -> u64 {
        self.router.lock().overrides()
    }

    /// Whether the customer has opted out on `channel`; for tests.
    pub fn is_opted_out(&self, customer: &CustomerId, channel: Channel) -> bool {
        self.customers
            .file(customer)
            .is_some_and(|f| f.lock().is_opted_out(channel))
    }

    /// The state of a chat in memory (`None` for one only in the database); for tests.
    pub fn chat_state(&self, chat: &ChatId) -> Option<ChatState> {
        let file = self.file_in_memory(chat)?;
        let file = file.lock();
        file.chat(chat).map(|c| c.state())
    }
}

#[cfg(test)]
mod tests;
