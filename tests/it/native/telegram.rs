//! Telegram (R23–R25): Bot API updates with the `X-Telegram-Bot-Api-Secret-Token` header, and
//! `sendMessage`.

use reqwest::StatusCode;
use serde_json::json;
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;

use super::support::{
    contents, customer_messages, fixture, history, media, platform, post, server_with, status_until,
    take_offer, telegram_ok, FakePlatform, BOT_TOKEN, TG_SECRET,
};
use crate::it::support::{AgentClient, TestServer};

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

/// Telegram at a platform that is never called: these tests only receive.
fn receiving_only() -> PlatformConfig {
    platform(
        "http://127.0.0.1:9",
        &[("bot_token", BOT_TOKEN), ("secret_token", TG_SECRET)],
    )
}

async fn post_update(server: &TestServer, update: String, secret: Option<&str>) -> (StatusCode, String) {
    let headers: Vec<(&str, String)> = secret
        .map(|s| ("X-Telegram-Bot-Api-Secret-Token", s.to_owned()))
        .into_iter()
        .collect();
    post(server, "/v1/native/telegram", &headers, update).await
}

/// The fixtures' customer (chat 111222333) writing the documented text; the chat `ana` took.
async fn telegram_chat(server: &TestServer, ana: &mut AgentClient) -> String {
    let (status, text) = post_update(server, fixture("telegram/fixtures/text.json"), Some(TG_SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (chat, offer) = take_offer(ana).await;
    assert_eq!(offer["chat"]["channel"], "telegram");
    chat
}

#[tokio::test]
async fn r23_telegram_photos_documents_voice_audio_and_locations_reach_the_agent_and_the_history() {
    let server = server_with(vec![(Channel::Telegram, receiving_only())]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = telegram_chat(&server, &mut ana).await;

    for name in ["photo", "document", "voice", "audio", "location"] {
        let update = fixture(&format!("telegram/fixtures/{name}.json"));
        let (status, text) = post_update(&server, update, Some(TG_SECRET)).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, r#"{"received":1}"#),
            "{name}"
        );
    }

    let expected = vec![
        // The largest of the sizes Telegram made, not the first.
        (
            json!("The box arrived broken"),
            media(
                "image",
                Some("AgACAgQAAxkBAAMqlarge"),
                None,
                Some("image/jpeg"),
                None,
            ),
        ),
        (
            json!("Invoice attached"),
            media(
                "document",
                Some("BQACAgQAAxkBAAMrdoc"),
                None,
                Some("application/pdf"),
                Some("invoice-2291.pdf"),
            ),
        ),
        (
            json!(""),
            media(
                "audio",
                Some("AwACAgQAAxkBAAMtvoice"),
                None,
                Some("audio/ogg"),
                None,
            ),
        ),
        (
            json!(""),
            media(
                "audio",
                Some("CQACAgQAAxkBAAMsaudio"),
                None,
                Some("audio/mpeg"),
                Some("recording.mp3"),
            ),
        ),
        (
            json!(""),
            json!({ "type": "location", "latitude": "40.416775", "longitude": "-3.70379", "name": null, "address": null }),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 5).await), expected);
    assert_eq!(contents(&history(&mut ana, &chat).await[1..]), expected);
}

#[tokio::test]
async fn r23_a_telegram_button_press_is_a_reply_and_an_edit_is_a_new_unsupported_message() {
    let server = server_with(vec![(Channel::Telegram, receiving_only())]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = telegram_chat(&server, &mut ana).await;

    for name in ["callback_query", "edited_message"] {
        let update = fixture(&format!("telegram/fixtures/{name}.json"));
        let (status, text) = post_update(&server, update, Some(TG_SECRET)).await;
        assert_eq!(
            (status, text.as_str()),
            (StatusCode::OK, r#"{"received":1}"#),
            "{name}"
        );
    }

    let expected = vec![
        // The button's data is the id; the keyboard's message is the title (the update does
        // not carry the button's label).
        (
            json!("Was your problem solved?"),
            json!({ "type": "reply", "id": "solved_yes" }),
        ),
        // An edit is neither dropped nor applied over the original: the agent learns that the
        // customer changed a message, and the history keeps what was first said.
        (
            json!(""),
            json!({ "type": "unsupported", "kind": "edited_message" }),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 2).await), expected);
    let messages = history(&mut ana, &chat).await;
    assert_eq!(messages[0]["text"], "Hola, my order has not arrived");
    assert_eq!(contents(&messages[1..]), expected);
}

#[tokio::test]
async fn r23_a_telegram_update_with_a_wrong_or_missing_secret_token_is_refused_and_not_recorded() {
    let server = server_with(vec![(Channel::Telegram, receiving_only())]).await;
    let mut ana = server.agent("ana").connect().await;
    let chat = telegram_chat(&server, &mut ana).await;
    let photo = fixture("telegram/fixtures/photo.json");

    let (status, text) = post_update(&server, photo.clone(), Some("telegram-secret-tokeN")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("X-Telegram-Bot-Api-Secret-Token"), "{text}");
    let (status, text) = post_update(&server, photo.clone(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    let (status, _) = post_update(&server, photo.clone(), Some("")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "an empty token");

    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 1);
    // Refused, not remembered: the same update with the right token is taken.
    assert_eq!(
        post_update(&server, photo, Some(TG_SECRET)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        customer_messages(&mut ana, &chat, 1).await[0]["text"],
        "The box arrived broken"
    );
}

// Telegram has no delivery or read receipts for bots: nothing in the Bot API reports what became
// of a message after `sendMessage` answered, so a Telegram message we sent stays `sent` (R25),
// and there is no status webhook to test here.
