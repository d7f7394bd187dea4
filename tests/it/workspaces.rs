//! R27: workspaces. One engine serves many contact centres; until more than `default` can be
//! created, these prove the paths: the unprefixed ones of before serve `default`, its prefixed
//! ones (`/v1/w/default/…`) serve the very same engine, and a workspace not served here answers
//! `not_found`, over HTTP and on the sockets' handshakes alike.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{self, Message};

use super::support::{TestServer, WAIT};
use switchboard::clock::ManualClock;
use switchboard::core::{AgentProfile, Role};
use switchboard::engine::outbound::Outbound;
use switchboard::engine::{Engine, EngineConfig};
use switchboard::gateway::board_runtime;
use switchboard::gateway::serve_workspaces;
use switchboard::ids::WorkspaceId;
use switchboard::security::Security;
use switchboard::workspaces::{Background, Workspaces};

#[tokio::test]
async fn r27_unprefixed_paths_serve_the_default_workspace() {
    let server = TestServer::start().await;
    // The agent socket, the channel's ingress and the supervisor socket at `/v1/…`.
    let mut ana = server.agent("ana").connect().await;
    let customer = server.customer("whatsapp", "+4915100002701");
    let chat = ana.serves(&customer).await;
    let mut sam = server.supervisor("sam").connect().await;
    sam.subscribe_all().await;

    // What they did happened in the default workspace's engine: the one `serve_with` was given.
    let engine = &server.engine;
    assert_eq!(engine.fanout().connections(&"ana".into()), 1);
    assert_eq!(engine.supervision().connections(), 1);
    assert_eq!(
        engine.chat_state(&chat.clone().into()),
        Some(switchboard::core::ChatState::Active)
    );
    // The admin API at `/v1/admin/…` reads it too.
    let status = server.agent_status("ana").await;
    assert_eq!(
        (status["load"].as_u64(), status["connections"].as_u64()),
        (Some(1), Some(1))
    );
    server.check_invariants();
}

#[tokio::test]
async fn r27_the_prefixed_paths_of_default_serve_the_same_engine() {
    let server = TestServer::start().await;
    let ana = server.agent("ana");
    // One connection through each path: the same agent of the same engine.
    let mut prefixed = ana.in_workspace("default").connect().await;
    let mut plain = ana.connect().await;
    assert_eq!(prefixed.welcome()["agent"], plain.welcome()["agent"]);

    // The channel posts to the workspace's own ingress path.
    let customer = server
        .customer("whatsapp", "+4915100002702")
        .in_workspace("default");
    let chat = customer.says("Hello").await.chat_id();
    // Both connections get the one offer, with one sequence number: one agent's pushes (R17).
    let offered = prefixed.expect_push("chat_offered").await;
    let seen_too = plain.expect_push("chat_offered").await;
    assert_eq!(offered["chat"]["id"], chat);
    assert_eq!(
        (seen_too["chat"]["id"].clone(), seen_too.seq),
        (json!(chat), offered.seq)
    );
    prefixed.accept(&chat).await.expect_ok();
    plain.expect_push("chat_activated").await;

    // A supervisor through the prefixed path watches the same board.
    let mut sam = server.supervisor("sam").in_workspace("default").connect().await;
    let board = sam.subscribe_all().await;
    let ana_row = board["agents"]
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == "ana"))
        .unwrap_or_else(|| panic!("ana is not on the board: {board:#}"));
    assert_eq!(ana_row["load"], 1, "{board:#}");
    assert_eq!(server.engine.supervision().connections(), 1);

    // The admin API answers alike under both prefixes.
    let (status, listed) = server.get_raw("/v1/w/default/admin/agents").await;
    assert_eq!(status, StatusCode::OK, "{listed:#}");
    let (_, listed_plain) = server.get_raw("/v1/admin/agents").await;
    assert_eq!(listed, listed_plain);
    let ana_status = listed
        .as_array()
        .and_then(|agents| agents.iter().find(|a| a["id"] == "ana"))
        .unwrap_or_else(|| panic!("ana is not listed: {listed:#}"));
    assert_eq!(
        (ana_status["load"].as_u64(), ana_status["connections"].as_u64()),
        (Some(1), Some(2))
    );
    let (status, _) = server
        .put_raw("/v1/w/default/admin/agents/ana/limit", r#"{"limit": 5}"#)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(server.engine.seat(&"ana".into()).map(|s| s.2), Some(5));
    server.check_invariants();
}

/// The status and body of a WebSocket handshake the server refused.
async fn refused_handshake(url: &str) -> (StatusCode, Value) {
    let outcome = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap_or_else(|_| panic!("{url}: the handshake timed out"));
    match outcome {
        Ok(_) => panic!("{url}: the socket opened"),
        Err(tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (status, body)
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

#[tokio::test]
async fn r27_an_unknown_workspace_answers_not_found() {
    let server = TestServer::start().await;
    server.agent("ana");
    server.supervisor("sam");
    let not_found = |status: StatusCode, body: &Value, what: &str| {
        assert_eq!(status, StatusCode::NOT_FOUND, "{what}: {body:#}");
        assert_eq!(body["code"], "not_found", "{what}: {body:#}");
    };
    // The wire's error body, naming the workspace (and not, say, an unconnected platform).
    let unknown = |status: StatusCode, body: &Value, what: &str| {
        not_found(status, body, what);
        assert_eq!(body["message"], "no workspace `acme`", "{what}");
    };

    // HTTP: the admin API, a channel's ingress, a native webhook, the analytics.
    let (status, body) = server.get_raw("/v1/w/acme/admin/agents").await;
    unknown(status, &body, "admin");
    let (status, body) = server
        .post_raw(
            "/v1/w/acme/channels/whatsapp/messages",
            r#"{"from": "+4915100002703", "text": "Hello"}"#,
        )
        .await;
    unknown(status, &body, "ingress");
    let (status, body) = server.post_raw("/v1/w/acme/native/telegram", "{}").await;
    unknown(status, &body, "native webhook");
    let (status, body) = server.get_as("/v1/w/acme/analytics", "sam-token").await;
    unknown(status, &body, "analytics");
    // Even with a token that is valid in `default`: the sockets' handshakes.
    for socket in ["agent/ws?token=ana-token", "supervisor/ws?token=sam-token"] {
        let url = format!("ws://{}/v1/w/acme/{socket}", server.addr);
        let (status, body) = refused_handshake(&url).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{url}: {body:#}");
        // The client may not hand the body of a refused handshake over; when it does, it is
        // the same error body.
        if !body.is_null() {
            unknown(status, &body, &url);
        }
    }

    // An id that cannot be a workspace is not found either, and the answer says why.
    let (status, body) = server.get_raw("/v1/w/Acme/admin/agents").await;
    not_found(status, &body, "malformed id");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("is not a workspace id"), "{message}");

    // Nothing reached the default workspace.
    assert_eq!(server.engine.fanout().total_connections(), 0);
    let (status, queues) = server.get_raw("/v1/admin/queues").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        queues.as_array().is_some_and(|q| q
            .iter()
            .all(|q| q["waiting"].as_array().is_some_and(Vec::is_empty))),
        "{queues:#}"
    );
}

#[tokio::test]
async fn r27_an_unloaded_workspace_closes_its_sockets_with_4503_and_its_paths_answer_not_found() {
    let clock = ManualClock::new(TestServer::start_time());
    let (outbound, _sent) = Outbound::channel();
    let engine = Engine::new(EngineConfig::default(), Arc::new(clock), outbound);
    engine.upsert_agent(
        AgentProfile {
            id: "ana".into(),
            name: "Ana".into(),
            role: Role::Agent,
            limit: 2,
            queues: Vec::new(),
            skills: Default::default(),
            channel_limits: Default::default(),
        },
        Some("ana-token".into()),
    );
    let boards = board_runtime::start().expect("the board's runtime starts");
    let workspaces = Arc::new(Workspaces::single(
        engine,
        Background::board_only(boards.handle()),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_workspaces(
        listener,
        workspaces.clone(),
        boards.handle(),
        Security::default(),
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(2),
    ));

    let url = format!("ws://{addr}/v1/w/default/agent/ws?token=ana-token");
    let (mut ana, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("connecting in time")
        .expect("ana connects");
    let welcome = tokio::time::timeout(WAIT, ana.next())
        .await
        .expect("a welcome in time")
        .expect("a frame")
        .expect("a readable frame");
    assert!(
        welcome.to_text().is_ok_and(|t| t.contains("\"welcome\"")),
        "{welcome:?}"
    );

    // Unloading returns once the socket has left, so the close frame is on its way by then.
    tokio::time::timeout(WAIT, workspaces.unload(&WorkspaceId::default_workspace(), WAIT))
        .await
        .expect("unloading in time")
        .expect("the workspace unloads");
    let close = tokio::time::timeout(WAIT, async {
        while let Some(Ok(message)) = ana.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            }
        }
        None
    })
    .await
    .expect("the socket closes in time");
    assert_eq!(
        close,
        Some((
            4503,
            "workspace closed on this engine: reconnect and resume".to_owned()
        ))
    );

    // Its paths, prefixed or not, find no workspace now.
    let http = reqwest::Client::new();
    for path in ["/v1/admin/agents", "/v1/w/default/admin/agents"] {
        let response = http
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(body["code"], "not_found", "{path}: {body:#}");
    }

    let _ = stop.send(());
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the server stops in time")
        .expect("no panic")
        .expect("no I/O error");
    drop(boards);
}
