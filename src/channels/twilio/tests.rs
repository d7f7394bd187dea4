//! Twilio SMS (R23–R26). Fixtures under `fixtures/` follow Twilio's documented webhook
//! parameters (Messaging webhooks: `MessageSid`, `SmsSid`, `SmsStatus`, `NumMedia`,
//! `MediaUrl{N}`, `MediaContentType{N}`, …; status callbacks: `MessageStatus`, `ErrorCode`) and
//! its Messages API answers (the Message resource, and the `code`/`message`/`more_info`/`status`
//! error body). Expected signatures, Basic credentials and form bodies were computed apart from
//! this code, with Python's `hmac`, `base64` and `urllib.parse`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::TimeZone;

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name)).as_slice()
    };
}

const ACCOUNT: &str = "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX";
const TOKEN: &str = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
const WEBHOOK_URL: &str = "https://support.example.com/v1/webhooks/twilio/sms?ws=acme";
const CUSTOMER: &str = "+14155550199";

fn now() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 12, 7, 9, 0, 0)
        .single()
        .expect("valid time")
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    parse_form(body).expect("a form body")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn config(status_callback: bool) -> PlatformConfig {
    let mut settings = BTreeMap::from([
        ("account_sid".to_string(), ACCOUNT.to_string()),
        ("auth_token".to_string(), TOKEN.to_string()),
        ("from".to_string(), "+14155550100".to_string()),
    ]);
    if status_callback {
        settings.insert(
            "status_callback_url".into(),
            "https://support.example.com/v1/webhooks/twilio/status?ws=acme".into(),
        );
    }
    PlatformConfig {
        base_url: "http://127.0.0.1:9".into(),
        settings,
    }
}

fn outgoing(body: OutgoingBody) -> Outgoing {
    Outgoing {
        channel: Channel::Sms,
        to: CUSTOMER.into(),
        body,
        human_agent_tag: false,
        idempotency_key: "msg-01HZX3-attempt-independent".into(),
        email: None,
    }
}

#[test]
fn r23_the_signature_of_twilios_documented_example_verifies() {
    // The example of Twilio's request-validation documentation (twilio-php's "Validate
    // Incoming Requests"): auth token 12345, this URL and these parameters sign to
    // RSOYDt4T1cUTdK1PDd93/VVr8B8=. Given out of order, as a form may carry them.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let params = pairs(&[
        ("To", "+18005551212"),
        ("CallSid", "CA1234567890ABCDE"),
        ("From", "+14158675309"),
        ("Digits", "1234"),
        ("Caller", "+14158675309"),
    ]);
    assert_eq!(
        verify_signature(Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="), url, &params, "12345"),
        Ok(())
    );
    // Any change to the URL, a value, the token or the signature is refused.
    let bad = Err(WebhookError::BadSignature(SIGNATURE_HEADER));
    assert_eq!(
        verify_signature(
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &params,
            "12345"
        ),
        bad
    );
    let mut changed = params.clone();
    changed[3].1 = "1235".into();
    assert_eq!(
        verify_signature(Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="), url, &changed, "12345"),
        bad
    );
    assert_eq!(
        verify_signature(Some("RSOYDt4T1cUTdK1PDd93/VVr8B8="), url, &params, "12346"),
        bad
    );
    assert_eq!(
        verify_signature(Some("RSOYDt4T1cUTdK1PDd93/VVr8B9="), url, &params, "12345"),
        bad
    );
}

#[test]
fn r23_a_webhook_without_a_signature_or_with_a_wrong_one_is_refused() {
    let inbound = form(fixture!("inbound_sms.txt"));
    assert_eq!(
        verify_signature(Some("b+82tcwoG9NTEwtEO9iuxIZUNl4="), WEBHOOK_URL, &inbound, TOKEN),
        Ok(())
    );
    assert_eq!(
        verify_signature(None, WEBHOOK_URL, &inbound, TOKEN),
        Err(WebhookError::Unsigned(SIGNATURE_HEADER))
    );
    for wrong in ["", "b+82tcwoG9NTEwtEO9iuxIZUNl4", "9yA55ergZypvupFTdLLg5oIxipQ="] {
        assert_eq!(
            verify_signature(Some(wrong), WEBHOOK_URL, &inbound, TOKEN),
            Err(WebhookError::BadSignature(SIGNATURE_HEADER)),
            "{wrong:?}"
        );
    }
    // An unconfigured token lets nobody in: anyone can compute an empty key's signature.
    let empty_key = signature(WEBHOOK_URL, &inbound, "").expect("HMAC takes any key");
    assert_eq!(
        verify_signature(Some(&empty_key), WEBHOOK_URL, &inbound, ""),
        Err(WebhookError::BadSignature(SIGNATURE_HEADER))
    );
    let status = form(fixture!("status_undelivered.txt"));
    assert_eq!(
        verify_signature(Some("9yA55ergZypvupFTdLLg5oIxipQ="), WEBHOOK_URL, &status, TOKEN),
        Ok(())
    );
}

#[test]
fn r23_the_form_is_decoded_in_order_and_json_is_refused() {
    assert_eq!(
        parse_form(b"Body=Hi%2C+there+%F0%9F%91%8B&From=%2B1415&Empty=").expect("a form"),
        pairs(&[("Body", "Hi, there 👋"), ("From", "+1415"), ("Empty", "")])
    );
    assert!(
        matches!(parse_form(br#"{"MessageSid":"SM1"}"#), Err(WebhookError::Malformed(why)) if why.contains("JSON"))
    );
    assert!(
        matches!(parse_form(b"Body=\xff"), Err(WebhookError::Malformed(why)) if why.contains("not form-encoded"))
    );
}

#[test]
fn r23_an_sms_is_one_text_message_from_its_number() {
    let items = parse(&form(fixture!("inbound_sms.txt"))).expect("an inbound SMS");
    assert_eq!(
        items,
        vec![Delivered::Message(NativeMessage {
            channel: Channel::Sms,
            from: CUSTOMER.into(),
            name: None,
            provider_id: "SM1f0e8ae6ade43cb3c0ce4525424e404f".into(),
            sent_at: None,
            content: Content::Text("Hi, where is my order #2291?".into()),
            in_reply_to: Vec::new(),
        })]
    );
}

#[test]
fn r23_an_mms_is_one_media_item_per_attachment_the_first_captioned_by_the_body() {
    let items = parse(&form(fixture!("inbound_mms.txt"))).expect("an inbound MMS");
    let base = "https://api.twilio.com/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages/\
                MM5e3f0b0c1d2e3f4a5b6c7d8e9f0a1b2c/Media/";
    let item = |provider_id: &str, media: Media| {
        Delivered::Message(NativeMessage {
            channel: Channel::Sms,
            from: CUSTOMER.into(),
            name: None,
            provider_id: provider_id.into(),
            sent_at: None,
            content: Content::Media(media),
            in_reply_to: Vec::new(),
        })
    };
    assert_eq!(
        items,
        vec![
            item(
                "MM5e3f0b0c1d2e3f4a5b6c7d8e9f0a1b2c",
                Media {
                    kind: MediaKind::Image,
                    id: None,
                    url: Some(format!("{base}ME0a1b2c3d4e5f60718293a4b5c6d7e8f9")),
                    mime: Some("image/jpeg".into()),
                    filename: None,
                    caption: Some("Here is the damage".into()),
                }
            ),
            item(
                "MM5e3f0b0c1d2e3f4a5b6c7d8e9f0a1b2c/1",
                Media {
                    kind: MediaKind::Document,
                    id: None,
                    url: Some(format!("{base}ME1b2c3d4e5f60718293a4b5c6d7e8f9a0")),
                    mime: Some("text/vcard".into()),
                    filename: None,
                    caption: None,
                }
            ),
        ]
    );
}

#[test]
fn r23_media_kinds_an_empty_sms_and_a_whatsapp_location_are_kept() {
    let mms = |mime: &str| {
        let items = parse(&pairs(&[
            ("MessageSid", "MM1"),
            ("From", CUSTOMER),
            ("Body", ""),
            ("NumMedia", "1"),
            ("MediaUrl0", "https://api.twilio.com/m/ME1"),
            ("MediaContentType0", mime),
        ]))
        .expect("an MMS");
        match &items[..] {
            [Delivered::Message(NativeMessage {
                content: Content::Media(media),
                ..
            })] => {
                assert_eq!(media.caption, None, "an empty body is no caption");
                media.kind
            }
            other => panic!("expected one media item, got {other:?}"),
        }
    };
    assert_eq!(mms("image/gif"), MediaKind::Image);
    assert_eq!(mms("audio/amr"), MediaKind::Audio);
    assert_eq!(mms("video/3gpp"), MediaKind::Video);
    assert_eq!(mms("application/pdf"), MediaKind::Document);

    let empty = parse(&pairs(&[
        ("MessageSid", "SM2"),
        ("From", CUSTOMER),
        ("Body", ""),
        ("NumMedia", "0"),
    ]))
    .expect("an empty SMS");
    assert!(matches!(&empty[..], [Delivered::Message(m)] if m.content == Content::Text(String::new())));

    let location = parse(&pairs(&[
        ("MessageSid", "SM3"),
        ("From", "whatsapp:+14155550199"),
        ("ProfileName", "Ana"),
        ("Body", ""),
        ("NumMedia", "0"),
        ("Latitude", "40.416775"),
        ("Longitude", "-3.70379"),
        ("Label", "Puerta del Sol"),
    ]))
    .expect("a location");
    match &location[..] {
        [Delivered::Message(m)] => {
            assert_eq!(m.name.as_deref(), Some("Ana"));
            assert_eq!(
                m.content,
                Content::Location {
                    latitude: 40.416775,
                    longitude: -3.70379,
                    name: Some("Puerta del Sol".into()),
                    address: None
                }
            );
        }
        other => panic!("expected one location, got {other:?}"),
    }
}

#[test]
fn r23_a_retried_webhook_repeats_every_items_provider_id() {
    let first = parse(&form(fixture!("inbound_mms.txt"))).expect("an MMS");
    let retried = parse(&form(fixture!("inbound_mms.txt"))).expect("an MMS");
    let ids = |items: &[Delivered]| -> Vec<String> {
        items
            .iter()
            .map(|item| match item {
                Delivered::Message(m) => m.provider_id.clone(),
                Delivered::Status(s) => s.provider_id.clone(),
                Delivered::Watermark(w) => panic!("Twilio names its messages: {w:?}"),
            })
            .collect()
    };
    assert_eq!(ids(&first), ids(&retried));
    // Within one webhook, no two items share an id: neither would be taken for a duplicate.
    let mut unique = ids(&first);
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), first.len());
}

#[test]
fn r23_malformed_webhooks_are_refused_naming_the_parameter() {
    let cases = [
        (pairs(&[("From", CUSTOMER), ("Body", "hi")]), "`MessageSid`"),
        (pairs(&[("MessageSid", "SM1"), ("Body", "hi")]), "`From`"),
        (
            pairs(&[("MessageSid", "SM1"), ("From", CUSTOMER), ("NumMedia", "two")]),
            "`NumMedia` `two`",
        ),
        (
            pairs(&[("MessageSid", "SM1"), ("From", CUSTOMER), ("NumMedia", "1")]),
            "`MediaUrl0`",
        ),
        (
            pairs(&[("MessageSid", "SM1"), ("MessageStatus", "teleported")]),
            "`MessageStatus` `teleported`",
        ),
    ];
    for (params, says) in cases {
        match parse(&params) {
            Err(WebhookError::Malformed(why)) => assert!(why.contains(says), "{why:?} should say {says}"),
            other => panic!("{params:?} should be malformed, got {other:?}"),
        }
    }
}

#[test]
fn r25_status_callbacks_become_statuses_of_our_message() {
    let status = |params: &[(&str, &str)]| parse(&pairs(params)).expect("a status callback");
    let expect = |status: DeliveryStatus, reason: Option<&str>| {
        vec![Delivered::Status(NativeStatus {
            channel: Channel::Sms,
            provider_id: "SM7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d".into(),
            status,
            reason: reason.map(str::to_owned),
            at: None,
        })]
    };
    assert_eq!(
        parse(&form(fixture!("status_delivered.txt"))),
        Ok(expect(DeliveryStatus::Delivered, None))
    );
    assert_eq!(
        parse(&form(fixture!("status_undelivered.txt"))),
        Ok(expect(DeliveryStatus::Failed, Some("Twilio error 30003")))
    );
    let sid = ("MessageSid", "SM7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d");
    assert_eq!(
        status(&[sid, ("MessageStatus", "sent")]),
        expect(DeliveryStatus::Sent, None)
    );
    assert_eq!(
        status(&[sid, ("MessageStatus", "read")]),
        expect(DeliveryStatus::Read, None)
    );
    assert_eq!(
        status(&[sid, ("MessageStatus", "failed"), ("ErrorCode", "30007")]),
        expect(DeliveryStatus::Failed, Some("Twilio error 30007"))
    );
    assert_eq!(
        status(&[sid, ("MessageStatus", "failed")]),
        expect(
            DeliveryStatus::Failed,
            Some("Twilio reported the message failed without an error code")
        )
    );
    // Only the older parameter name: still a status.
    assert_eq!(
        status(&[("SmsSid", sid.1), ("SmsStatus", "delivered")]),
        expect(DeliveryStatus::Delivered, None)
    );
    // Twilio still holds it: nothing new beyond the send's own answer.
    for interim in ["queued", "accepted", "scheduled", "sending"] {
        assert_eq!(
            status(&[sid, ("MessageStatus", interim)]),
            Vec::new(),
            "{interim}"
        );
    }
}

#[test]
fn r24_messages_are_posted_form_encoded_with_basic_auth_and_the_idempotency_token() {
    let request = build_send(
        &outgoing(OutgoingBody::Text("We are on it: 50% off & free shipping".into())),
        &config(true),
    )
    .expect("a text message");
    assert_eq!(
        request,
        PlatformRequest {
            method: "POST",
            url: "http://127.0.0.1:9/2010-04-01/Accounts/ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX/Messages.json".into(),
            headers: vec![
                (
                    "Authorization".into(),
                    "Basic QUNYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWDo5ZjhlN2Q2YzViNGEzOTI4MTcwNmY1ZTRkM2MyYjFhMA=="
                        .into()
                ),
                ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
                ("I-Twilio-Idempotency-Token".into(), "msg-01HZX3-attempt-independent".into()),
            ],
            body: b"To=%2B14155550199&From=%2B14155550100&Body=We+are+on+it%3A+50%25+off+%26+free+shipping\
                    &StatusCallback=https%3A%2F%2Fsupport.example.com%2Fv1%2Fwebhooks%2Ftwilio%2Fstatus%3Fws%3Dacme"
                .to_vec(),
        }
    );
    // Without a status callback URL, no StatusCallback parameter.
    let request =
        build_send(&outgoing(OutgoingBody::Text("ok".into())), &config(false)).expect("a text message");
    assert_eq!(
        request.body,
        b"To=%2B14155550199&From=%2B14155550100&Body=ok".to_vec()
    );
}

#[test]
fn r24_templates_and_missing_settings_are_refused_by_name() {
    let template = OutgoingBody::Template {
        name: "order_update".into(),
        language: "en_US".into(),
        params: vec![],
    };
    let err = build_send(&outgoing(template), &config(false)).expect_err("SMS has no templates");
    assert!(err.contains("`order_update`"), "{err}");
    for key in ["account_sid", "auth_token", "from"] {
        let mut config = config(false);
        config.settings.remove(key);
        let err =
            build_send(&outgoing(OutgoingBody::Text("hi".into())), &config).expect_err("a missing setting");
        assert!(err.contains(&format!("`{key}`")), "{err}");
    }
}

#[test]
fn r24_a_created_message_answers_its_sid() {
    assert_eq!(
        read_answer(201, &[], fixture!("send_201.json"), now()),
        SendOutcome::Sent {
            provider_id: "SM7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d".into()
        }
    );
    // A 2xx without a sid is retried: the idempotency token makes that harmless.
    assert!(matches!(
        read_answer(201, &[], b"", now()),
        SendOutcome::Retry { after: None, .. }
    ));
}

#[test]
fn r24_rate_limits_and_server_errors_are_retried() {
    let headers = [("Retry-After".to_string(), "30".to_string())];
    assert_eq!(
        read_answer(429, &headers, fixture!("send_429.json"), now()),
        SendOutcome::Retry {
            after: Some(Duration::from_secs(30)),
            reason: "Twilio error 20429: Too Many Requests".into()
        }
    );
    assert_eq!(
        read_answer(429, &[], fixture!("send_429.json"), now()),
        SendOutcome::Retry {
            after: None,
            reason: "Twilio error 20429: Too Many Requests".into()
        }
    );
    assert_eq!(
        read_answer(503, &[], fixture!("send_503.json"), now()),
        SendOutcome::Retry {
            after: None,
            reason: "Twilio error 20503: Service unavailable".into()
        }
    );
    assert!(matches!(
        read_answer(502, &[], b"<html>Bad Gateway</html>", now()),
        SendOutcome::Retry { .. }
    ));
}

#[test]
fn r24_client_errors_fail_with_twilios_code_and_message() {
    assert_eq!(
        read_answer(400, &[], fixture!("send_400.json"), now()),
        SendOutcome::Failed {
            reason: "Twilio error 21211: Invalid 'To' Phone Number: +1415555".into()
        }
    );
    let unsubscribed =
        br#"{"code":21610,"message":"Attempt to send to unsubscribed recipient","status":400}"#;
    assert_eq!(
        read_answer(400, &[], unsubscribed, now()),
        SendOutcome::Failed {
            reason: "Twilio error 21610: Attempt to send to unsubscribed recipient".into()
        }
    );
    assert_eq!(
        read_answer(401, &[], b"", now()),
        SendOutcome::Failed {
            reason: "Twilio answered 401 with no body".into()
        }
    );
}

#[test]
fn r26_sms_opt_out_keywords_opt_out() {
    for word in [
        "STOP",
        "stop",
        "  Stop\n",
        "STOPALL",
        "unsubscribe",
        "Cancel",
        "END",
        "quit",
        "OPTOUT",
        "revoke",
    ] {
        assert_eq!(opt_keyword(word), Some(OptKeyword::Out), "{word:?}");
    }
}

#[test]
fn r26_start_unstop_and_yes_opt_back_in() {
    for word in ["START", "start", " Unstop ", "YES", "yes"] {
        assert_eq!(opt_keyword(word), Some(OptKeyword::In), "{word:?}");
    }
}

#[test]
fn r26_a_keyword_only_counts_as_the_whole_message() {
    for text in [
        "please stop",
        "stop it",
        "STOP!",
        "unstoppable",
        "restart",
        "#STOP",
        "",
        "s t o p",
        "YES please",
    ] {
        assert_eq!(opt_keyword(text), None, "{text:?}");
    }
}
