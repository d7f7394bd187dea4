//! The agent WebSocket (`/v1/agent/ws`): a thin adapter from frames to engine calls.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use super::error::ApiError;
use super::AppState;
use crate::core::{ErrorCode, Rejection};
use crate::engine::fanout::{encode, ConnHandle, ConnId, CutOff, Frame, Kick};
use crate::engine::Engine;
use crate::protocol::{Caller, ClientFrame, ErrorFrame, ServerFrame, MAX_FRAME_BYTES, PROTOCOL_VERSION};

/// Frames above this size close the connection (1009); below it and above
/// [`MAX_FRAME_BYTES`] they get an error frame and the connection stays.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// Close code for a connection from which nothing (not even a pong) came for
/// [`MISSED_HEARTBEATS`] heartbeats.
pub const CLOSE_IDLE: u16 = 4002;

/// How often the engine pings an agent connection.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Heartbeats without any frame from the client before the connection is closed.
pub const MISSED_HEARTBEATS: u32 = 2;

/// How long one write may take before the connection is given up as dead.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Close code when the engine shuts down.
pub const CLOSE_GOING_AWAY: u16 = 1001;

/// Frames written per flush when the outbox has a backlog.
const WRITE_BATCH: usize = 64;

/// The handshake's query string.
#[derive(Debug, Deserialize)]
pub struct Handshake {
    token: Option<String>,
}

/// Who the connection belongs to. One swappable piece: today a token table.
fn authenticate(engine: &Engine, query: &Handshake, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let token = query.token.as_deref().or(bearer).ok_or_else(|| {
        ApiError::new(
            ErrorCode::Unauthorized,
            "no token: pass ?token=… or Authorization: Bearer …",
        )
    })?;
    let agent = engine
        .agent_by_token(token)
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "unknown token"))?;
    Ok(Caller {
        id: agent.id,
        role: agent.role,
    })
}

/// `GET /v1/agent/ws`: authenticates, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<Handshake>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let caller = match authenticate(&state.engine, &query, &headers) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    // Small buffers keep an idle connection cheap; tungstenite's default read buffer is 128 KiB.
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .on_upgrade(move |socket: WebSocket| {
            let span = tracing::info_span!("agent_ws", agent = %caller.id);
            async move {
                let engine = state.engine.clone();
                let (sink, stream) = socket.split();
                serve_agent(engine, caller, sink, stream, state.shutdown.clone()).await;
                drop(state);
            }
            .instrument(span)
        })
}

/// Runs one agent connection until it closes, the engine cuts it off, or shutdown.
/// Generic over the transport so that it can be driven without a socket.
pub async fn serve_agent<W, R, E>(
    engine: Arc<Engine>,
    caller: Caller,
    mut sink: W,
    mut stream: R,
    mut shutdown: watch::Receiver<bool>,
) where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let Some(profile) = engine.agent(&caller.id) else {
        return;
    };
    let (conn, seq) = engine.connect(&caller.id);
    let ConnHandle {
        id: conn_id,
        mut outbox,
        kicked,
        replies,
    } = conn;
    tracing::debug!(conn = conn_id.0, "connected");
    let welcome = ServerFrame::Welcome {
        protocol: PROTOCOL_VERSION,
        presence: engine.seat(&caller.id).map(|s| s.0).unwrap_or_default(),
        agent: profile,
        seq,
    };
    let close = if sink.send(text_message(encode(&welcome))).await.is_ok() {
        run_connection(
            &engine,
            &caller,
            conn_id,
            &mut sink,
            &mut stream,
            &mut outbox,
            &kicked,
            &replies,
            &mut shutdown,
        )
        .await
    } else {
        None
    };
    // Unregister first: a peer that never answers the close handshake must not keep the
    // agent looking connected (its grace period starts now).
    engine.disconnect(&caller.id, conn_id);
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await;
    }
    tracing::debug!(conn = conn_id.0, ?close, "disconnected");
}

/// The connection's loop. Returns the close frame to send, if the engine ends it.
#[allow(clippy::too_many_arguments)]
async fn run_connection<W, R, E>(
    engine: &Engine,
    caller: &Caller,
    conn_id: ConnId,
    sink: &mut W,
    stream: &mut R,
    outbox: &mut mpsc::Receiver<Frame>,
    kicked: &Kick,
    replies: &mpsc::Sender<Frame>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<(u16, &'static str)>
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut silent_beats = 0;
    // Made once: rebuilding them on every turn of the loop showed in profiles.
    let mut stopping = std::pin::pin!(shutdown.changed());
    let mut cut_off = std::pin::pin!(kicked.kicked());
    loop {
        // Not biased: a busy outbox must not starve the client's requests, nor the reverse.
        tokio::select! {
            _ = &mut stopping => return Some((CLOSE_GOING_AWAY, "engine shutting down")),
            why = &mut cut_off => return Some((why.code(), why.reason())),
            _ = heartbeat.tick() => {
                // A peer gone without a FIN (a closed laptop) would otherwise hold the
                // connection, and keep the agent online, for ever.
                silent_beats += 1;
                if silent_beats > MISSED_HEARTBEATS {
                    return Some((CLOSE_IDLE, "no frame received: reconnect"));
                }
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await, Ok(Ok(()))) {
                    return None;
                }
            }
            frame = outbox.recv() => {
                let frame = frame?;
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write_batch(sink, frame, outbox)).await, Ok(Ok(()))) {
                    return None;
                }
            }
            message = stream.next() => {
                silent_beats = 0;
                let reply = match message {
                    Some(Ok(Message::Text(text))) => handle_text(engine, caller, conn_id, &text),
                    Some(Ok(Message::Binary(_))) => error_frame(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames".into()),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                };
                if replies.try_send(reply).is_err() {
                    let why = CutOff::SlowConsumer;
                    return Some((why.code(), why.reason()));
                }
            }
        }
    }
}

/// Writes `first` and whatever else is already queued, then flushes once.
async fn write_batch<W: Sink<Message> + Unpin>(
    sink: &mut W,
    first: Frame,
    outbox: &mut tokio::sync::mpsc::Receiver<Frame>,
) -> Result<(), W::Error> {
    sink.feed(text_message(first)).await?;
    for _ in 1..WRITE_BATCH {
        match outbox.try_recv() {
            Ok(frame) => sink.feed(text_message(frame)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}

fn run_request(engine: &Engine, caller: &Caller, conn: ConnId, frame: ClientFrame) -> Frame {
    let ClientFrame { id, request } = frame;
    let name = request.name();
    match engine.handle(caller, conn, request) {
        Ok(result) => encode(&ServerFrame::Ok { id, result }),
        Err(rejection) => {
            tracing::debug!(request = name, code = ?rejection.code(), "rejected: {rejection}");
            rejection_frame(id, rejection)
        }
    }
}

/// A text message sharing the frame's bytes.
fn text_message(frame: Frame) -> Message {
    // Frames are serde_json output: always UTF-8, so the check cannot fail.
    Message::Text(Utf8Bytes::try_from(Bytes::clone(&frame)).unwrap_or_default())
}

fn error_frame(id: Option<String>, code: ErrorCode, message: String) -> Frame {
    encode(&ServerFrame::Error(ErrorFrame {
        id,
        code,
        message,
        live: None,
        expired_at: None,
    }))
}

fn rejection_frame(id: String, rejection: Rejection) -> Frame {
    let (live, expired_at) = match &rejection {
        Rejection::ActiveElsewhere { live } => (Some(live.clone()), None),
        Rejection::WindowClosed { expired_at } => (None, *expired_at),
        _ => (None, None),
    };
    encode(&ServerFrame::Error(ErrorFrame {
        id: Some(id),
        code: rejection.code(),
        message: rejection.to_string(),
        live,
        expired_at,
    }))
}

/// Decodes one text frame, runs it, and encodes the one reply (R18: a bad frame gets an error
/// frame naming what was wrong, and changes nothing).
pub fn handle_text(
    engine: &Engine,
    caller: &Caller,
    conn: crate::engine::fanout::ConnId,
    text: &str,
) -> Frame {
    if text.len() > MAX_FRAME_BYTES {
        return error_frame(
            None,
            ErrorCode::BadRequest,
            format!("frame is {} bytes; the limit is {MAX_FRAME_BYTES}", text.len()),
        );
    }
    // The common case in one parse; only a frame that fails is looked at again, to say why.
    if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
        return run_request(engine, caller, conn, frame);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return error_frame(None, ErrorCode::BadRequest, format!("malformed JSON: {e}")),
    };
    let Some(object) = value.as_object() else {
        return error_frame(
            None,
            ErrorCode::BadRequest,
            "a frame must be a JSON object".into(),
        );
    };
    let id = match object.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return error_frame(None, ErrorCode::BadRequest, "`id` must be a string".into()),
        None => return error_frame(None, ErrorCode::BadRequest, "missing field `id`".into()),
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => return error_frame(Some(id), ErrorCode::BadRequest, "`type` must be a string".into()),
        None => return error_frame(Some(id), ErrorCode::BadRequest, "missing field `type`".into()),
    };
    let frame: ClientFrame = match serde_json::from_value(value) {
        Ok(frame) => frame,
        Err(e) if e.to_string().starts_with("unknown variant") => {
            return error_frame(
                Some(id),
                ErrorCode::BadRequest,
                format!("unknown frame type `{kind}`: {e}"),
            );
        }
        Err(e) => {
            return error_frame(
                Some(id),
                ErrorCode::BadRequest,
                format!("invalid `{kind}` frame: {e}"),
            )
        }
    };
    run_request(engine, caller, conn, frame)
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
    use crate::ids::AgentId;

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
            ana.clone(),
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
            Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CLOSE_IDLE),
            other => panic!("expected a close frame, got {other:?}"),
        }
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
            ana.clone(),
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
