//! The outbox against a faulty platform (R24): the engine's webhook connector posts to a fake
//! platform on 127.0.0.1 that times out, is down, or refuses every attempt. Every message
//! arrives afterwards, each chat's in order, or ends `failed`, visibly, for its agent to retry.
//!
//! The platform's answers to 500 and 429 with `Retry-After` are covered through WhatsApp in
//! `native.rs`; these go through the generic webhook. Backoffs are kept by the engine's clock
//! (or their length on the wall, whichever ends first), so a minute-long outage is crossed by
//! moving the manual clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::clock::{Clock, ManualClock, Timestamp};
use switchboard::engine::outbound::connector::Connector;
use switchboard::engine::outbound::Retry;
use switchboard::engine::EngineConfig;
use switchboard::security::Security;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::support::{AgentClient, Pushed, TestServer, WAIT};

/// The wall clock: the outbox waits out its backoffs and timeouts in real time (the manual
/// clock only dates them), so gaps between attempts are measured on the wall.
#[allow(clippy::disallowed_methods)]
fn wall() -> Instant {
    Instant::now()
}

fn retry(attempts: u32) -> Retry {
    Retry {
        attempts,
        first_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(50),
    }
}

async fn server(url: String, attempt_timeout: StdDuration, retry: Retry) -> TestServer {
    let connector = Connector::webhook_with_timeout(url, attempt_timeout);
    TestServer::start_sending(EngineConfig::default(), Security::default(), connector, retry).await
}

/// What the fake platform does with one request.
#[derive(Clone, Copy, Debug)]
enum Behaviour {
    /// Answers with this status.
    Answer(u16),
    /// Takes the request and never answers.
    Hang,
}

/// One POST the platform got.
#[derive(Debug)]
struct Seen {
    at: Instant,
    /// The engine's clock when it came, for a platform that is down by that clock.
    clock_at: Option<Timestamp>,
    /// What the platform answered (a hanging answer counts as 0).
    answered: u16,
    key: String,
    body: Value,
}

impl Seen {
    fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }

    fn chat(&self) -> &str {
        self.body["chat_id"].as_str().unwrap_or_default()
    }
}

#[derive(Clone)]
struct FakeState {
    seen: mpsc::UnboundedSender<Seen>,
    /// What to do first, in order; then `otherwise`.
    script: Arc<Mutex<VecDeque<Behaviour>>>,
    otherwise: Behaviour,
    /// Down (503) while this clock reads before this time, whatever the script says.
    down_until: Option<(ManualClock, Timestamp)>,
}

/// A webhook on 127.0.0.1 that records every POST and behaves as scripted.
struct FakeWebhook {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
    /// When it started listening (for one that starts late).
    up: Arc<Mutex<Option<Instant>>>,
}

impl FakeWebhook {
    async fn start(script: Vec<Behaviour>, otherwise: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve(listener, script, otherwise)
    }

    /// A platform that is down (connections refused) for `down` from now, then answers 200:
    /// its port is reserved and let go again, and bound once more after `down`.
    async fn down_for(down: StdDuration) -> Self {
        let reserved = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = reserved.local_addr().expect("addr");
        drop(reserved);
        let (tx, seen) = mpsc::unbounded_channel();
        let state = FakeState {
            seen: tx,
            script: Arc::default(),
            otherwise: Behaviour::Answer(200),
            down_until: None,
        };
        let up = Arc::new(Mutex::new(None));
        let came_up = up.clone();
        tokio::spawn(async move {
            // The outage the fake simulates: nothing listens on its port meanwhile.
            tokio::time::sleep(down).await;
            let listener = TcpListener::bind(addr).await.expect("bind the same port again");
            *came_up.lock() = Some(wall());
            let app = axum::Router::new().fallback(answer).with_state(state);
            axum::serve(listener, app).await
        });
        Self { addr, seen, up }
    }

    /// A platform on `listener` that answers 503 while `clock` reads before `up_at`, then 200.
    fn down_until(listener: TcpListener, clock: ManualClock, up_at: Timestamp) -> Self {
        Self::serve_with(listener, Vec::new(), Behaviour::Answer(200), Some((clock, up_at)))
    }

    fn serve(listener: TcpListener, script: Vec<Behaviour>, otherwise: Behaviour) -> Self {
        Self::serve_with(listener, script, otherwise, None)
    }

    fn serve_with(
        listener: TcpListener,
        script: Vec<Behaviour>,
        otherwise: Behaviour,
        down_until: Option<(ManualClock, Timestamp)>,
    ) -> Self {
        let (tx, seen) = mpsc::unbounded_channel();
        let state = FakeState {
            seen: tx,
            script: Arc::new(Mutex::new(script.into())),
            otherwise,
            down_until,
        };
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(answer).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            seen,
            up: Arc::new(Mutex::new(Some(wall()))),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/outbound", self.addr)
    }

    /// The next POST it got, waiting for it (at most `within`).
    async fn next_within(&mut self, within: StdDuration) -> Seen {
        timeout(within, self.seen.recv())
            .await
            .expect("the platform gets a request in time")
            .expect("the fake runs")
    }

    async fn next(&mut self) -> Seen {
        self.next_within(WAIT).await
    }
}

async fn answer(State(state): State<FakeState>, headers: HeaderMap, body: Bytes) -> Response {
    let scripted = state.script.lock().pop_front().unwrap_or(state.otherwise);
    let clock_at = state.down_until.as_ref().map(|(clock, _)| clock.now());
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let behaviour = match (&state.down_until, clock_at) {
        (Some((_, up_at)), Some(now)) if now < *up_at => Behaviour::Answer(503),
        _ => scripted,
    };
    let _ = state.seen.send(Seen {
        at: wall(),
        clock_at,
        answered: match behaviour {
            Behaviour::Answer(status) => status,
            Behaviour::Hang => 0,
        },
        key: key.clone(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    match behaviour {
        // Taken: the platform's id of the message, which its statuses will name.
        Behaviour::Answer(200) => axum::Json(json!({ "id": provider_id(&key) })).into_response(),
        Behaviour::Answer(status) => {
            let status = AxumStatus::from_u16(status).expect("a status");
            (status, axum::Json(json!({ "error": "scripted" }))).into_response()
        }
        Behaviour::Hang => std::future::pending().await,
    }
}

/// The three texts of `chat` that [`three_each`] sends.
fn texts(chat: &str) -> Vec<String> {
    (1..=3).map(|n| format!("{chat} #{n}")).collect()
}

/// `agent` sends three messages in each of `chats`, taking turns between the chats.
async fn three_each(agent: &mut AgentClient, chats: [&str; 2]) {
    for n in 0..3 {
        for chat in chats {
            agent.send_message(chat, &texts(chat)[n]).await.expect_ok();
        }
    }
}

/// Panics unless the platform took each of [`three_each`]'s messages once, each chat's in order.
fn each_once_in_order(arrived: &[Seen], chats: [&str; 2]) {
    for chat in chats {
        let got: Vec<&str> = arrived
            .iter()
            .filter(|s| s.chat() == chat)
            .map(Seen::text)
            .collect();
        assert_eq!(got, texts(chat), "chat {chat}: each once, in order");
    }
}

/// The id the fake platform gives the message it took under `key`.
fn provider_id(key: &str) -> String {
    format!("fp-{key}")
}

/// The `message_status` pushes until one says `status`; that one.
async fn status_until(agent: &mut AgentClient, status: &str) -> Pushed {
    for _ in 0..20 {
        let pushed = agent.expect_push("message_status").await;
        if pushed["delivery"]["status"] == status {
            return pushed;
        }
    }
    panic!("no message_status `{status}` among twenty pushes");
}

async fn history(agent: &mut AgentClient, chat: &str) -> Vec<Value> {
    let result = agent.get_chat(chat).await.expect_ok();
    result["messages"].as_array().cloned().expect("messages")
}

#[tokio::test]
async fn r24_a_platform_that_never_answers_is_retried_after_the_timeout_and_gets_the_message() {
    let attempt_timeout = StdDuration::from_millis(300);
    let mut platform = FakeWebhook::start(vec![Behaviour::Hang], Behaviour::Answer(200)).await;
    let server = server(platform.url(), attempt_timeout, retry(5)).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("webchat", "visitor-1")).await;

    ana.send_message(&chat, "still there?").await.expect_ok();

    let first = platform.next().await;
    let second = platform.next().await;
    assert_eq!(first.text(), "still there?");
    assert_eq!(second.text(), "still there?");
    assert_eq!(second.key, first.key, "one idempotency key on every attempt");
    assert!(!first.key.is_empty());
    let waited = second.at - first.at;
    // The platform stamps an attempt once it has read it, late by however long a loaded
    // machine took to schedule it (the first can be stamped later after its send than the
    // second: 292 ms was seen for a 300 ms timeout). A retry that did not wait for the timeout
    // would come after the backoff alone (10 ms here), far below this bound.
    let stamp_skew = StdDuration::from_millis(100);
    assert!(
        waited + stamp_skew >= attempt_timeout,
        "the second attempt came {waited:?} after the first, before the {attempt_timeout:?} timeout"
    );
    let sent = status_until(&mut ana, "sent").await;
    assert_eq!(sent["chat_id"], chat.as_str());
    let seq = sent["seq"].as_u64().expect("seq") as usize;
    assert_eq!(history(&mut ana, &chat).await[seq]["delivery"]["status"], "sent");
    // Nothing else went: the message was taken once.
    ana.expect_no_push("message_status").await;
    assert!(platform.seen.try_recv().is_err(), "a third attempt");
}

#[tokio::test]
async fn r24_messages_of_two_chats_sent_while_the_platform_is_down_all_arrive_after_in_order() {
    let down = StdDuration::from_millis(600);
    let mut platform = FakeWebhook::down_for(down).await;
    // Enough attempts to outlast the outage with the 50 ms backoff ceiling.
    let server = server(platform.url(), StdDuration::from_secs(5), retry(100)).await;
    let mut ana = server.agent("ana").connect().await;
    let chat_a = ana.serves(&server.customer("webchat", "visitor-a")).await;
    let chat_b = ana.serves(&server.customer("sms", "+4915100000077")).await;

    three_each(&mut ana, [&chat_a, &chat_b]).await;
    let all_acknowledged = wall();

    let mut arrived: Vec<Seen> = Vec::new();
    while arrived.len() < 6 {
        // The outage, then the messages one after another.
        arrived.push(platform.next_within(down + WAIT).await);
    }
    let up = platform.up.lock().expect("the platform came up");
    assert!(
        all_acknowledged < up,
        "the messages were all acknowledged while the platform was down"
    );
    each_once_in_order(&arrived, [&chat_a, &chat_b]);
    let mut keys: Vec<&str> = arrived.iter().map(|s| s.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 6, "six messages, six keys");
    for _ in 0..6 {
        status_until(&mut ana, "sent").await;
    }
    for chat in [&chat_a, &chat_b] {
        let messages = history(&mut ana, chat).await;
        let agents: Vec<&Value> = messages.iter().filter(|m| m["author"]["by"] == "agent").collect();
        assert_eq!(agents.len(), 3);
        for m in agents {
            assert_eq!(m["delivery"]["status"], "sent", "{m}");
        }
    }
    ana.expect_no_push("message_status").await;
    assert!(platform.seen.try_recv().is_err(), "a message went twice");
}

#[tokio::test]
async fn r24_a_message_whose_attempts_run_out_fails_visibly_and_its_retry_is_delivered() {
    let attempts = 3;
    // Three 500s, then the platform works again.
    let mut platform = FakeWebhook::start(vec![Behaviour::Answer(500); 3], Behaviour::Answer(200)).await;
    let server = server(platform.url(), StdDuration::from_secs(5), retry(attempts)).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("webchat", "visitor-9")).await;

    ana.send_message(&chat, "your order shipped").await.expect_ok();

    let mut keys = Vec::new();
    for _ in 0..attempts {
        let seen = platform.next().await;
        assert_eq!(seen.text(), "your order shipped");
        keys.push(seen.key);
    }
    keys.dedup();
    assert_eq!(keys.len(), 1, "one key on every attempt");
    let failed = status_until(&mut ana, "failed").await;
    let reason = failed["delivery"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(reason, "gave up after 3 attempts: webhook answered 500");
    assert_eq!(failed["chat_id"], chat.as_str());
    let seq = failed["seq"].as_u64().expect("seq");
    let shown = &history(&mut ana, &chat).await[seq as usize];
    assert_eq!(shown["delivery"]["status"], "failed");
    assert_eq!(shown["delivery"]["reason"], reason.as_str());
    // Given up: no fourth attempt on its own.
    ana.expect_no_push("message_status").await;
    assert!(platform.seen.try_recv().is_err(), "a fourth attempt");

    ana.request(json!({ "type": "retry_message", "chat_id": chat, "seq": seq }))
        .await
        .expect_ok();
    let again = platform.next().await;
    assert_eq!(again.text(), "your order shipped");
    let sent = status_until(&mut ana, "sent").await;
    assert_eq!(sent["seq"].as_u64(), Some(seq));
    assert_eq!(
        history(&mut ana, &chat).await[seq as usize]["delivery"]["status"],
        "sent"
    );
}

#[tokio::test]
async fn r24_a_platform_down_for_a_minute_by_the_engines_clock_gets_every_message_after_in_order() {
    // Backoffs run on the engine's clock: this minute-long outage is crossed by moving it.
    let retry = Retry {
        attempts: 100,
        first_backoff: StdDuration::from_secs(1),
        max_backoff: StdDuration::from_secs(15),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/outbound", listener.local_addr().expect("addr"));
    let server = server(url, StdDuration::from_secs(5), retry).await;
    let start = server.now();
    let up_at = start + Duration::minutes(1);
    let mut platform = FakeWebhook::down_until(listener, server.clock.clone(), up_at);
    let mut ana = server.agent("ana").connect().await;
    let chat_a = ana.serves(&server.customer("webchat", "visitor-m1")).await;
    let chat_b = ana.serves(&server.customer("sms", "+4915100000078")).await;
    three_each(&mut ana, [&chat_a, &chat_b]).await;

    // The minute goes by in steps of five seconds; each step, what the platform got meanwhile.
    let mut refused: Vec<Seen> = Vec::new();
    let mut arrived: Vec<Seen> = Vec::new();
    while arrived.len() < 6 {
        assert!(
            server.now() < up_at + Duration::minutes(2),
            "not all delivered two minutes after the platform came back: {arrived:?}"
        );
        while let Ok(Some(seen)) = timeout(StdDuration::from_millis(200), platform.seen.recv()).await {
            match seen.answered {
                200 => arrived.push(seen),
                _ => refused.push(seen),
            }
        }
        server.advance(Duration::seconds(5));
    }

    assert!(
        refused.iter().all(|s| s.clock_at < Some(up_at)),
        "only the outage refused"
    );
    assert!(
        refused
            .iter()
            .any(|s| s.clock_at >= Some(start + Duration::seconds(40))),
        "attempts went on through the minute: {:?}",
        refused.iter().map(|s| s.clock_at).collect::<Vec<_>>()
    );
    for seen in &arrived {
        assert!(
            seen.clock_at >= Some(up_at),
            "delivered only once the platform was up"
        );
        // Every attempt of a message carried the same key as the one that got through.
        for attempt in refused.iter().filter(|r| r.text() == seen.text()) {
            assert_eq!(
                attempt.key,
                seen.key,
                "one key on every attempt of {}",
                seen.text()
            );
        }
    }
    each_once_in_order(&arrived, [&chat_a, &chat_b]);
    for _ in 0..6 {
        status_until(&mut ana, "sent").await;
    }
    assert!(platform.seen.try_recv().is_err(), "a message went twice");
}

#[tokio::test]
async fn r25_an_adapters_statuses_posted_to_the_generic_ingress_reach_the_owner_and_the_history() {
    let mut platform = FakeWebhook::start(Vec::new(), Behaviour::Answer(200)).await;
    let server = server(platform.url(), StdDuration::from_secs(5), retry(3)).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("webchat", "visitor-s1")).await;
    ana.send_message(&chat, "your parcel left the depot")
        .await
        .expect_ok();
    let id = provider_id(&platform.next().await.key);
    let sent = status_until(&mut ana, "sent").await;
    let seq = sent["seq"].as_u64().expect("seq") as usize;
    let report = |status: &str| json!({ "provider_id": id, "status": status }).to_string();

    for status in ["delivered", "read"] {
        let (code, _) = server
            .post_raw("/v1/channels/webchat/statuses", &report(status))
            .await;
        assert_eq!(code, StatusCode::NO_CONTENT, "{status}");
        let pushed = status_until(&mut ana, status).await;
        assert_eq!(pushed["chat_id"], chat.as_str());
        assert_eq!(pushed["seq"].as_u64(), Some(seq as u64));
        assert_eq!(history(&mut ana, &chat).await[seq]["delivery"]["status"], status);
    }

    // A late `sent` does not move a read message back, and an id nobody sent is ignored.
    let (code, _) = server
        .post_raw("/v1/channels/webchat/statuses", &report("sent"))
        .await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let unknown = json!({ "provider_id": "fp-nobody", "status": "delivered" }).to_string();
    let (code, _) = server.post_raw("/v1/channels/webchat/statuses", &unknown).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    ana.expect_no_push("message_status").await;
    assert_eq!(history(&mut ana, &chat).await[seq]["delivery"]["status"], "read");

    // Bad reports are refused, naming what was wrong, and change nothing.
    for (body, names) in [
        (json!({ "provider_id": id, "status": "lost" }).to_string(), "lost"),
        (
            json!({ "provider_id": " ", "status": "read" }).to_string(),
            "provider_id",
        ),
        (
            json!({ "provider_id": id, "status": "read", "seen": true }).to_string(),
            "seen",
        ),
    ] {
        let (code, error) = server.post_raw("/v1/channels/webchat/statuses", &body).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert!(error.to_string().contains(names), "{body}: {error}");
    }
    let (code, _) = server
        .post_raw("/v1/channels/carrier-pigeon/statuses", &report("read"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    ana.expect_no_push("message_status").await;
}

#[tokio::test]
async fn r25_a_status_that_comes_before_the_platforms_answer_is_kept_for_its_message() {
    // A platform whose status webhook wins the race with its own answer: it reports the message
    // delivered, and only then answers the send with the message's id.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/outbound", listener.local_addr().expect("addr"));
    let server = server(url, StdDuration::from_secs(5), retry(3)).await;
    let statuses = format!("http://{}/v1/channels/webchat/statuses", server.addr);
    let (reported, mut early) = mpsc::unbounded_channel();
    let platform = axum::Router::new().fallback(move |headers: HeaderMap| {
        let (statuses, reported) = (statuses.clone(), reported.clone());
        async move {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let id = provider_id(key);
            let answered = reqwest::Client::new()
                .post(&statuses)
                .json(&json!({ "provider_id": id, "status": "delivered" }))
                .send()
                .await
                .map(|r| r.status());
            let _ = reported.send(answered.ok());
            axum::Json(json!({ "id": id }))
        }
    });
    tokio::spawn(async move { axum::serve(listener, platform).await });
    let mut ana = server.agent("ana").connect().await;
    let chat = ana.serves(&server.customer("webchat", "visitor-s2")).await;

    ana.send_message(&chat, "your parcel is at the door")
        .await
        .expect_ok();

    let answered = timeout(WAIT, early.recv())
        .await
        .expect("the platform reported in time");
    assert_eq!(answered.flatten(), Some(StatusCode::NO_CONTENT));
    let delivered = status_until(&mut ana, "delivered").await;
    assert_eq!(delivered["chat_id"], chat.as_str());
    let seq = delivered["seq"].as_u64().expect("seq") as usize;
    assert_eq!(
        history(&mut ana, &chat).await[seq]["delivery"]["status"],
        "delivered"
    );
}

/// R27: a workspace's messages go to its own webhook when its settings name one, and to the
/// configuration's otherwise, whose bodies then say which workspace they are of; `default`'s
/// bodies are as they were before workspaces.
#[tokio::test]
async fn r27_a_workspace_s_messages_go_to_its_own_webhook_or_name_it_on_the_shared_one() {
    let mut shared = FakeWebhook::start(Vec::new(), Behaviour::Answer(200)).await;
    let mut acme_own = FakeWebhook::start(Vec::new(), Behaviour::Answer(200)).await;
    let server =
        TestServer::start_platform_sending(Security::default(), Connector::webhook(shared.url()), retry(3))
            .await;
    let (status, body) = server
        .post_raw(
            "/v1/platform/workspaces",
            &json!({ "id": "acme", "settings": { "outbound_webhook_url": acme_own.url() } }).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body:#}");
    super::platform::create(&server, "globex").await;

    for (ws, agent) in [("acme", "ana"), ("globex", "gil"), ("default", "dora")] {
        let (status, body) = server
            .post_raw(
                &format!("/v1/w/{ws}/admin/agents"),
                &json!({ "id": agent, "limit": 2, "token": format!("{agent}-token") }).to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body:#}");
        let mut client = server
            .with_token(agent, &format!("{agent}-token"))
            .in_workspace(ws)
            .connect()
            .await;
        let customer = server
            .customer("sms", &format!("+4915100009{}", agent.len()))
            .in_workspace(ws);
        let chat = client.serves(&customer).await;
        client
            .send_message(&chat, &format!("{ws} answers"))
            .await
            .expect_ok();
    }

    let acme = acme_own.next().await;
    assert_eq!(
        (acme.text(), &acme.body["workspace"]),
        ("acme answers", &json!("acme"))
    );
    let mut on_shared = [shared.next().await, shared.next().await];
    on_shared.sort_by(|a, b| a.text().cmp(b.text()));
    assert_eq!(
        on_shared
            .iter()
            .map(|seen| (seen.text(), seen.body.get("workspace").cloned()))
            .collect::<Vec<_>>(),
        vec![
            ("default answers", None),
            ("globex answers", Some(json!("globex")))
        ],
        "acme's own webhook took acme's message; the shared one tells the others apart"
    );
    assert!(
        timeout(StdDuration::from_millis(200), shared.seen.recv())
            .await
            .is_err(),
        "nothing of acme reached the shared webhook"
    );
}
