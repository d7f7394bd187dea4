//! The platforms' own webhooks and APIs (R23–R26), end to end: documented payloads posted to
//! the real server, signed as each platform signs them, and outbound messages sent to fake
//! platforms on 127.0.0.1 that record every request and answer as scripted.

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
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::timeout;

use super::support::{AgentClient, Pushed, TestServer, WAIT};

const APP_SECRET: &str = "meta-app-secret-0123456789";
const VERIFY_TOKEN: &str = "meta-verify-token";
const PHONE_NUMBER_ID: &str = "106540352242922";
const ACCESS_TOKEN: &str = "EAAG-test-token";
const TG_SECRET: &str = "telegram-secret-token";
const BOT_TOKEN: &str = "123456:ABC-test";
const TWILIO_TOKEN: &str = "twilio-auth-token";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// The URL Twilio was given: signatures cover it, not the address the test posts to.
const TWILIO_URL: &str = "https://switchboard.example.com/v1/native/twilio";
const MAIL_TOKEN: &str = "mail-server-token";

/// Small backoffs, so that fault tests finish in milliseconds (Retry-After aside).
fn quick_retry() -> Retry {
    Retry {
        attempts: 5,
        first_backoff: StdDuration::from_millis(10),
        max_backoff: StdDuration::from_millis(50),
    }
}

fn platform(base_url: &str, settings: &[(&str, &str)]) -> PlatformConfig {
    PlatformConfig {
        base_url: base_url.to_owned(),
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn whatsapp(base_url: &str) -> PlatformConfig {
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

async fn server_with(platforms: Vec<(Channel, PlatformConfig)>) -> TestServer {
    let security = Security {
        platforms: platforms.into_iter().collect(),
        ..Security::default()
    };
    TestServer::start_native(EngineConfig::default(), security, quick_retry()).await
}

fn fixture(path: &str) -> String {
    let full = format!("{}/src/channels/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn meta_signature(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn twilio_signature(url: &str, form: &[(String, String)], token: &str) -> String {
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
async fn post(
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

async fn post_meta(server: &TestServer, body: &str, secret: &str) -> (StatusCode, String) {
    let headers = [
        ("X-Hub-Signature-256", meta_signature(body.as_bytes(), secret)),
        ("Content-Type", "application/json".to_owned()),
    ];
    post(server, "/v1/native/meta", &headers, body).await
}

async fn post_twilio(server: &TestServer, form: &[(&str, &str)]) -> (StatusCode, String) {
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

/// A WhatsApp text webhook from `from` with message id `id`, in the documented shape.
fn whatsapp_text(from: &str, id: &str, text: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
            "contacts": [{ "profile": { "name": "Sheena Nelson" }, "wa_id": from }],
            "messages": [{ "from": from, "id": id, "timestamp": "1749416383", "type": "text", "text": { "body": text } }]
        }}]}]
    })
    .to_string()
}

/// A WhatsApp statuses webhook about our message `id`.
fn whatsapp_status(id: &str, status: &str) -> String {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID },
            "statuses": [{ "id": id, "status": status, "timestamp": "1750263773", "recipient_id": "16505551234" }]
        }}]}]
    })
    .to_string()
}

/// Waits for the offer of a new chat and takes it; its id and the offer.
async fn take_offer(agent: &mut AgentClient) -> (String, Pushed) {
    let offer = agent.expect_push("chat_offered").await;
    let chat = offer["chat"]["id"].as_str().expect("a chat id").to_owned();
    agent.accept(&chat).await.expect_ok();
    agent.expect_push("chat_activated").await;
    (chat, offer)
}

/// The `message_status` pushes until one says `status`; that one.
async fn status_until(agent: &mut AgentClient, status: &str) -> Pushed {
    for _ in 0..10 {
        let pushed = agent.expect_push("message_status").await;
        if pushed["delivery"]["status"] == status {
            return pushed;
        }
    }
    panic!("no message_status `{status}` among ten pushes");
}

async fn history(agent: &mut AgentClient, chat: &str) -> Vec<Value> {
    let result = agent.get_chat(chat).await.expect_ok();
    result["messages"].as_array().cloned().expect("messages")
}

// ----- a fake platform -----------------------------------------------------------------------

/// One request the fake platform got.
#[derive(Debug)]
struct Seen {
    at: Instant,
    method: String,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

/// An answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, &'static str)>, String);

#[derive(Clone)]
struct FakeState {
    seen: mpsc::UnboundedSender<Seen>,
    /// Answers to give first, in order; then `ok`.
    script: Arc<Mutex<VecDeque<Answer>>>,
    count: Arc<Mutex<usize>>,
    ok: fn(usize) -> Answer,
}

/// A platform's API on 127.0.0.1 that records every request.
struct FakePlatform {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl FakePlatform {
    async fn start(script: Vec<Answer>, ok: fn(usize) -> Answer) -> Self {
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

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next request it got, waiting for it.
    async fn next(&mut self) -> Seen {
        timeout(WAIT, self.seen.recv())
            .await
            .expect("the platform gets a request in time")
            .expect("the fake runs")
    }
}

async fn fake_answer(
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

fn graph_ok(n: usize) -> Answer {
    (
        200,
        vec![],
        json!({ "messaging_product": "whatsapp", "contacts": [{ "input": "16505551234", "wa_id": "16505551234" }], "messages": [{ "id": format!("wamid.out-{n}") }] }).to_string(),
    )
}

fn telegram_ok(n: usize) -> Answer {
    (200, vec![], json!({ "ok": true, "result": { "message_id": 900 + n, "date": 1765098000, "chat": { "id": 111222333, "type": "private" }, "text": "x" } }).to_string())
}

fn twilio_ok(n: usize) -> Answer {
    (
        201,
        vec![],
        json!({ "sid": format!("SMout{n:030}"), "status": "queued" }).to_string(),
    )
}

/// A WhatsApp customer whose chat `ana` has taken; the chat's id.
async fn whatsapp_chat(server: &TestServer, ana: &mut AgentClient, id: &str) -> String {
    let (status, _) = post_meta(server, &whatsapp_text("16505551234", id, "Hello"), APP_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    take_offer(ana).await.0
}

// ----- Meta ----------------------------------------------------------------------------------

#[tokio::test]
async fn r23_meta_handshake_echoes_the_challenge_for_the_verify_token_only() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let get = |token: &str| {
        let url = format!(
            "http://{}/v1/native/meta?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            server.addr
        );
        async move { reqwest::get(url).await.expect("GET") }
    };

    let ok = get(VERIFY_TOKEN).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.text().await.expect("text"), "1158201444");
    let wrong = get("guess").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.expect("text").contains("hub.verify_token"));
}

#[tokio::test]
async fn r23_signed_whatsapp_text_image_and_location_reach_the_agent_and_the_history() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;

    let (status, body) = post_meta(&server, &fixture("meta/fixtures/whatsapp_text.json"), APP_SECRET).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let (chat, offer) = take_offer(&mut ana).await;
    assert_eq!(offer["chat"]["channel"], "whatsapp");
    for name in ["whatsapp_media.json", "whatsapp_location.json"] {
        let (status, body) = post_meta(&server, &fixture(&format!("meta/fixtures/{name}")), APP_SECRET).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }

    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages[0]["text"], "Does it come in another color?");
    let attachments: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["attachment"]["type"].as_str())
        .collect();
    assert!(attachments.contains(&"media"), "{messages:#?}");
    assert!(attachments.contains(&"location"), "{messages:#?}");
    server.check_invariants();
}

#[tokio::test]
async fn r23_a_bad_meta_signature_is_401_and_records_nothing() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let body = whatsapp_text("16505550001", "wamid.forged", "Hi");

    let (status, text) = post_meta(&server, &body, "not-the-app-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(text.contains("X-Hub-Signature-256"), "{text}");
    let (status, _) = post(&server, "/v1/native/meta", &[], body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned");
    ana.expect_no_push("chat_offered").await;

    // A Messenger object signed with WhatsApp's secret: Messenger is not connected here.
    let messenger = fixture("meta/fixtures/messenger_messages.json");
    let (status, text) = post_meta(&server, &messenger, APP_SECRET).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(text.contains("messenger"), "{text}");
    ana.expect_no_push("chat_offered").await;
}

#[tokio::test]
async fn r23_a_redelivered_whatsapp_message_is_recorded_once() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let body = fixture("meta/fixtures/whatsapp_text.json");

    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);

    assert_eq!(history(&mut ana, &chat).await.len(), 1);
    ana.expect_no_push("chat_offered").await;
}

#[tokio::test]
async fn r24_r25_a_reply_goes_to_whatsapp_as_documented_and_its_statuses_reach_the_owner() {
    let mut meta = FakePlatform::start(vec![], graph_ok).await;
    let server = server_with(vec![(Channel::Whatsapp, whatsapp(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-1").await;

    ana.send_message(&chat, "It comes in blue too").await.expect_ok();

    let request = meta.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(request.header("authorization"), format!("Bearer {ACCESS_TOKEN}"));
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(
        request.json(),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "text",
            "text": { "body": "It comes in blue too" }
        })
    );
    let sent = status_until(&mut ana, "sent").await;
    assert_eq!(sent["chat_id"], chat.as_str());
    let seq = sent["seq"].as_u64().expect("seq");

    for status in ["delivered", "read"] {
        let (code, _) = post_meta(&server, &whatsapp_status("wamid.out-1", status), APP_SECRET).await;
        assert_eq!(code, StatusCode::OK);
        let pushed = status_until(&mut ana, status).await;
        assert_eq!(pushed["seq"].as_u64(), Some(seq));
    }
    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages[seq as usize]["delivery"]["status"], "read");
}

#[tokio::test]
async fn r24_whatsapp_5xx_is_retried_and_the_chat_keeps_its_order() {
    let error = || {
        (
            500,
            vec![],
            json!({ "error": { "message": "Service temporarily unavailable", "code": 2 } }).to_string(),
        )
    };
    let mut meta = FakePlatform::start(vec![error(), error()], graph_ok).await;
    let server = server_with(vec![(Channel::Whatsapp, whatsapp(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-2").await;

    ana.send_message(&chat, "first").await.expect_ok();
    ana.send_message(&chat, "second").await.expect_ok();

    let mut texts = Vec::new();
    for _ in 0..4 {
        texts.push(
            meta.next().await.json()["text"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        texts,
        ["first", "first", "first", "second"],
        "two 500s, then each once, in order"
    );
    status_until(&mut ana, "sent").await;
    status_until(&mut ana, "sent").await;
    let messages = history(&mut ana, &chat).await;
    let sent: Vec<_> = messages
        .iter()
        .filter(|m| m["delivery"]["status"] == "sent")
        .collect();
    assert_eq!(sent.len(), 2, "{messages:#?}");
}

#[tokio::test]
async fn r24_whatsapp_429_is_retried_after_its_retry_after() {
    let throttled = (
        429,
        vec![("Retry-After", "1")],
        json!({ "error": { "message": "Rate limit hit", "code": 130429 } }).to_string(),
    );
    let mut meta = FakePlatform::start(vec![throttled], graph_ok).await;
    let server = server_with(vec![(Channel::Whatsapp, whatsapp(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-3").await;

    ana.send_message(&chat, "after the limit").await.expect_ok();

    let first = meta.next().await;
    let second = meta.next().await;
    let waited = second.at - first.at;
    assert!(
        waited >= StdDuration::from_millis(900),
        "retried after {waited:?}, not the 1 s asked"
    );
    assert_eq!(second.json()["text"]["body"], "after the limit");
    status_until(&mut ana, "sent").await;
}

#[tokio::test]
async fn r24_a_permanent_whatsapp_refusal_fails_visibly_and_the_agent_retries_it() {
    let refused = (
        400,
        vec![],
        json!({ "error": { "message": "(#131026) Message undeliverable", "type": "OAuthException", "code": 131026, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam" } }).to_string(),
    );
    let mut meta = FakePlatform::start(vec![refused], graph_ok).await;
    let server = server_with(vec![(Channel::Whatsapp, whatsapp(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-4").await;

    ana.send_message(&chat, "are you there?").await.expect_ok();

    meta.next().await;
    let failed = status_until(&mut ana, "failed").await;
    let reason = failed["delivery"]["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("Message undeliverable"), "{reason}");
    let seq = failed["seq"].as_u64().expect("seq");
    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages[seq as usize]["delivery"]["status"], "failed");
    let metrics = super::metrics::scrape(&server).await;
    assert_eq!(
        metrics.value(r#"switchboard_customer_messages_total{outcome="failed"}"#),
        1.0,
        "a failed message is counted"
    );

    ana.request(json!({ "type": "retry_message", "chat_id": chat, "seq": seq }))
        .await
        .expect_ok();

    assert_eq!(meta.next().await.json()["text"]["body"], "are you there?");
    let sent = status_until(&mut ana, "sent").await;
    assert_eq!(sent["seq"].as_u64(), Some(seq));
}

#[tokio::test]
async fn r23_r24_a_messenger_customer_is_answered_with_the_response_type_and_after_a_day_with_the_human_agent_tag(
) {
    let mut meta = FakePlatform::start(vec![], messenger_ok).await;
    let config = platform(
        &meta.url(),
        &[
            ("access_token", ACCESS_TOKEN),
            ("app_secret", APP_SECRET),
            ("verify_token", VERIFY_TOKEN),
        ],
    );
    let server = server_with(vec![(Channel::Messenger, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    let body = json!({
        "object": "page",
        "entry": [{ "id": "PAGE-1", "time": 1765098000000u64, "messaging": [{
            "sender": { "id": "PSID-42" }, "recipient": { "id": "PAGE-1" },
            "timestamp": 1765098000000u64,
            "message": { "mid": "m_in-1", "text": "Is my order on its way?" }
        }]}]
    })
    .to_string();
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    let (chat, offer) = take_offer(&mut ana).await;
    assert_eq!(offer["chat"]["channel"], "messenger");

    ana.send_message(&chat, "It left this morning").await.expect_ok();
    let request = meta.next().await;
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/me/messages")
    );
    assert_eq!(request.header("authorization"), format!("Bearer {ACCESS_TOKEN}"));
    let sent = request.json();
    assert_eq!(
        (
            &sent["recipient"]["id"],
            &sent["messaging_type"],
            &sent["message"]["text"]
        ),
        (
            &json!("PSID-42"),
            &json!("RESPONSE"),
            &json!("It left this morning")
        )
    );
    status_until(&mut ana, "sent").await;

    // A day later the standard window has closed; the human-agent tag allows a week (R07).
    server.advance(chrono::Duration::hours(25));
    ana.request(json!({ "type": "send_message", "chat_id": chat, "text": "Any news on your side?", "human_agent_tag": true }))
        .await
        .expect_ok();
    let tagged = meta.next().await.json();
    assert_eq!(
        (&tagged["messaging_type"], &tagged["tag"]),
        (&json!("MESSAGE_TAG"), &json!("HUMAN_AGENT"))
    );
}

#[tokio::test]
async fn r23_instagram_messages_reach_the_agent_with_their_attachments_and_our_echo_is_ignored() {
    let config = platform(
        "http://127.0.0.1:9",
        &[
            ("access_token", ACCESS_TOKEN),
            ("app_secret", APP_SECRET),
            ("verify_token", VERIFY_TOKEN),
        ],
    );
    let server = server_with(vec![(Channel::Instagram, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    let body = fixture("meta/fixtures/instagram_messages.json");
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    let (chat, offer) = take_offer(&mut ana).await;
    assert_eq!(offer["chat"]["channel"], "instagram");
    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages[0]["text"], "Is the blue one still in stock?");
    assert!(
        messages
            .iter()
            .any(|m| m["attachment"]["type"] == "media" && m["attachment"]["kind"] == "image"),
        "{messages:#?}"
    );
    assert!(
        messages.iter().all(|m| m["text"] != "Yes, it is!"),
        "the page's own echo is not a customer message: {messages:#?}"
    );
    // Delivered again by Meta: nothing new.
    let before = messages.len();
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    assert_eq!(history(&mut ana, &chat).await.len(), before);
}

fn messenger_ok(n: usize) -> Answer {
    (
        200,
        vec![],
        json!({ "recipient_id": "PSID-42", "message_id": format!("m_out-{n}") }).to_string(),
    )
}

// ----- Telegram ------------------------------------------------------------------------------

#[tokio::test]
async fn r23_r24_telegram_updates_need_the_secret_token_and_replies_go_to_send_message() {
    let mut telegram = FakePlatform::start(vec![], telegram_ok).await;
    let config = platform(
        &telegram.url(),
        &[("bot_token", BOT_TOKEN), ("secret_token", TG_SECRET)],
    );
    let server = server_with(vec![(Channel::Telegram, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    let update = fixture("telegram/fixtures/text.json");

    let (status, text) = post(
        &server,
        "/v1/native/telegram",
        &[("X-Telegram-Bot-Api-Secret-Token", "guess".into())],
        update.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    ana.expect_no_push("chat_offered").await;

    let (status, text) = post(
        &server,
        "/v1/native/telegram",
        &[("X-Telegram-Bot-Api-Secret-Token", TG_SECRET.into())],
        update,
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let (chat, offer) = take_offer(&mut ana).await;
    assert_eq!(offer["chat"]["channel"], "telegram");
    assert_eq!(
        history(&mut ana, &chat).await[0]["text"],
        "Hola, my order has not arrived"
    );

    // Telegram resends an update it thinks was not taken: it is recorded once.
    let (status, _) = post(
        &server,
        "/v1/native/telegram",
        &[("X-Telegram-Bot-Api-Secret-Token", TG_SECRET.into())],
        fixture("telegram/fixtures/text.json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        history(&mut ana, &chat).await.len(),
        1,
        "a resent update is recorded once"
    );

    ana.send_message(&chat, "Let me check").await.expect_ok();

    let request = telegram.next().await;
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/bot123456:ABC-test/sendMessage")
    );
    assert_eq!(
        request.json(),
        json!({ "chat_id": 111222333, "text": "Let me check" })
    );
    status_until(&mut ana, "sent").await;
}

// ----- Twilio --------------------------------------------------------------------------------

fn twilio(base_url: &str) -> PlatformConfig {
    platform(
        base_url,
        &[
            ("account_sid", TWILIO_SID),
            ("auth_token", TWILIO_TOKEN),
            ("from", "+14155550100"),
            ("webhook_url", TWILIO_URL),
        ],
    )
}

fn sms(sid: &str, body: &str) -> Vec<(&'static str, String)> {
    vec![
        ("MessageSid", sid.to_owned()),
        ("SmsSid", sid.to_owned()),
        ("AccountSid", TWILIO_SID.to_owned()),
        ("From", "+14155550199".to_owned()),
        ("To", "+14155550100".to_owned()),
        ("Body", body.to_owned()),
        ("NumMedia", "0".to_owned()),
        ("SmsStatus", "received".to_owned()),
    ]
}

async fn post_sms(server: &TestServer, form: Vec<(&'static str, String)>) -> (StatusCode, String) {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    post_twilio(server, &form).await
}

#[tokio::test]
async fn r23_r25_a_signed_sms_reaches_the_agent_and_its_reply_gets_delivered() {
    let mut twilio_api = FakePlatform::start(vec![], twilio_ok).await;
    let server = server_with(vec![(Channel::Sms, twilio(&twilio_api.url()))]).await;
    let mut ana = server.agent("ana").connect().await;

    let raw = fixture("twilio/fixtures/inbound_sms.txt");
    let form: Vec<(String, String)> = form_urlencoded::parse(raw.trim().as_bytes())
        .into_owned()
        .collect();
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, text) = post_twilio(&server, &form).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "<Response></Response>"));
    let (chat, _) = take_offer(&mut ana).await;
    assert_eq!(
        history(&mut ana, &chat).await[0]["text"],
        "Hi, where is my order #2291?"
    );
    // Twilio retries a webhook it got no answer to: the same MessageSid is recorded once.
    assert_eq!(post_twilio(&server, &form).await.0, StatusCode::OK);
    assert_eq!(
        history(&mut ana, &chat).await.len(),
        1,
        "a retried webhook is recorded once"
    );

    // Signed for another URL (a proxy's, say): refused.
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(sms("SMforged", "hi"))
        .finish();
    let forged = twilio_signature(
        "http://127.0.0.1/v1/native/twilio",
        &form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect::<Vec<_>>(),
        TWILIO_TOKEN,
    );
    let (status, _) = post(
        &server,
        "/v1/native/twilio",
        &[("X-Twilio-Signature", forged)],
        body,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    ana.send_message(&chat, "It left our warehouse today")
        .await
        .expect_ok();
    let request = twilio_api.next().await;
    assert_eq!(
        request.path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    let sent: Vec<(String, String)> = form_urlencoded::parse(&request.body).into_owned().collect();
    assert!(
        sent.contains(&("Body".into(), "It left our warehouse today".into())),
        "{sent:?}"
    );
    assert!(sent.contains(&("To".into(), "+14155550199".into())), "{sent:?}");
    let seq = status_until(&mut ana, "sent").await["seq"].as_u64();

    let sid = format!("SMout{:030}", 1);
    let callback = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", TWILIO_SID),
        ("To", "+14155550199"),
        ("From", "+14155550100"),
    ];
    assert_eq!(post_twilio(&server, &callback).await.0, StatusCode::OK);
    assert_eq!(status_until(&mut ana, "delivered").await["seq"].as_u64(), seq);
}

#[tokio::test]
async fn r26_sms_stop_opts_out_and_start_opts_back_in() {
    let server = server_with(vec![(Channel::Sms, twilio("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(post_sms(&server, sms("SM0001", "Hello")).await.0, StatusCode::OK);
    let (chat, offer) = take_offer(&mut ana).await;
    let customer = offer["chat"]["customer"]["id"]
        .as_str()
        .expect("customer id")
        .into();

    assert_eq!(post_sms(&server, sms("SM0002", "STOP")).await.0, StatusCode::OK);

    let closed = ana.expect_push("chat_closed").await;
    assert_eq!(closed["reason"], "stop");
    assert!(server.engine.is_opted_out(&customer, Channel::Sms));
    ana.reopen(&chat).await.expect_error("opted_out");

    assert_eq!(post_sms(&server, sms("SM0003", "start")).await.0, StatusCode::OK);
    assert!(!server.engine.is_opted_out(&customer, Channel::Sms));
    ana.reopen(&chat).await.expect_ok();
}

// ----- Email ---------------------------------------------------------------------------------

/// What a one-connection fake SMTP relay saw: the commands and the message.
#[derive(Debug, Default)]
struct Relayed {
    commands: Vec<String>,
    data: String,
}

/// A fake SMTP relay on `listener` for one connection, taking every command.
async fn fake_relay(listener: TcpListener) -> Relayed {
    let (stream, _) = timeout(WAIT, listener.accept())
        .await
        .expect("connects in time")
        .expect("accept");
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let mut relayed = Relayed::default();
    let mut in_data = false;
    write.write_all(b"220 fake.test ESMTP\r\n").await.expect("greet");
    loop {
        let mut line = String::new();
        let n = timeout(WAIT, read.read_line(&mut line))
            .await
            .expect("speaks in time")
            .expect("read");
        if n == 0 {
            break;
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                write.write_all(b"250 2.0.0 queued\r\n").await.expect("reply");
            } else {
                relayed.data.push_str(&line);
            }
            continue;
        }
        let verb = line.trim_end().to_ascii_uppercase();
        let answer: &[u8] = if verb.starts_with("EHLO") || verb.starts_with("HELO") {
            b"250 fake.test\r\n"
        } else if verb == "DATA" {
            in_data = true;
            b"354 go ahead\r\n"
        } else if verb == "QUIT" {
            b"221 bye\r\n"
        } else {
            b"250 OK\r\n"
        };
        relayed.commands.push(line.trim_end().to_owned());
        write.write_all(answer).await.expect("answer");
        if verb == "QUIT" {
            break;
        }
    }
    relayed
}

#[tokio::test]
async fn r23_r24_an_email_posted_with_the_token_opens_a_chat_and_the_reply_goes_over_smtp() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let relay = tokio::spawn(fake_relay(listener));
    let config = platform(
        "",
        &[
            ("token", MAIL_TOKEN),
            ("from", "Support <support@example.com>"),
            ("smtp_host", "127.0.0.1"),
            ("smtp_port", &port),
            ("smtp_tls", "none"),
            ("smtp_timeout_secs", "5"),
        ],
    );
    let server = server_with(vec![(Channel::Email, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    let raw = fixture("email/fixtures/r23_plain.eml");

    let (status, _) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", "Bearer guess".into())],
        raw.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auto = fixture("email/fixtures/r23_auto_reply.eml");
    let (status, text) = post(
        &server,
        "/v1/native/email",
        &[("X-Switchboard-Mail-Token", MAIL_TOKEN.into())],
        auto,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    ana.expect_no_push("chat_offered").await;

    let (status, text) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", format!("Bearer {MAIL_TOKEN}"))],
        raw.clone(),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":1}"#));
    let (chat, _) = take_offer(&mut ana).await;
    // The mail server posts it again (its retry after a timeout): recorded once.
    let (status, _) = post(
        &server,
        "/v1/native/email",
        &[("Authorization", format!("Bearer {MAIL_TOKEN}"))],
        raw,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        history(&mut ana, &chat).await.len(),
        1,
        "a reposted email is recorded once"
    );

    ana.send_message(&chat, "We are on it").await.expect_ok();

    let relayed = timeout(WAIT, relay)
        .await
        .expect("the relay ends in time")
        .expect("no panic");
    assert!(
        relayed
            .commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("MAIL FROM:<support@example.com>")),
        "{relayed:?}"
    );
    assert!(
        relayed
            .commands
            .iter()
            .any(|c| c.eq_ignore_ascii_case("RCPT TO:<ana.perez@example.com>")),
        "{relayed:?}"
    );
    assert!(
        relayed
            .data
            .contains("In-Reply-To: <CAF1plain.0001@mail.example.com>"),
        "{}",
        relayed.data
    );
    assert!(
        relayed.data.contains("Subject: Re: your message"),
        "{}",
        relayed.data
    );
    assert!(relayed.data.contains("We are on it"), "{}", relayed.data);
    status_until(&mut ana, "sent").await;
}

#[tokio::test]
async fn r23_a_raw_email_may_exceed_the_json_body_limit() {
    let config = platform("", &[("token", MAIL_TOKEN), ("from", "support@example.com")]);
    let server = server_with(vec![(Channel::Email, config)]).await;
    let mut ana = server.agent("ana").connect().await;
    // 300 KiB: over the 256 KiB of JSON bodies, as a message with an attachment easily is.
    let raw = format!(
        "From: Ana <ana@example.com>\r\nTo: support@example.com\r\nSubject: big\r\nMessage-ID: <big.1@example.com>\r\n\r\nSee below.\r\n{}\r\n",
        "x".repeat(300 * 1024)
    );
    let headers = [("X-Switchboard-Mail-Token", MAIL_TOKEN.to_owned())];

    let (status, text) = post(&server, "/v1/native/email", &headers, raw).await;

    assert_eq!(status, StatusCode::OK, "{text}");
    take_offer(&mut ana).await;
}
