//! The HTTP and WebSocket surface (axum): decode, call the engine, encode.

pub mod admin;
pub mod agent_ws;
pub mod analytics;
pub mod auth;
pub mod board_runtime;
pub mod connection;
pub mod error;
pub mod ingress;
pub mod native;
pub mod supervisor_ws;
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
use tokio::sync::{mpsc, watch};

use crate::engine::Engine;
use crate::metrics::{self, Metrics};
use crate::security::Security;

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
    /// The engine.
    pub engine: Arc<Engine>,
    /// Flips to true when the server shuts down; every WebSocket closes on it.
    pub shutdown: watch::Receiver<bool>,
    /// The server's metrics, served at `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Credentials, origins and limits.
    pub security: Arc<Security>,
    /// The signatures of signed webhooks seen within the replay window.
    pub webhooks: Arc<webhook::WebhookGuard>,
    /// Where supervisor sockets run (see [`board_runtime`]).
    pub boards: tokio::runtime::Handle,
    /// Held by every WebSocket task; shutdown waits until all are dropped.
    _alive: mpsc::Sender<()>,
}

impl axum::extract::FromRef<AppState> for Arc<Engine> {
    fn from_ref(state: &AppState) -> Self {
        state.engine.clone()
    }
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .route("/v1/agent/ws", get(agent_ws::upgrade))
        .route("/v1/supervisor/ws", get(supervisor_ws::upgrade))
        .route("/v1/analytics", get(analytics::report))
        .route("/v1/token", post(auth::renew))
        .route("/v1/channels/{channel}/messages", post(ingress::message))
        .route("/v1/channels/{channel}/statuses", post(ingress::status))
        .route("/v1/channels/{channel}/bot/start", post(ingress::bot_start))
        .route("/v1/channels/{channel}/bot/handover", post(ingress::bot_handover))
        .route(
            "/v1/native/meta",
            get(native::meta_handshake).post(native::meta_webhook),
        )
        .route("/v1/native/telegram", post(native::telegram_webhook))
        .route("/v1/native/twilio", post(native::twilio_webhook))
        .route(
            "/v1/native/email",
            // Raw mail with attachments: its own, larger limit (the innermost limit wins).
            post(native::email_webhook).layer(DefaultBodyLimit::max(native::MAX_EMAIL_BYTES)),
        )
        .route("/", get(web::desk))
        .route("/wall", get(web::wall))
        .route("/assets/{file}", get(web::asset))
        .merge(admin_routes(state.clone()))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The admin API, behind its key when one is configured.
fn admin_routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/admin/agents",
            get(admin::list_agents).post(admin::create_agent),
        )
        .route("/v1/admin/agents/batch", post(admin::create_agents))
        .route(
            "/v1/admin/agents/{id}",
            put(admin::update_agent).delete(admin::delete_agent),
        )
        .route("/v1/admin/agents/{id}/limit", put(admin::set_limit))
        .route("/v1/admin/agents/{id}/skills", put(admin::set_skills))
        .route("/v1/admin/queues", get(admin::list_queues))
        .route_layer(axum::middleware::from_fn_with_state(state, auth::admin_only))
}

/// `GET /readyz`: 200 while serving, 503 once shutdown has begun, so that a load balancer
/// stops sending new connections.
async fn readyz(State(state): State<AppState>) -> (StatusCode, &'static str) {
    if *state.shutdown.borrow() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
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
/// `drain`.
pub async fn serve_with(
    listener: TcpListener,
    engine: Arc<Engine>,
    security: Security,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Duration,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let metrics = Arc::new(Metrics::new(engine.clone()));
    let boards = board_runtime::BoardRuntime::start()?;
    // Sends the supervisors' board out; ends with the server.
    let board = boards
        .handle()
        .spawn(engine.clone().run_supervision(stop_rx.clone()));
    let state = AppState {
        engine,
        shutdown: stop_rx,
        metrics,
        security: Arc::new(security),
        webhooks: Arc::new(webhook::WebhookGuard::default()),
        boards: boards.handle(),
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
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await?;
    // Every clone of `_alive` lives in a WebSocket task (the router's copy is dropped with it).
    let _ = tokio::time::timeout(drain, alive_rx.recv()).await;
    let _ = board.await;
    drop(boards);
    Ok(())
}
