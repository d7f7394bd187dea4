//! WhatsApp, Messenger and Instagram (R23–R25): Meta's webhooks, signed with
//! `X-Hub-Signature-256`, the `hub.challenge` handshake, and the Graph API's send endpoints.

use std::time::Duration as StdDuration;

use reqwest::StatusCode;
use serde_json::json;
use switchboard::core::Channel;

use super::support::{
    fixture, graph_ok, history, platform, post, post_meta, server_with, status_until, take_offer, whatsapp,
    Answer, FakePlatform, ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN,
};
use crate::it::support::{AgentClient, TestServer};

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

/// A WhatsApp customer whose chat `ana` has taken; the chat's id.
async fn whatsapp_chat(server: &TestServer, ana: &mut AgentClient, id: &str) -> String {
    let (status, _) = post_meta(server, &whatsapp_text("16505551234", id, "Hello"), APP_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    take_offer(ana).await.0
}

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
    let metrics = super::super::metrics::scrape(&server).await;
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
