//! R28 over the wire: every node accepts every workspace's clients and relays them to the node
//! that serves the workspace. Two in-process nodes: A serves `acme`; B's directory says `acme`
//! is at A. Agents, channels and admins talk to B and get what A answers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::StreamExt;
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};
use tokio_tungstenite::tungstenite::Message;

use switchboard::cluster::{Directory, Location};
use switchboard::core::Role;
use switchboard::ids::WorkspaceId;
use switchboard::security::Security;

use super::support::{refusal, TestServer, WAIT};

/// The platform key of both nodes' configuration.
const PLATFORM_KEY: &str = "the-platform-key";

/// A directory told by the test where each workspace is; any other is served here.
struct Placed {
    node: String,
    places: Mutex<HashMap<String, Location>>,
}

impl Placed {
    fn new(node: &str) -> Arc<Self> {
        Arc::new(Self {
            node: node.to_owned(),
            places: Mutex::new(HashMap::new()),
        })
    }

    /// From now on, `ws` is at `location`.
    fn place(&self, ws: &str, location: Location) {
        self.places.lock().insert(ws.to_owned(), location);
    }
}

impl Directory for Placed {
    fn locate(&self, ws: &WorkspaceId) -> Location {
        self.places
            .lock()
            .get(ws.as_str())
            .cloned()
            .unwrap_or(Location::Here)
    }

    fn node(&self) -> &str {
        &self.node
    }
}

/// The base URL of a node, as a directory names it.
fn at(server: &TestServer) -> Location {
    Location::At(format!("http://{}", server.addr))
}

/// Both nodes' configuration: the platform key (for the admin API), static tokens.
fn security() -> Security {
    Security {
        platform_key: Some(PLATFORM_KEY.into()),
        ..Security::default()
    }
}

/// A serves `acme`; B serves only its own `default` and relays `acme` to A.
async fn two_nodes() -> (TestServer, TestServer) {
    let a = TestServer::start_node(security(), &["acme"], Placed::new("a")).await;
    let directory = Placed::new("b");
    directory.place("acme", at(&a));
    let b = TestServer::start_node(security(), &[], directory).await;
    (a, b)
}

/// `GET path` on `server` with `key` as the bearer: status, `Retry-After`, JSON body.
async fn get(server: &TestServer, path: &str, key: &str) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", server.addr))
        .bearer_auth(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

/// The close code and reason a socket opened at `url` ends with, reading past anything else.
async fn closed_with(url: &str) -> (u16, String) {
    let (mut socket, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("the upgrade is answered in time")
        .expect("the upgrade is accepted");
    let close = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("the socket is closed in time");
    close.expect("a close frame")
}

#[tokio::test]
async fn r28_an_agent_connected_to_another_node_works_as_if_connected_to_the_owner() {
    let (a, b) = two_nodes().await;
    let ana = a.agent_in("acme", "ana", Role::Agent);
    let mut direct = ana.connect().await;
    let mut relayed = ana.via(b.addr).connect().await;

    // The same hello as on the owner: the agent, its presence, the protocol, the channels.
    for field in ["protocol", "agent", "presence", "channels"] {
        assert_eq!(relayed.welcome()[field], direct.welcome()[field], "{field}");
    }
    // A chat offered, accepted, answered, closed and reopened through B, in A's engine.
    let customer = a.customer("whatsapp", "+4915100002801").in_workspace("acme");
    let chat = relayed.serves(&customer).await;
    relayed
        .send_message(&chat, "Hi, how can I help?")
        .await
        .expect_ok();
    relayed.closes(&chat).await;
    let reopened = relayed.reopen(&chat).await.expect_ok();
    assert_eq!(reopened["chat"]["state"], "reopened", "{reopened:#}");
    // Pushes reach the relayed socket as they reach the direct one: the same numbers.
    customer.says("Thanks!").await;
    relayed.expect_push("customer_message").await;
    direct.drain_pushes().await;
    relayed.drain_pushes().await;
    assert_eq!(relayed.last_seq(), direct.last_seq());
    // R17 through B: a resume replays from A's log.
    let resumed = relayed.resume(relayed.last_seq() - 2).await.expect_ok();
    assert_eq!(
        (&resumed["kind"], &resumed["replayed"]),
        (&Value::from("resumed"), &Value::from(2)),
        "{resumed:#}"
    );
    relayed.drain_pushes().await;

    let engine = a.engine_of("acme");
    assert_eq!(engine.agent(&"ana".into()).map(|p| p.id), Some("ana".into()));
    engine.check_invariants();
    // B's own workspace saw none of it.
    assert!(b.engine.agent(&"ana".into()).is_none());
    let stats = b.forwarded();
    assert_eq!((stats.sockets_opened(), stats.sockets_live()), (1, 1));
    assert_eq!(stats.failures(), 0);
}

#[tokio::test]
async fn r28_a_webhook_or_admin_call_at_another_node_reaches_the_owner() {
    let (a, b) = two_nodes().await;
    let mut ana = a.agent_in("acme", "ana", Role::Agent).connect().await;

    // A channel's webhook posted to B lands in A's engine: the agent on A is offered the chat.
    let receipt = b
        .customer("whatsapp", "+4915100002802")
        .in_workspace("acme")
        .says("Hello from B")
        .await;
    let offer = ana.expect_push("chat_offered").await;
    assert_eq!(offer["chat"]["id"], receipt.chat_id().as_str());

    // The admin API through B answers A's data, exactly as A does.
    let (status, _, agents) = get(&b, "/v1/w/acme/admin/agents", PLATFORM_KEY).await;
    assert_eq!(status, StatusCode::OK, "{agents:#}");
    assert!(
        agents
            .as_array()
            .is_some_and(|list| list.iter().any(|s| s["id"] == "ana")),
        "{agents:#}"
    );
    assert_eq!(get(&a, "/v1/w/acme/admin/agents", PLATFORM_KEY).await.2, agents);
    // Wrong credentials through B are refused exactly as on A: HTTP and WebSocket.
    let wrong_key = get(&b, "/v1/w/acme/admin/agents", "not-the-key").await;
    assert_eq!(wrong_key.0, StatusCode::UNAUTHORIZED, "{:#}", wrong_key.2);
    assert_eq!(wrong_key, get(&a, "/v1/w/acme/admin/agents", "not-the-key").await);
    let refused = refusal(&b, "/v1/w/acme/agent/ws", "not-a-token", None).await;
    assert_eq!(refused.as_ref().map(|r| r.0), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        refused,
        refusal(&a, "/v1/w/acme/agent/ws", "not-a-token", None).await
    );
    let foreign = refusal(
        &b,
        "/v1/w/acme/agent/ws",
        "ana-token",
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(
        foreign,
        refusal(
            &a,
            "/v1/w/acme/agent/ws",
            "ana-token",
            Some("https://evil.example")
        )
        .await
    );
    // B's own workspace and its pages are B's: nothing of those was relayed.
    assert_eq!(get(&b, "/v1/admin/agents", PLATFORM_KEY).await.0, StatusCode::OK);
    let stats = b.forwarded();
    assert_eq!(stats.requests(), 3);
    assert_eq!((stats.failures(), stats.unserved()), (0, 0));
}

#[tokio::test]
async fn r28_a_workspace_no_node_serves_answers_storage_unavailable_with_retry_after() {
    let directory = Placed::new("b");
    directory.place("acme", Location::Nowhere);
    let b = TestServer::start_node(security(), &[], directory).await;

    let (status, retry_after, body) = get(&b, "/v1/w/acme/admin/agents", PLATFORM_KEY).await;

    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["code"], "storage_unavailable", "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("moving to another node")),
        "{body:#}"
    );
    let (status, body) = refusal(&b, "/v1/w/acme/agent/ws", "ana-token", None)
        .await
        .expect("no socket is opened");
    assert_eq!(
        (status, &body["code"]),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            &Value::from("storage_unavailable")
        )
    );
    // The platform's operations on that workspace too; health is any node's.
    let (status, _, _) = get(&b, "/v1/platform/workspaces/acme", PLATFORM_KEY).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&b, "/healthz", PLATFORM_KEY).await.0, StatusCode::OK);
    assert_eq!(b.forwarded().unserved(), 3);
}

#[tokio::test]
async fn r28_a_relayed_request_is_not_relayed_again() {
    // For a moment each node thinks the other serves `acme`.
    let to_b = Placed::new("a");
    let a = TestServer::start_node(security(), &["acme"], to_b.clone()).await;
    let to_a = Placed::new("b");
    to_a.place("acme", at(&a));
    let b = TestServer::start_node(security(), &[], to_a).await;
    to_b.place("acme", at(&b));

    let (status, retry_after, body) = get(&b, "/v1/w/acme/admin/agents", PLATFORM_KEY).await;

    // B relayed it to A, which answered it as unserved instead of sending it back.
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:#}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["code"], "storage_unavailable");
    assert_eq!((b.forwarded().requests(), b.forwarded().unserved()), (1, 0));
    assert_eq!((a.forwarded().requests(), a.forwarded().unserved()), (0, 1));
    // A socket alike.
    let (status, _) = refusal(&b, "/v1/w/acme/agent/ws", "ana-token", None)
        .await
        .expect("no socket is opened");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.forwarded().sockets_opened() + b.forwarded().sockets_opened(), 0);
}

/// A TCP link in front of a node, which the test cuts at once as a node's death or a broken
/// network would: the relayed sockets end with no close frame.
struct Link {
    addr: SocketAddr,
    accepting: JoinHandle<()>,
    carried: Arc<Mutex<Vec<AbortHandle>>>,
}

impl Link {
    async fn to(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("its address");
        let carried = Arc::new(Mutex::new(Vec::new()));
        let tasks = carried.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().push(task.abort_handle());
            }
        });
        Self {
            addr,
            accepting,
            carried,
        }
    }

    /// Drops every connection it carries, and takes no more.
    fn cut(&self) {
        self.accepting.abort();
        for task in self.carried.lock().drain(..) {
            task.abort();
        }
    }
}

#[tokio::test]
async fn r28_a_socket_through_another_node_is_told_to_resume_when_the_owner_goes() {
    let a = TestServer::start_node(security(), &["acme"], Placed::new("a")).await;
    let link = Link::to(a.addr).await;
    let directory = Placed::new("b");
    directory.place("acme", Location::At(format!("http://{}", link.addr)));
    let b = TestServer::start_node(security(), &[], directory.clone()).await;
    let ana = a.agent_in("acme", "ana", Role::Agent);
    let mut relayed = ana.via(b.addr).connect().await;
    let customer = a.customer("whatsapp", "+4915100002803").in_workspace("acme");
    let chat = relayed.serves(&customer).await;
    let seen = relayed.last_seq();

    link.cut();

    // 4503: reconnect (to any node) and resume.
    let (code, reason) = relayed.expect_close().await;
    assert_eq!(code, 4503, "{reason}");
    assert_eq!(b.forwarded().failures(), 1);
    // The workspace is reachable again (here: A, directly); the agent comes back through B
    // within its grace period and gets what it missed.
    directory.place("acme", at(&a));
    customer.says("Are you there?").await;
    let mut back = ana.via(b.addr).connect().await;
    let resumed = back.resume(seen).await.expect_ok();
    assert_eq!(resumed["kind"], "resumed", "{resumed:#}");
    let missed = back.drain_pushes().await;
    assert!(
        missed
            .iter()
            .any(|p| p.kind() == "customer_message" && p["chat_id"] == chat.as_str()),
        "{missed:#?}"
    );
}

#[tokio::test]
async fn r28_an_owner_that_cannot_be_reached_sends_the_client_elsewhere() {
    // Nothing listens there once the listener is dropped.
    let gone = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let gone_addr = gone.local_addr().expect("its address");
    drop(gone);
    let directory = Placed::new("b");
    directory.place("acme", Location::At(format!("http://{gone_addr}")));
    let b = TestServer::start_node(security(), &[], directory).await;

    let (code, reason) = closed_with(&format!("ws://{}/v1/w/acme/agent/ws?token=ana-token", b.addr)).await;
    assert_eq!(code, 4503, "{reason}");
    let (status, retry_after, body) = get(&b, "/v1/w/acme/admin/agents", PLATFORM_KEY).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body:#}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["code"], "storage_unavailable");
    assert_eq!(b.forwarded().failures(), 2);
}

#[tokio::test]
async fn r28_the_owners_close_reaches_the_client_unchanged() {
    let (mut a, b) = two_nodes().await;
    let mut relayed = a.agent_in("acme", "ana", Role::Agent).via(b.addr).connect().await;

    // A shuts down: its sockets close with 1001, and so does the one relayed through B.
    let ((code, reason), ()) = tokio::join!(relayed.expect_close(), a.stop());

    assert_eq!((code, reason.as_str()), (1001, "engine shutting down"));
}

/// An owner that is not an engine, to see what the relay carries: it accepts the subprotocol
/// `switchboard.v1`, echoes text and binary frames, closes with 4321 when told `close-me`,
/// and reports the close each client sent it.
async fn echoing_owner() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<(u16, String)>) {
    use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};

    async fn echo(mut socket: WebSocket, closes: tokio::sync::mpsc::UnboundedSender<(u16, String)>) {
        while let Some(Ok(frame)) = socket.recv().await {
            let answer = match frame {
                Frame::Text(text) if text.as_str() == "close-me" => Frame::Close(Some(CloseFrame {
                    code: 4321,
                    reason: "told to".into(),
                })),
                Frame::Text(_) | Frame::Binary(_) => frame,
                Frame::Close(close) => {
                    let _ = closes.send(close.map_or((0, String::new()), |c| (c.code, c.reason.to_string())));
                    continue;
                }
                Frame::Ping(_) | Frame::Pong(_) => continue,
            };
            if socket.send(answer).await.is_err() {
                break;
            }
        }
    }

    let (closes, closed) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/v1/w/acme/agent/ws",
        axum::routing::get(move |upgrade: WebSocketUpgrade| {
            let closes = closes.clone();
            async move {
                upgrade
                    .protocols(["switchboard.v1"])
                    .on_upgrade(move |socket| echo(socket, closes))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, closed)
}

/// The next frame but pings and pongs, if it comes in time.
async fn next<S>(
    socket: &mut tokio_tungstenite::WebSocketStream<S>,
) -> Result<Option<Result<Message, tokio_tungstenite::tungstenite::Error>>, tokio::time::error::Elapsed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => return other,
            }
        }
    };
    tokio::time::timeout(WAIT, read).await
}

#[tokio::test]
async fn r28_a_relayed_socket_keeps_the_owners_subprotocol_its_frames_and_close_codes() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    let (owner, mut closes) = echoing_owner().await;
    let directory = Placed::new("b");
    directory.place("acme", Location::At(format!("http://{owner}")));
    let b = TestServer::start_node(security(), &[], directory).await;
    let connect = || async {
        let mut request = format!("ws://{}/v1/w/acme/agent/ws", b.addr)
            .into_client_request()
            .expect("a request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("other, switchboard.v1"),
        );
        tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("the upgrade is answered in time")
            .expect("the upgrade is accepted")
    };

    let (mut socket, response) = connect().await;
    // The subprotocol the owner chose, not one picked here.
    assert_eq!(
        response.headers().get("sec-websocket-protocol"),
        Some(&HeaderValue::from_static("switchboard.v1"))
    );
    socket.send(Message::text("hello")).await.expect("sent");
    let echoed = next(&mut socket).await.expect("in time");
    assert_eq!(echoed.map(|m| m.ok()), Some(Some(Message::text("hello"))));
    socket.send(Message::binary(vec![1u8, 2, 3])).await.expect("sent");
    let echoed = next(&mut socket).await.expect("in time");
    assert_eq!(
        echoed.map(|m| m.ok()),
        Some(Some(Message::binary(vec![1u8, 2, 3])))
    );
    // The owner's close, its code and reason as it sent them.
    socket.send(Message::text("close-me")).await.expect("sent");
    let closed = next(&mut socket).await.expect("in time");
    let Some(Ok(Message::Close(Some(frame)))) = closed else {
        panic!("not a close: {closed:?}")
    };
    assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4321, "told to"));
    // Its close was answered, with its own code, as RFC 6455 says.
    let answer = tokio::time::timeout(WAIT, closes.recv()).await.expect("in time");
    assert_eq!(answer, Some((4321, "told to".to_owned())));

    // The client's close reaches the owner alike.
    let (mut socket, _) = connect().await;
    let bye = CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    };
    socket.close(Some(bye)).await.expect("closed");
    let got = tokio::time::timeout(WAIT, closes.recv()).await.expect("in time");
    assert_eq!(got, Some((4000, "bye".to_owned())));
    assert_eq!(b.forwarded().sockets_opened(), 2);
}

#[tokio::test]
async fn r28_a_supervisor_connected_to_another_node_watches_the_owners_board() {
    let (a, b) = two_nodes().await;
    let mut sue = a.supervisor_in("acme", "sue").via(b.addr).connect().await;
    let board = sue.subscribe_all().await;
    assert_eq!(board["kind"], "board");

    // An agent comes online on the owner: the supervisor through B sees it.
    let _ana = a.agent_in("acme", "ana", Role::Agent).connect().await;

    sue.expect_event("agent_changed", |e| {
        e["agent"]["id"] == "ana" && e["agent"]["presence"] == "online"
    })
    .await;
    assert_eq!(b.forwarded().sockets_live(), 1);
}

#[tokio::test]
async fn r28_a_node_shutting_down_sends_its_relayed_sockets_elsewhere() {
    let (a, mut b) = two_nodes().await;
    let ana = a.agent_in("acme", "ana", Role::Agent);
    let mut relayed = ana.via(b.addr).connect().await;

    // B goes: its relayed sockets close as its own do (1001: reconnect and resume).
    let ((code, reason), ()) = tokio::join!(relayed.expect_close(), b.stop());

    assert_eq!((code, reason.as_str()), (1001, "engine shutting down"));
    // The owner let go of that socket too (B waited for its answer to the close).
    let engine = a.engine_of("acme");
    assert_eq!(engine.fanout().connections(&"ana".into()), 0);
}
