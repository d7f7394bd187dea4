//! R27: workspaces. One engine serves many contact centres; these prove the paths: the
//! unprefixed ones of before serve `default`, its prefixed ones (`/v1/w/default/…`) serve the
//! very same engine, and a workspace not served here cannot be told from one that is: at every
//! door that asks for credentials it answers as a served one answers wrong credentials.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::{self, Message};

use super::native::support as native;
use super::support::{next_request_number, refusal, TestServer, WAIT};
use switchboard::clock::ManualClock;
use switchboard::core::{AgentProfile, Channel, Role};
use switchboard::engine::outbound::Outbound;
use switchboard::engine::{Engine, EngineConfig};
use switchboard::gateway::board_runtime;
use switchboard::gateway::serve_workspaces;
use switchboard::ids::WorkspaceId;
use switchboard::security::{Security, Tokens};
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

const SECRET: &[u8] = b"a-test-secret-of-at-least-32-bytes!!";
/// `default`'s admin key: no other workspace's.
const ADMIN_KEY: &str = "the-admin-key";
/// Opens every workspace's admin API, and the platform API.
const PLATFORM_KEY: &str = "the-platform-key";
const INGRESS_KEY: &str = "the-ingress-key";
/// The secret the signed ingress channel ([`SIGNED`]) signs its bodies with.
const INGRESS_SECRET: &str = "the-webchat-webhook-secret";
const SIGNED: &str = "webchat";

/// Every credential locked: signed and static tokens, the admin and ingress keys, a signed
/// ingress channel, and every native platform.
fn locked() -> Security {
    let unused = "http://127.0.0.1:9";
    Security {
        tokens: Tokens::hs256(SECRET, 0),
        admin_key: Some(ADMIN_KEY.into()),
        platform_key: Some(PLATFORM_KEY.into()),
        ingress_key: Some(INGRESS_KEY.into()),
        webhook_secrets: [(Channel::Webchat, INGRESS_SECRET.to_owned())].into(),
        platforms: [
            (Channel::Whatsapp, native::whatsapp(unused)),
            (
                Channel::Telegram,
                native::platform(
                    unused,
                    &[
                        ("bot_token", native::BOT_TOKEN),
                        ("secret_token", native::TG_SECRET),
                    ],
                ),
            ),
            (
                Channel::Sms,
                native::platform(
                    unused,
                    &[
                        ("auth_token", native::TWILIO_TOKEN),
                        ("webhook_url", native::TWILIO_URL),
                    ],
                ),
            ),
            (
                Channel::Email,
                native::platform(unused, &[("token", native::MAIL_TOKEN)]),
            ),
        ]
        .into(),
        ..Security::default()
    }
}

/// The doors of a workspace that ask for credentials.
#[derive(Clone, Copy, Debug)]
enum Door {
    AgentSocket,
    SupervisorSocket,
    Analytics,
    Renewal,
    Admin,
    Ingress,
    SignedIngress,
    MetaHandshake,
    Meta,
    Telegram,
    Twilio,
    Email,
}

impl Door {
    const ALL: [Door; 12] = [
        Door::AgentSocket,
        Door::SupervisorSocket,
        Door::Analytics,
        Door::Renewal,
        Door::Admin,
        Door::Ingress,
        Door::SignedIngress,
        Door::MetaHandshake,
        Door::Meta,
        Door::Telegram,
        Door::Twilio,
        Door::Email,
    ];

    /// Whether it takes an agent's token (else a key or a platform's signature).
    fn takes_tokens(self) -> bool {
        matches!(
            self,
            Door::AgentSocket | Door::SupervisorSocket | Door::Analytics | Door::Renewal
        )
    }
}

/// Knocks on `door` of workspace `ws` with `credential` (a token, a key, or the secret a body
/// is signed with; none: nothing presented). Answers the status and the body as text (101 and
/// nothing for a socket that opened).
async fn knock(server: &TestServer, door: Door, ws: &str, credential: Option<&str>) -> (u16, String) {
    // Each call its own customer and message: a signed body is admitted once (no replays).
    let n = next_request_number();
    let api = format!("/v1/w/{ws}");
    let bearer = credential.map(|c| ("Authorization", format!("Bearer {c}")));
    let text = |(status, body): (StatusCode, Value)| (status.as_u16(), body.to_string());
    match door {
        Door::AgentSocket | Door::SupervisorSocket => {
            let socket = if matches!(door, Door::AgentSocket) {
                "agent"
            } else {
                "supervisor"
            };
            let path = format!("{api}/{socket}/ws");
            match refusal(server, &path, credential.unwrap_or_default(), None).await {
                Some(refused) => text(refused),
                None => (101, String::new()),
            }
        }
        Door::Analytics => text(match credential {
            Some(token) => server.get_as(&format!("{api}/analytics"), token).await,
            None => server.get_raw(&format!("{api}/analytics")).await,
        }),
        Door::Renewal => native::post(server, &format!("{api}/token"), &Vec::from_iter(bearer), "")
            .await
            .into_numbered(),
        Door::Admin => text(match credential {
            Some(key) => server.get_as(&format!("{api}/admin/agents"), key).await,
            None => server.get_raw(&format!("{api}/admin/agents")).await,
        }),
        Door::Ingress => {
            let body = json!({ "from": format!("+49151000{n:05}"), "text": "Hello" }).to_string();
            let headers: Vec<(&str, &str)> = bearer.iter().map(|(k, v)| (*k, v.as_str())).collect();
            text(
                server
                    .post_raw_with(&format!("{api}/channels/whatsapp/messages"), &headers, &body)
                    .await,
            )
        }
        Door::SignedIngress => {
            let body = json!({
                "from": format!("visitor-{n}"),
                "text": "Hello",
                "sent_at": server.now().to_rfc3339(),
            })
            .to_string();
            let signature = credential.map(|secret| native::meta_signature(body.as_bytes(), secret));
            let headers: Vec<(&str, &str)> = signature
                .iter()
                .map(|s| ("X-Hub-Signature-256", s.as_str()))
                .collect();
            text(
                server
                    .post_raw_with(&format!("{api}/channels/{SIGNED}/messages"), &headers, &body)
                    .await,
            )
        }
        Door::MetaHandshake => {
            let token = credential
                .map(|t| format!("&hub.verify_token={t}"))
                .unwrap_or_default();
            let path = format!("{api}/native/meta?hub.mode=subscribe&hub.challenge=1158201444{token}");
            text(server.get_raw(&path).await)
        }
        Door::Meta => {
            let body = native::fixture("meta/fixtures/whatsapp_text.json");
            let headers: Vec<(&str, String)> = credential
                .map(|secret| {
                    (
                        "X-Hub-Signature-256",
                        native::meta_signature(body.as_bytes(), secret),
                    )
                })
                .into_iter()
                .collect();
            native::post(server, &format!("{api}/native/meta"), &headers, body)
                .await
                .into_numbered()
        }
        Door::Telegram => {
            let headers: Vec<(&str, String)> = credential
                .map(|secret| ("X-Telegram-Bot-Api-Secret-Token", secret.to_owned()))
                .into_iter()
                .collect();
            let update = native::fixture("telegram/fixtures/text.json");
            native::post(server, &format!("{api}/native/telegram"), &headers, update)
                .await
                .into_numbered()
        }
        Door::Twilio => {
            let form: Vec<(String, String)> = [
                ("MessageSid", format!("SM{n:032}")),
                ("AccountSid", "AC0123456789abcdef0123456789abcdef".to_owned()),
                ("From", "+14155550199".to_owned()),
                ("To", "+14155550100".to_owned()),
                ("Body", "Hello".to_owned()),
                ("NumMedia", "0".to_owned()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form.iter())
                .finish();
            let mut headers = vec![("Content-Type", "application/x-www-form-urlencoded".to_owned())];
            if let Some(token) = credential {
                headers.push((
                    "X-Twilio-Signature",
                    native::twilio_signature(native::TWILIO_URL, &form, token),
                ));
            }
            native::post(server, &format!("{api}/native/twilio"), &headers, body)
                .await
                .into_numbered()
        }
        Door::Email => {
            let raw = native::fixture("email/fixtures/r23_plain.eml");
            native::post(
                server,
                &format!("{api}/native/email"),
                &Vec::from_iter(bearer),
                raw,
            )
            .await
            .into_numbered()
        }
    }
}

/// A status and text body as [`knock`] answers them.
trait Numbered {
    fn into_numbered(self) -> (u16, String);
}

impl Numbered for (StatusCode, String) {
    fn into_numbered(self) -> (u16, String) {
        (self.0.as_u16(), self.1)
    }
}

/// The right credential of `door` in a workspace of `ws` (a signed token names `agent`).
fn right(server: &TestServer, door: Door, ws: &str, agent: &str) -> String {
    match door {
        _ if door.takes_tokens() => token(server, ws, agent),
        Door::Admin => PLATFORM_KEY.into(),
        Door::Ingress => INGRESS_KEY.into(),
        Door::SignedIngress => INGRESS_SECRET.into(),
        Door::MetaHandshake => native::VERIFY_TOKEN.into(),
        Door::Meta => native::APP_SECRET.into(),
        Door::Telegram => native::TG_SECRET.into(),
        Door::Twilio => native::TWILIO_TOKEN.into(),
        _ => native::MAIL_TOKEN.into(),
    }
}

/// A signed supervisor's token of `agent` for workspace `ws`.
fn token(server: &TestServer, ws: &str, agent: &str) -> String {
    let ws = WorkspaceId::parse(ws).unwrap_or_else(|e| panic!("{e}"));
    Tokens::hs256(SECRET, 0)
        .mint(
            &ws,
            agent,
            Role::Supervisor,
            server.now(),
            chrono::Duration::minutes(10),
        )
        .expect("HS256 mints")
}

#[tokio::test]
async fn r27_an_unknown_and_a_foreign_workspace_answer_alike() {
    // default and acme are served; globex is not. sam supervises in default only, sue in acme.
    let server = TestServer::start_workspaces(locked(), &["acme"]).await;
    server.supervisor("sam");
    server.agent_in("acme", "sue", Role::Supervisor);

    for door in Door::ALL {
        // The credentials used below open acme's door: the refusals are not for want of them.
        let opened = knock(&server, door, "acme", Some(&right(&server, door, "acme", "sue"))).await;
        assert!(
            matches!(opened.0, 101 | 200..=299),
            "{door:?}: acme's own credential is refused: {opened:?}"
        );
        // Pairs of (what acme is knocked with, what globex is knocked with): the answers must
        // be the same, and a refusal.
        let pairs: Vec<(Option<String>, Option<String>)> = if door.takes_tokens() {
            vec![
                // A token of that very workspace, naming an agent it does not have.
                (
                    Some(token(&server, "acme", "sam")),
                    Some(token(&server, "globex", "sam")),
                ),
                // A token of another workspace (default's sam).
                (
                    Some(token(&server, "default", "sam")),
                    Some(token(&server, "default", "sam")),
                ),
                // A static token: unknown in acme; sam's of default at globex.
                (Some("no-such-token".into()), Some("sam-token".into())),
                (None, None),
            ]
        } else if matches!(door, Door::Admin) {
            vec![
                // default's admin key opens neither, and is refused alike.
                (Some(ADMIN_KEY.into()), Some(ADMIN_KEY.into())),
                (Some("a-wrong-key".into()), Some(ADMIN_KEY.into())),
                (Some("a-wrong-key".into()), Some("a-wrong-key".into())),
                (None, None),
            ]
        } else {
            vec![
                // The right key at globex answers as a wrong one at acme.
                (
                    Some("a-wrong-key".into()),
                    Some(right(&server, door, "globex", "sam")),
                ),
                (Some("a-wrong-key".into()), Some("a-wrong-key".into())),
                (None, None),
            ]
        };
        for (at_acme, at_globex) in pairs {
            let foreign = knock(&server, door, "acme", at_acme.as_deref()).await;
            let unknown = knock(&server, door, "globex", at_globex.as_deref()).await;
            assert!(
                (400..500).contains(&foreign.0),
                "{door:?} with {at_acme:?}: {foreign:?}"
            );
            assert_eq!(
                unknown, foreign,
                "{door:?}: globex with {at_globex:?}, acme with {at_acme:?}"
            );
        }
    }

    // The platform key's holder may list the workspaces anyway: to it, globex is not found.
    let (status, body) = server.get_as("/v1/w/globex/admin/agents", PLATFORM_KEY).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{body:#}"
    );

    // An id that cannot be a workspace's says nothing of any workspace: not found, and why.
    let (status, body) = server.get_as("/v1/w/Acme/admin/agents", PLATFORM_KEY).await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found")),
        "{body:#}"
    );
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("is not a workspace id"), "{message}");

    // Nothing reached default, whose credentials were tried everywhere.
    assert_eq!(server.engine.fanout().total_connections(), 0);
    let (status, queues) = server.get_as("/v1/admin/queues", ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        queues.as_array().is_some_and(|q| q
            .iter()
            .all(|q| q["waiting"].as_array().is_some_and(Vec::is_empty))),
        "{queues:#}"
    );
}

#[tokio::test]
async fn r27_an_unloaded_workspace_closes_its_sockets_with_4503_and_lets_no_one_in() {
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

    // Its paths, prefixed or not, let no one in now: the admin API, open to everyone without
    // keys (development), finds no workspace; its socket refuses ana's token.
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
    let refused = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("refused in time");
    assert!(
        matches!(&refused, Err(tungstenite::Error::Http(r)) if r.status() == 401),
        "{refused:?}"
    );

    let _ = stop.send(());
    tokio::time::timeout(WAIT, server)
        .await
        .expect("the server stops in time")
        .expect("no panic")
        .expect("no I/O error");
    drop(boards);
}
