//! The harness: a real server with a manual clock, and clients that read like a story.
//!
//! ```ignore
//! let server = TestServer::start().await;
//! let mut ana = server.agent("ana").connect().await;
//! let customer = server.customer("whatsapp", "+4915100000001");
//! let chat = ana.serves(&customer).await;
//! ana.closes(&chat).await;
//! ana.reopen(&chat).await.expect_ok();
//! ```

mod agent;
mod customer;
mod postgres;
pub(crate) mod schema;
mod supervisor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use switchboard::clock::{ManualClock, Timestamp};
use switchboard::cluster::Directory;
use switchboard::core::{AgentProfile, Role};
use switchboard::engine::id_source::IdSource;
use switchboard::engine::outbound::connector::Connector;
use switchboard::engine::outbound::sender::run_outbox;
use switchboard::engine::outbound::{Dispatch, Outbound, Retry};
use switchboard::engine::{Engine, EngineConfig};
use switchboard::gateway::forward::Forwarder;
use switchboard::gateway::{board_runtime, serve_then_unload};
use switchboard::ids::WorkspaceId;
use switchboard::protocol::{InboundMessage, OutboundMessage};
use switchboard::runtime_thread::RuntimeThread;
use switchboard::security::Security;
use switchboard::store::{Store, StoreOptions, WsKey};
use switchboard::workspaces::{Background, Credentials, Limits, Provisioning, Workspace, Workspaces};

pub(crate) use agent::{Agent, AgentClient, Pushed, Reply};
pub(crate) use customer::Customer;
use postgres::PgDatabase;
pub(crate) use supervisor::{apply, Supervisor, SupervisorClient};

/// A number no other request of this test run has: request ids must not repeat for an agent
/// within the grace period, on any of its connections (a repeated id is a retry, R17).
pub(crate) fn next_request_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How long any wait for an event lasts before the test fails.
pub(crate) const WAIT: StdDuration = StdDuration::from_secs(5);

/// How long the server waits for WebSockets to close on shutdown.
const DRAIN: StdDuration = StdDuration::from_secs(2);

/// The limit of agents registered with [`TestServer::agent`].
pub(crate) const DEFAULT_LIMIT: u32 = 3;

/// A running server on `127.0.0.1:0` whose clock only moves when the test says so.
pub(crate) struct TestServer {
    /// The engine behind the server, for checks the wire does not offer: the `default`
    /// workspace's.
    pub(crate) engine: Arc<Engine>,
    /// The engines of the workspaces served beside `default` (R27), by id.
    others: Vec<(WorkspaceId, Arc<Engine>)>,
    /// The engine's clock.
    pub(crate) clock: ManualClock,
    /// Where the server listens.
    pub(crate) addr: SocketAddr,
    http: reqwest::Client,
    outbound: Mutex<mpsc::UnboundedReceiver<Dispatch>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// The database of a durable server; last, so it goes after the engine.
    database: Option<TempDatabase>,
    /// How its store was opened, to open it again the same way on a restart.
    store_options: StoreOptions,
    /// A node of a cluster's relay to the other nodes (see [`TestServer::start_node`]).
    forwarder: Option<Arc<Forwarder>>,
}

/// Where a durable server keeps its data: issue 19's two backends, on which every test that
/// restarts a server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Backend {
    /// A file in a temporary directory of its own.
    Sqlite,
    /// A database of its own on the test binary's private PostgreSQL server.
    Postgres,
}

/// A durable server's database, removed when this is dropped.
#[derive(Debug)]
pub(crate) enum TempDatabase {
    /// A database in a directory of its own under the system's temporary directory.
    Sqlite {
        dir: PathBuf,
    },
    Postgres(PgDatabase),
}

impl TempDatabase {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, Ordering::Relaxed);
                let dir = std::env::temp_dir().join(format!("switchboard-it-{}-{n}", std::process::id()));
                // A directory left by an earlier run with the same process id holds nothing of ours.
                let _ = std::fs::remove_dir_all(&dir);
                Self::Sqlite { dir }
            }
            Backend::Postgres => Self::Postgres(PgDatabase::create().await),
        }
    }

    /// The SQLite file, for tests that reach into it; none on PostgreSQL.
    fn sqlite_path(&self) -> Option<PathBuf> {
        match self {
            Self::Sqlite { dir } => Some(dir.join("switchboard.sqlite")),
            Self::Postgres(_) => None,
        }
    }

    /// The store on it, opened (again) with `options`.
    fn open(&self, options: StoreOptions) -> Store {
        match self {
            Self::Sqlite { .. } => {
                let path = self.sqlite_path().expect("a SQLite database has a file");
                Store::open(&path, options)
                    .unwrap_or_else(|e| panic!("the store at {} opens: {e}", path.display()))
            }
            Self::Postgres(db) => Store::open_postgres(db.url(), options)
                .unwrap_or_else(|e| panic!("the store at {} opens: {e}", db.url())),
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        if let Self::Sqlite { dir } = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestServer {
    /// The moment every test starts at.
    pub(crate) fn start_time() -> Timestamp {
        Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
            .single()
            .expect("a valid start time")
    }

    /// A server with the default configuration.
    pub(crate) async fn start() -> Self {
        Self::start_with(EngineConfig::default()).await
    }

    /// A server with `config` and the development security setup.
    pub(crate) async fn start_with(config: EngineConfig) -> Self {
        Self::start_secured(config, Security::default()).await
    }

    /// A server with `config`, checking credentials and limits as `security` says.
    pub(crate) async fn start_secured(config: EngineConfig, security: Security) -> Self {
        let clock = ManualClock::new(Self::start_time());
        let (outbound, outbound_rx) = Outbound::channel();
        let engine = Engine::new(config, Arc::new(clock.clone()), outbound);
        Self::serve(engine, clock, outbound_rx, security).await
    }

    /// A server of `default` and, beside it, a workspace of each of `others` (R27), each with
    /// an engine of its own on one clock and one id counter (as the registry builds them),
    /// checking credentials as `security` says.
    pub(crate) async fn start_workspaces(security: Security, others: &[&str]) -> Self {
        Self::start_relaying(security, others, None).await
    }

    /// [`TestServer::start_workspaces`] as a node of a cluster (issue 19): a request for a
    /// workspace `directory` places on another node is relayed there (R28).
    pub(crate) async fn start_node(
        security: Security,
        others: &[&str],
        directory: Arc<dyn Directory>,
    ) -> Self {
        let forwarder = Arc::new(Forwarder::new(directory).expect("the relay's HTTP clients build"));
        Self::start_relaying(security, others, Some(forwarder)).await
    }

    /// `default` and `others`, each an engine of its own on one clock and one id source,
    /// relaying through `forward` when given.
    async fn start_relaying(security: Security, others: &[&str], forward: Option<Arc<Forwarder>>) -> Self {
        let clock = ManualClock::new(Self::start_time());
        let ids = IdSource::starting_at(Self::start_time());
        let engine_of = |outbound| {
            let config = EngineConfig::default();
            Engine::sharing_ids(config, Arc::new(clock.clone()), outbound, None, ids.clone())
        };
        let (outbound, outbound_rx) = Outbound::channel();
        let engine = engine_of(outbound);
        let others = others
            .iter()
            .map(|id| {
                let id = WorkspaceId::parse(id).unwrap_or_else(|e| panic!("{e}"));
                // Its outbox is nobody's: these tests send nothing to customers.
                let (outbound, _) = Outbound::channel();
                (id, engine_of(outbound))
            })
            .collect();
        Self::serve_many(engine, others, clock, outbound_rx, security, forward).await
    }

    /// What a node of [`TestServer::start_node`] relayed.
    pub(crate) fn forwarded(&self) -> &switchboard::cluster::ForwardStats {
        self.forwarder.as_ref().expect("a node of a cluster").stats()
    }

    /// A server whose outbox really sends (R24): through the platforms of `security` (the
    /// tests point their `base_url`s at fake platforms on 127.0.0.1), the rest to the log,
    /// retried as `retry` says. [`TestServer::sent_to_customers`] sees nothing on it.
    pub(crate) async fn start_native(config: EngineConfig, security: Security, retry: Retry) -> Self {
        let connector = Connector::platforms(security.platforms.clone(), Connector::Log);
        Self::start_sending(config, security, connector, retry).await
    }

    /// A server whose outbox really sends (R24) through `connector` (the tests' own: a webhook
    /// to a fake platform on 127.0.0.1), retried as `retry` says.
    /// [`TestServer::sent_to_customers`] sees nothing on it.
    pub(crate) async fn start_sending(
        config: EngineConfig,
        security: Security,
        connector: Connector,
        retry: Retry,
    ) -> Self {
        let clock = ManualClock::new(Self::start_time());
        let (outbound, outbound_rx) = Outbound::channel();
        let engine = Engine::new(config, Arc::new(clock.clone()), outbound);
        // Ends when the engine's end of the outbox goes, with the engine.
        tokio::spawn(run_outbox(engine.clone(), outbound_rx, connector, retry));
        let (_, nothing) = mpsc::unbounded_channel();
        Self::serve(engine, clock, nothing, security).await
    }

    /// A server with `config` that records everything in a SQLite database of its own (in a
    /// fresh temporary directory, removed when the server is dropped).
    pub(crate) async fn start_durable(config: EngineConfig) -> Self {
        Self::start_durable_on(Backend::Sqlite, config).await
    }

    /// [`TestServer::start_durable`] on `backend` (on PostgreSQL: a fresh database, dropped
    /// when the server is).
    pub(crate) async fn start_durable_on(backend: Backend, config: EngineConfig) -> Self {
        Self::start_durable_with_on(backend, config, StoreOptions::default()).await
    }

    /// [`TestServer::start_durable`] on a store opened with `options`.
    pub(crate) async fn start_durable_with(config: EngineConfig, options: StoreOptions) -> Self {
        Self::start_durable_with_on(Backend::Sqlite, config, options).await
    }

    /// [`TestServer::start_durable_on`] on a store opened with `options`.
    async fn start_durable_with_on(backend: Backend, config: EngineConfig, options: StoreOptions) -> Self {
        let mut server = Self::open_durable(
            config,
            TempDatabase::new(backend).await,
            Self::start_time(),
            &[],
            options.clone(),
        )
        .await;
        server.store_options = options;
        server
    }

    /// Where the durable server's SQLite database lives.
    pub(crate) fn database_dir(&self) -> Option<PathBuf> {
        match self.database.as_ref()? {
            TempDatabase::Sqlite { dir } => Some(dir.clone()),
            TempDatabase::Postgres(_) => None,
        }
    }

    /// Stops this durable server and starts another on its database, as a restart of the
    /// process would: the new engine knows only what the database holds (its agents are
    /// registered again by the test), and its clock goes on from this one's.
    pub(crate) async fn restart(self) -> Self {
        self.restart_with(&[]).await
    }

    /// [`TestServer::restart`], with `agents` (id, role, limit) configured before the restore,
    /// as the engine's configuration is when it starts: their chats count toward their loads
    /// again, and limits changed live while the old engine ran apply to them.
    pub(crate) async fn restart_with(mut self, agents: &[(&str, Role, u32)]) -> Self {
        let config = self.engine.config().clone();
        let now = self.now();
        let options = self.store_options.clone();
        let database = self
            .database
            .take()
            .expect("only a server started with start_durable restarts");
        self.stop().await;
        // The old engine closes its store when the last reference goes; a second store on the
        // same file would work too (SQLite), but would not be a restart.
        drop(self);
        Self::open_durable(config, database, now, agents, options).await
    }

    async fn open_durable(
        config: EngineConfig,
        database: TempDatabase,
        now: Timestamp,
        agents: &[(&str, Role, u32)],
        options: StoreOptions,
    ) -> Self {
        let store = Arc::new(database.open(options)).workspace(WsKey::DEFAULT);
        let clock = ManualClock::new(now);
        let (outbound, outbound_rx) = Outbound::channel();
        let engine = Engine::with_store(config, Arc::new(clock.clone()), outbound, Some(store.clone()));
        for (id, role, limit) in agents {
            engine.upsert_agent(
                AgentProfile {
                    id: (*id).into(),
                    name: id.to_uppercase(),
                    role: *role,
                    limit: *limit,
                    queues: Vec::new(),
                    skills: Default::default(),
                    channel_limits: Default::default(),
                },
                Some(format!("{id}-token")),
            );
        }
        engine
            .restore(&store)
            .expect("the engine restores from its store");
        let mut server = Self::serve(engine, clock, outbound_rx, Security::default()).await;
        server.database = Some(database);
        server
    }

    /// A durable server whose workspaces are the store's (`Workspaces::open`), with the
    /// platform API: `default` (no agents configured) and whatever was created over it; on
    /// SQLite.
    pub(crate) async fn start_platform(security: Security) -> Self {
        Self::start_platform_on(Backend::Sqlite, security).await
    }

    /// [`TestServer::start_platform`] on `backend`.
    pub(crate) async fn start_platform_on(backend: Backend, security: Security) -> Self {
        Self::open_platform(
            TempDatabase::new(backend).await,
            Self::start_time(),
            security,
            PlatformOptions::default(),
        )
        .await
    }

    /// [`TestServer::start_platform`] whose workspaces send their outbox through `connector`
    /// (each workspace's own platforms and webhook in front of it), retrying as `retry` says.
    pub(crate) async fn start_platform_sending(
        security: Security,
        connector: Connector,
        retry: Retry,
    ) -> Self {
        let options = PlatformOptions {
            sending: Some((connector, retry)),
            ..PlatformOptions::default()
        };
        Self::start_platform_with(security, options).await
    }

    /// [`TestServer::start_platform`] whose `/metrics` labels the first `labels` workspaces
    /// with their id and sums the rest under `_other`.
    pub(crate) async fn start_platform_labelling(security: Security, labels: usize) -> Self {
        let options = PlatformOptions {
            metric_labels: Some(labels),
            ..PlatformOptions::default()
        };
        Self::start_platform_with(security, options).await
    }

    /// A platform server on SQLite with `options`.
    async fn start_platform_with(security: Security, options: PlatformOptions) -> Self {
        Self::open_platform(
            TempDatabase::new(Backend::Sqlite).await,
            Self::start_time(),
            security,
            options,
        )
        .await
    }

    /// Stops a server of [`TestServer::start_platform`] and starts it again on its database.
    pub(crate) async fn restart_platform(mut self, security: Security) -> Self {
        let now = self.now();
        let database = self
            .database
            .take()
            .expect("only a server started with start_platform restarts so");
        self.stop().await;
        drop(self);
        Self::open_platform(database, now, security, PlatformOptions::default()).await
    }

    async fn open_platform(
        database: TempDatabase,
        now: Timestamp,
        security: Security,
        options: PlatformOptions,
    ) -> Self {
        let PlatformOptions {
            metric_labels,
            sending,
        } = options;
        let store = database.open(StoreOptions::default());
        let clock = ManualClock::new(now);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let (opened, default) = oneshot::channel();
        let provisioning_clock = clock.clone();
        let task = tokio::spawn(async move {
            let boards = board_runtime::start()?;
            let workspaces = Workspaces::open(Provisioning {
                store: Some(Arc::new(store)),
                clock: Arc::new(provisioning_clock),
                default_config: EngineConfig::default(),
                default_settings: Default::default(),
                configured: Arc::new(Credentials::configured(&security)),
                default_agents: Vec::new(),
                others: EngineConfig::default(),
                new_limits: Limits::UNLIMITED,
                boards: boards.handle(),
                ticker: false,
                sending,
                sends: None,
            })
            .await
            .unwrap_or_else(|e| panic!("the workspaces open: {e}"));
            if let Some(labels) = metric_labels {
                workspaces.label_metrics_of(labels);
            }
            let workspaces = Arc::new(workspaces);
            let engine = workspaces
                .get(&WorkspaceId::default_workspace())
                .map(|w| w.engine().clone())
                .expect("default is always loaded");
            let _ = opened.send(engine);
            serve_registry(listener, workspaces, boards, security, None, stopped).await
        });
        let engine = default.await.expect("the server task opened its workspaces");
        let (_, nothing) = mpsc::unbounded_channel();
        Self {
            engine,
            others: Vec::new(),
            clock,
            addr,
            http: reqwest::Client::new(),
            outbound: Mutex::new(nothing),
            stop: Some(stop),
            task: Some(task),
            database: Some(database),
            store_options: StoreOptions::default(),
            forwarder: None,
        }
    }

    /// The path of the SQLite database's file, for tests that read it directly.
    pub(crate) fn database_path(&self) -> Option<PathBuf> {
        self.database.as_ref()?.sqlite_path()
    }

    async fn serve(
        engine: Arc<Engine>,
        clock: ManualClock,
        outbound_rx: mpsc::UnboundedReceiver<Dispatch>,
        security: Security,
    ) -> Self {
        Self::serve_many(engine, Vec::new(), clock, outbound_rx, security, None).await
    }

    /// Serves `engine` as `default` and `others` beside it; relaying through `forwarder`, if
    /// given, as a node of a cluster.
    async fn serve_many(
        engine: Arc<Engine>,
        others: Vec<(WorkspaceId, Arc<Engine>)>,
        clock: ManualClock,
        outbound_rx: mpsc::UnboundedReceiver<Dispatch>,
        security: Security,
        forwarder: Option<Arc<Forwarder>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = if others.is_empty() && forwarder.is_none() {
            let shutdown = async move {
                let _ = stopped.await;
            };
            tokio::spawn(switchboard::gateway::serve_with(
                listener,
                engine.clone(),
                security,
                shutdown,
                DRAIN,
            ))
        } else {
            let (default, others_served) = (engine.clone(), others.clone());
            let relay = forwarder.clone();
            tokio::spawn(async move {
                let boards = board_runtime::start()?;
                let workspaces = Arc::new(Workspaces::single(
                    default,
                    Background::board_only(boards.handle()),
                ));
                for (id, engine) in others_served {
                    let workspace = Workspace::start(id, engine, Background::board_only(boards.handle()));
                    workspaces.insert(workspace).expect("each workspace once");
                }
                serve_registry(listener, workspaces, boards, security, relay, stopped).await
            })
        };
        Self {
            engine,
            others,
            clock,
            addr,
            http: reqwest::Client::new(),
            outbound: Mutex::new(outbound_rx),
            stop: Some(stop),
            task: Some(task),
            database: None,
            store_options: StoreOptions::default(),
            forwarder,
        }
    }

    /// The engine of workspace `workspace`, served beside `default` (see
    /// [`TestServer::start_workspaces`]).
    pub(crate) fn engine_of(&self, workspace: &str) -> &Arc<Engine> {
        self.others
            .iter()
            .find(|(id, _)| id.as_str() == workspace)
            .map(|(_, engine)| engine)
            .unwrap_or_else(|| panic!("no workspace {workspace} beside default"))
    }

    /// Registers an agent with `role` in workspace `workspace` (its token is `<id>-token`
    /// there too), connecting through that workspace's paths.
    pub(crate) fn agent_in(&self, workspace: &str, id: &str, role: Role) -> Agent {
        let token = format!("{id}-token");
        self.engine_of(workspace).upsert_agent(
            AgentProfile {
                id: id.into(),
                name: id.to_uppercase(),
                role,
                limit: DEFAULT_LIMIT,
                queues: Vec::new(),
                skills: Default::default(),
                channel_limits: Default::default(),
            },
            Some(token.clone()),
        );
        Agent::new(id, &token, self.addr).in_workspace(workspace)
    }

    /// Registers a supervisor in workspace `workspace` (its token is `<id>-token` there),
    /// connecting through that workspace's paths.
    pub(crate) fn supervisor_in(&self, workspace: &str, id: &str) -> Supervisor {
        self.agent_in(workspace, id, Role::Supervisor);
        Supervisor::new(id, &format!("{id}-token"), self.addr).in_workspace(workspace)
    }

    /// Registers an agent with role `agent` and the default limit.
    pub(crate) fn agent(&self, id: &str) -> Agent {
        self.agent_with(id, Role::Agent, DEFAULT_LIMIT)
    }

    /// Registers an agent with a role and a limit; its token is `<id>-token`.
    pub(crate) fn agent_with(&self, id: &str, role: Role, limit: u32) -> Agent {
        let token = format!("{id}-token");
        self.engine.upsert_agent(
            AgentProfile {
                id: id.into(),
                name: id.to_uppercase(),
                role,
                limit,
                queues: Vec::new(),
                skills: Default::default(),
                channel_limits: Default::default(),
            },
            Some(token.clone()),
        );
        Agent::new(id, &token, self.addr)
    }

    /// Registers an agent of role `agent` with `limit`, its skills (R19) and its limits per
    /// channel (R22); its token is `<id>-token`.
    pub(crate) fn skilled_agent(
        &self,
        id: &str,
        limit: u32,
        skills: &[(&str, u8)],
        channel_limits: &[(&str, u32)],
    ) -> Agent {
        let token = format!("{id}-token");
        self.engine.upsert_agent(
            AgentProfile {
                id: id.into(),
                name: id.to_uppercase(),
                role: Role::Agent,
                limit,
                queues: Vec::new(),
                skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
                channel_limits: channel_limits
                    .iter()
                    .map(|(c, l)| (c.parse().expect("a channel"), *l))
                    .collect(),
            },
            Some(token.clone()),
        );
        Agent::new(id, &token, self.addr)
    }

    /// A registered agent connecting with `token` instead of its static one.
    pub(crate) fn with_token(&self, id: &str, token: &str) -> Agent {
        Agent::new(id, token, self.addr)
    }

    /// A registered supervisor connecting with `token`.
    pub(crate) fn supervisor_with_token(&self, id: &str, token: &str) -> Supervisor {
        Supervisor::new(id, token, self.addr)
    }

    /// Registers a supervisor (limit 0: it takes no chats); its token is `<id>-token`.
    pub(crate) fn supervisor(&self, id: &str) -> Supervisor {
        let token = format!("{id}-token");
        self.agent_with(id, Role::Supervisor, 0);
        Supervisor::new(id, &token, self.addr)
    }

    /// `GET path` with `token` as a bearer token: the status and the JSON body.
    pub(crate) async fn get_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A customer writing on `channel` from `address`.
    pub(crate) fn customer(&self, channel: &str, address: &str) -> Customer {
        Customer::new(self.http.clone(), self.url(""), channel, address)
    }

    /// The customer writes, handed straight to the engine instead of over HTTP: the test does
    /// not yield, so the server writes nothing to any socket meanwhile (to fill an outbox).
    pub(crate) fn customer_writes_now(&self, customer: &Customer, text: &str) {
        let channel = customer.channel().parse().expect("a known channel");
        let message = InboundMessage {
            from: customer.address().to_owned(),
            text: text.to_owned(),
            name: None,
            email: None,
            phone: None,
            sent_at: None,
            ..Default::default()
        };
        self.engine
            .customer_message(channel, message)
            .expect("the engine takes the message");
    }

    /// The engine's time now.
    pub(crate) fn now(&self) -> Timestamp {
        self.engine.now()
    }

    /// Moves the clock and fires every timer that came due. Pushes the timers cause are in the
    /// agents' outboxes when this returns.
    pub(crate) fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.engine.fire_due_timers();
    }

    /// Panics if the engine's books do not balance.
    pub(crate) fn check_invariants(&self) {
        self.engine.check_invariants();
    }

    /// Every message sent to customers since the last call, oldest first.
    pub(crate) fn sent_to_customers(&self) -> Vec<OutboundMessage> {
        let mut rx = self.outbound.lock();
        let mut sent = Vec::new();
        let handed = std::iter::from_fn(|| rx.try_recv().ok()).flat_map(|d| d.items);
        for message in handed.map(|item| item.message).collect::<Vec<_>>() {
            let value = serde_json::to_value(&message).expect("outbound messages serialize");
            schema::check(schema::OUTBOUND_MESSAGE, &value);
            sent.push(message);
        }
        sent
    }

    // ----- admin API ------------------------------------------------------------------------

    /// `GET /v1/admin/agents`: one agent's status.
    pub(crate) async fn agent_status(&self, id: &str) -> Value {
        let agents = self.get("/v1/admin/agents").await;
        agents
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == id))
            .cloned()
            .unwrap_or_else(|| panic!("agent {id} is not listed: {agents:#}"))
    }

    /// `GET /v1/admin/queues`: the chats waiting in `queue`, next first.
    pub(crate) async fn waiting_in(&self, queue: &str) -> Vec<Value> {
        let queues = self.get("/v1/admin/queues").await;
        queues
            .as_array()
            .and_then(|q| q.iter().find(|q| q["id"] == queue))
            .and_then(|q| q["waiting"].as_array())
            .cloned()
            .unwrap_or_else(|| panic!("queue {queue} is not listed: {queues:#}"))
    }

    /// `PUT /v1/admin/agents/{id}/limit`.
    pub(crate) async fn set_limit(&self, id: &str, limit: u32) {
        let response = self
            .http
            .put(self.url(&format!("/v1/admin/agents/{id}/limit")))
            .json(&json!({ "limit": limit }))
            .send()
            .await
            .expect("PUT limit");
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "PUT limit of {id}");
    }

    /// PUTs a raw JSON body; answers the status and the JSON body.
    pub(crate) async fn put_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .put(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `DELETE path`; answers the status and the JSON body.
    pub(crate) async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.answer("DELETE", path, self.http.delete(self.url(path)))
            .await
    }

    /// `DELETE path` with `token` as a bearer token; answers the status and the JSON body.
    pub(crate) async fn delete_as(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let request = self.http.delete(self.url(path)).bearer_auth(token);
        self.answer("DELETE", path, request).await
    }

    /// Sends `request` (`method path`, for the failure's message); its status and JSON body.
    async fn answer(
        &self,
        method: &str,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> (StatusCode, Value) {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `GET /v1/admin/agents`: whether `id` is listed.
    pub(crate) async fn lists_agent(&self, id: &str) -> bool {
        let agents = self.get("/v1/admin/agents").await;
        agents.as_array().is_some_and(|a| a.iter().any(|s| s["id"] == id))
    }

    /// POSTs a raw body, bypassing every check; answers the status and the JSON body.
    pub(crate) async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        self.post_raw_with(path, &[], body).await
    }

    /// POSTs a raw JSON body with extra `headers`, bypassing every check; answers the status
    /// and the JSON body.
    pub(crate) async fn post_raw_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(body.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// `GET path` with no credentials: the status and the JSON body.
    pub(crate) async fn get_raw(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.json().await.expect("a JSON body")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts the server down gracefully and waits until it has stopped.
    pub(crate) async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("the server stops in time")
                .expect("the server task did not panic")
                .expect("the server ran without I/O errors");
        }
    }
}

/// Tries an upgrade; the HTTP status and JSON body of a refusal, or none when it connected.
pub(crate) async fn refusal(
    server: &TestServer,
    path: &str,
    token: &str,
    origin: Option<&str>,
) -> Option<(StatusCode, serde_json::Value)> {
    let mut request = format!("ws://{}{path}?token={token}", server.addr)
        .into_client_request()
        .expect("a request");
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", HeaderValue::from_str(origin).expect("a header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or_default();
            Some((response.status(), body))
        }
        Err(e) => panic!("the upgrade failed otherwise: {e}"),
    }
}

/// Serves `workspaces` until `stopped` (as a node of a cluster relaying through `relay`, if
/// given), then lets go of them and of the board's thread.
async fn serve_registry(
    listener: TcpListener,
    workspaces: Arc<Workspaces>,
    boards: RuntimeThread,
    security: Security,
    relay: Option<Arc<Forwarder>>,
    stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let shutdown = async move {
        let _ = stopped.await;
    };
    serve_then_unload(listener, workspaces, boards, security, relay, shutdown, DRAIN).await
}

/// Reads a timestamp out of a frame.
pub(crate) fn ts(value: &Value) -> Timestamp {
    value
        .as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("not a timestamp: {value}"))
}

/// How [`TestServer::open_platform`] differs from a plain platform server.
#[derive(Default)]
struct PlatformOptions {
    /// `/metrics` labels the first this many workspaces with their id, the rest `_other`.
    metric_labels: Option<usize>,
    /// Where the workspaces' outboxes send; `None`: nowhere.
    sending: Option<(Connector, Retry)>,
}
