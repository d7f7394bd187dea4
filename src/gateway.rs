//! The HTTP and WebSocket surface (axum): decode, call the engine, encode.

pub mod admin;
pub mod agent_ws;
pub mod analytics;
pub mod auth;
pub mod board_runtime;
pub mod connection;
pub mod error;
pub mod forward;
pub mod ingress;
pub mod native;
pub mod platform;
pub mod settings;
pub mod supervisor_ws;
pub mod tenant;
pub mod web;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};

use crate::clock::SharedClock;
use crate::engine::Engine;
use crate::metrics::{self, Metrics};
use crate::runtime_thread::RuntimeThread;
use crate::security::Security;
use crate::workspaces::{Background, Credentials, Workspaces};

/// Pending connections the kernel queues before `accept`: a burst of thousands of agents
/// connecting at once overflows the default 128, and each dropped SYN costs its client 1 s.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with [`LISTEN_BACKLOG`].
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Largest HTTP body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The workspaces served; a handler reaches its own through [`tenant::Tenant`].
    pub workspaces: Arc<Workspaces>,
    /// Flips to true when the server shuts down; every WebSocket closes on it.
    pub shutdown: watch::Receiver<bool>,
    /// The server's metrics, served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Credentials, origins and limits.
    pub security: Arc<Security>,
    /// The configuration's channel credentials: those of `default` and of any workspace
    /// without its own (see [`tenant::Tenant::credentials`]).
    pub credentials: Arc<Credentials>,
    /// The signatures of signed webhooks seen within the replay window.
    pub webhooks: Arc<webhook::WebhookGuard>,
    /// Where supervisor sockets run (see [`board_runtime`]).
    pub boards: tokio::runtime::Handle,
    /// The clock the workspaces' engines read: a request to a workspace not served here is
    /// checked against an engine of its own on it (see [`tenant`]).
    pub clock: SharedClock,
    /// On a node of a cluster (issue 19): where each workspace is served, and the relay to
    /// the other nodes (see [`forward`]). None: every workspace is served here, as ever.
    pub forward: Option<Arc<forward::Forwarder>>,
    /// Held by every WebSocket task; shutdown waits until all are dropped.
    _alive: mpsc::Sender<()>,
}

fn routes(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        // Each workspace's API (R27), under its name; and unprefixed for `default`, the paths
        // of before workspaces, which keep working. `tenant::Tenant` tells them apart.
        .nest("/v1", workspace_routes(state.clone()))
        .nest("/v1/w/{workspace}", workspace_routes(state.clone()))
        // The platform's, above the workspaces (R27).
        .merge(platform::routes(state.clone()))
        // The pages: `default`'s unprefixed, every workspace's below `/w/{workspace}` (R27).
        .route("/", get(web::desk))
        .route("/wall", get(web::wall))
        .route("/w/{workspace}", get(web::workspace_root))
        .route("/w/{workspace}/", get(web::workspace_desk))
        .route("/w/{workspace}/wall", get(web::workspace_wall))
        .route("/assets/{file}", get(web::asset))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    // Outermost: a request for a workspace served elsewhere is relayed before anything here
    // looks at it (its credentials are the owner's to check).
    let router = match state.forward {
        Some(_) => router.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            forward::route,
        )),
        None => router,
    };
    router.with_state(state)
}

/// The paths of one workspace, below `/v1` or `/v1/w/{workspace}`.
fn workspace_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/agent/ws", get(agent_ws::upgrade))
        .route("/supervisor/ws", get(supervisor_ws::upgrade))
        .route("/analytics", get(analytics::report))
        .route("/token", post(auth::renew))
        .route("/channels/{channel}/messages", post(ingress::message))
        .route("/channels/{channel}/statuses", post(ingress::status))
        .route("/channels/{channel}/bot/start", post(ingress::bot_start))
        .route("/channels/{channel}/bot/handover", post(ingress::bot_handover))
        .route(
            "/native/meta",
            get(native::meta_handshake).post(native::meta_webhook),
        )
        .route("/native/telegram", post(native::telegram_webhook))
        .route("/native/twilio", post(native::twilio_webhook))
        .route(
            "/native/email",
            // Raw mail with attachments: its own, larger limit (the innermost limit wins).
            post(native::email_webhook).layer(DefaultBodyLimit::max(native::MAX_EMAIL_BYTES)),
        )
        .merge(admin_routes(state))
}

/// The admin API, behind the workspace's admin key or the platform key (open in development).
fn admin_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/agents", get(admin::list_agents).post(admin::create_agent))
        .route("/admin/agents/batch", post(admin::create_agents))
        .route(
            "/admin/agents/{id}",
            put(admin::update_agent).delete(admin::delete_agent),
        )
        .route("/admin/agents/{id}/limit", put(admin::set_limit))
        .route("/admin/agents/{id}/skills", put(admin::set_skills))
        .route("/admin/queues", get(admin::list_queues))
        .route("/admin/settings", get(settings::show).put(settings::replace))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::workspace_admin))
}

/// `GET /readyz`: 200 while serving, 503 once shutdown has begun, so that a load balancer
/// stops sending new connections; on a cluster node, 503 too until its first placement round
/// is done (it does not know yet where workspaces are served); and 503 while the store has
/// stopped writing (a commit failed: every change is refused), so that an orchestrator sees
/// it: one engine needs a restart, a cluster node resumes by itself once it let go of
/// everything (`cluster/node.rs`).
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if state.workspaces.cluster().is_some_and(|c| !c.is_ready()) {
        (StatusCode::SERVICE_UNAVAILABLE, "placing workspaces")
    } else if state.workspaces.store_stopped() {
        (StatusCode::SERVICE_UNAVAILABLE, "the store has stopped writing")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// `GET /metrics`: every metric in the Prometheus text format.
async fn scrape(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Serves `engine` on `listener` with the development security setup (see [`serve_with`]).
pub async fn serve(
    listener: TcpListener,
    engine: Arc<Engine>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    serve_with(listener, engine, Security::default(), shutdown, drain).await
}

/// Serves `engine` on `listener` until `shutdown` resolves, checking credentials and limits
/// as `security` says, then closes every WebSocket (code 1001) and waits for them, at most
/// `drain`. The engine is the `default` workspace of a registry of one, with only its board
/// task: its ticker and outbox are the caller's (see [`serve_workspaces`] for more).
pub async fn serve_with(
    listener: TcpListener,
    engine: Arc<Engine>,
    security: Security,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let boards = board_runtime::start()?;
    let workspaces = Arc::new(Workspaces::single(
        engine,
        Background::board_only(boards.handle()),
    ));
    serve_then_unload(listener, workspaces, boards, security, None, shutdown, drain).await
}

/// [`serve_node`] on the board's thread `boards`, then lets go of every workspace and of that
/// thread.
pub async fn serve_then_unload(
    listener: TcpListener,
    workspaces: Arc<Workspaces>,
    boards: RuntimeThread,
    security: Security,
    forward: Option<Arc<forward::Forwarder>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let served = serve_node(
        listener,
        workspaces.clone(),
        boards.handle(),
        security,
        forward,
        shutdown,
        drain,
    )
    .await;
    // The sockets had their drain above: nothing to wait for but the store.
    if let Err(e) = workspaces.unload_all(Duration::ZERO).await {
        tracing::error!(error = %e, "stopping the workspaces");
    }
    drop(workspaces);
    drop(boards);
    served
}

/// Serves `workspaces` on `listener` until `shutdown` resolves, checking credentials and
/// limits as `security` says, then closes every WebSocket (code 1001) and waits for them, at
/// most `drain`. Supervisor sockets run on `boards` (see [`board_runtime`]). The workspaces
/// are still loaded when this returns: [`Workspaces::unload_all`] lets go of them.
pub async fn serve_workspaces(
    listener: TcpListener,
    workspaces: Arc<Workspaces>,
    boards: Handle,
    security: Security,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    serve_node(listener, workspaces, boards, security, None, shutdown, drain).await
}

/// [`serve_workspaces`] on a node of a cluster when `forward` is given (issue 19, R28):
/// requests and sockets for a workspace that its directory places on another node are
/// relayed there, and those for a workspace between nodes are answered 503 (see [`forward`]).
pub async fn serve_node(
    listener: TcpListener,
    workspaces: Arc<Workspaces>,
    boards: Handle,
    security: Security,
    forward: Option<Arc<forward::Forwarder>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    // Not `default`'s engine: a cluster node may serve other workspaces only, or none yet.
    let clock = workspaces
        .clock()
        .ok_or_else(|| std::io::Error::other("no workspace to serve"))?;
    let mut metrics = Metrics::for_workspaces(&workspaces);
    if let Some(forward) = &forward {
        metrics.report_forwarding(forward.stats().clone());
    }
    let metrics = Arc::new(metrics);
    let state = AppState {
        workspaces,
        shutdown: stop_rx,
        metrics,
        credentials: Arc::new(Credentials::configured(&security)),
        security: Arc::new(security),
        webhooks: Arc::new(webhook::WebhookGuard::default()),
        boards,
        clock,
        forward,
        _alive: alive_tx,
    };
    let app = routes(state);
    // Pushes and replies are small frames written back to back: without NODELAY, Nagle holds
    // each one behind the client's delayed ACK (40 ms), which cost 5x the throughput.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // The peer's address: a relayed request tells the owner who sent it (`x-forwarded-for`).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    // Every clone of `_alive` lives in a WebSocket task (the router's copy is dropped with it).
    let _ = tokio::time::timeout(drain, alive_rx.recv()).await;
    Ok(())
}
