//! Telegram (R23–R25): Bot API updates with the `X-Telegram-Bot-Api-Secret-Token` header, and
//! `sendMessage`.

use reqwest::StatusCode;
use serde_json::json;
use switchboard::core::Channel;

use super::support::{
    fixture, history, platform, post, server_with, status_until, take_offer, telegram_ok, FakePlatform,
    BOT_TOKEN, TG_SECRET,
};

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
