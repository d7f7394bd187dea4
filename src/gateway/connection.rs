//! What every WebSocket connection shares, agents' and supervisors': the loop that writes
//! the outbox, reads requests, pings and closes; the per-connection limits (frame size, frame
//! rate, requests in flight); and the decoding of request frames (R18).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::budget::{Admission, Budget};
use crate::core::ErrorCode;
use crate::engine::fanout::{encode, CutOff, Frame, Kick};
use crate::engine::Engine;
use crate::gateway::auth::Session;
use crate::gateway::error::durable;
use crate::gateway::tenant::Tenant;
use crate::gateway::AppState;
use crate::metrics::Metrics;
use crate::protocol::{ErrorFrame, LiveElsewhere, RequestFrame, ServerFrame, MAX_FRAME_BYTES};
use crate::refusal::{Close, Refusal};
use crate::security::Security;
use crate::store::WritePoint;

/// Frames above this size close the connection (1009); below it and above
/// [`MAX_FRAME_BYTES`] they get an error frame and the connection stays.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;

/// How often the engine pings an agent connection.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// Heartbeats without any frame from the client before the connection is closed.
pub const MISSED_HEARTBEATS: u32 = 2;

/// How long one write may take before the connection is given up as dead.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection closed for flooding is read, and what it sends thrown away, waiting
/// for the client to answer the close.
pub const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// Frames written per flush when the outbox has a backlog.
const WRITE_BATCH: usize = 64;

/// What handling one text frame gave.
pub enum Handled {
    /// The reply, made on the spot (the engine's operations in memory: microseconds).
    Now(Frame),
    /// A request that reads the database (a page of an archived chat, an archive search, a
    /// chat brought back from disk): run on tokio's blocking pool, so that a slow disk never
    /// holds up an async worker and the other connections on it. It runs once the requests
    /// before it are answered, and its reply is awaited the way a commit is: this connection's
    /// shutdown, cut-off and heartbeats go on meanwhile, and its next request waits in the
    /// socket, so replies stay in request order.
    Blocking(Box<dyn FnOnce() -> Frame + Send + 'static>),
}

/// A connection's loop: writes the outbox, answers each text frame with `handle_text` (none:
/// it queued its reply itself), pings, and ends on close, cut-off or shutdown. Returns the
/// close frame to send, if the engine ends it (none if it was sent here already).
///
/// A client may send `frames_per_second` text or binary frames, in bursts of twice that (see
/// [`Budget`]); a frame over budget is not handled but answered `rate_limited`, and a
/// client that keeps on is closed with [`Close::TooManyFrames`], sent here, after which what
/// it still sends is read and thrown away for up to [`CLOSE_LINGER`].
///
/// A connection's requests are handled in memory as they come, and each reply waits until
/// what its request changed is on disk (write before acknowledge), up to [`MAX_IN_FLIGHT`]
/// at once; further frames wait in the socket, where TCP holds the client back. Replies go out
/// in request order, and the outbox is held back behind them (see [`Pipeline`]); replies and
/// pushes queued and not yet written are bounded by the outbox, whose overflow cuts the
/// connection off (4008).
// Each argument is a separate borrow of the caller's connection state; a struct bundling them
// would only move the list.
#[allow(clippy::too_many_arguments)]
pub async fn run<W, R, E>(
    sink: &mut W,
    stream: &mut R,
    outbox: &mut mpsc::Receiver<Frame>,
    kicked: &Kick,
    replies: &mpsc::Sender<Frame>,
    shutdown: &mut watch::Receiver<bool>,
    frames_per_second: u32,
    mut handle_text: impl FnMut(&str) -> Option<Handled>,
    write_point: impl Fn() -> WritePoint,
) -> Option<Close>
where
    W: Sink<Message> + Unpin,
    R: Stream<Item = Result<Message, E>> + Unpin,
    E: std::error::Error + 'static,
{
    let mut budget = Budget::new(frames_per_second, monotonic_now());
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    let mut silent_beats = 0;
    // Made once: rebuilding them on every turn of the loop showed in profiles.
    let mut stopping = std::pin::pin!(shutdown.changed());
    let mut cut_off = std::pin::pin!(kicked.kicked());
    let mut pipeline = Pipeline::default();
    loop {
        // Not biased: a busy outbox must not starve the client's requests, nor the reverse.
        tokio::select! {
            _ = &mut stopping => return Some(Close::GoingAway),
            why = &mut cut_off => return Some(why.close()),
            _ = heartbeat.tick() => {
                if let Err(close) = beat(sink, &mut silent_beats).await {
                    return close;
                }
            }
            saved = pipeline.front_saved() => {
                if let Err(close) = Box::pin(pipeline.answer_front(saved, sink, outbox, replies)).await {
                    return close;
                }
            }
            frame = outbox.recv(), if pipeline.may_write(outbox) => {
                let frame = frame?;
                let more = pipeline.writable(outbox).saturating_sub(1);
                pipeline.taken += 1;
                match tokio::time::timeout(WRITE_TIMEOUT, write_batch(sink, frame, outbox, more)).await {
                    Ok(Ok(written)) => pipeline.taken += written,
                    _ => return None,
                }
            }
            message = stream.next(), if pipeline.has_room() => {
                silent_beats = 0;
                // None: a binary frame.
                let text = match message {
                    Some(Ok(Message::Text(text))) => Some(text),
                    Some(Ok(Message::Binary(_))) => None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) => return close_after_read_error(&e),
                    Some(Ok(Message::Close(_))) | None => return None,
                };
                let id = || text.as_deref().and_then(request_id);
                // What the outbox holds now was queued before this request ran: none of it is
                // an effect of this request or of a later one.
                let outbox_before = pipeline.taken + outbox.len() as u64;
                let handled = match budget.admit(monotonic_now()) {
                    Admission::Handle => match &text {
                        Some(text) => handle_text(text),
                        None => Some(Handled::Now(error_frame(None, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames".into()))),
                    },
                    Admission::Refuse => Some(Handled::Now(error_frame(
                        id(),
                        ErrorCode::RateLimited,
                        format!("more than {} frames per second: this one was not handled; slow down", budget.per_second()),
                    ))),
                    Admission::Close => {
                        // Dropped now, the socket would still hold the flood's unread frames,
                        // and the kernel would answer with a reset that can overtake the close
                        // frame: so it is closed here, the way RFC 6455 says.
                        Box::pin(async {
                            send_close(sink, Some(Close::TooManyFrames)).await;
                            linger(stream).await;
                        })
                        .await;
                        return None;
                    }
                };
                let reply = match handled {
                    None => continue,
                    Some(Handled::Now(reply)) => reply,
                    Some(Handled::Blocking(job)) => {
                        // Boxed, as the other rare paths: their futures would otherwise be
                        // part of every connection's task, idle or not (issue 13).
                        let read = Box::pin(read_in_turn(job, text.as_deref(), &mut pipeline, &mut stopping, &mut cut_off, &mut heartbeat, sink, &mut silent_beats, outbox, replies));
                        match read.await {
                            Ok(reply) => reply,
                            Err(close) => return close,
                        }
                    }
                };
                let point = write_point();
                if point.is_reached() && pipeline.is_empty() {
                    // The common case in memory: nothing to wait for, nothing ahead of it.
                    if replies.try_send(reply).is_err() {
                        return Some(CutOff::SlowConsumer.close());
                    }
                } else {
                    pipeline.push(Pending { id: id(), reply, outbox_before, saved: (!point.is_reached()).then(|| Box::pin(durable(point)) as Saving) });
                }
            }
        }
    }
}

/// A socket's two halves, as the gateway's connection loops take them.
pub type SocketSink = futures_util::stream::SplitSink<WebSocket, Message>;
/// See [`SocketSink`].
pub type SocketStream = futures_util::stream::SplitStream<WebSocket>;

/// The future of an upgraded socket: `serve` with the state's parts and the tenant's engine,
/// holding the state (its `_alive` sender, which shutdown waits for) and the tenant (its
/// admission, which unloading the workspace waits for) until it ends. Built in the upgrade callback,
/// not in an `async` block: a block keeps what it captured (the 368-byte socket, the state)
/// beside the connection's future for the connection's whole life (issue 13).
pub fn serve_socket<Fut: Future<Output = ()>>(
    state: AppState,
    tenant: Tenant,
    session: Session,
    socket: WebSocket,
    serve: impl FnOnce(
        Arc<Engine>,
        Arc<Metrics>,
        Arc<Security>,
        Session,
        SocketSink,
        SocketStream,
        watch::Receiver<bool>,
    ) -> Fut,
) -> impl Future<Output = ()> {
    let (sink, stream) = socket.split();
    let connection = serve(
        tenant.engine().clone(),
        state.metrics.clone(),
        state.security.clone(),
        session,
        sink,
        stream,
        state.shutdown.clone(),
    );
    // The tenant too: its workspace is not unloaded until every socket in it has ended.
    connection.map(move |()| drop((state, tenant)))
}

/// At most this many requests of one connection wait for the disk at once; the next one
/// waits in the socket, where TCP holds the client back.
pub const MAX_IN_FLIGHT: usize = 32;

/// A commit being waited for: `durable(point)`.
type Saving = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A request handled in memory whose reply waits until what it changed is on disk.
struct Pending {
    id: Option<String>,
    reply: Frame,
    /// How many outbox frames had been queued, ever, when the request ran.
    outbox_before: u64,
    /// None: nothing to wait for (its change was on disk already).
    saved: Option<Saving>,
}

/// A connection's requests in flight, and what they allow the outbox to write.
///
/// Write before acknowledge, without one round trip to the disk per request: a connection's
/// requests are handled in memory as they come, up to [`MAX_IN_FLIGHT`], while their replies
/// wait, in request order, each for its own commit (commits complete in order, and a group
/// commit usually takes many of them). Replies go out in request order. Outbox frames are
/// numbered in the order they were queued; while a request waits, only frames queued before it
/// ran may be written, so that this client never sees an effect of its own request before the
/// request is durable and acknowledged.
#[derive(Default)]
struct Pipeline {
    waiting: VecDeque<Pending>,
    /// Outbox frames taken so far.
    taken: u64,
}

impl Pipeline {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn has_room(&self) -> bool {
        self.waiting.len() < MAX_IN_FLIGHT
    }

    fn push(&mut self, pending: Pending) {
        self.waiting.push_back(pending);
    }

    /// How many of the frames now in the outbox may be written.
    fn writable(&self, outbox: &mpsc::Receiver<Frame>) -> usize {
        match self.waiting.front() {
            None => WRITE_BATCH,
            Some(front) => front
                .outbox_before
                .saturating_sub(self.taken)
                .min(outbox.len() as u64) as usize,
        }
    }

    fn may_write(&self, outbox: &mpsc::Receiver<Frame>) -> bool {
        // With nothing in flight the outbox is read whenever it has a frame (or closes).
        self.waiting.is_empty() || self.writable(outbox) > 0
    }

    /// Resolves when the oldest request's change is on disk; never, with none in flight.
    async fn front_saved(&mut self) -> Result<(), String> {
        match self.waiting.front_mut().map(|front| front.saved.as_mut()) {
            None => std::future::pending().await,
            Some(None) => Ok(()),
            Some(Some(saving)) => saving.await,
        }
    }

    /// Answers the oldest request once `saved` says how its commit went, and every request
    /// after it whose commit is already done: each after the outbox frames queued before it.
    /// `Err` holds what [`run`] returns to end the connection (a write that takes longer than
    /// [`WRITE_TIMEOUT`] gives the connection up as dead).
    async fn answer_front<W: Sink<Message> + Unpin>(
        &mut self,
        saved: Result<(), String>,
        sink: &mut W,
        outbox: &mut mpsc::Receiver<Frame>,
        replies: &mpsc::Sender<Frame>,
    ) -> Result<(), Option<Close>> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.answer_ready(saved, sink, outbox, replies)).await {
            Ok(answered) => answered,
            Err(_) => Err(None),
        }
    }

    async fn answer_ready<W: Sink<Message> + Unpin>(
        &mut self,
        mut saved: Result<(), String>,
        sink: &mut W,
        outbox: &mut mpsc::Receiver<Frame>,
        replies: &mpsc::Sender<Frame>,
    ) -> Result<(), Option<Close>> {
        while let Some(answered) = self.waiting.pop_front() {
            let reply = match saved {
                Ok(()) => answered.reply,
                Err(why) => error_frame(answered.id, ErrorCode::StorageUnavailable, why),
            };
            if self.waiting.is_empty() {
                // Nothing ahead of it is held back now: it goes behind what the outbox holds.
                if replies.try_send(reply).is_err() {
                    return Err(Some(CutOff::SlowConsumer.close()));
                }
                break;
            }
            // Later requests still wait, and the outbox behind them with their effects: what
            // was queued before the next one ran is written, then this reply, directly.
            for _ in 0..self.writable(outbox) {
                let Ok(frame) = outbox.try_recv() else { break };
                self.taken += 1;
                sink.feed(text_message(frame)).await.map_err(|_| None)?;
            }
            sink.feed(text_message(reply)).await.map_err(|_| None)?;
            match self.front_saved().now_or_never() {
                Some(next) => saved = next,
                None => break,
            }
        }
        sink.flush().await.map_err(|_| None)
    }
}

/// A request that reads the database ([`Handled::Blocking`]), run on tokio's blocking pool once
/// the requests before it are answered (a read sees only what is committed: they must be on
/// disk first, or it could miss what they changed). Meanwhile the connection's shutdown,
/// cut-off and heartbeats are served. `Err` holds what [`run`] returns to end the connection.
// The loop's state, borrowed piece by piece, as in `run`.
#[allow(clippy::too_many_arguments)]
async fn read_in_turn<W: Sink<Message> + Unpin>(
    job: Box<dyn FnOnce() -> Frame + Send + 'static>,
    text: Option<&str>,
    pipeline: &mut Pipeline,
    stopping: &mut (impl Future + Unpin),
    cut_off: &mut (impl Future<Output = CutOff> + Unpin),
    heartbeat: &mut tokio::time::Interval,
    sink: &mut W,
    silent_beats: &mut u32,
    outbox: &mut mpsc::Receiver<Frame>,
    replies: &mpsc::Sender<Frame>,
) -> Result<Frame, Option<Close>> {
    while !pipeline.is_empty() {
        let saved = serve_while(
            pipeline.front_saved(),
            stopping,
            cut_off,
            heartbeat,
            sink,
            silent_beats,
        )
        .await?;
        pipeline.answer_front(saved, sink, outbox, replies).await?;
    }
    let read = tokio::task::spawn_blocking(job);
    match serve_while(read, stopping, cut_off, heartbeat, sink, silent_beats).await? {
        Ok(reply) => Ok(reply),
        Err(e) => {
            tracing::error!(error = %e, "a request that reads the database failed");
            Ok(error_frame(
                text.and_then(request_id),
                ErrorCode::StorageUnavailable,
                "the request failed while reading the database; try again".into(),
            ))
        }
    }
}

/// Waits for `work` (a read of the database, a commit) while the connection's shutdown,
/// cut-off and heartbeats are still served. `Err` holds what [`run`] returns to end the
/// connection.
async fn serve_while<T, W: Sink<Message> + Unpin>(
    work: impl Future<Output = T>,
    stopping: &mut (impl Future + Unpin),
    cut_off: &mut (impl Future<Output = CutOff> + Unpin),
    heartbeat: &mut tokio::time::Interval,
    sink: &mut W,
    silent_beats: &mut u32,
) -> Result<T, Option<Close>> {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            _ = &mut *stopping => return Err(Some(Close::GoingAway)),
            why = &mut *cut_off => return Err(Some(why.close())),
            _ = heartbeat.tick() => beat(sink, silent_beats).await?,
            done = &mut work => return Ok(done),
        }
    }
}

/// One heartbeat: closes a connection that sent nothing for [`MISSED_HEARTBEATS`] of them,
/// else pings it. `Err` holds what [`run`] returns to end the connection.
async fn beat<W: Sink<Message> + Unpin>(sink: &mut W, silent_beats: &mut u32) -> Result<(), Option<Close>> {
    // A peer gone without a FIN (a closed laptop) would otherwise hold the connection, and
    // keep the agent online, for ever.
    *silent_beats += 1;
    if *silent_beats > MISSED_HEARTBEATS {
        return Err(Some(Close::Idle));
    }
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Ping(Default::default()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(None),
    }
}

/// Now, on tokio's monotonic clock, for rates. Not the engine's clock: that one is domain time,
/// which tests hold still; this one moves in production and paused-time tests drive it.
#[allow(clippy::disallowed_methods)]
fn monotonic_now() -> Instant {
    Instant::now()
}

/// The `id` of a request frame, if it has one, to echo in an error about the whole frame.
fn request_id(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    if text.len() > MAX_FRAME_BYTES {
        return None;
    }
    serde_json::from_str::<Id>(text).ok().and_then(|frame| frame.id)
}

/// The close to send after the transport failed to read a message: 1009 for one over
/// [`HARD_FRAME_LIMIT`], none for anything else (the socket is gone or speaks garbage).
pub(crate) fn close_after_read_error(error: &(dyn std::error::Error + 'static)) -> Option<Close> {
    // tungstenite reports an oversized message as `Error::Capacity`, written "Space limit
    // exceeded: …". It is axum's private dependency, so the type cannot be named here and its
    // text is matched instead; tests/it/limits.rs fails if that text changes.
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.to_string().starts_with("Space limit exceeded") {
            return Some(Close::TooBig);
        }
        cause = e.source();
    }
    None
}

/// Writes `first` and up to `more` of what else is already queued, then flushes once.
/// Returns how many it wrote after `first`.
async fn write_batch<W: Sink<Message> + Unpin>(
    sink: &mut W,
    first: Frame,
    outbox: &mut tokio::sync::mpsc::Receiver<Frame>,
    more: usize,
) -> Result<u64, W::Error> {
    sink.feed(text_message(first)).await?;
    let mut written = 0;
    for _ in 0..more.min(WRITE_BATCH - 1) {
        match outbox.try_recv() {
            Ok(frame) => {
                sink.feed(text_message(frame)).await?;
                written += 1;
            }
            Err(_) => break,
        }
    }
    sink.flush().await?;
    Ok(written)
}

/// Reads and discards what the client still sends, until it answers the close frame sent
/// before, or for [`CLOSE_LINGER`] at most.
async fn linger<R, E>(stream: &mut R)
where
    R: Stream<Item = Result<Message, E>> + Unpin,
{
    let answered = async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, answered).await;
}

/// Sends the close frame, if the engine ended the connection; never waits long for it.
pub async fn send_close<W: Sink<Message> + Unpin>(sink: &mut W, close: Option<Close>) {
    if let Some(close) = close {
        let frame = Message::Close(Some(CloseFrame {
            code: close.code(),
            reason: Utf8Bytes::from_static(close.reason()),
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
        code: code.into(),
        message,
        live: None,
        expired_at: None,
    }))
}

/// The error frame answering request `id`, with the details its code carries (a live chat's
/// owner named as the engine's directory knows it, for the desk to show).
pub fn refusal_frame(id: String, refusal: Refusal, engine: &Engine) -> Frame {
    let details = refusal.details();
    encode(&ServerFrame::Error(ErrorFrame {
        id: Some(id),
        code: refusal.code().into(),
        message: refusal.to_string(),
        live: details
            .live
            .map(|live| LiveElsewhere::of(&live, |owner| engine.agent(owner).map(|p| p.name))),
        expired_at: details.expired_at,
    }))
}

/// Decodes one text frame (R18): a bad one becomes the error frame naming what was wrong.
pub fn decode<T: DeserializeOwned + RequestFrame>(text: &str) -> Result<T, Frame> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(error_frame(
            None,
            ErrorCode::BadRequest,
            format!("frame is {} bytes; the limit is {MAX_FRAME_BYTES}", text.len()),
        ));
    }
    // The common case in one parse; only a frame that fails is looked at again, to say why
    // (and one whose type takes no fields, to find any it should not have).
    if let Ok(frame) = serde_json::from_str::<T>(text) {
        if frame.takes_no_fields() {
            if let Some(refused) = fields_beyond_id_and_type(text) {
                return Err(refused);
            }
        }
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

/// The error for a frame of a type without fields that carries some anyway, naming them.
fn fields_beyond_id_and_type(text: &str) -> Option<Frame> {
    #[derive(Deserialize)]
    struct Frame {
        id: Option<String>,
        #[serde(rename = "type")]
        kind: String,
        #[serde(flatten)]
        rest: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
    }
    let frame: Frame = serde_json::from_str(text).ok()?;
    if frame.rest.is_empty() {
        return None;
    }
    let names: Vec<String> = frame.rest.keys().map(|k| format!("`{k}`")).collect();
    Some(error_frame(
        frame.id,
        ErrorCode::BadRequest,
        format!(
            "invalid `{}` frame: unknown field {}; it takes no fields beyond `id` and `type`",
            frame.kind,
            names.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use futures_util::{sink, stream};
    use parking_lot::Mutex;

    use serde_json::json;

    use super::*;

    /// A client sending `count` pings, `p0`, `p1`, …, all at once, then nothing.
    fn flood(count: usize) -> impl Stream<Item = Result<Message, Infallible>> + Unpin {
        let pings = (0..count).map(|i| Ok(Message::text(format!(r#"{{"id": "p{i}", "type": "ping"}}"#))));
        stream::iter(pings).chain(stream::pending())
    }

    /// A sink that keeps every message written to it, and what it kept.
    fn recording_sink() -> (
        Arc<Mutex<Vec<Message>>>,
        impl Sink<Message, Error = Infallible> + Unpin,
    ) {
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Box::pin(sink::unfold(written.clone(), |written, m: Message| async move {
            written.lock().push(m);
            Ok::<_, Infallible>(written)
        }));
        (written, sink)
    }

    /// The `error` frames among `frames`, as (id, code).
    fn errors(frames: &[Value]) -> Vec<(Value, Value)> {
        frames
            .iter()
            .filter(|f| f["type"] == "error")
            .map(|f| (f["id"].clone(), f["code"].clone()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_is_answered_rate_limited_beyond_the_burst_and_then_closed_with_4029() {
        let (written, mut sink) = recording_sink();
        let (replies, mut outbox) = mpsc::channel(1024);
        let (_stop, mut shutdown) = watch::channel(false);
        let mut handled = Vec::new();
        // 5 per second: a burst of 10, and the 20th refusal closes.
        let close = run(
            &mut sink,
            &mut flood(100),
            &mut outbox,
            &Kick::default(),
            &replies,
            &mut shutdown,
            5,
            |text| {
                handled.push(text.to_owned());
                Some(Handled::Now(Arc::new(Bytes::from_static(br#"{"type": "ok"}"#))))
            },
            WritePoint::none,
        )
        .await;

        assert_eq!(close, None, "closed already");
        match written.lock().last() {
            Some(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, Close::TooManyFrames.code())
            }
            other => panic!("expected the close frame last, got {other:?}"),
        }
        assert_eq!(handled.len(), 10, "only the burst is handled: {handled:?}");
        // Whatever the loop had not written yet is still queued: together, every reply.
        let mut frames: Vec<Value> = written
            .lock()
            .iter()
            .filter_map(|m| match m {
                Message::Text(text) => serde_json::from_str(text).ok(),
                _ => None,
            })
            .collect();
        while let Ok(frame) = outbox.try_recv() {
            frames.push(serde_json::from_slice(&frame).expect("JSON"));
        }
        let refused: Vec<(Value, Value)> = (10..29)
            .map(|i| (Value::from(format!("p{i}")), Value::from("rate_limited")))
            .collect();
        assert_eq!(errors(&frames), refused, "each refusal names its request");
        assert_eq!(frames.len(), 10 + 19);
    }

    /// The text frames written so far, decoded.
    fn texts(written: &Mutex<Vec<Message>>) -> Vec<Value> {
        written
            .lock()
            .iter()
            .filter_map(|m| match m {
                Message::Text(text) => serde_json::from_str(text).ok(),
                _ => None,
            })
            .collect()
    }

    /// Yields to the connection's loop until `done` holds, for at most 5 s.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let waited = tokio::time::timeout(Duration::from_secs(5), async {
            while !done() {
                tokio::task::yield_now().await;
            }
        });
        assert!(waited.await.is_ok(), "timed out waiting until {what}");
    }

    fn frame(value: Value) -> Frame {
        Arc::new(Bytes::from(value.to_string()))
    }

    /// Write before acknowledge, pipelined: requests sent at once are all handled, each reply
    /// waits for its own commit, replies leave in request order, and a push a request caused
    /// leaves only once that request is committed, just before its reply; what was queued
    /// before the requests leaves at once. A failed commit answers `storage_unavailable`.
    #[tokio::test]
    async fn issue13_pipelined_replies_wait_for_their_own_commit_and_hold_back_their_effects() {
        let (written, mut sink) = recording_sink();
        let requests = (0..3)
            .map(|i| Ok::<_, Infallible>(Message::text(format!(r#"{{"id": "r{i}", "type": "ping"}}"#))));
        let mut stream = stream::iter(requests).chain(stream::pending());
        let (replies, mut outbox) = mpsc::channel(1024);
        let (_stop, mut shutdown) = watch::channel(false);
        let commits = crate::store::ManualCommits::default();
        replies.try_send(frame(json!({"type": "earlier"}))).expect("room");
        let handled = std::sync::atomic::AtomicU64::new(0);
        let effects = replies.clone();
        let kick = Kick::default();

        let connection = run(
            &mut sink,
            &mut stream,
            &mut outbox,
            &kick,
            &replies,
            &mut shutdown,
            1000,
            |text| {
                let id = request_id(text).expect("an id");
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                effects
                    .try_send(frame(json!({"type": "effect", "of": id})))
                    .expect("room");
                Some(Handled::Now(frame(json!({"type": "reply", "id": id}))))
            },
            || commits.point(handled.load(std::sync::atomic::Ordering::SeqCst)),
        );
        let check = async {
            let seen = |n| texts(&written).len() >= n;
            until("the three are handled and the earlier frame written", || {
                handled.load(std::sync::atomic::Ordering::SeqCst) == 3 && seen(1)
            })
            .await;
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                texts(&written),
                vec![json!({"type": "earlier"})],
                "nothing of theirs before a commit"
            );

            commits.decide(1, 1, None);
            until("r0 is answered", || seen(3)).await;
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            assert_eq!(
                texts(&written)[1..],
                [
                    json!({"type": "effect", "of": "r0"}),
                    json!({"type": "reply", "id": "r0"})
                ],
                "r0's push, then its reply; r1's wait for r1's commit"
            );

            commits.decide(2, 2, None);
            commits.decide(3, 3, Some(&crate::store::StoreError::WriterStopped));
            until("all are answered", || seen(7)).await;
            let frames = texts(&written);
            assert_eq!(
                frames[3..5],
                [
                    json!({"type": "effect", "of": "r1"}),
                    json!({"type": "reply", "id": "r1"})
                ]
            );
            assert_eq!(frames[5], json!({"type": "effect", "of": "r2"}));
            assert_eq!(
                (&frames[6]["type"], &frames[6]["id"], &frames[6]["code"]),
                (&json!("error"), &json!("r2"), &json!("storage_unavailable"))
            );
        };
        tokio::select! {
            _ = connection => panic!("the connection ended"),
            _ = check => {}
        }
    }

    /// A client that sends more than [`MAX_IN_FLIGHT`] requests without waiting has the rest
    /// read only as earlier ones are answered.
    #[tokio::test]
    async fn issue13_at_most_max_in_flight_requests_wait_for_the_disk() {
        let (written, mut sink) = recording_sink();
        let total = MAX_IN_FLIGHT as u64 + 8;
        let (replies, mut outbox) = mpsc::channel(1024);
        let (_stop, mut shutdown) = watch::channel(false);
        let commits = crate::store::ManualCommits::default();
        let handled = std::sync::atomic::AtomicU64::new(0);
        let count = || handled.load(std::sync::atomic::Ordering::SeqCst);
        let kick = Kick::default();
        let mut stream = flood(total as usize);

        let connection = run(
            &mut sink,
            &mut stream,
            &mut outbox,
            &kick,
            &replies,
            &mut shutdown,
            1000,
            |text| {
                handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let id = request_id(text).expect("an id");
                Some(Handled::Now(frame(json!({"type": "reply", "id": id}))))
            },
            || commits.point(count()),
        );
        let check = async {
            until("a full pipeline", || count() == MAX_IN_FLIGHT as u64).await;
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
            assert_eq!(count(), MAX_IN_FLIGHT as u64, "the rest wait in the socket");
            commits.decide(1, 8, None);
            until("eight more are read", || count() == total).await;
            commits.decide(9, total, None);
            until("every reply is written", || {
                texts(&written).len() == total as usize
            })
            .await;
            let ids: Vec<Value> = texts(&written).iter().map(|f| f["id"].clone()).collect();
            let expected: Vec<Value> = (0..total).map(|i| json!(format!("p{i}"))).collect();
            assert_eq!(ids, expected, "in request order");
        };
        tokio::select! {
            _ = connection => panic!("the connection ended"),
            _ = check => {}
        }
    }

    #[test]
    fn a_refusal_echoes_the_request_id_when_the_frame_has_one() {
        assert_eq!(request_id(r#"{"id": "r1", "type": "ping"}"#), Some("r1".into()));
        assert_eq!(request_id(r#"{"id": 7, "type": "ping"}"#), None);
        assert_eq!(request_id(r#"{"type": "ping"}"#), None);
        assert_eq!(request_id("not JSON"), None);
    }
}
