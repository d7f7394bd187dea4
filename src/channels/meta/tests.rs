//! Meta's webhooks and send API, from the payloads of Meta's own documentation (fixtures/).

use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;

use super::*;

const WHATSAPP_TEXT: &str = include_str!("fixtures/whatsapp_text.json");
const WHATSAPP_MEDIA: &str = include_str!("fixtures/whatsapp_media.json");
const WHATSAPP_LOCATION: &str = include_str!("fixtures/whatsapp_location.json");
const WHATSAPP_REPLIES: &str = include_str!("fixtures/whatsapp_replies.json");
const WHATSAPP_UNSUPPORTED: &str = include_str!("fixtures/whatsapp_unsupported.json");
const WHATSAPP_STATUSES: &str = include_str!("fixtures/whatsapp_statuses.json");
const MESSENGER_MESSAGES: &str = include_str!("fixtures/messenger_messages.json");
const MESSENGER_RECEIPTS: &str = include_str!("fixtures/messenger_receipts.json");
const INSTAGRAM_MESSAGES: &str = include_str!("fixtures/instagram_messages.json");

const APP_SECRET: &str = "meta-app-secret";

fn messages(body: &str) -> Vec<NativeMessage> {
    parse(body.as_bytes())
        .expect("a documented payload parses")
        .into_iter()
        .filter_map(|d| match d {
            Delivered::Message(m) => Some(m),
            Delivered::Status(_) | Delivered::Watermark(_) => None,
        })
        .collect()
}

fn statuses(body: &str) -> Vec<NativeStatus> {
    parse(body.as_bytes())
        .expect("a documented payload parses")
        .into_iter()
        .filter_map(|d| match d {
            Delivered::Status(s) => Some(s),
            Delivered::Message(_) | Delivered::Watermark(_) => None,
        })
        .collect()
}

fn contents(body: &str) -> Vec<Content> {
    messages(body).into_iter().map(|m| m.content).collect()
}

fn secs(s: i64) -> Option<Timestamp> {
    Utc.timestamp_opt(s, 0).single()
}

fn millis(ms: i64) -> Option<Timestamp> {
    Utc.timestamp_millis_opt(ms).single()
}

fn sign(body: &[u8], secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The fixture as a JSON value, changed by `edit`, back to bytes.
fn edited(body: &str, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_str(body).expect("a fixture is JSON");
    edit(&mut value);
    value.to_string().into_bytes()
}

// --- R23: the handshake and the signature -------------------------------------------------------

fn handshake(mode: Option<&str>, token: Option<&str>, challenge: Option<&str>) -> BTreeMap<String, String> {
    [
        ("hub.mode", mode),
        ("hub.verify_token", token),
        ("hub.challenge", challenge),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
    .collect()
}

#[test]
fn r23_handshake_with_the_right_token_echoes_the_challenge() {
    let query = handshake(Some("subscribe"), Some("s3cret-verify"), Some("1158201444"));
    assert_eq!(
        verify_handshake(&query, "s3cret-verify"),
        Ok("1158201444".to_owned())
    );
}

#[test]
fn r23_handshake_with_a_wrong_or_missing_token_or_mode_is_refused() {
    let wrong = handshake(Some("subscribe"), Some("guess"), Some("1158201444"));
    assert_eq!(
        verify_handshake(&wrong, "s3cret-verify"),
        Err(WebhookError::BadSignature("hub.verify_token"))
    );
    let missing = handshake(Some("subscribe"), None, Some("1158201444"));
    assert_eq!(
        verify_handshake(&missing, "s3cret-verify"),
        Err(WebhookError::Unsigned("hub.verify_token"))
    );
    let empty = handshake(Some("subscribe"), Some(""), Some("1158201444"));
    assert_eq!(
        verify_handshake(&empty, ""),
        Err(WebhookError::BadSignature("hub.verify_token")),
        "an unset verify token admits nobody"
    );
    let unsubscribe = handshake(Some("unsubscribe"), Some("s3cret-verify"), Some("1"));
    assert!(matches!(
        verify_handshake(&unsubscribe, "s3cret-verify"),
        Err(WebhookError::Malformed(m)) if m.contains("hub.mode")
    ));
    let no_challenge = handshake(Some("subscribe"), Some("s3cret-verify"), None);
    assert_eq!(
        verify_handshake(&no_challenge, "s3cret-verify"),
        Err(WebhookError::Malformed("hub.challenge is missing".to_owned()))
    );
}

#[test]
fn r23_a_signed_body_verifies_and_a_bad_signature_is_refused() {
    let body = WHATSAPP_TEXT.as_bytes();
    let signed = sign(body, APP_SECRET);
    assert_eq!(verify_signature(Some(&signed), body, APP_SECRET), Ok(()));
    assert_eq!(
        verify_signature(
            Some(&signed.to_uppercase().replace("SHA256=", "sha256=")),
            body,
            APP_SECRET
        ),
        Ok(()),
        "hex digits in either case"
    );

    let bad = Err(WebhookError::BadSignature(SIGNATURE_HEADER));
    let mut tampered = body.to_vec();
    tampered[40] ^= 1;
    assert_eq!(verify_signature(Some(&signed), &tampered, APP_SECRET), bad);
    assert_eq!(
        verify_signature(Some(&sign(body, "guess")), body, APP_SECRET),
        bad
    );
    assert_eq!(
        verify_signature(Some(&signed), body, ""),
        bad,
        "no secret, no pass"
    );
    let digits = "ab".repeat(32);
    for malformed in [
        digits.clone(),
        format!("sha1={digits}"),
        "sha256=".to_owned(),
        format!("sha256={digits}00"),
    ] {
        assert_eq!(
            verify_signature(Some(&malformed), body, APP_SECRET),
            bad,
            "{malformed}"
        );
    }
}

#[test]
fn r23_a_missing_signature_is_refused() {
    assert_eq!(
        verify_signature(None, WHATSAPP_TEXT.as_bytes(), APP_SECRET),
        Err(WebhookError::Unsigned("X-Hub-Signature-256"))
    );
}

// --- R23: WhatsApp messages ---------------------------------------------------------------------

#[test]
fn r23_whatsapp_text_carries_sender_name_id_and_time() {
    assert_eq!(
        messages(WHATSAPP_TEXT),
        vec![NativeMessage {
            channel: Channel::Whatsapp,
            from: "16505551234".to_owned(),
            name: Some("Sheena Nelson".to_owned()),
            provider_id: "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=".to_owned(),
            sent_at: secs(1_749_416_383),
            content: Content::Text("Does it come in another color?".to_owned()),
            in_reply_to: vec![],
        }]
    );
}

#[test]
fn r23_whatsapp_image_document_audio_video_and_sticker_are_media() {
    let media = |kind, id: &str, mime: &str, filename: Option<&str>, caption: Option<&str>| {
        Content::Media(Media {
            kind,
            id: Some(id.to_owned()),
            url: None,
            mime: Some(mime.to_owned()),
            filename: filename.map(str::to_owned),
            caption: caption.map(str::to_owned),
        })
    };
    assert_eq!(
        contents(WHATSAPP_MEDIA),
        vec![
            media(
                MediaKind::Image,
                "1003383421387256",
                "image/jpeg",
                None,
                Some("Black jacket")
            ),
            media(
                MediaKind::Document,
                "1003383421387257",
                "application/pdf",
                Some("receipt-0420.pdf"),
                Some("Receipt")
            ),
            media(
                MediaKind::Audio,
                "1003383421387258",
                "audio/ogg; codecs=opus",
                None,
                None
            ),
            media(
                MediaKind::Video,
                "1003383421387259",
                "video/mp4",
                None,
                Some("It came like this")
            ),
            media(MediaKind::Sticker, "1003383421387260", "image/webp", None, None),
        ]
    );
    let ids: Vec<_> = messages(WHATSAPP_MEDIA)
        .into_iter()
        .map(|m| m.provider_id)
        .collect();
    assert_eq!(
        ids,
        [
            "wamid.IMAGE",
            "wamid.DOCUMENT",
            "wamid.AUDIO",
            "wamid.VIDEO",
            "wamid.STICKER"
        ]
    );
}

#[test]
fn r23_whatsapp_location() {
    assert_eq!(
        contents(WHATSAPP_LOCATION),
        vec![Content::Location {
            latitude: 37.483253479003906,
            longitude: -122.14960479736328,
            name: Some("Main Office".to_owned()),
            address: Some("1 Hacker Way, Menlo Park, CA 94025".to_owned()),
        }]
    );
}

#[test]
fn r23_whatsapp_button_list_and_template_replies_are_replies_and_flows_are_typed() {
    let reply = |id: &str, title: &str| Content::Reply {
        id: id.to_owned(),
        title: title.to_owned(),
    };
    assert_eq!(
        contents(WHATSAPP_REPLIES),
        vec![
            reply("cancel-order", "Cancel order"),
            reply("priority_express", "Priority Mail Express"),
            reply("unsubscribe", "Stop promotions"),
            Content::Unsupported {
                kind: "interactive.nfm_reply".to_owned()
            },
        ]
    );
}

#[test]
fn r23_whatsapp_reactions_contacts_orders_and_unknown_types_are_typed_unsupported() {
    let kinds: Vec<_> = contents(WHATSAPP_UNSUPPORTED)
        .into_iter()
        .map(|c| match c {
            Content::Unsupported { kind } => kind,
            other => panic!("expected unsupported, got {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["reaction", "contacts", "order", "unsupported"]);
}

#[test]
fn r23_a_malformed_whatsapp_payload_names_the_field() {
    let no_type = edited(WHATSAPP_TEXT, |v| {
        v["entry"][0]["changes"][0]["value"]["messages"][0]
            .as_object_mut()
            .expect("an object")
            .remove("type");
    });
    assert_eq!(
        parse(&no_type),
        Err(WebhookError::Malformed(
            "entry[0].changes[0].value.messages[0].type is missing".to_owned()
        ))
    );
    let bad_time = edited(WHATSAPP_TEXT, |v| {
        v["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"] = json!("yesterday");
    });
    assert_eq!(
        parse(&bad_time),
        Err(WebhookError::Malformed(
            "entry[0].changes[0].value.messages[0].timestamp is not a time in Unix seconds".to_owned()
        ))
    );
    let no_media_id = edited(WHATSAPP_MEDIA, |v| {
        v["entry"][0]["changes"][0]["value"]["messages"][1]["document"]["id"] = Value::Null;
    });
    assert_eq!(
        parse(&no_media_id),
        Err(WebhookError::Malformed(
            "entry[0].changes[0].value.messages[1].document.id is missing".to_owned()
        ))
    );
    let entry_not_array = edited(WHATSAPP_TEXT, |v| v["entry"] = json!({}));
    assert_eq!(
        parse(&entry_not_array),
        Err(WebhookError::Malformed("entry is not an array".to_owned()))
    );
}

#[test]
fn r23_an_unknown_object_or_a_body_that_is_not_json_is_refused() {
    let other = edited(WHATSAPP_TEXT, |v| v["object"] = json!("user"));
    assert!(matches!(parse(&other), Err(WebhookError::Malformed(m)) if m.contains("object `user`")));
    assert_eq!(
        parse(b"{}"),
        Err(WebhookError::Malformed("object is missing".to_owned()))
    );
    assert!(
        matches!(parse(b"hub.mode=subscribe"), Err(WebhookError::Malformed(m)) if m.contains("not JSON"))
    );
    assert!(matches!(parse(b"[]"), Err(WebhookError::Malformed(m)) if m.contains("not a JSON object")));
}

#[test]
fn r23_whatsapp_changes_other_than_messages_are_not_refused() {
    let template_review = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "102290129340398", "changes": [{
            "field": "message_template_status_update",
            "value": { "event": "APPROVED", "message_template_id": 1, "message_template_name": "order_update" }
        }]}]
    });
    assert_eq!(parse(template_review.to_string().as_bytes()), Ok(vec![]));
}

// --- R25: WhatsApp statuses ---------------------------------------------------------------------

#[test]
fn r25_whatsapp_sent_delivered_read_and_failed_with_the_reason() {
    let id = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3MTE5MjVBOTE3MDk5QUVFM0YA";
    let status = |status, at, reason: Option<&str>, provider_id: &str| NativeStatus {
        channel: Channel::Whatsapp,
        provider_id: provider_id.to_owned(),
        status,
        reason: reason.map(str::to_owned),
        at: secs(at),
    };
    assert_eq!(
        statuses(WHATSAPP_STATUSES),
        vec![
            status(DeliveryStatus::Sent, 1_750_263_773, None, id),
            status(DeliveryStatus::Delivered, 1_750_263_774, None, id),
            status(DeliveryStatus::Read, 1_750_263_775, None, id),
            status(
                DeliveryStatus::Failed,
                1_750_263_776,
                Some(
                    "Re-engagement message: Message failed to send because more than 24 hours have \
                     passed since the customer last replied to this number. (code 131047)"
                ),
                "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJBOEY0NUQ0QzM1RkQ3NkM2RjAA"
            ),
        ]
    );
}

#[test]
fn r25_a_whatsapp_status_without_its_status_names_the_field() {
    let body = edited(WHATSAPP_STATUSES, |v| {
        v["entry"][0]["changes"][0]["value"]["statuses"][3]
            .as_object_mut()
            .expect("an object")
            .remove("status");
    });
    assert_eq!(
        parse(&body),
        Err(WebhookError::Malformed(
            "entry[0].changes[0].value.statuses[3].status is missing".to_owned()
        ))
    );
}

// --- R23/R25: Messenger and Instagram -----------------------------------------------------------

#[test]
fn r23_messenger_text_quick_reply_attachments_and_postback_and_the_echo_is_ignored() {
    let got = messages(MESSENGER_MESSAGES);
    assert!(got
        .iter()
        .all(|m| m.channel == Channel::Messenger && m.from == "1254459154682919"));
    assert!(got.iter().all(|m| m.name.is_none()));
    let ids: Vec<_> = got.iter().map(|m| m.provider_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "m_1457764197618:41d102a3e1ae206a38",
            "m_QUICKREPLY",
            "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
            "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c#1",
            "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P",
        ],
        "the echo (our own message) is left out; a second attachment gets its own id"
    );
    assert_eq!(got[0].sent_at, millis(1_458_692_752_478));
    let url_media = |kind, url: &str| {
        Content::Media(Media {
            kind,
            id: None,
            url: Some(url.to_owned()),
            mime: None,
            filename: None,
            caption: None,
        })
    };
    assert_eq!(
        got.into_iter().map(|m| m.content).collect::<Vec<_>>(),
        vec![
            Content::Text("hello, world!".to_owned()),
            Content::Reply {
                id: "COLOR_RED".to_owned(),
                title: "Red".to_owned()
            },
            url_media(MediaKind::Image, "https://scontent.xx.fbcdn.net/v/photo.jpg"),
            url_media(MediaKind::Document, "https://cdn.fbsbx.com/v/invoice.pdf"),
            Content::Reply {
                id: "TALK_TO_AGENT".to_owned(),
                title: "Talk to an agent".to_owned()
            },
        ]
    );
}

#[test]
fn r23_messenger_location_sticker_and_fallback_attachments() {
    let body = json!({
        "object": "page",
        "entry": [{ "id": "682498302938465", "time": 1, "messaging": [{
            "sender": { "id": "1254459154682919" },
            "recipient": { "id": "682498302938465" },
            "timestamp": 1458692752478_i64,
            "message": { "mid": "m_ATTACH", "attachments": [
                { "type": "location", "title": "Pinned Location",
                  "payload": { "coordinates": { "lat": 52.52, "long": 13.405 } } },
                { "type": "image", "payload": { "url": "https://scontent.xx.fbcdn.net/sticker.png", "sticker_id": 369239263222822_i64 } },
                { "type": "fallback", "title": "A shared link", "url": "https://example.com", "payload": null }
            ]}
        }]}]
    });
    let got = contents(&body.to_string());
    assert_eq!(
        got[0],
        Content::Location {
            latitude: 52.52,
            longitude: 13.405,
            name: Some("Pinned Location".to_owned()),
            address: None
        }
    );
    assert!(matches!(&got[1], Content::Media(m) if m.kind == MediaKind::Sticker));
    assert_eq!(
        got[2],
        Content::Unsupported {
            kind: "fallback".to_owned()
        }
    );
}

#[test]
fn r25_messenger_delivery_gives_a_status_per_mid_and_a_read_gives_the_customers_watermark() {
    let delivered = |mid: &str| NativeStatus {
        channel: Channel::Messenger,
        provider_id: mid.to_owned(),
        status: DeliveryStatus::Delivered,
        reason: None,
        at: None,
    };
    assert_eq!(
        parse(MESSENGER_RECEIPTS.as_bytes()),
        Ok(vec![
            Delivered::Status(delivered("mid.1458668856218:ed81099e15d3f4f233")),
            Delivered::Status(delivered("mid.1458668856219:ed81099e15d3f4f234")),
            Delivered::Watermark(NativeWatermark {
                channel: Channel::Messenger,
                customer: "1254459154682919".to_owned(),
                status: DeliveryStatus::Read,
                up_to: chrono::DateTime::from_timestamp_millis(1458668856253).expect("a time"),
            }),
        ]),
        "the read event names no message: everything sent up to its watermark was read"
    );
    // A delivery receipt without `mids` says what arrived by its watermark alone.
    let body = edited(MESSENGER_RECEIPTS, |v| {
        v["entry"][0]["messaging"][0]["delivery"]
            .as_object_mut()
            .expect("an object")
            .remove("mids");
    });
    assert_eq!(
        parse(&body).expect("parses")[0],
        Delivered::Watermark(NativeWatermark {
            channel: Channel::Messenger,
            customer: "1254459154682919".to_owned(),
            status: DeliveryStatus::Delivered,
            up_to: chrono::DateTime::from_timestamp_millis(1458668856253).expect("a time"),
        })
    );
}

#[test]
fn r23_a_malformed_messenger_event_names_the_field() {
    let body = edited(MESSENGER_MESSAGES, |v| {
        v["entry"][0]["messaging"][0]["message"]
            .as_object_mut()
            .expect("an object")
            .remove("mid");
    });
    assert_eq!(
        parse(&body),
        Err(WebhookError::Malformed(
            "entry[0].messaging[0].message.mid is missing".to_owned()
        ))
    );
    let no_sender = edited(MESSENGER_MESSAGES, |v| {
        v["entry"][0]["messaging"][1]
            .as_object_mut()
            .expect("an object")
            .remove("sender");
    });
    assert_eq!(
        parse(&no_sender),
        Err(WebhookError::Malformed(
            "entry[0].messaging[1].sender is missing".to_owned()
        ))
    );
}

#[test]
fn r23_instagram_messages_are_instagram_and_its_echo_is_ignored() {
    let got = messages(INSTAGRAM_MESSAGES);
    assert!(got
        .iter()
        .all(|m| m.channel == Channel::Instagram && m.from == "6853256758023434"));
    assert_eq!(
        got.iter().map(|m| m.provider_id.as_str()).collect::<Vec<_>>(),
        [
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1NzkzMTg3MjE4",
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1NzkzMTg3MjE5",
            "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1NzkzMTg3MjE5#1",
        ]
    );
    assert_eq!(
        got[0].content,
        Content::Text("Is the blue one still in stock?".to_owned())
    );
    assert_eq!(got[0].sent_at, millis(1_569_262_485_349));
    assert!(matches!(&got[1].content, Content::Media(m) if m.kind == MediaKind::Image));
    assert_eq!(
        got[2].content,
        Content::Unsupported {
            kind: "ig_reel".to_owned()
        }
    );
}

#[test]
fn r25_instagram_seen_names_the_message_read() {
    assert_eq!(
        statuses(INSTAGRAM_MESSAGES),
        vec![NativeStatus {
            channel: Channel::Instagram,
            provider_id: "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQxNDA1NzkzMTg3MjIw".to_owned(),
            status: DeliveryStatus::Read,
            reason: None,
            at: millis(1_569_262_485_352),
        }]
    );
}

// --- R24: sending -------------------------------------------------------------------------------

fn config(settings: &[(&str, &str)]) -> PlatformConfig {
    PlatformConfig {
        base_url: "http://127.0.0.1:9/v21.0/".to_owned(),
        settings: settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn outgoing(channel: Channel, to: &str, body: OutgoingBody, human_agent_tag: bool) -> Outgoing {
    Outgoing {
        channel,
        to: to.to_owned(),
        body,
        human_agent_tag,
        idempotency_key: "msg-42".to_owned(),
        email: None,
    }
}

fn body_json(request: &PlatformRequest) -> Value {
    serde_json::from_slice(&request.body).expect("the body is JSON")
}

fn headers(token: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".to_owned(), format!("Bearer {token}")),
        ("Content-Type".to_owned(), "application/json".to_owned()),
    ]
}

#[test]
fn r23_whatsapp_text_request() {
    let config = config(&[
        ("access_token", "EAAG-wa"),
        ("phone_number_id", "106540352242922"),
    ]);
    let out = outgoing(
        Channel::Whatsapp,
        "16505551234",
        OutgoingBody::Text("Yes, in blue.".to_owned()),
        false,
    );
    let request = build_send(&out, &config).expect("a request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "http://127.0.0.1:9/v21.0/106540352242922/messages");
    assert_eq!(request.headers, headers("EAAG-wa"));
    assert_eq!(
        body_json(&request),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "text",
            "text": { "body": "Yes, in blue." }
        })
    );
}

#[test]
fn r23_whatsapp_template_request() {
    let config = config(&[
        ("access_token", "EAAG-wa"),
        ("phone_number_id", "106540352242922"),
    ]);
    let template = OutgoingBody::Template {
        name: "order_update".to_owned(),
        language: "en_US".to_owned(),
        params: vec!["Sheena".to_owned(), "#4711".to_owned()],
    };
    let request = build_send(
        &outgoing(Channel::Whatsapp, "16505551234", template, true),
        &config,
    )
    .expect("a request");
    assert_eq!(request.url, "http://127.0.0.1:9/v21.0/106540352242922/messages");
    assert_eq!(
        body_json(&request),
        json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "template",
            "template": {
                "name": "order_update",
                "language": { "code": "en_US" },
                "components": [{
                    "type": "body",
                    "parameters": [
                        { "type": "text", "text": "Sheena" },
                        { "type": "text", "text": "#4711" }
                    ]
                }]
            }
        })
    );
    let bare = OutgoingBody::Template {
        name: "hello_world".to_owned(),
        language: "en_US".to_owned(),
        params: vec![],
    };
    let request =
        build_send(&outgoing(Channel::Whatsapp, "16505551234", bare, false), &config).expect("a request");
    assert_eq!(
        body_json(&request)["template"],
        json!({ "name": "hello_world", "language": { "code": "en_US" } })
    );
}

#[test]
fn r23_messenger_with_the_human_agent_tag_and_without() {
    let paged = config(&[("access_token", "EAAG-page"), ("page_id", "682498302938465")]);
    let text = OutgoingBody::Text("An agent here.".to_owned());
    let request = build_send(
        &outgoing(Channel::Messenger, "1254459154682919", text.clone(), true),
        &paged,
    )
    .expect("a request");
    assert_eq!(request.method, "POST");
    assert_eq!(request.url, "http://127.0.0.1:9/v21.0/682498302938465/messages");
    assert_eq!(request.headers, headers("EAAG-page"));
    assert_eq!(
        body_json(&request),
        json!({
            "recipient": { "id": "1254459154682919" },
            "messaging_type": "MESSAGE_TAG",
            "tag": "HUMAN_AGENT",
            "message": { "text": "An agent here." }
        })
    );

    let unpaged = config(&[("access_token", "EAAG-page")]);
    let request = build_send(
        &outgoing(Channel::Instagram, "6853256758023434", text, false),
        &unpaged,
    )
    .expect("a request");
    assert_eq!(request.url, "http://127.0.0.1:9/v21.0/me/messages");
    assert_eq!(
        body_json(&request),
        json!({
            "recipient": { "id": "6853256758023434" },
            "messaging_type": "RESPONSE",
            "message": { "text": "An agent here." }
        })
    );
}

#[test]
fn r23_templates_on_messenger_and_missing_settings_are_refused_by_name() {
    let template = OutgoingBody::Template {
        name: "order_update".to_owned(),
        language: "en_US".to_owned(),
        params: vec![],
    };
    let err = build_send(
        &outgoing(Channel::Messenger, "1", template, false),
        &config(&[("access_token", "t")]),
    )
    .expect_err("refused");
    assert!(err.contains("order_update") && err.contains("messenger"), "{err}");

    let text = OutgoingBody::Text("hi".to_owned());
    let err = build_send(
        &outgoing(Channel::Whatsapp, "1", text.clone(), false),
        &config(&[("access_token", "t")]),
    )
    .expect_err("refused");
    assert!(err.contains("phone_number_id"), "{err}");
    let err = build_send(
        &outgoing(Channel::Messenger, "1", text.clone(), false),
        &config(&[]),
    )
    .expect_err("refused");
    assert!(err.contains("access_token"), "{err}");
    let err = build_send(
        &outgoing(Channel::Sms, "1", text, false),
        &config(&[("access_token", "t")]),
    )
    .expect_err("refused");
    assert!(err.contains("sms"), "{err}");
}

fn now() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0)
        .single()
        .expect("a date")
}

#[test]
fn r23_a_2xx_answer_is_sent_with_the_message_id() {
    let whatsapp = br#"{"messaging_product":"whatsapp","contacts":[{"input":"16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}]}"#;
    assert_eq!(
        read_answer(200, &[], whatsapp, now()),
        SendOutcome::Sent {
            provider_id: "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA".to_owned()
        }
    );
    let messenger = br#"{"recipient_id":"1254477777772919","message_id":"AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"}"#;
    assert_eq!(
        read_answer(200, &[], messenger, now()),
        SendOutcome::Sent {
            provider_id:
                "AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"
                    .to_owned()
        }
    );
    assert!(
        matches!(read_answer(200, &[], b"{}", now()), SendOutcome::Failed { reason } if reason.contains("message id"))
    );
}

#[test]
fn r23_429_and_throttling_codes_retry_after_the_retry_after_header() {
    let body = br#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}"#;
    let retry_after = vec![("retry-after".to_owned(), "30".to_owned())];
    assert_eq!(
        read_answer(429, &retry_after, body, now()),
        SendOutcome::Retry {
            after: Some(Duration::from_secs(30)),
            reason: "HTTP 429: (#130429) Rate limit hit: Cloud API message throughput has been reached. (code 130429)"
                .to_owned(),
        }
    );
    // Meta often answers throttling with 400 and no Retry-After: still a retry.
    let pair_limit = br#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056}}"#;
    assert!(matches!(
        read_answer(400, &[], pair_limit, now()),
        SendOutcome::Retry { after: None, reason } if reason.contains("131056")
    ));
    let app_limit = br#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4,"is_transient":true}}"#;
    let date = vec![(
        "Retry-After".to_owned(),
        "Mon, 02 Mar 2026 09:02:00 GMT".to_owned(),
    )];
    assert_eq!(
        read_answer(400, &date, app_limit, now()),
        SendOutcome::Retry {
            after: Some(Duration::from_secs(120)),
            reason: "HTTP 400: (#4) Application request limit reached (code 4)".to_owned(),
        }
    );
}

#[test]
fn r23_a_5xx_answer_retries() {
    let body = br#"{"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","is_transient":true,"code":2,"fbtrace_id":"AmFGcW_3hwDB7qFbl_QdebZ"}}"#;
    assert_eq!(
        read_answer(500, &[], body, now()),
        SendOutcome::Retry {
            after: None,
            reason: "HTTP 500: An unexpected error has occurred. Please retry your request later. (code 2)"
                .to_owned(),
        }
    );
    assert_eq!(
        read_answer(503, &[], b"<html>Service Unavailable</html>", now()),
        SendOutcome::Retry {
            after: None,
            reason: "HTTP 503: <html>Service Unavailable</html>".to_owned()
        }
    );
}

#[test]
fn r23_other_4xx_answers_fail_with_meta_s_reason() {
    let window = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"AbCdEf"}}"#;
    assert_eq!(
        read_answer(400, &[], window, now()),
        SendOutcome::Failed {
            reason: "HTTP 400: (#131047) Re-engagement message: Message failed to send because more than 24 \
                     hours have passed since the customer last replied to this number. (code 131047)"
                .to_owned(),
        }
    );
    let messenger = br#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"BLBz/WZt8dN"}}"#;
    assert_eq!(
        read_answer(400, &[], messenger, now()),
        SendOutcome::Failed {
            reason:
                "HTTP 400: (#10) This message is sent outside of allowed window. (code 10, subcode 2018278)"
                    .to_owned(),
        }
    );
    assert_eq!(
        read_answer(401, &[], b"", now()),
        SendOutcome::Failed {
            reason: "HTTP 401: an empty body".to_owned()
        }
    );
}
