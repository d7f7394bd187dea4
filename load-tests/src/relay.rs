//! The floor: a bare WebSocket relay with the engine's shape and none of its rules.
//!
//! It is served like the engine (axum 0.8, tungstenite with 4 KiB buffers, one task per
//! connection with a bounded outbox and batched writes) and speaks the same frames, so the
//! harness drives it unchanged. Per request it parses the JSON, looks up the target and
//! forwards: a `reopen` makes the sender the chat's owner and is pushed to every connection of
//! the sender's agent; an ingress message is pushed to the owner of the chat named by its
//! `from`; everything else is answered `ok`. Pushes carry a per-agent sequence number and are
//! serialized once for all connections, as the engine's are. Nothing else: no customer files,
//! no router, no timers, no outbound queue.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use dashmap::DashMap;
use futures_util::{Sink, SinkExt, StreamExt};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::mpsc;

/// Frames a connection's outbox holds, as in the engine.
const OUTBOX: usize = 1024;
/// Frames written per flush, as in the engine.
const WRITE_BATCH: usize = 64;

type Frame = Arc<str>;

#[derive(Default)]
struct Hub {
    seq: u64,
    conns: Vec<(u64, mpsc::Sender<Frame>)>,
}

#[derive(Default)]
struct Relay {
    hubs: DashMap<Arc<str>, Arc<Mutex<Hub>>>,
    owners: DashMap<Box<str>, Arc<str>>,
    next_conn: std::sync::atomic::AtomicU64,
}

impl Relay {
    fn hub(&self, agent: &Arc<str>) -> Arc<Mutex<Hub>> {
        self.hubs.entry(agent.clone()).or_default().clone()
    }

    /// Pushes one event to every connection of `agent`, numbered.
    fn push(&self, agent: &Arc<str>, event: std::fmt::Arguments<'_>) {
        let hub = self.hub(agent);
        let mut hub = hub.lock();
        hub.seq += 1;
        let frame: Frame = format!(r#"{{"type":"push","seq":{},"event":{event}}}"#, hub.seq).into();
        hub.conns.retain(|(_, tx)| tx.try_send(frame.clone()).is_ok());
    }
}

#[derive(Deserialize)]
struct Handshake {
    token: String,
}

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    chat_id: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Inbound {
    from: String,
}

/// The floor's listen backlog: a burst of thousands of agents connecting at once would
/// overflow a short accept queue, and each dropped SYN costs its client a one-second retry.
const BACKLOG: u32 = 4096;

/// Serves the relay on `listen` until the process is killed. With `axum_defaults` the socket
/// is set up as `axum::serve` on a `tokio::net::TcpListener::bind` leaves it, which is how the
/// engine served before tuning: no TCP_NODELAY (Nagle's algorithm on), a listen backlog of
/// 128. Without it, as the engine serves now: TCP_NODELAY and a backlog of 4096.
pub(crate) async fn serve(listen: SocketAddr, axum_defaults: bool) -> anyhow::Result<()> {
    let relay = Arc::new(Relay::default());
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/v1/agent/ws", get(upgrade))
        .route("/v1/channels/{channel}/messages", post(ingress))
        .with_state(relay);
    if axum_defaults {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        axum::serve(listener, app).await?;
    } else {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(listen)?;
        // Without TCP_NODELAY a reply written while an earlier small write is still
        // unacknowledged waits for the client's delayed ACK (40 ms on Linux).
        let listener = socket.listen(BACKLOG)?.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await?;
    }
    Ok(())
}

async fn ingress(State(relay): State<Arc<Relay>>, Json(message): Json<Inbound>) -> Json<serde_json::Value> {
    let owner = relay.owners.get(message.from.as_str()).map(|o| o.clone());
    if let Some(owner) = owner {
        let chat = &message.from;
        relay.push(
            &owner,
            format_args!(r#"{{"kind":"chat_activated","chat":{{"id":"{chat}"}},"by":"customer_replied"}}"#),
        );
        relay.push(
            &owner,
            format_args!(r#"{{"kind":"customer_message","chat_id":"{chat}"}}"#),
        );
    }
    Json(serde_json::json!({ "chat_id": message.from }))
}

async fn upgrade(
    State(relay): State<Arc<Relay>>,
    Query(handshake): Query<Handshake>,
    ws: WebSocketUpgrade,
) -> Response {
    let agent: Arc<str> = handshake.token.into();
    ws.read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .on_upgrade(move |socket| connection(relay, agent, socket))
}

async fn connection(relay: Arc<Relay>, agent: Arc<str>, socket: WebSocket) {
    let id = relay.next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, mut outbox) = mpsc::channel::<Frame>(OUTBOX);
    let seq = {
        let hub = relay.hub(&agent);
        let mut hub = hub.lock();
        hub.conns.push((id, tx.clone()));
        hub.seq
    };
    let (mut sink, mut stream) = socket.split();
    let welcome = format!(r#"{{"type":"welcome","protocol":1,"seq":{seq}}}"#);
    if sink.send(Message::Text(welcome.into())).await.is_ok() {
        loop {
            tokio::select! {
                frame = outbox.recv() => {
                    let Some(frame) = frame else { break };
                    if write_batch(&mut sink, frame, &mut outbox).await.is_err() {
                        break;
                    }
                }
                message = stream.next() => {
                    let Some(Ok(message)) = message else { break };
                    match message {
                        Message::Text(text) if !handle(&relay, &agent, &tx, &text) => break,
                        Message::Close(_) => break,
                        _ => {}
                    }
                }
            }
        }
    }
    relay.hub(&agent).lock().conns.retain(|(c, _)| *c != id);
}

/// Answers one request and forwards its push; false when the outbox is full.
fn handle(relay: &Relay, agent: &Arc<str>, tx: &mpsc::Sender<Frame>, text: &str) -> bool {
    let Ok(request) = serde_json::from_str::<Request<'_>>(text) else {
        let error: Frame = r#"{"type":"error","id":null,"code":"bad_request","message":"malformed"}"#.into();
        return tx.try_send(error).is_ok();
    };
    let reply: Frame = format!(
        r#"{{"type":"ok","id":"{}","result":{{"kind":"done"}}}}"#,
        request.id
    )
    .into();
    if tx.try_send(reply).is_err() {
        return false;
    }
    let Some(chat) = request.chat_id.as_deref() else {
        return true;
    };
    match &*request.kind {
        "reopen" => {
            relay.owners.insert(chat.into(), agent.clone());
            relay.push(
                agent,
                format_args!(r#"{{"kind":"chat_reopened","chat":{{"id":"{chat}"}}}}"#),
            );
        }
        "close" => {
            relay.push(
                agent,
                format_args!(r#"{{"kind":"chat_closed","chat_id":"{chat}","reason":"agent"}}"#),
            );
        }
        _ => {}
    }
    true
}

async fn write_batch<W: Sink<Message> + Unpin>(
    sink: &mut W,
    first: Frame,
    outbox: &mut mpsc::Receiver<Frame>,
) -> Result<(), W::Error> {
    sink.feed(Message::Text(Utf8Bytes::from(&*first))).await?;
    for _ in 1..WRITE_BATCH {
        match outbox.try_recv() {
            Ok(frame) => sink.feed(Message::Text(Utf8Bytes::from(&*frame))).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
