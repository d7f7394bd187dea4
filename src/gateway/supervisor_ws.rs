//! The supervisor WebSocket (`/v1/supervisor/ws`, R14, R15): the live board and the
//! supervisor's actions. Supervisors and admins only.

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::{Sink, SinkExt, Stream};
use tokio::sync::watch;
use tracing::Instrument;

use super::auth::{admit_socket, refresh, Handshake, Session};
use super::connection::{self, decode, refusal_frame, send_close, text_message, Handled, HARD_FRAME_LIMIT};
use super::error::ApiError;
use super::tenant::Tenant;
use super::AppState;
use crate::core::ErrorCode;
use crate::engine::fanout::{ConnHandle, ConnId, Frame};
use crate::engine::retries::{self, Side};
use crate::engine::supervision::encode;
use crate::engine::Engine;
use crate::ids::{AgentId, ChatId};
use crate::metrics::{Metrics, Socket, Stopwatch, WorkspaceMetrics};
use crate::protocol::supervisor::{
    SupervisorFrame, SupervisorRequest, SupervisorResult, SupervisorServerFrame,
};
use crate::protocol::{Caller, PROTOCOL_VERSION};
use crate::security::Security;

/// `GET /v1/supervisor/ws`: authenticates, checks the role, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    tenant: Tenant,
    Query(query): Query<Handshake>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let session = match admit_socket(&tenant, &state.security, &query, &headers) {
        Ok(session) => session,
        Err(e) => return e.into_response(),
    };
    if !session.caller.role.supervises() {
        return ApiError::new(
            ErrorCode::Forbidden,
            "the supervisor socket needs the supervisor or admin role",
        )
        .into_response();
    }
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket: WebSocket| {
            let span = tracing::info_span!("supervisor_ws", supervisor = %session.caller.id);
            let boards = state.boards.clone();
            let served =
                connection::serve_socket(state, tenant, session, socket, serve_supervisor).instrument(span);
            // Off the agents' workers: see `board_runtime`.
            async move {
                let _ = boards.spawn(served).await;
            }
        })
}

/// Runs one supervisor connection until it closes, the engine cuts it off, or shutdown.
pub async fn serve_supervisor<W, R, E>(
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    security: Arc<Security>,
    mut session: Session,
    mut sink: W,
    mut stream: R,
    mut shutdown: watch::Receiver<bool>,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let caller = session.caller.clone();
    let Some(profile) = engine.agent(&caller.id) else {
        return;
    };
    let metrics = metrics.of_workspace(&session.workspace);
    let (conn, seq) = engine.connect_supervisor(&caller.id);
    if let Some(at) = session.expires_at {
        engine.expire_session_at(&caller.id, conn.id, at);
    }
    let ConnHandle {
        id: conn_id,
        mut outbox,
        kicked,
        replies,
    } = conn;
    let welcome = SupervisorServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        supervisor: (&profile).into(),
        seq,
        now: engine.now(),
    };
    let close = if sink.send(text_message(encode(&welcome))).await.is_ok() {
        connection::run(
            &mut sink,
            &mut stream,
            &mut outbox,
            &kicked,
            &replies,
            &mut shutdown,
            security.frames_per_second,
            |text| handle_text(&engine, &metrics, &security, &mut session, conn_id, text).map(Handled::Now),
            || engine.write_point(),
        )
        .await
    } else {
        None
    };
    engine.disconnect_supervisor(conn_id);
    send_close(&mut sink, close).await;
}

/// Decodes one text frame and runs it; the reply, unless the engine queued it itself.
pub fn handle_text(
    engine: &Engine,
    metrics: &WorkspaceMetrics,
    security: &Security,
    session: &mut Session,
    conn: ConnId,
    text: &str,
) -> Option<Frame> {
    let SupervisorFrame { id, request } = match decode::<SupervisorFrame>(text) {
        Ok(frame) => frame,
        Err(error) => {
            metrics.invalid_frame(Socket::Supervisor);
            return Some(error);
        }
    };
    // Credentials never reach the engine: a refresh is answered here.
    if let SupervisorRequest::Refresh { token } = &request {
        return Some(match refresh(engine, security, session, conn, token) {
            Ok(expires_at) => encode(&SupervisorServerFrame::Ok {
                id,
                result: SupervisorResult::Refreshed { expires_at },
            }),
            Err(rejection) => refusal_frame(id, rejection, engine),
        });
    }
    let caller = &session.caller;
    if !request.changes_state() {
        return answer(engine, metrics, caller, conn, id, request);
    }
    // A retry (same id, same request) gets the first reply again (R17). Only a subscription,
    // which changes nothing, has its reply queued by the engine: the fallback is never taken.
    let fingerprint = retries::fingerprint(&request);
    let first = engine.once(Side::Supervisor, &caller.id, &id, fingerprint, || {
        answer(engine, metrics, caller, conn, id.clone(), request).unwrap_or_else(|| {
            encode(&SupervisorServerFrame::Ok {
                id: id.clone(),
                result: SupervisorResult::Done,
            })
        })
    });
    Some(first.unwrap_or_else(|reused| refusal_frame(id, reused, engine)))
}

/// Runs one request; its reply, unless the engine queued it itself.
fn answer(
    engine: &Engine,
    metrics: &WorkspaceMetrics,
    caller: &Caller,
    conn: ConnId,
    id: String,
    request: SupervisorRequest,
) -> Option<Frame> {
    let name = request.name();
    let (chat, agent) = match &request {
        SupervisorRequest::Transfer { chat_id, to } => (Some(chat_id), Some(to)),
        SupervisorRequest::Close { chat_id } | SupervisorRequest::GetChat { chat_id, .. } => {
            (Some(chat_id), None)
        }
        SupervisorRequest::SetLimit { agent, .. }
        | SupervisorRequest::SetSkills { agent, .. }
        | SupervisorRequest::SetPresence { agent, .. } => (None, Some(agent)),
        SupervisorRequest::Subscribe { .. }
        | SupervisorRequest::ListArchive { .. }
        | SupervisorRequest::GetAnalytics { .. }
        | SupervisorRequest::Ping
        | SupervisorRequest::Refresh { .. } => (None, None),
    };
    // At debug level: an info span cost 1-2 us per request at the default filter, a third of
    // a reopen; fields are only evaluated when the span is enabled (RUST_LOG=debug).
    let span = tracing::debug_span!(
        "request",
        supervisor = %caller.id,
        kind = name,
        chat = chat.map(ChatId::as_str),
        agent = agent.map(AgentId::as_str),
    );
    let _entered = span.enter();
    let stopwatch = Stopwatch::start();
    let handled = engine.supervise(caller, conn, &id, request);
    metrics.request(
        Socket::Supervisor,
        name,
        handled.as_ref().err().map(|r| r.code()),
        stopwatch.elapsed(),
    );
    match handled {
        Ok(Some(result)) => Some(encode(&SupervisorServerFrame::Ok { id, result })),
        Ok(None) => None,
        Err(rejection) => {
            tracing::debug!(request = name, code = ?rejection.code(), "rejected: {rejection}");
            Some(refusal_frame(id, rejection, engine))
        }
    }
}
