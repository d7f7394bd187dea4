//! A story-like harness around an [`Engine`] with a manual clock.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tokio::sync::mpsc;

use crate::clock::ManualClock;
use crate::core::{AgentProfile, Channel, Role};
use crate::engine::fanout::ConnHandle;
use crate::engine::id_source::IdSource;
use crate::engine::outbound::Outbound;
use crate::engine::{Engine, EngineConfig, Restored};
use crate::ids::{AgentId, ChatId};
use crate::protocol::{
    Caller, InboundMessage, IngressReceipt, OutboundMessage, Push, ReplyResult, Request, ServerFrame,
};
use crate::refusal::Refusal;
use crate::store::postgres::test_server::PgServer;
use crate::store::{Store, StoreOptions, WorkspaceStore, WsKey};
use std::path::PathBuf;

pub(super) struct Desk {
    pub(super) engine: Arc<Engine>,
    pub(super) clock: ManualClock,
    pub(super) outbound: SentToCustomers,
    conns: HashMap<AgentId, Vec<ConnHandle>>,
    config: EngineConfig,
    /// Every agent registered, to register again after a restart.
    profiles: Vec<AgentProfile>,
    /// The database of a durable desk, removed when the desk is dropped.
    database: Option<Database>,
}

/// Where a durable desk's engine records everything.
enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A private PostgreSQL server (issue 19), stopped and removed with the desk.
    Postgres(PgServer),
}

impl Drop for Desk {
    fn drop(&mut self) {
        if let Some(Database::Sqlite(path)) = &self.database {
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

pub(super) fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("valid date")
}

impl Desk {
    pub(super) fn new() -> Self {
        Self::with(EngineConfig::default())
    }

    pub(super) fn with(config: EngineConfig) -> Self {
        let clock = ManualClock::new(start());
        let (outbound, rx) = Outbound::channel();
        Self {
            engine: Engine::new(config.clone(), Arc::new(clock.clone()), outbound),
            clock,
            outbound: SentToCustomers::new(rx),
            conns: HashMap::new(),
            config,
            profiles: Vec::new(),
            database: None,
        }
    }

    /// A desk whose engine records everything in a database of its own (named after the test).
    pub(super) fn durable(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("switchboard-desk-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self::durable_on(Database::Sqlite(dir.join("switchboard.sqlite")))
    }

    /// A desk whose engine records everything in a private PostgreSQL server (issue 19).
    pub(super) fn durable_on_postgres() -> Self {
        Self::durable_on(Database::Postgres(PgServer::start()))
    }

    fn durable_on(database: Database) -> Self {
        let mut desk = Self::with(EngineConfig::default());
        desk.engine = desk.open_engine(&database);
        desk.database = Some(database);
        desk
    }

    fn open_engine(&mut self, database: &Database) -> Arc<Engine> {
        let store = match database {
            Database::Sqlite(path) => Store::open(path, StoreOptions::default()),
            Database::Postgres(server) => Store::open_postgres(&server.url(), StoreOptions::default()),
        };
        self.engine_on(Arc::new(store.expect("the store opens")).workspace(WsKey::DEFAULT))
    }

    fn engine_on(&mut self, store: WorkspaceStore) -> Arc<Engine> {
        let (outbound, rx) = Outbound::channel();
        self.outbound = SentToCustomers::new(rx);
        Engine::with_store(
            self.config.clone(),
            Arc::new(self.clock.clone()),
            outbound,
            Some(store),
        )
    }

    /// A desk whose engine records everything through `store`, one workspace's handle on a
    /// store that the caller opened (and may share with other desks: R27).
    pub(super) fn on(store: WorkspaceStore) -> Self {
        let mut desk = Self::with(EngineConfig::default());
        desk.engine = desk.engine_on(store);
        desk
    }

    /// [`Desk::on`], its engine making its ids from `ids`: the counter it shares with the
    /// engines of the other workspaces, as the registry builds them (R27).
    pub(super) fn on_sharing(store: WorkspaceStore, ids: IdSource) -> Self {
        let mut desk = Self::with(EngineConfig::default());
        let (outbound, rx) = Outbound::channel();
        desk.outbound = SentToCustomers::new(rx);
        desk.engine = Engine::sharing_ids(
            desk.config.clone(),
            Arc::new(desk.clock.clone()),
            outbound,
            Some(store),
            ids,
        );
        desk
    }

    /// Stops the engine once everything it acknowledged is on disk, leaving one in memory
    /// that holds nothing (and no handle on the store) in its place. No agent is connected
    /// afterwards.
    pub(super) fn stop(&mut self) {
        let point = self.engine.write_point();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
            .block_on(point.reached())
            .expect("everything acknowledged is stored");
        self.conns.clear();
        let fresh = Engine::new(
            self.config.clone(),
            Arc::new(self.clock.clone()),
            Outbound::channel().0,
        );
        drop(std::mem::replace(&mut self.engine, fresh));
    }

    /// Starts a new engine on `store` at the clock's time: the configured agents again, then
    /// the restore (which fires the timers that came due meanwhile).
    pub(super) fn resume_on(&mut self, store: WorkspaceStore) -> Restored {
        self.engine = self.engine_on(store);
        self.restore()
    }

    /// Stops the engine once everything it acknowledged is on disk, and starts a new one on
    /// the same database at the clock's time: the configured agents again, then the restore
    /// (which fires the timers that came due meanwhile). No agent is connected afterwards.
    pub(super) fn restart(&mut self) -> Restored {
        let database = self.database.take().expect("a durable desk");
        // The old engine, and with it the store's writer, is gone before the new one opens.
        self.stop();
        self.engine = self.open_engine(&database);
        self.database = Some(database);
        self.restore()
    }

    fn restore(&mut self) -> Restored {
        for profile in self.profiles.clone() {
            self.engine
                .upsert_agent(profile.clone(), Some(format!("{}-token", profile.id)));
        }
        let store = self.engine.store().expect("a store");
        self.engine.restore(store).expect("the store restores")
    }

    /// Registers an agent with `limit` and connects it once (which brings it online).
    pub(super) fn agent(&mut self, id: &str, limit: u32) -> Caller {
        self.agent_as(id, Role::Agent, limit)
    }

    pub(super) fn agent_as(&mut self, id: &str, role: Role, limit: u32) -> Caller {
        let caller = Caller {
            id: AgentId::from(id),
            role,
        };
        let profile = AgentProfile {
            id: caller.id.clone(),
            name: id.to_uppercase(),
            role,
            limit,
            queues: Vec::new(),
            skills: Default::default(),
            channel_limits: Default::default(),
        };
        self.profiles.push(profile.clone());
        self.engine.upsert_agent(profile, Some(format!("{id}-token")));
        self.connect(&caller);
        caller
    }

    /// Creates an agent with `limit` as the admin API does (recorded in the store, not
    /// registered again by [`Desk::restart`]: R27) and connects it once. Its token is
    /// `<id>-api-token`.
    pub(super) fn api_agent(&mut self, id: &str, limit: u32) -> Caller {
        let caller = Caller {
            id: AgentId::from(id),
            role: Role::Agent,
        };
        self.engine.upsert_agent_live(
            AgentProfile {
                id: caller.id.clone(),
                name: id.to_uppercase(),
                role: Role::Agent,
                limit,
                queues: Vec::new(),
                skills: Default::default(),
                channel_limits: Default::default(),
            },
            Some(format!("{id}-api-token")),
        );
        self.connect(&caller);
        caller
    }

    /// Opens one more connection of `who`; returns its index.
    pub(super) fn connect(&mut self, who: &Caller) -> usize {
        let (handle, _) = self.engine.connect(&who.id);
        let conns = self.conns.entry(who.id.clone()).or_default();
        conns.push(handle);
        conns.len() - 1
    }

    /// Drops connection `index` of `who`.
    pub(super) fn disconnect(&mut self, who: &Caller, index: usize) {
        let handle = self.conns.get_mut(&who.id).expect("connected").remove(index);
        self.engine.disconnect(&who.id, handle.id);
    }

    pub(super) fn conn_id(&self, who: &Caller, index: usize) -> crate::engine::fanout::ConnId {
        self.conns[&who.id][index].id
    }

    pub(super) fn request_on(
        &self,
        who: &Caller,
        index: usize,
        request: Request,
    ) -> Result<ReplyResult, Refusal> {
        self.engine.handle(who, self.conn_id(who, index), request)
    }

    pub(super) fn request(&self, who: &Caller, request: Request) -> Result<ReplyResult, Refusal> {
        self.request_on(who, 0, request)
    }

    /// Every frame queued on connection `index` of `who`, with push sequence numbers.
    pub(super) fn frames_on(&mut self, who: &Caller, index: usize) -> Vec<(u64, Push)> {
        let handle = &mut self.conns.get_mut(&who.id).expect("connected")[index];
        let mut out = Vec::new();
        while let Ok(frame) = handle.outbox.try_recv() {
            match serde_json::from_slice::<ServerFrame>(&frame).expect("server frames parse") {
                ServerFrame::Push { seq, event } => out.push((seq, event)),
                other => panic!("unexpected frame in outbox: {other:?}"),
            }
        }
        out
    }

    /// The pushes queued on the first connection of `who`.
    pub(super) fn pushes(&mut self, who: &Caller) -> Vec<Push> {
        self.frames_on(who, 0).into_iter().map(|(_, p)| p).collect()
    }

    pub(super) fn say(&self, channel: Channel, from: &str, text: &str) -> IngressReceipt {
        self.engine
            .customer_message(
                channel,
                InboundMessage {
                    from: from.into(),
                    text: text.into(),
                    name: Some(format!("Customer {from}")),
                    email: None,
                    phone: Some(from.into()),
                    sent_at: None,
                    ..Default::default()
                },
            )
            .expect("customer message accepted")
    }

    /// Moves the clock and fires whatever became due.
    pub(super) fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine.fire_due_timers();
    }

    pub(super) fn accept(&self, who: &Caller, chat: &ChatId) {
        self.request(
            who,
            Request::Accept {
                chat_id: chat.clone(),
            },
        )
        .expect("offer accepted");
    }

    pub(super) fn close(&self, who: &Caller, chat: &ChatId) {
        self.request(
            who,
            Request::Close {
                chat_id: chat.clone(),
            },
        )
        .expect("chat closed");
    }

    pub(super) fn reopen(&self, who: &Caller, chat: &ChatId) -> Result<ReplyResult, Refusal> {
        self.request(
            who,
            Request::Reopen {
                chat_id: chat.clone(),
            },
        )
    }

    /// The customer writes, `who` (the only one with room) accepts the offer.
    pub(super) fn served(&mut self, who: &Caller, channel: Channel, from: &str) -> ChatId {
        let chat = self.say(channel, from, "hello").chat_id.expect("a chat");
        assert!(
            self.pushes(who)
                .iter()
                .any(|p| matches!(p, Push::ChatOffered(o) if o.chat.id == chat)),
            "{} was offered {chat}",
            who.id
        );
        self.accept(who, &chat);
        chat
    }

    /// A chat of `from` that `who` served and closed.
    pub(super) fn closed_chat(&mut self, who: &Caller, channel: Channel, from: &str) -> ChatId {
        let chat = self.served(who, channel, from);
        self.close(who, &chat);
        self.pushes(who);
        chat
    }

    pub(super) fn load(&self, who: &Caller) -> (u32, u32) {
        let (_, load, limit, _) = self.engine.seat(&who.id).expect("seated");
        (load, limit)
    }

    pub(super) fn check(&self) {
        self.engine.check_invariants();
    }
}

pub(super) fn code(result: Result<ReplyResult, Refusal>) -> crate::core::ErrorCode {
    result.expect_err("rejected").code()
}

/// The chats offered among `pushes`, in order.
pub(super) fn offered(pushes: &[Push]) -> Vec<ChatId> {
    pushes
        .iter()
        .filter_map(|p| match p {
            Push::ChatOffered(o) => Some(o.chat.id.clone()),
            _ => None,
        })
        .collect()
}

pub(super) fn kinds(pushes: &[Push]) -> Vec<&'static str> {
    pushes
        .iter()
        .map(|p| match p {
            Push::ChatOffered(_) => "chat_offered",
            Push::OfferWithdrawn { .. } => "offer_withdrawn",
            Push::ChatReopened { .. } => "chat_reopened",
            Push::ChatActivated { .. } => "chat_activated",
            Push::CustomerMessage { .. } => "customer_message",
            Push::ChatClosed { .. } => "chat_closed",
            Push::ChatUpdated { .. } => "chat_updated",
            Push::MessageSent { .. } => "message_sent",
            Push::ChatTransferred { .. } => "chat_transferred",
            Push::ArchiveEntryChanged { .. } => "archive_entry_changed",
            Push::PresenceChanged { .. } => "presence_changed",
            Push::LimitChanged { .. } => "limit_changed",
            Push::MessageStatus { .. } => "message_status",
        })
        .collect()
}

/// What the engine handed its outbox, message by message (no sender runs in these tests).
pub(super) struct SentToCustomers {
    rx: mpsc::UnboundedReceiver<crate::engine::outbound::Dispatch>,
    ready: std::collections::VecDeque<OutboundMessage>,
}

impl SentToCustomers {
    fn new(rx: mpsc::UnboundedReceiver<crate::engine::outbound::Dispatch>) -> Self {
        Self {
            rx,
            ready: std::collections::VecDeque::new(),
        }
    }

    /// The next message handed over, if any.
    pub(super) fn try_recv(&mut self) -> Result<OutboundMessage, mpsc::error::TryRecvError> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(message);
            }
            let dispatch = self.rx.try_recv()?;
            self.ready
                .extend(dispatch.items.into_iter().map(|item| item.message));
        }
    }
}
