//! Channel webhooks (SECURITY.md, "Forged or replayed channel traffic"): a channel with a
//! webhook secret takes only bodies signed with it (`X-Hub-Signature-256`, Meta's format),
//! each once, and messages only when sent within the replay window; the other channels need the
//! ingress key when one is configured. Every refusal changes nothing, and the channel keeps
//! working.

use std::collections::HashMap;

use chrono::{Duration, SecondsFormat};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use switchboard::clock::Timestamp;
use switchboard::core::Channel;
use switchboard::engine::EngineConfig;
use switchboard::security::Security;

use super::support::TestServer;

const SECRET: &str = "whatsapp-app-secret";
const INGRESS_KEY: &str = "ingress-key";
const MESSAGES: &str = "/v1/channels/whatsapp/messages";
const BOT_START: &str = "/v1/channels/whatsapp/bot/start";
const BOT_HANDOVER: &str = "/v1/channels/whatsapp/bot/handover";

/// WhatsApp signs its webhooks; every other channel needs the ingress key.
fn secured() -> Security {
    Security {
        ingress_key: Some(INGRESS_KEY.into()),
        webhook_secrets: HashMap::from([(Channel::Whatsapp, SECRET.to_owned())]),
        ..Security::default()
    }
}

async fn server() -> TestServer {
    TestServer::start_secured(EngineConfig::default(), secured()).await
}

/// The header value signing `body` with `secret`, computed here rather than by the server's
/// code: `sha256=` and the lowercase hex HMAC-SHA256 of the raw body.
fn sign_with(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn sign(body: &str) -> String {
    sign_with(SECRET, body)
}

/// A customer's message as the connector sends it.
fn message(from: &str, text: &str, sent_at: Timestamp) -> String {
    json!({
        "from": from,
        "text": text,
        "sent_at": sent_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    })
    .to_string()
}

/// POSTs `body` to `path`, signed.
async fn post_signed(server: &TestServer, path: &str, body: &str) -> (StatusCode, Value) {
    let signature = sign(body);
    server
        .post_raw_with(path, &[("x-hub-signature-256", &signature)], body)
        .await
}

#[track_caller]
fn assert_accepted((status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::OK, "{body:#}");
}

/// Checks a refusal: its status, its code, and that its message names `what`.
#[track_caller]
fn assert_refused((status, body): &(StatusCode, Value), expected: StatusCode, code: &str, what: &str) {
    assert_eq!(*status, expected, "{body:#}");
    assert_eq!(body["code"], code, "{body:#}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(what),
        "the message should name `{what}`: {message}"
    );
}

#[track_caller]
fn assert_unauthorized(answer: &(StatusCode, Value), what: &str) {
    assert_refused(answer, StatusCode::UNAUTHORIZED, "unauthorized", what);
}

/// The texts of `chat`, read by an agent who takes it.
async fn texts_of(server: &TestServer, chat: &str) -> Vec<String> {
    let mut ana = server.agent("ana").connect().await;
    ana.takes(chat).await;
    let history = ana.get_chat(chat).await.expect_ok();
    history["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_webhook_with_a_valid_signature_is_accepted() {
    let server = server().await;
    let body = message("+4915100000901", "Hello", server.now());

    let (status, receipt) = post_signed(&server, MESSAGES, &body).await;

    assert_eq!(status, StatusCode::OK, "{receipt:#}");
    assert_eq!(receipt["state"], "queued");
    let waiting = server.waiting_in("whatsapp").await;
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    assert_eq!(waiting[0]["chat_id"], receipt["chat_id"]);
    server.check_invariants();
}

#[tokio::test]
async fn a_webhook_with_a_forged_signature_is_rejected_and_changes_nothing() {
    let server = server().await;
    let body = message("+4915100000902", "Hello", server.now());
    let tampered = message("+4915100000902", "Hellp", server.now());
    let digits = "ab".repeat(32);

    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![], "no X-Hub-Signature-256 header"),
        (
            vec![("authorization", format!("Bearer {INGRESS_KEY}"))],
            "no X-Hub-Signature-256 header",
        ),
        (
            vec![("x-hub-signature-256", format!("sha1={digits}"))],
            "malformed",
        ),
        (vec![("x-hub-signature-256", digits.clone())], "malformed"),
        (vec![("x-hub-signature-256", "sha256=xyz".into())], "malformed"),
        (
            vec![("x-hub-signature-256", format!("sha256={digits}00"))],
            "malformed",
        ),
        (
            vec![("x-hub-signature-256", sign_with("a-guessed-secret", &body))],
            "does not match",
        ),
        (vec![("x-hub-signature-256", sign(&tampered))], "does not match"),
    ];
    for (headers, what) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let answer = server.post_raw_with(MESSAGES, &headers, &body).await;
        assert_unauthorized(&answer, what);
    }
    for path in [BOT_START, BOT_HANDOVER] {
        let bot = json!({ "from": "+4915100000902" }).to_string();
        let answer = server.post_raw(path, &bot).await;
        assert_unauthorized(&answer, "no X-Hub-Signature-256 header");
    }

    assert!(
        server.waiting_in("whatsapp").await.is_empty(),
        "nothing reached the engine"
    );
    server.check_invariants();
    let receipt = post_signed(&server, MESSAGES, &body).await;
    assert_accepted(&receipt);
    assert_eq!(
        texts_of(&server, receipt.1["chat_id"].as_str().expect("a chat")).await,
        ["Hello"]
    );
    server.check_invariants();
}

#[tokio::test]
async fn a_webhook_replayed_within_the_window_is_rejected() {
    let server = server().await;
    let first = message("+4915100000903", "Hello", server.now());
    let receipt = post_signed(&server, MESSAGES, &first).await;
    assert_accepted(&receipt);
    let chat = receipt.1["chat_id"].as_str().expect("a chat").to_owned();

    assert_unauthorized(&post_signed(&server, MESSAGES, &first).await, "replay");
    server.advance(Duration::minutes(4));
    assert_unauthorized(&post_signed(&server, MESSAGES, &first).await, "replay");
    // With the hex digits in upper case, it is still the same signature.
    let upper = format!("sha256={}", sign(&first)["sha256=".len()..].to_uppercase());
    let answer = server
        .post_raw_with(MESSAGES, &[("x-hub-signature-256", &upper)], &first)
        .await;
    assert_unauthorized(&answer, "replay");
    // Past the window, the replay is still refused: by its `sent_at`.
    server.advance(Duration::minutes(2));
    assert_unauthorized(
        &post_signed(&server, MESSAGES, &first).await,
        "outside the replay window",
    );

    let second = message("+4915100000903", "Still there?", server.now());
    assert_accepted(&post_signed(&server, MESSAGES, &second).await);
    assert_eq!(
        texts_of(&server, &chat).await,
        ["Hello", "Still there?"],
        "the replays added nothing"
    );
    server.check_invariants();
}

#[tokio::test]
async fn a_webhook_dated_ahead_stays_refused_as_a_replay_until_its_sent_at_leaves_the_window() {
    let server = server().await;
    let ahead = message(
        "+4915100000904",
        "From a fast clock",
        server.now() + Duration::minutes(4),
    );
    assert_accepted(&post_signed(&server, MESSAGES, &ahead).await);

    // Eight minutes on, its `sent_at` is four minutes ago: inside the window, so only the
    // memory of its signature refuses it.
    server.advance(Duration::minutes(8));
    assert_unauthorized(&post_signed(&server, MESSAGES, &ahead).await, "replay");
    server.advance(Duration::minutes(2));
    assert_unauthorized(
        &post_signed(&server, MESSAGES, &ahead).await,
        "outside the replay window",
    );
    let waiting = server.waiting_in("whatsapp").await;
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    let chat = waiting[0]["chat_id"].as_str().expect("a chat").to_owned();
    assert_eq!(texts_of(&server, &chat).await, ["From a fast clock"]);
    server.check_invariants();
}

#[tokio::test]
async fn a_webhook_sent_outside_the_replay_window_is_rejected() {
    let server = server().await;
    let from = "+4915100000905";
    let late = message(from, "Hello", server.now() - Duration::minutes(6));
    let early = message(from, "Hello", server.now() + Duration::minutes(6));
    let undated = json!({ "from": from, "text": "Hello" }).to_string();

    assert_unauthorized(
        &post_signed(&server, MESSAGES, &late).await,
        "outside the replay window",
    );
    assert_unauthorized(
        &post_signed(&server, MESSAGES, &early).await,
        "outside the replay window",
    );
    assert_unauthorized(&post_signed(&server, MESSAGES, &undated).await, "`sent_at`");
    assert!(
        server.waiting_in("whatsapp").await.is_empty(),
        "nothing reached the engine"
    );
    server.check_invariants();

    let at_the_edge = message(from, "Hello", server.now() - Duration::minutes(5));
    assert_accepted(&post_signed(&server, MESSAGES, &at_the_edge).await);
    assert_eq!(server.waiting_in("whatsapp").await.len(), 1);
    server.check_invariants();
}

#[tokio::test]
async fn bot_calls_on_a_signed_channel_are_accepted_once_whichever_endpoint_the_body_is_sent_to() {
    let server = server().await;
    let undated = json!({ "from": "+4915100000906" }).to_string();
    assert_unauthorized(&post_signed(&server, BOT_START, &undated).await, "sent_at");
    let bot = json!({ "from": "+4915100000906", "sent_at": server.now().to_rfc3339() }).to_string();

    let journey = post_signed(&server, BOT_START, &bot).await;
    assert_accepted(&journey);
    assert_eq!(journey.1["state"], "bot");
    assert_unauthorized(&post_signed(&server, BOT_START, &bot).await, "replay");

    // The same body to the other endpoint carries the same signature: it is refused too, so a
    // connector tells its calls apart (a field the engine ignores will do).
    assert_unauthorized(&post_signed(&server, BOT_HANDOVER, &bot).await, "replay");
    let handover = json!({
        "from": "+4915100000906",
        "sent_at": server.now().to_rfc3339(),
        "event": "handover",
    })
    .to_string();
    let handed = post_signed(&server, BOT_HANDOVER, &handover).await;
    assert_accepted(&handed);
    assert_eq!(handed.1["state"], "queued");
    assert_eq!(handed.1["chat_id"], journey.1["chat_id"]);
    assert_unauthorized(&post_signed(&server, BOT_HANDOVER, &handover).await, "replay");
    server.advance(Duration::minutes(4));
    assert_unauthorized(&post_signed(&server, BOT_START, &bot).await, "replay");

    let waiting = server.waiting_in("whatsapp").await;
    assert_eq!(waiting.len(), 1, "{waiting:#?}");
    server.check_invariants();
}

#[tokio::test]
async fn a_signed_body_that_is_not_a_valid_message_gets_the_usual_bad_request() {
    let server = server().await;
    let broken = r#"{"from": "+4915100000907", "text": "#;
    let textless = json!({
        "from": "+4915100000907",
        "sent_at": server.now().to_rfc3339(),
    })
    .to_string();

    assert_refused(
        &post_signed(&server, MESSAGES, broken).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "invalid JSON body",
    );
    assert_refused(
        &post_signed(&server, MESSAGES, &textless).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
        "text",
    );
    assert!(server.waiting_in("whatsapp").await.is_empty());

    let valid = message("+4915100000907", "Hello", server.now());
    assert_accepted(&post_signed(&server, MESSAGES, &valid).await);
    server.check_invariants();
}

#[tokio::test]
async fn ingress_key_is_required_on_unsigned_channels_when_configured() {
    let server = server().await;
    let path = "/v1/channels/messenger/messages";
    let body = json!({ "from": "psid-0908", "text": "Hello" }).to_string();

    assert_unauthorized(&server.post_raw(path, &body).await, "Authorization: Bearer");
    let wrong = server
        .post_raw_with(path, &[("authorization", "Bearer a-guess")], &body)
        .await;
    assert_unauthorized(&wrong, "wrong ingress key");
    let signed_instead = server
        .post_raw_with(path, &[("x-hub-signature-256", &sign(&body))], &body)
        .await;
    assert_unauthorized(&signed_instead, "Authorization: Bearer");
    let bot = server
        .post_raw("/v1/channels/webchat/bot/start", r#"{"from": "visitor-0908"}"#)
        .await;
    assert_unauthorized(&bot, "Authorization: Bearer");
    assert!(
        server.waiting_in("messenger").await.is_empty(),
        "nothing reached the engine"
    );
    server.check_invariants();

    let key = format!("Bearer {INGRESS_KEY}");
    let answer = server
        .post_raw_with(path, &[("authorization", &key)], &body)
        .await;
    assert_accepted(&answer);
    assert_eq!(answer.1["state"], "queued");
    // No signature, so no replay memory: the same body twice is two messages.
    assert_accepted(
        &server
            .post_raw_with(path, &[("authorization", &key)], &body)
            .await,
    );
    let chat = answer.1["chat_id"].as_str().expect("a chat").to_owned();
    assert_eq!(texts_of(&server, &chat).await, ["Hello", "Hello"]);
    server.check_invariants();
}

#[tokio::test]
async fn without_secrets_or_keys_the_channel_api_stays_open() {
    let server = TestServer::start_secured(EngineConfig::default(), Security::default()).await;
    let body = json!({ "from": "+4915100000909", "text": "Hello" }).to_string();

    assert_accepted(&server.post_raw(MESSAGES, &body).await);
    assert_accepted(
        &server
            .post_raw("/v1/channels/webchat/bot/start", r#"{"from": "visitor-0909"}"#)
            .await,
    );
    assert_eq!(server.waiting_in("whatsapp").await.len(), 1);
    server.check_invariants();
}
