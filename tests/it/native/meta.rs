//! WhatsApp, Messenger and Instagram (R23–R25): Meta's webhooks, signed with
//! `X-Hub-Signature-256`, the `hub.challenge` handshake, and the Graph API's send endpoints.

use std::time::Duration as StdDuration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;

use super::support::{
    contents, customer_messages, fixture, graph_ok, history, media, meta_signature, platform, post,
    post_meta, server_with, status_until, take_offer, whatsapp, Answer, FakePlatform, ACCESS_TOKEN,
    APP_SECRET, PHONE_NUMBER_ID, VERIFY_TOKEN,
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
        metrics.value(r#"switchboard_customer_messages_total{workspace="default",outcome="failed"}"#),
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

// ----- WhatsApp: every message type ------------------------------------------------------------

#[tokio::test]
async fn r23_whatsapp_documents_audio_video_and_stickers_reach_the_agent_and_the_history_as_media() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-media").await;
    let body = fixture("meta/fixtures/whatsapp_media.json");

    let (status, text) = post_meta(&server, &body, APP_SECRET).await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":5}"#));
    let pushed = contents(&customer_messages(&mut ana, &chat, 5).await);
    let expected = vec![
        (
            json!("Black jacket"),
            media("image", Some("1003383421387256"), None, Some("image/jpeg"), None),
        ),
        (
            json!("Receipt"),
            media(
                "document",
                Some("1003383421387257"),
                None,
                Some("application/pdf"),
                Some("receipt-0420.pdf"),
            ),
        ),
        (
            json!(""),
            media(
                "audio",
                Some("1003383421387258"),
                None,
                Some("audio/ogg; codecs=opus"),
                None,
            ),
        ),
        (
            json!("It came like this"),
            media("video", Some("1003383421387259"), None, Some("video/mp4"), None),
        ),
        (
            json!(""),
            media(
                "sticker",
                Some("1003383421387260"),
                None,
                Some("image/webp"),
                None,
            ),
        ),
    ];
    assert_eq!(pushed, expected, "captions as text, media ids to fetch with");
    let messages = history(&mut ana, &chat).await;
    assert_eq!(
        contents(&messages[1..]),
        expected,
        "the history keeps what was pushed"
    );

    // Meta delivers the same webhook again: every one of its messages is recorded once.
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 6);
}

#[tokio::test]
async fn r23_whatsapp_button_and_list_replies_reach_the_agent_as_replies_with_their_ids() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-replies").await;

    let (status, text) = post_meta(
        &server,
        &fixture("meta/fixtures/whatsapp_replies.json"),
        APP_SECRET,
    )
    .await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":4}"#));
    let reply = |id: &str| json!({ "type": "reply", "id": id });
    let expected = vec![
        (json!("Cancel order"), reply("cancel-order")),
        (json!("Priority Mail Express"), reply("priority_express")),
        // A template's quick-reply button: its payload is the id.
        (json!("Stop promotions"), reply("unsubscribe")),
        // A flow's answer has no reply of its own: typed, not dropped.
        (
            json!(""),
            json!({ "type": "unsupported", "kind": "interactive.nfm_reply" }),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 4).await), expected);
    assert_eq!(contents(&history(&mut ana, &chat).await[1..]), expected);
}

#[tokio::test]
async fn r23_other_whatsapp_types_reach_the_agent_as_unsupported_and_none_is_dropped() {
    let server = server_with(vec![(Channel::Whatsapp, whatsapp("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = whatsapp_chat(&server, &mut ana, "wamid.in-other").await;

    let (status, text) = post_meta(
        &server,
        &fixture("meta/fixtures/whatsapp_unsupported.json"),
        APP_SECRET,
    )
    .await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":4}"#));
    let unsupported = |kind: &str| (json!(""), json!({ "type": "unsupported", "kind": kind }));
    let expected = vec![
        unsupported("reaction"),
        unsupported("contacts"),
        unsupported("order"),
        unsupported("unsupported"),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 4).await), expected);
    assert_eq!(contents(&history(&mut ana, &chat).await[1..]), expected);
}

// ----- Messenger ---------------------------------------------------------------------------------

/// The customer of the Messenger fixtures (a page-scoped id).
const PSID: &str = "1254459154682919";

/// A Messenger or Instagram page connected through the Graph API at `base_url`.
fn page(base_url: &str) -> PlatformConfig {
    platform(
        base_url,
        &[
            ("access_token", ACCESS_TOKEN),
            ("app_secret", APP_SECRET),
            ("verify_token", VERIFY_TOKEN),
        ],
    )
}

/// A Messenger text from `psid` with message id `mid`, in the documented shape.
fn messenger_text(psid: &str, mid: &str, text: &str) -> String {
    json!({
        "object": "page",
        "entry": [{ "id": "682498302938465", "time": 1765098000000u64, "messaging": [{
            "sender": { "id": psid }, "recipient": { "id": "682498302938465" },
            "timestamp": 1765098000000u64,
            "message": { "mid": mid, "text": text }
        }]}]
    })
    .to_string()
}

/// A Messenger customer (the fixtures' `PSID`) whose chat `ana` has taken; the chat's id.
async fn messenger_chat(server: &TestServer, ana: &mut AgentClient) -> String {
    let body = messenger_text(PSID, "m_first", "Hi there");
    assert_eq!(post_meta(server, &body, APP_SECRET).await.0, StatusCode::OK);
    let (chat, offer) = take_offer(ana).await;
    assert_eq!(offer["chat"]["channel"], "messenger");
    chat
}

#[tokio::test]
async fn r23_messenger_quick_replies_attachments_and_postbacks_reach_the_agent_and_a_redelivery_is_recorded_once(
) {
    let server = server_with(vec![(Channel::Messenger, page("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = messenger_chat(&server, &mut ana).await;
    let body = fixture("meta/fixtures/messenger_messages.json");

    let (status, text) = post_meta(&server, &body, APP_SECRET).await;

    // Five of the six events: the page's own echo is not a customer's message.
    assert_eq!((status, text.as_str()), (StatusCode::OK, r#"{"received":5}"#));
    let expected = vec![
        (json!("hello, world!"), Value::Null),
        (json!("Red"), json!({ "type": "reply", "id": "COLOR_RED" })),
        (
            json!(""),
            media(
                "image",
                None,
                Some("https://scontent.xx.fbcdn.net/v/photo.jpg"),
                None,
                None,
            ),
        ),
        (
            json!(""),
            media(
                "document",
                None,
                Some("https://cdn.fbsbx.com/v/invoice.pdf"),
                None,
                None,
            ),
        ),
        (
            json!("Talk to an agent"),
            json!({ "type": "reply", "id": "TALK_TO_AGENT" }),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 5).await), expected);
    let messages = history(&mut ana, &chat).await;
    assert_eq!(contents(&messages[1..]), expected);

    // Meta redelivers the webhook (same mids): nothing is recorded twice.
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    assert_eq!(
        post_meta(&server, &messenger_text(PSID, "m_first", "Hi there"), APP_SECRET)
            .await
            .0,
        StatusCode::OK
    );
    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), messages.len());
}

#[tokio::test]
async fn r23_a_badly_signed_messenger_webhook_is_401_and_records_nothing() {
    let server = server_with(vec![(Channel::Messenger, page("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = messenger_chat(&server, &mut ana).await;
    let body = messenger_text(PSID, "m_forged", "Send the refund to this account");

    let (status, text) = post_meta(&server, &body, "not-the-app-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    // Signed by Meta, then changed on the way.
    let signed = meta_signature(messenger_text(PSID, "m_forged", "Hi").as_bytes(), APP_SECRET);
    let headers = [("X-Hub-Signature-256", signed)];
    let (status, _) = post(&server, "/v1/native/meta", &headers, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a tampered body");
    let (status, _) = post(&server, "/v1/native/meta", &[], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned");

    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 1, "only the first message");
}

/// The Graph API answering Messenger sends with the message ids of the documented receipts
/// (`messenger_receipts.json`), so that those receipts are about our messages.
fn messenger_receipts_ok(n: usize) -> Answer {
    let mid = match n {
        1 => "mid.1458668856218:ed81099e15d3f4f233",
        2 => "mid.1458668856219:ed81099e15d3f4f234",
        _ => "mid.unexpected",
    };
    (
        200,
        vec![],
        json!({ "recipient_id": PSID, "message_id": mid }).to_string(),
    )
}

#[tokio::test]
async fn r25_messenger_delivery_receipts_move_our_messages_to_delivered_for_the_owner() {
    let mut meta = FakePlatform::start(vec![], messenger_receipts_ok).await;
    let server = server_with(vec![(Channel::Messenger, page(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = messenger_chat(&server, &mut ana).await;
    let mut seqs = Vec::new();
    for text in ["It left this morning", "Tracking: 1Z999"] {
        ana.send_message(&chat, text).await.expect_ok();
        assert_eq!(meta.next().await.json()["message"]["text"], text);
        seqs.push(status_until(&mut ana, "sent").await["seq"].as_u64());
    }

    let receipts = fixture("meta/fixtures/messenger_receipts.json");
    assert_eq!(post_meta(&server, &receipts, APP_SECRET).await.0, StatusCode::OK);

    let mut delivered = vec![
        status_until(&mut ana, "delivered").await["seq"].as_u64(),
        status_until(&mut ana, "delivered").await["seq"].as_u64(),
    ];
    delivered.sort();
    assert_eq!(delivered, seqs);
    let messages = history(&mut ana, &chat).await;
    for seq in seqs.iter().flatten() {
        assert_eq!(messages[*seq as usize]["delivery"]["status"], "delivered");
    }
}

// ----- Instagram ---------------------------------------------------------------------------------

fn instagram_ok(n: usize) -> Answer {
    (
        200,
        vec![],
        json!({ "recipient_id": "6853256758023434", "message_id": format!("aWdfZAG1faXRlbTpvdXQ-{n}") })
            .to_string(),
    )
}

/// Instagram's `messaging_seen` event: the customer read our message `mid`.
fn instagram_seen(mid: &str) -> String {
    json!({
        "object": "instagram",
        "entry": [{ "id": "17841405793187218", "time": 1765098000000u64, "messaging": [{
            "sender": { "id": "6853256758023434" }, "recipient": { "id": "17841405793187218" },
            "timestamp": 1765098000000u64,
            "read": { "mid": mid }
        }]}]
    })
    .to_string()
}

#[tokio::test]
async fn r25_an_instagram_read_event_moves_our_message_to_read_and_a_repeat_changes_nothing() {
    let mut meta = FakePlatform::start(vec![], instagram_ok).await;
    let server = server_with(vec![(Channel::Instagram, page(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let body = fixture("meta/fixtures/instagram_messages.json");
    assert_eq!(post_meta(&server, &body, APP_SECRET).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    ana.send_message(&chat, "Yes, in every size").await.expect_ok();
    let sent = meta.next().await;
    assert_eq!(
        (sent.path.as_str(), &sent.json()["recipient"]["id"]),
        ("/me/messages", &json!("6853256758023434"))
    );
    let seq = status_until(&mut ana, "sent").await["seq"].as_u64();

    let seen = instagram_seen("aWdfZAG1faXRlbTpvdXQ-1");
    assert_eq!(post_meta(&server, &seen, APP_SECRET).await.0, StatusCode::OK);

    assert_eq!(status_until(&mut ana, "read").await["seq"].as_u64(), seq);
    let messages = history(&mut ana, &chat).await;
    assert_eq!(
        messages[seq.expect("a seq") as usize]["delivery"]["status"],
        "read"
    );
    // Instagram sends no delivery receipts: `messaging_seen` is its only news of our messages.
    // Seen again (a redelivery): no second push.
    assert_eq!(post_meta(&server, &seen, APP_SECRET).await.0, StatusCode::OK);
    ana.expect_no_push("message_status").await;
}

/// Messenger's read receipt, in the documented shape: everything sent to the page's customer
/// `PSID` up to `watermark` was read.
fn messenger_read(watermark: chrono::DateTime<chrono::Utc>) -> String {
    let millis = watermark.timestamp_millis();
    json!({
        "object": "page",
        "entry": [{ "id": "682498302938465", "time": millis, "messaging": [{
            "sender": { "id": PSID }, "recipient": { "id": "682498302938465" },
            "timestamp": millis,
            "read": { "watermark": millis }
        }]}]
    })
    .to_string()
}

#[tokio::test]
async fn r25_a_messenger_read_watermark_moves_what_we_sent_before_it_to_read_and_nothing_after() {
    let mut meta = FakePlatform::start(vec![], messenger_receipts_ok).await;
    let server = server_with(vec![(Channel::Messenger, page(&meta.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = messenger_chat(&server, &mut ana).await;
    ana.send_message(&chat, "It left this morning").await.expect_ok();
    meta.next().await;
    let first = status_until(&mut ana, "sent").await["seq"].as_u64();
    server.advance(chrono::Duration::minutes(2));
    ana.send_message(&chat, "Tracking: 1Z999").await.expect_ok();
    meta.next().await;
    let second = status_until(&mut ana, "sent").await["seq"].as_u64();

    // Read up to a minute after the first message: the second was sent after that.
    let watermark = TestServer::start_time() + chrono::Duration::minutes(1);
    let (status, text) = post_meta(&server, &messenger_read(watermark), APP_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{text}");

    assert_eq!(status_until(&mut ana, "read").await["seq"].as_u64(), first);
    // The documented receipts (both delivered, and a read watermark from 2016): the second is
    // delivered now; the first, read already, stays read.
    let receipts = fixture("meta/fixtures/messenger_receipts.json");
    assert_eq!(post_meta(&server, &receipts, APP_SECRET).await.0, StatusCode::OK);
    assert_eq!(status_until(&mut ana, "delivered").await["seq"].as_u64(), second);
    ana.expect_no_push("message_status").await;
    let messages = history(&mut ana, &chat).await;
    let status_of = |seq: Option<u64>| messages[seq.expect("a seq") as usize]["delivery"]["status"].clone();
    assert_eq!(
        (status_of(first), status_of(second)),
        (json!("read"), json!("delivered"))
    );
}
