//! What every WebSocket connection shares, agents' and supervisors': the loop that writes
//! the outbox, reads requests, pings and closes; and the decoding of request frames (R18).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::core::{ErrorCode, Rejection};
use crate::engine::fanout::{encode, CutOff, Frame, Kick};
use crate::protocol::{ErrorFrame, ServerFrame, MAX_FRAME_BYTES};

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

/// A connection's loop: writes the outbox, answers each text frame with `handle_text` (none:
/// it queued its reply itself), pings, and ends on close, cut-off or shutdown. Returns the close frame to send, if the engine ends it.
pub async fn run<W, R, E>(
    sink: &mut W,
    stream: &mut R,
    outbox: &mut mpsc::Receiver<Frame>,
    kicked: &Kick,
    replies: &mpsc::Sender<Frame>,
    shutdown: &mut watch::Receiver<bool>,
    mut handle_text: impl FnMut(&str) -> Option<Frame>,
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
                    Some(Ok(Message::Text(text))) => handle_text(&text),
                    Some(Ok(Message::Binary(_))) => Some(error_frame(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames".into())),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return None,
                };
                let Some(reply) = reply else { continue };
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

/// Sends the close frame, if the engine ended the connection; never waits long for it.
pub async fn send_close<W: Sink<Message> + Unpin>(sink: &mut W, close: Option<(u16, &'static str)>) {
    if let Some((code, reason)) = close {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        }));
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(frame)).await;
    }
}

/// A text message sharing the frame's bytes.
pub fn text_message(frame: Frame) -> Message {
    // Frames are serde_json output: always UTF-8, so the check cannot fail.
    Message::Text(Utf8Bytes::try_from(Bytes::clone(&frame)).unwrap_or_default())
}

pub fn error_frame(id: Option<String>, code: ErrorCode, message: String) -> Frame {
    encode(&ServerFrame::Error(ErrorFrame {
        id,
        code,
        message,
        live: None,
        expired_at: None,
    }))
}

pub fn rejection_frame(id: String, rejection: Rejection) -> Frame {
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

/// Decodes one text frame (R18): a bad one becomes the error frame naming what was wrong.
pub fn decode<T: DeserializeOwned>(text: &str) -> Result<T, Frame> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(error_frame(
            None,
            ErrorCode::BadRequest,
            format!("frame is {} bytes; the limit is {MAX_FRAME_BYTES}", text.len()),
        ));
    }
    // The common case in one parse; only a frame that fails is looked at again, to say why.
    if let Ok(frame) = serde_json::from_str::<T>(text) {
        return Ok(frame);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(error_frame(
                None,
                ErrorCode::BadRequest,
                format!("malformed JSON: {e}"),
            ))
        }
    };
    let Some(object) = value.as_object() else {
        return Err(error_frame(
            None,
            ErrorCode::BadRequest,
            "a frame must be a JSON object".into(),
        ));
    };
    let id = match object.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => {
            return Err(error_frame(
                None,
                ErrorCode::BadRequest,
                "`id` must be a string".into(),
            ))
        }
        None => {
            return Err(error_frame(
                None,
                ErrorCode::BadRequest,
                "missing field `id`".into(),
            ))
        }
    };
    let kind = match object.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        Some(_) => {
            return Err(error_frame(
                Some(id),
                ErrorCode::BadRequest,
                "`type` must be a string".into(),
            ))
        }
        None => {
            return Err(error_frame(
                Some(id),
                ErrorCode::BadRequest,
                "missing field `type`".into(),
            ))
        }
    };
    match serde_json::from_value(value) {
        Ok(frame) => Ok(frame),
        Err(e) if e.to_string().starts_with("unknown variant") => Err(error_frame(
            Some(id),
            ErrorCode::BadRequest,
            format!("unknown frame type `{kind}`: {e}"),
        )),
        Err(e) => Err(error_frame(
            Some(id),
            ErrorCode::BadRequest,
            format!("invalid `{kind}` frame: {e}"),
        )),
    }
}
