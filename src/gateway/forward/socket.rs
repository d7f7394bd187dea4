//! A WebSocket relayed to the node serving its workspace: the client's socket here, one of
//! this node's to the owner, and every frame relayed both ways as it came (text, binary,
//! ping, pong, close with its code and reason).
//!
//! The owner is asked first, with the client's credentials (its `Authorization`, its query's
//! `token`, its `Origin`) and subprotocols: a refusal comes back to the client as the owner
//! answered it, and the client's upgrade is accepted with the subprotocol the owner chose.
//! An owner that cannot be reached, or whose socket ends without a close frame (it died),
//! costs the client its socket with 4503, which tells it to reconnect, to any node, and
//! resume (R17, R29).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self as ts, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use super::{answer_of, path_and_query, relayed_headers, Forwarder, UPGRADE_TIMEOUT};
use crate::cluster::ForwardStats;
use crate::gateway::connection::{self, CLOSE_LINGER, HARD_FRAME_LIMIT, MISSED_HEARTBEATS, WRITE_TIMEOUT};
use crate::gateway::AppState;
use crate::refusal::Close;

/// The socket to the owner.
type OwnerSocket = WebSocketStream<reqwest::Upgraded>;

/// Relays the WebSocket upgrade `parts` to the node at `base`.
pub(super) async fn relay(
    state: AppState,
    forwarder: Arc<Forwarder>,
    base: &str,
    mut parts: Parts,
) -> Response {
    let mut upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        // Not a valid handshake: the owner would refuse it alike.
        Err(rejection) => return rejection.into_response(),
    };
    // The same bounds as the engine's own sockets (`agent_ws`): a frame over the limit is
    // refused here with 1009, as the owner would.
    upgrade = upgrade
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT);
    let url = format!("{base}{}", path_and_query(&parts));
    let owner = match open(&forwarder, &url, &parts).await {
        Opened::Socket(owner, protocol) => {
            if let Some(protocol) = protocol {
                upgrade.set_selected_protocol(protocol);
            }
            Some(owner)
        }
        Opened::Refused(answered) => return answer_of(&forwarder, &url, answered).await,
        Opened::Failed(why) => {
            ForwardStats::count(&forwarder.stats.failures);
            tracing::warn!(%url, %why, "cannot open a socket to the node serving a workspace");
            None
        }
    };
    upgrade.on_upgrade(move |client| async move {
        match owner {
            Some(owner) => relay_between(state, forwarder, client, owner).await,
            // Unreachable: the client is told to reconnect and resume, as when the owner
            // dies mid-socket; by then another node may serve the workspace.
            None => {
                let (mut client_tx, mut client_rx) = client.split();
                connection::send_close(&mut client_tx, Some(Close::WorkspaceClosed)).await;
                drain(&mut client_rx).await;
                drop(state);
            }
        }
    })
}

/// What asking the owner for a socket gave.
enum Opened {
    /// A socket, with the subprotocol the owner chose.
    Socket(Box<OwnerSocket>, Option<HeaderValue>),
    /// The owner answered without upgrading (a wrong token, a foreign origin, too many
    /// connections): its answer goes back as it is.
    Refused(reqwest::Response),
    /// The owner could not be reached or did not complete the handshake.
    Failed(String),
}

/// Asks the node at `url` for a WebSocket with the client's headers (its credentials and
/// subprotocols among them), under a handshake of this node's own.
async fn open(forwarder: &Forwarder, url: &str, parts: &Parts) -> Opened {
    let key = generate_key();
    let mut headers = relayed_headers(parts, forwarder.directory.node());
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    match HeaderValue::from_str(&key) {
        Ok(value) => headers.insert(header::SEC_WEBSOCKET_KEY, value),
        Err(e) => return Opened::Failed(e.to_string()),
    };
    let asked = forwarder.sockets.get(url).headers(headers).send();
    let answered = match tokio::time::timeout(UPGRADE_TIMEOUT, asked).await {
        Ok(Ok(answered)) => answered,
        Ok(Err(e)) => return Opened::Failed(e.to_string()),
        Err(_) => return Opened::Failed(format!("no answer within {UPGRADE_TIMEOUT:?}")),
    };
    if answered.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Opened::Refused(answered);
    }
    let accept = answered.headers().get(header::SEC_WEBSOCKET_ACCEPT);
    if accept.map(HeaderValue::as_bytes) != Some(derive_accept_key(key.as_bytes()).as_bytes()) {
        return Opened::Failed("the owner's handshake did not answer ours".to_owned());
    }
    let protocol = answered.headers().get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
    let upgraded = match tokio::time::timeout(UPGRADE_TIMEOUT, answered.upgrade()).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => return Opened::Failed(e.to_string()),
        Err(_) => return Opened::Failed(format!("no upgrade within {UPGRADE_TIMEOUT:?}")),
    };
    // The owner's frames have no limit but tungstenite's own: a snapshot can be large, and
    // the owner sends the client nothing it would not send it directly. Small buffers, as on
    // the client's side: tungstenite's default 128 KiB read buffer made a relaying node hold
    // ~480 MiB for ~6,700 relayed sockets (load-tests/README.md, "Issue 19").
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024);
    let socket = WebSocketStream::from_raw_socket(upgraded, Role::Client, Some(config)).await;
    Opened::Socket(Box::new(socket), protocol)
}

/// Counts a relayed socket live while it is held.
struct Live<'a>(&'a ForwardStats);

impl<'a> Live<'a> {
    fn new(stats: &'a ForwardStats) -> Self {
        ForwardStats::count(&stats.sockets_opened);
        ForwardStats::count(&stats.sockets_live);
        Self(stats)
    }
}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        self.0.sockets_live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Holds a relayed socket's two ends while [`pump`] relays between them, and `state` (its
/// `_alive` sender: shutdown waits for this socket) to the end.
async fn relay_between(
    state: AppState,
    forwarder: Arc<Forwarder>,
    client: WebSocket,
    owner: Box<OwnerSocket>,
) {
    let (mut client_tx, mut client_rx) = client.split();
    let (mut owner_tx, mut owner_rx) = owner.split();
    let ends = Ends {
        client_tx: &mut client_tx,
        client_rx: &mut client_rx,
        owner_tx: &mut owner_tx,
        owner_rx: &mut owner_rx,
    };
    pump(&forwarder.stats, state.shutdown.clone(), ends).await;
    drop(state);
}

/// The two sockets of a relay, each as its sink and stream (generic, so that [`pump`] can be
/// driven without sockets).
struct Ends<'a, CW, CR, OW, OR> {
    client_tx: &'a mut CW,
    client_rx: &'a mut CR,
    owner_tx: &'a mut OW,
    owner_rx: &'a mut OR,
}

/// Relays frames between the client and the owner until either ends or this node shuts down.
async fn pump<CW, CR, CE, OW, OR, OE>(
    stats: &ForwardStats,
    mut shutdown: watch::Receiver<bool>,
    ends: Ends<'_, CW, CR, OW, OR>,
) where
    CW: Sink<ws::Message> + Unpin,
    CR: Stream<Item = Result<ws::Message, CE>> + Unpin,
    CE: std::error::Error + 'static,
    OW: Sink<ts::Message> + Unpin,
    OR: Stream<Item = Result<ts::Message, OE>> + Unpin,
{
    let Ends {
        client_tx,
        client_rx,
        owner_tx,
        owner_rx,
    } = ends;
    let _live = Live::new(stats);
    let mut stopping = std::pin::pin!(shutdown.changed());
    // Owner's pings relayed since the client last sent anything. This node answers the
    // owner's pings itself (tungstenite always does), so the owner cannot see a client that
    // went silent: this node closes it as the owner would (`connection::beat`).
    let mut unanswered_pings = 0;
    loop {
        tokio::select! {
            _ = &mut stopping => {
                // As the engine's own sockets on shutdown: reconnect (elsewhere) and resume.
                connection::send_close(client_tx, Some(Close::GoingAway)).await;
                close_owner(owner_tx, owner_rx, Close::GoingAway).await;
                drain(client_rx).await;
                return;
            }
            message = client_rx.next() => match message {
                Some(Ok(message)) => {
                    unanswered_pings = 0;
                    let closing = matches!(message, ws::Message::Close(_));
                    let sent = tokio::time::timeout(WRITE_TIMEOUT, owner_tx.send(to_owner(message))).await;
                    if closing {
                        // The owner answers the close; this node's socket answers the client.
                        tokio::join!(drain(client_rx), drain(owner_rx));
                        return;
                    }
                    if !matches!(sent, Ok(Ok(()))) {
                        owner_lost(stats, client_tx, client_rx).await;
                        return;
                    }
                }
                Some(Err(e)) => {
                    // As the engine does: 1009 for a frame over the limit, else nothing (the
                    // socket is gone); either way the client has left.
                    let close = connection::close_after_read_error(&e);
                    connection::send_close(client_tx, close).await;
                    close_owner(owner_tx, owner_rx, close.unwrap_or(Close::GoingAway)).await;
                    return;
                }
                None => {
                    close_owner(owner_tx, owner_rx, Close::GoingAway).await;
                    return;
                }
            },
            message = owner_rx.next() => match message {
                Some(Ok(ts::Message::Ping(_))) if unanswered_pings >= MISSED_HEARTBEATS => {
                    connection::send_close(client_tx, Some(Close::Idle)).await;
                    close_owner(owner_tx, owner_rx, Close::Idle).await;
                    return;
                }
                Some(Ok(message)) => {
                    if let ts::Message::Ping(_) = message {
                        unanswered_pings += 1;
                    }
                    let closing = matches!(message, ts::Message::Close(_));
                    let Some(message) = to_client(message) else { continue };
                    let sent = tokio::time::timeout(WRITE_TIMEOUT, client_tx.send(message)).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        // The client cannot be written to: dropped, as the engine drops it.
                        close_owner(owner_tx, owner_rx, Close::GoingAway).await;
                        return;
                    }
                    if closing {
                        tokio::join!(drain(client_rx), drain(owner_rx));
                        return;
                    }
                }
                // Ended without a close frame: the owner died or the network between went.
                Some(Err(_)) | None => {
                    owner_lost(stats, client_tx, client_rx).await;
                    return;
                }
            },
        }
    }
}

/// The owner's socket is gone without a close: the client reconnects and resumes (4503).
async fn owner_lost<CW, CR, CE>(stats: &ForwardStats, client_tx: &mut CW, client_rx: &mut CR)
where
    CW: Sink<ws::Message> + Unpin,
    CR: Stream<Item = Result<ws::Message, CE>> + Unpin,
{
    ForwardStats::count(&stats.failures);
    tracing::info!("the socket to a workspace's node ended without a close: the client is told to resume");
    connection::send_close(client_tx, Some(Close::WorkspaceClosed)).await;
    drain(client_rx).await;
}

/// Closes the owner's socket with `close` and waits, briefly, for its answer.
async fn close_owner<OW, OR, OE>(owner_tx: &mut OW, owner_rx: &mut OR, close: Close)
where
    OW: Sink<ts::Message> + Unpin,
    OR: Stream<Item = Result<ts::Message, OE>> + Unpin,
{
    let frame = CloseFrame {
        code: CloseCode::from(close.code()),
        reason: Utf8Bytes::from_static(close.reason()),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, owner_tx.send(ts::Message::Close(Some(frame)))).await;
    drain(owner_rx).await;
}

/// Reads what a socket still sends until it ends (which also writes the answer to a close it
/// got), for [`CLOSE_LINGER`] at most.
async fn drain<M, E, R: Stream<Item = Result<M, E>> + Unpin>(socket: &mut R) {
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}

/// A client's message as sent on to the owner.
fn to_owner(message: ws::Message) -> ts::Message {
    match message {
        ws::Message::Text(text) => ts::Message::Text(utf8(Bytes::from(text))),
        ws::Message::Binary(data) => ts::Message::Binary(data),
        ws::Message::Ping(data) => ts::Message::Ping(data),
        ws::Message::Pong(data) => ts::Message::Pong(data),
        ws::Message::Close(frame) => ts::Message::Close(frame.map(|f| CloseFrame {
            code: CloseCode::from(f.code),
            reason: utf8(Bytes::from(f.reason)),
        })),
    }
}

/// An owner's message as sent on to the client; none for a raw frame (never read).
fn to_client(message: ts::Message) -> Option<ws::Message> {
    Some(match message {
        ts::Message::Text(text) => ws::Message::Text(client_utf8(Bytes::from(text))),
        ts::Message::Binary(data) => ws::Message::Binary(data),
        ts::Message::Ping(data) => ws::Message::Ping(data),
        ts::Message::Pong(data) => ws::Message::Pong(data),
        ts::Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: u16::from(f.code),
            reason: client_utf8(Bytes::from(f.reason)),
        })),
        ts::Message::Frame(_) => return None,
    })
}

/// Text already checked as UTF-8 by the socket that read it, in tungstenite's type.
fn utf8(bytes: Bytes) -> Utf8Bytes {
    Utf8Bytes::try_from(bytes).unwrap_or_default()
}

/// [`utf8`] in axum's type.
fn client_utf8(bytes: Bytes) -> ws::Utf8Bytes {
    ws::Utf8Bytes::try_from(bytes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tokio::sync::mpsc;

    use super::*;

    /// One end of a relay without a socket: what the test sends into it, and what the relay
    /// wrote to it.
    struct End<In, Out> {
        tx: mpsc::UnboundedSender<In>,
        written: Arc<Mutex<Vec<Out>>>,
    }

    type Incoming<M> = std::pin::Pin<Box<dyn Stream<Item = Result<M, std::io::Error>> + Send>>;
    type Written<M> = std::pin::Pin<Box<dyn Sink<M, Error = std::io::Error> + Send>>;

    fn end<In: Send + 'static, Out: Send + 'static>() -> (End<In, Out>, Written<Out>, Incoming<In>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let into = written.clone();
        let sink = futures_util::sink::unfold(into, |into, message: Out| async move {
            into.lock().push(message);
            Ok::<_, std::io::Error>(into)
        });
        let stream =
            futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (Ok(m), rx)) });
        (End { tx, written }, Box::pin(sink), Box::pin(stream))
    }

    /// Yields until `done`: the relay runs meanwhile (both are polled by one `join!`).
    async fn until(done: impl Fn() -> bool) {
        while !done() {
            tokio::task::yield_now().await;
        }
    }

    fn close_code(message: &ws::Message) -> Option<u16> {
        match message {
            ws::Message::Close(Some(frame)) => Some(frame.code),
            _ => None,
        }
    }

    fn owner_close_code(message: &ts::Message) -> Option<u16> {
        match message {
            ts::Message::Close(Some(frame)) => Some(u16::from(frame.code)),
            _ => None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn r17_a_client_silent_through_the_owners_heartbeats_is_closed_as_the_owner_would() {
        let stats = ForwardStats::default();
        let (_stop, shutdown) = watch::channel(false);
        let (client, mut client_tx, mut client_rx) = end::<ws::Message, ws::Message>();
        let (owner, mut owner_tx, mut owner_rx) = end::<ts::Message, ts::Message>();
        let ends = Ends {
            client_tx: &mut client_tx,
            client_rx: &mut client_rx,
            owner_tx: &mut owner_tx,
            owner_rx: &mut owner_rx,
        };
        let relay = pump(&stats, shutdown, ends);
        let ping = || ts::Message::Ping(Bytes::new());
        let pings_to_client = || {
            client
                .written
                .lock()
                .iter()
                .filter(|m| matches!(m, ws::Message::Ping(_)))
                .count()
        };
        let heartbeats = async {
            owner.tx.send(ping()).expect("the relay reads");
            until(|| pings_to_client() == 1).await;
            // The client answers that one: the count starts again.
            client
                .tx
                .send(ws::Message::Pong(Bytes::new()))
                .expect("the relay reads");
            until(|| {
                owner
                    .written
                    .lock()
                    .iter()
                    .any(|m| matches!(m, ts::Message::Pong(_)))
            })
            .await;
            // Then two pings unanswered, and the third beat.
            for relayed in [2, 3] {
                owner.tx.send(ping()).expect("the relay reads");
                until(|| pings_to_client() == relayed).await;
            }
            owner.tx.send(ping()).expect("the relay reads");
        };
        tokio::join!(relay, heartbeats);

        let written = client.written.lock();
        let pings = written
            .iter()
            .filter(|m| matches!(m, ws::Message::Ping(_)))
            .count();
        assert_eq!(pings, 3, "{written:?}");
        assert_eq!(written.last().and_then(close_code), Some(4002), "{written:?}");
        let to_owner = owner.written.lock();
        assert_eq!(
            to_owner.last().and_then(owner_close_code),
            Some(4002),
            "{to_owner:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn r29_an_owner_gone_without_a_close_tells_the_client_to_resume() {
        let stats = ForwardStats::default();
        let (_stop, shutdown) = watch::channel(false);
        let (client, mut client_tx, mut client_rx) = end::<ws::Message, ws::Message>();
        let (owner, mut owner_tx, mut owner_rx) = end::<ts::Message, ts::Message>();
        owner
            .tx
            .send(ts::Message::text("{\"type\":\"push\"}"))
            .expect("the relay reads");
        // The owner's socket ends: no close frame.
        drop(owner.tx);
        let ends = Ends {
            client_tx: &mut client_tx,
            client_rx: &mut client_rx,
            owner_tx: &mut owner_tx,
            owner_rx: &mut owner_rx,
        };

        pump(&stats, shutdown, ends).await;

        let written = client.written.lock();
        assert_eq!(written.first(), Some(&ws::Message::text("{\"type\":\"push\"}")));
        assert_eq!(written.last().and_then(close_code), Some(4503), "{written:?}");
        assert_eq!(written.len(), 2);
        assert_eq!(
            (stats.failures(), stats.sockets_opened(), stats.sockets_live()),
            (1, 1, 0)
        );
        drop(client.tx);
    }
}
