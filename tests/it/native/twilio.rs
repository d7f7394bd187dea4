//! SMS through Twilio (R23–R26): form-encoded webhooks signed with `X-Twilio-Signature`, status
//! callbacks, the Messages API, and the SMS opt-out keywords.

use reqwest::StatusCode;
use switchboard::channels::PlatformConfig;
use switchboard::core::Channel;

use super::support::{
    fixture, history, platform, post, post_twilio, server_with, status_until, take_offer, twilio_ok,
    twilio_signature, FakePlatform, TWILIO_SID, TWILIO_TOKEN, TWILIO_URL,
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
