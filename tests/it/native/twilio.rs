//! SMS through Twilio (R23–R26): form-encoded webhooks signed with `X-Twilio-Signature`, status
//! callbacks, the Messages API, and the SMS opt-out keywords.

use reqwest::StatusCode;
use serde_json::json;
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;

use super::support::{
    contents, customer_messages, fixture, history, media, platform, post, post_twilio, server_with,
    status_until, take_offer, twilio_ok, twilio_signature, FakePlatform, TWILIO_SID, TWILIO_TOKEN,
    TWILIO_URL,
};
use crate::it::support::TestServer;

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

/// A fixture's form-encoded body as its parameters, in order.
fn form_fixture(name: &str) -> Vec<(String, String)> {
    let raw = fixture(&format!("twilio/fixtures/{name}"));
    form_urlencoded::parse(raw.trim().as_bytes())
        .into_owned()
        .collect()
}

async fn post_form(server: &TestServer, form: &[(String, String)]) -> (StatusCode, String) {
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    post_twilio(server, &form).await
}

#[tokio::test]
async fn r23_an_mms_reaches_the_agent_with_each_medium_and_a_retried_webhook_is_recorded_once() {
    let server = server_with(vec![(Channel::Sms, twilio("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(post_sms(&server, sms("SM0100", "Hello")).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    let mms = form_fixture("inbound_mms.txt");

    let (status, text) = post_form(&server, &mms).await;

    assert_eq!((status, text.as_str()), (StatusCode::OK, "<Response></Response>"));
    let base = "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/MM5e3f0b0c1d2e3f4a5b6c7d8e9f0a1b2c/Media";
    let expected = vec![
        // NumMedia=2: the body is the first medium's caption; a vCard is a document.
        (
            json!("Here is the damage"),
            media(
                "image",
                None,
                Some(&format!("{base}/ME0a1b2c3d4e5f60718293a4b5c6d7e8f9")),
                Some("image/jpeg"),
                None,
            ),
        ),
        (
            json!(""),
            media(
                "document",
                None,
                Some(&format!("{base}/ME1b2c3d4e5f60718293a4b5c6d7e8f9a0")),
                Some("text/vcard"),
                None,
            ),
        ),
    ];
    assert_eq!(contents(&customer_messages(&mut ana, &chat, 2).await), expected);
    assert_eq!(contents(&history(&mut ana, &chat).await[1..]), expected);

    // Twilio retries a webhook it got no answer to, with the same MessageSid: each medium once.
    assert_eq!(post_form(&server, &mms).await.0, StatusCode::OK);
    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 3);
}

#[tokio::test]
async fn r23_a_twilio_webhook_signed_with_another_token_or_changed_on_the_way_is_401_and_records_nothing() {
    let server = server_with(vec![(Channel::Sms, twilio("http://127.0.0.1:9"))]).await;
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(post_sms(&server, sms("SM0200", "Hello")).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    let form: Vec<(String, String)> = sms("SM0201", "Call me at +1 555 0100")
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter())
        .finish();
    let send = |signature: String, body: String| {
        let headers = [
            ("X-Twilio-Signature", signature),
            ("Content-Type", "application/x-www-form-urlencoded".to_owned()),
        ];
        let server = &server;
        async move { post(server, "/v1/native/twilio", &headers, body).await }
    };

    let (status, text) = send(twilio_signature(TWILIO_URL, &form, "another-token"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{text}");
    assert!(text.contains("X-Twilio-Signature"), "{text}");
    // Signed as Twilio would, then one parameter changed.
    let tampered = body.replace("555+0100", "555+0199");
    let (status, _) = send(twilio_signature(TWILIO_URL, &form, TWILIO_TOKEN), tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a changed body");
    let (status, _) = post(&server, "/v1/native/twilio", &[], body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "unsigned");

    ana.expect_no_push("customer_message").await;
    assert_eq!(history(&mut ana, &chat).await.len(), 1);
}

#[tokio::test]
async fn r25_an_undelivered_status_callback_fails_our_sms_with_twilios_error_code() {
    let mut twilio_api = FakePlatform::start(vec![], twilio_ok).await;
    let server = server_with(vec![(Channel::Sms, twilio(&twilio_api.url()))]).await;
    let mut ana = server.agent("ana").connect().await;
    assert_eq!(post_sms(&server, sms("SM0300", "Hello")).await.0, StatusCode::OK);
    let (chat, _) = take_offer(&mut ana).await;
    ana.send_message(&chat, "Your refund is on its way")
        .await
        .expect_ok();
    twilio_api.next().await;
    let seq = status_until(&mut ana, "sent").await["seq"].as_u64();

    // The documented callback, about the message Twilio's API said it queued.
    let sid = format!("SMout{:030}", 1);
    let callback: Vec<(String, String)> = form_fixture("status_undelivered.txt")
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "MessageSid" | "SmsSid" => (k, sid.clone()),
            _ => (k, v),
        })
        .collect();
    assert_eq!(post_form(&server, &callback).await.0, StatusCode::OK);

    let failed = status_until(&mut ana, "failed").await;
    assert_eq!(failed["seq"].as_u64(), seq);
    assert_eq!(failed["delivery"]["reason"], "Twilio error 30003");
    let messages = history(&mut ana, &chat).await;
    assert_eq!(
        messages[seq.expect("a seq") as usize]["delivery"],
        json!({ "status": "failed", "reason": "Twilio error 30003" })
    );
}
