//! What the platforms' tests share: the server with its platforms, the platforms' signatures,
//! posting webhooks, waiting on pushes, and a fake platform API on 127.0.0.1 that records every
//! request and answers as scripted.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode as AxumStatus, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha1::Sha1;
use sha2::Sha256;
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;
use switchboard::engine::outbound::Retry;
use switchboard::engine::EngineConfig;
use switchboard::security::Security;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::it::support::{AgentClient, Pushed, TestServer, WAIT};

pub(crate) const APP_SECRET: &str = "meta-app-secret-0123456789";
pub(crate) const VERIFY_TOKEN: &str = "meta-verify-token";
pub(super) const PHONE_NUMBER_ID: &str = "106540352242922";
pub(super) const ACCESS_TOKEN: &str = "EAAG-test-token";
pub(crate) const TG_SECRET: &str = "telegram-secret-token";
pub(crate) const BOT_TOKEN: &str = "123456:ABC-test";
pub(crate) const TWILIO_TOKEN: &str = "twilio-auth-token";
pub(super) const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The URL Twilio was given: signatures cover it, not the address the test posts to.
pub(crate) const TWILIO_URL: &str = "https://switchboard.example.com/v1/native/twilio";
pub(crate) const MAIL_TOKEN: &str = "mail-server-token";

/// Small backoffs, so that fault tests finish in milliseconds (Retry-After aside).
pub(super) fn quick_retry() -> Retry {
    Retry {
        attempts: 5,
        first_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(50),
    }
}

pub(crate) fn platform(base_url: &str, settings: &[(&str, &str)]) -> PlatformConfig {
    PlatformConfig {
        base_url: base_url.to_owned(),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

pub(crate) fn whatsapp(base_url: &str) -> PlatformConfig {
    platform(
        base_url,
        &[
            ("access_token", ACCESS_TOKEN),
            ("phone_number_id", PHONE_NUMBER_ID),
            ("app_secret", APP_SECRET),
            ("verify_token", VERIFY_TOKEN),
        ],
    )
}

pub(super) async fn server_with(platforms: Vec<(Channel, PlatformConfig)>) -> TestServer {
    let security = Security {
        platforms: platforms.into_iter().collect(),
        ..Security::default()
    };
    TestServer::start_native(EngineConfig::default(), security, quick_retry()).await
}

pub(crate) fn fixture(path: &str) -> String {
    let full = format!("{}/src/channels/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

pub(crate) fn meta_signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub(crate) fn twilio_signature(url: &str, form: &[(String, String)], token: &str) -> String {
    let mut params = form.to_vec();
    params.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key");
    mac.update(url.as_bytes());
    for (k, v) in params {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// POSTs `body` to the server with `headers`: the status and the body as text.
pub(crate) async fn post(
    server: &TestServer,
    path: &str,
    headers: &[(&str, String)],
    body: impl Into<Vec<u8>>,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{}{path}", server.addr))
        .body(body.into());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = timeout(WAIT, request.send())
        .await
        .expect("the server answers in time")
        .unwrap_or_else(|e| panic!("POST {path}: {e}"));
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

pub(super) async fn post_meta(server: &TestServer, body: &str, secret: &str) -> (StatusCode, String) {
    let headers = [
        ("X-Hub-Signature-256", meta_signature(body.as_bytes(), secret)),
        ("Content-Type", "application/json".to_owned()),
    ];
    post(server, "/v1/native/meta", &headers, body).await
}

pub(super) async fn post_twilio(server: &TestServer, form: &[(&str, &str)]) -> (StatusCode, String) {
    let form: Vec<(String, String)> = form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let headers = [
        (
            "X-Twilio-Signature",
            twilio_signature(TWILIO_URL, &form, TWILIO_TOKEN),
        ),
        ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
    ];
    post(server, "/v1/native/twilio", &headers, body).await
}

/// Waits for the offer of a new chat and takes it; its id and the offer.
pub(super) async fn take_offer(agent: &mut AgentClient) -> (String, Pushed) {
    let offer = agent.expect_push("chat_offered").await;
    let chat = offer["chat"]["id"].as_str().expect("a chat id").to_owned();
    agent.accept(&chat).await.expect_ok();
    agent.expect_push("chat_activated").await;
    (chat, offer)
}

/// The `message_status` pushes until one says `status`; that one.
pub(super) async fn status_until(agent: &mut AgentClient, status: &str) -> Pushed {
    for _ in 0..10 {
        let pushed = agent.expect_push("message_status").await;
        if pushed["delivery"]["status"] == status {
            return pushed;
        }
    }
    panic!("no message_status `{status}` among ten pushes");
}

pub(super) async fn history(agent: &mut AgentClient, chat: &str) -> Vec<Value> {
    let result = agent.get_chat(chat).await.expect_ok();
    result["messages"].as_array().cloned().expect("messages")
}

// ----- a fake platform -----------------------------------------------------------------------

/// One request the fake platform got.
#[derive(Debug)]
pub(super) struct Seen {
    pub(super) at: Instant,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) headers: HeaderMap,
    pub(super) body: Vec<u8>,
}

impl Seen {
    pub(super) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub(super) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// An answer: status, headers, body.
pub(super) type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone)]
pub(super) struct FakeState {
    seen: mpsc::UnboundedSender<Seen>,
    /// Answers to give first, in order; then `ok`.
    script: Arc<Mutex<VecDeque<Answer>>>,
    count: Arc<Mutex<usize>>,
    ok: fn(usize) -> Answer,
}

/// A platform's API on 127.0.0.1 that records every request.
pub(super) struct FakePlatform {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl FakePlatform {
    pub(super) async fn start(script: Vec<Answer>, ok: fn(usize) -> Answer) -> Self {
        let (tx, seen) = mpsc::unbounded_channel();
        let state = FakeState {
            seen: tx,
            script: Arc::new(Mutex::new(script.into())),
            count: Arc::new(Mutex::new(0)),
            ok,
        };
        let app = axum::Router::new().fallback(fake_answer).with_state(state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, seen }
    }

    pub(super) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request it got, waiting for it.
    pub(super) async fn next(&mut self) -> Seen {
        timeout(WAIT, self.seen.recv())
            .await
            .expect("the platform gets a request in time")
            .expect("the fake runs")
    }
}

pub(super) async fn fake_answer(
    State(state): State<FakeState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut count = state.count.lock();
        *count += 1;
        *count
    };
    let (status, extra, text) = state.script.lock().pop_front().unwrap_or_else(|| (state.ok)(n));
    let _ = state.seen.send(Seen {
        // The outbox waits out a Retry-After in real time (the manual clock only dates it), so
        // the gap between two attempts is measured on the wall.
        #[allow(clippy::disallowed_methods)]
        at: Instant::now(),
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
    });
    let mut response = (AxumStatus::from_u16(status).expect("a status"), text).into_response();
    response.headers_mut().insert(
        "content-type",
        "application/json".parse().expect("a header value"),
    );
    for (name, value) in extra {
        response
            .headers_mut()
            .insert(name, value.parse().expect("a header value"));
    }
    response
}

pub(super) fn graph_ok(n: usize) -> Answer {
    (
        200,
        vec![],
        json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "16505551234", "wa_id": "16505551234" }], "messages": [{ "id": format!("wamid.out-{n}") }] }).to_string(),
    )
}

pub(super) fn telegram_ok(n: usize) -> Answer {
    (200, vec![], json!({ "ok": true, "result": { "message_id": 900 + n, "date": 1765098000, "chat": { "id": 111222333, "type": "private" }, "text": "x" } }).to_string())
}

pub(super) fn twilio_ok(n: usize) -> Answer {
    (
        201,
        vec![],
        json!({ "sid": format!("SMout{n:030}"), "status": "queued" }).to_string(),
    )
}

/// The next `n` `customer_message` pushes, which must all be about `chat`: their messages.
pub(super) async fn customer_messages(agent: &mut AgentClient, chat: &str, n: usize) -> Vec<Value> {
    let mut messages = Vec::with_capacity(n);
    for _ in 0..n {
        let pushed = agent.expect_push("customer_message").await;
        assert_eq!(pushed["chat_id"], chat, "{pushed:#?}");
        messages.push(pushed["message"].clone());
    }
    messages
}

/// A media attachment as the wire shows it: `kind`, then the platform's `id`, `url`, `mime`
/// and `filename`, each `None` where the platform gave none.
pub(super) fn media(
    kind: &str,
    id: Option<&str>,
    url: Option<&str>,
    mime: Option<&str>,
    filename: Option<&str>,
) -> Value {
    json!({ "type": "media", "kind": kind, "id": id, "url": url, "mime": mime, "filename": filename })
}

/// The messages' texts and attachments, the two things a platform's content becomes.
pub(super) fn contents(messages: &[Value]) -> Vec<(Value, Value)> {
    messages
        .iter()
        .map(|m| (m["text"].clone(), m["attachment"].clone()))
        .collect()
}
