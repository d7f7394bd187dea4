//! The agent WebSocket (`/v1/agent/ws`): a thin adapter from frames to engine calls.

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
use super::tenant::Tenant;
use super::AppState;
use crate::engine::fanout::{encode, ConnHandle, ConnId, Frame};
use crate::engine::retries::{self, Side};
use crate::engine::Engine;
use crate::ids::ChatId;
use crate::metrics::{Metrics, Socket, Stopwatch, WorkspaceMetrics};
use crate::protocol::ReplyResult;
use crate::protocol::{Caller, ClientFrame, Request, ServerFrame, PROTOCOL_VERSION};
use crate::security::Security;

/// `GET /v1/agent/ws`: authenticates, then upgrades.
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
    // Small buffers keep an idle connection cheap; tungstenite's default read buffer is 128 KiB.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket: WebSocket| {
            let span = tracing::info_span!("agent_ws", agent = %session.caller.id);
            connection::serve_socket(state, tenant, session, socket, serve_agent).instrument(span)
        })
}

/// Runs one agent connection until it closes, the engine cuts it off, or shutdown.
/// Generic over the transport so that it can be driven without a socket.
pub async fn serve_agent<W, R, E>(
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
    let (conn, seq) = engine.connect(&caller.id);
    if let Some(at) = session.expires_at {
        engine.expire_session_at(&caller.id, conn.id, at);
    }
    let ConnHandle {
        id: conn_id,
        mut outbox,
        kicked,
        replies,
    } = conn;
    tracing::debug!(conn = conn_id.0, "connected");
    // Encoded here, so that the frame's fields do not stay in the connection's task.
    let welcome = encode(&ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        presence: engine.seat(&caller.id).map(|s| s.0).unwrap_or_default().into(),
        agent: (&profile).into(),
        seq,
        now: engine.now(),
        channels: engine.channel_limits(),
    });
    let close = if sink.send(text_message(welcome)).await.is_ok() {
        connection::run(
            &mut sink,
            &mut stream,
            &mut outbox,
            &kicked,
            &replies,
            &mut shutdown,
            security.frames_per_second,
            |text| {
                Some(handle_text(
                    &engine,
                    &metrics,
                    &security,
                    &mut session,
                    conn_id,
                    text,
                ))
            },
            || engine.write_point(),
        )
        .await
    } else {
        None
    };
    // Unregister first: a peer that never answers the close handshake must not keep the
    // agent looking connected (its grace period starts now).
    engine.disconnect(&caller.id, conn_id);
    send_close(&mut sink, close).await;
    tracing::debug!(conn = conn_id.0, ?close, "disconnected");
}

fn run_request(
    engine: &Engine,
    metrics: &WorkspaceMetrics,
    caller: &Caller,
    conn: ConnId,
    frame: ClientFrame,
) -> Frame {
    let ClientFrame { id, request } = frame;
    if !request.changes_state() {
        return answer(engine, metrics, caller, conn, id, request);
    }
    // A retry (same id, same request) gets the first reply again (R17).
    let fingerprint = retries::fingerprint(&request);
    let first = engine.once(Side::Agent, &caller.id, &id, fingerprint, || {
        answer(engine, metrics, caller, conn, id.clone(), request)
    });
    first.unwrap_or_else(|reused| refusal_frame(id, reused, engine))
}

/// Runs one request and encodes its reply.
fn answer(
    engine: &Engine,
    metrics: &WorkspaceMetrics,
    caller: &Caller,
    conn: ConnId,
    id: String,
    request: Request,
) -> Frame {
    let name = request.name();
    // At debug level: an info span cost 1-2 us per request at the default filter, a third of
    // a reopen; fields are only evaluated when the span is enabled (RUST_LOG=debug).
    let span = tracing::debug_span!(
        "request",
        agent = %caller.id,
        kind = name,
        chat = request.chat_id().map(ChatId::as_str),
    );
    let _entered = span.enter();
    let stopwatch = Stopwatch::start();
    let handled = engine.handle(caller, conn, request);
    metrics.request(
        Socket::Agent,
        name,
        handled.as_ref().err().map(|r| r.code()),
        stopwatch.elapsed(),
    );
    match handled {
        Ok(result) => encode(&ServerFrame::Ok { id, result }),
        Err(rejection) => {
            tracing::debug!(request = name, code = ?rejection.code(), "rejected: {rejection}");
            refusal_frame(id, rejection, engine)
        }
    }
}

/// Decodes one text frame, runs it, and encodes the one reply (R18: a bad frame gets an error
/// frame naming what was wrong, and changes nothing). A request that reads the database is
/// handed back to run off the async workers ([`Handled::Blocking`]).
pub fn handle_text(
    engine: &Arc<Engine>,
    metrics: &WorkspaceMetrics,
    security: &Security,
    session: &mut Session,
    conn: ConnId,
    text: &str,
) -> Handled {
    match decode::<ClientFrame>(text) {
        Ok(frame) if engine.reads_store(&frame.request) => {
            let (engine, metrics, caller) = (engine.clone(), metrics.clone(), session.caller.clone());
            Handled::Blocking(Box::new(move || {
                run_request(&engine, &metrics, &caller, conn, frame)
            }))
        }
        decoded => Handled::Now(handle_decoded(engine, metrics, security, session, conn, decoded)),
    }
}

fn handle_decoded(
    engine: &Engine,
    metrics: &WorkspaceMetrics,
    security: &Security,
    session: &mut Session,
    conn: ConnId,
    decoded: Result<ClientFrame, Frame>,
) -> Frame {
    match decoded {
        // Credentials never reach the engine: a refresh is answered here.
        Ok(ClientFrame {
            id,
            request: Request::Refresh { token },
        }) => {
            let refreshed = refresh(engine, security, session, conn, &token);
            metrics.request(
                Socket::Agent,
                "refresh",
                refreshed.as_ref().err().map(|r| r.code()),
                std::time::Duration::ZERO,
            );
            match refreshed {
                Ok(expires_at) => encode(&ServerFrame::Ok {
                    id,
                    result: ReplyResult::Refreshed { expires_at },
                }),
                Err(rejection) => refusal_frame(id, rejection, engine),
            }
        }
        Ok(frame) => run_request(engine, metrics, &session.caller, conn, frame),
        Err(error) => {
            metrics.invalid_frame(Socket::Agent);
            error
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use chrono::TimeZone;
    use futures_util::{sink, stream};
    use parking_lot::Mutex;

    use super::*;
    use crate::clock::ManualClock;
    use crate::core::{AgentProfile, Role};
    use crate::engine::outbound::Outbound;
    use crate::engine::EngineConfig;
    use crate::gateway::connection::{HEARTBEAT, MISSED_HEARTBEATS};
    use crate::ids::AgentId;
    use crate::ids::WorkspaceId;
    use crate::refusal::Close;

    fn engine_with_ana() -> (Arc<Engine>, Caller) {
        let start = chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
            .single()
            .expect("date");
        let (outbound, _) = Outbound::channel();
        let engine = Engine::new(
            EngineConfig::default(),
            Arc::new(ManualClock::new(start)),
            outbound,
        );
        let id = AgentId::from("ana");
        engine.upsert_agent(
            AgentProfile {
                id: id.clone(),
                name: "Ana".into(),
                role: Role::Agent,
                limit: 2,
                queues: Vec::new(),
                skills: Default::default(),
                channel_limits: Default::default(),
            },
            None,
        );
        (
            engine,
            Caller {
                id,
                role: Role::Agent,
            },
        )
    }

    /// A transport that records what the engine writes.
    fn recording_sink(sent: Arc<Mutex<Vec<Message>>>) -> impl Sink<Message, Error = Infallible> + Unpin {
        Box::pin(sink::unfold(sent, |sent, m: Message| async move {
            sent.lock().push(m);
            Ok::<_, Infallible>(sent)
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn r17_a_peer_gone_without_closing_is_dropped_after_missed_heartbeats_and_its_grace_starts() {
        let (engine, ana) = engine_with_ana();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (_stop, shutdown) = watch::channel(false);
        // The peer vanished: nothing ever arrives, nothing ends the stream.
        let silent = stream::pending::<Result<Message, Infallible>>();
        serve_agent(
            engine.clone(),
            Arc::new(Metrics::new(&engine)),
            Arc::new(Security::default()),
            Session {
                caller: ana.clone(),
                expires_at: None,
                workspace: WorkspaceId::default_workspace(),
            },
            recording_sink(sent.clone()),
            silent,
            shutdown,
        )
        .await;

        assert_eq!(engine.fanout().connections(&ana.id), 0, "unregistered");
        assert_eq!(engine.timers().len(), 1, "the grace timer is set");
        let sent = sent.lock();
        let pings = sent.iter().filter(|m| matches!(m, Message::Ping(_))).count();
        assert_eq!(pings as u32, MISSED_HEARTBEATS);
        match sent.last() {
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, Close::Idle.code()),
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// Every connection's task holds this future, idle or not: 1,824 bytes (debug build) before
    /// the welcome frame was encoded up front and the rare paths of the loop boxed, 1,256 after;
    /// 1,408 since the session keeps the workspace its token was let into (R27: a `refresh`
    /// must be valid there too), 16 bytes more than before.
    #[test]
    fn issue13_an_agent_connection_future_stays_small() {
        let (engine, ana) = engine_with_ana();
        let (_stop, shutdown) = watch::channel(false);
        let connection = serve_agent(
            engine.clone(),
            Arc::new(Metrics::new(&engine)),
            Arc::new(Security::default()),
            Session {
                caller: ana,
                expires_at: None,
                workspace: WorkspaceId::default_workspace(),
            },
            recording_sink(Default::default()),
            stream::pending::<Result<Message, Infallible>>(),
            shutdown,
        );
        let size = std::mem::size_of_val(&connection);
        assert!(size <= 1_424, "{size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn r17_a_peer_that_answers_pings_stays_connected() {
        let (engine, ana) = engine_with_ana();
        let (stop, shutdown) = watch::channel(false);
        // A live peer: a pong twice per heartbeat, on the paused clock.
        let pongs = stream::unfold(tokio::time::interval(HEARTBEAT / 2), |mut every| async move {
            every.tick().await;
            Some((Ok::<_, Infallible>(Message::Pong(Default::default())), every))
        });
        let mut connection = tokio::spawn(serve_agent(
            engine.clone(),
            Arc::new(Metrics::new(&engine)),
            Arc::new(Security::default()),
            Session {
                caller: ana.clone(),
                expires_at: None,
                workspace: WorkspaceId::default_workspace(),
            },
            recording_sink(Default::default()),
            Box::pin(pongs),
            shutdown,
        ));
        let still_running = tokio::time::timeout(HEARTBEAT * 9, &mut connection).await;
        assert!(still_running.is_err(), "the connection ended: {still_running:?}");
        assert_eq!(engine.fanout().connections(&ana.id), 1);
        stop.send(true).expect("the connection listens");
        connection.await.expect("ends cleanly");
        assert_eq!(engine.fanout().connections(&ana.id), 0);
    }
}
