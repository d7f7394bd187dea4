//! Telegram (R23–R25): fixtures under `fixtures/` are Bot API `Update` objects and
//! `sendMessage` answers built field by field from the Bot API reference
//! (core.telegram.org/bots/api: Update, Message, PhotoSize, Document, …, CallbackQuery,
//! ChatMemberUpdated, ResponseParameters), which documents types rather than sample payloads.

use std::collections::BTreeMap;

use chrono::TimeZone;

use super::*;
use crate::channels::EmailThread;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("fixtures/", $name, ".json")).as_slice()
    };
}

const CHAT: &str = "111222333";

fn now() -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 12, 7, 9, 0, 0)
        .single()
        .expect("valid time")
}

/// The one message an update delivered.
fn message(body: &[u8]) -> NativeMessage {
    let items = parse(body).expect("a valid update");
    match items.as_slice() {
        [Delivered::Message(message)] => message.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

fn media(body: &[u8]) -> Media {
    match message(body).content {
        Content::Media(media) => media,
        other => panic!("expected media, got {other:?}"),
    }
}

fn config() -> PlatformConfig {
    PlatformConfig {
        base_url: "http://127.0.0.1:9/".into(),
        settings: BTreeMap::from([
            ("bot_token".into(), "7000000001:AAE-secret".into()),
            ("secret_token".into(), "s3cr3t_T0ken-x".into()),
        ]),
    }
}

fn outgoing(body: OutgoingBody) -> Outgoing {
    Outgoing {
        channel: Channel::Telegram,
        to: CHAT.into(),
        body,
        human_agent_tag: false,
        idempotency_key: "out-1".into(),
        email: None::<EmailThread>,
    }
}

#[test]
fn r23_the_secret_token_header_is_required_and_compared_whole() {
    assert_eq!(verify_secret(Some("s3cr3t_T0ken-x"), "s3cr3t_T0ken-x"), Ok(()));
    assert_eq!(
        verify_secret(None, "s3cr3t_T0ken-x"),
        Err(WebhookError::Unsigned(SECRET_HEADER))
    );
    for wrong in ["s3cr3t_T0ken-y", "s3cr3t_T0ken", "s3cr3t_T0ken-xx", ""] {
        assert_eq!(
            verify_secret(Some(wrong), "s3cr3t_T0ken-x"),
            Err(WebhookError::BadSignature(SECRET_HEADER)),
            "{wrong:?} must be refused"
        );
    }
    // An unconfigured (empty) secret lets nobody in, not everybody.
    assert_eq!(
        verify_secret(Some(""), ""),
        Err(WebhookError::BadSignature(SECRET_HEADER))
    );
}

#[test]
fn r23_a_text_message_names_its_chat_sender_and_time() {
    let message = message(fixture!("text"));
    assert_eq!(
        message,
        NativeMessage {
            channel: Channel::Telegram,
            from: CHAT.into(),
            name: Some("Ana García".into()),
            provider_id: "u734110001".into(),
            sent_at: chrono::DateTime::from_timestamp(1_765_098_000, 0),
            content: Content::Text("Hola, my order has not arrived".into()),
            in_reply_to: Vec::new(),
        }
    );
}

#[test]
fn r23_a_photo_is_its_largest_size_with_its_caption() {
    assert_eq!(
        media(fixture!("photo")),
        Media {
            kind: MediaKind::Image,
            id: Some("AgACAgQAAxkBAAMqlarge".into()),
            url: None,
            mime: Some("image/jpeg".into()),
            filename: None,
            caption: Some("The box arrived broken".into()),
        }
    );
}

#[test]
fn r23_documents_audio_voice_video_and_stickers_carry_their_file_ids() {
    let document = media(fixture!("document"));
    assert_eq!(
        document,
        Media {
            kind: MediaKind::Document,
            id: Some("BQACAgQAAxkBAAMrdoc".into()),
            url: None,
            mime: Some("application/pdf".into()),
            filename: Some("invoice-2291.pdf".into()),
            caption: Some("Invoice attached".into()),
        }
    );
    let audio = media(fixture!("audio"));
    assert_eq!(
        (
            audio.kind,
            audio.id.as_deref(),
            audio.mime.as_deref(),
            audio.filename.as_deref()
        ),
        (
            MediaKind::Audio,
            Some("CQACAgQAAxkBAAMsaudio"),
            Some("audio/mpeg"),
            Some("recording.mp3")
        )
    );
    let voice = media(fixture!("voice"));
    assert_eq!(
        (voice.kind, voice.id.as_deref(), voice.mime.as_deref()),
        (MediaKind::Audio, Some("AwACAgQAAxkBAAMtvoice"), Some("audio/ogg"))
    );
    // The video's thumbnail is not the video.
    let video = media(fixture!("video"));
    assert_eq!(
        (video.kind, video.id.as_deref(), video.mime.as_deref()),
        (MediaKind::Video, Some("BAACAgQAAxkBAAMuvideo"), Some("video/mp4"))
    );
    let sticker = media(fixture!("sticker"));
    assert_eq!(
        (sticker.kind, sticker.id.as_deref(), sticker.mime.as_deref()),
        (
            MediaKind::Sticker,
            Some("CAACAgIAAxkBAAMvsticker"),
            Some("image/webp")
        )
    );
}

#[test]
fn r23_an_animation_is_a_video_not_the_document_telegram_adds_for_old_clients() {
    let body = br#"{"update_id":5,"message":{"message_id":9,"chat":{"id":1,"type":"private"},"date":1,
        "animation":{"file_id":"CgACanim","file_unique_id":"a","width":320,"height":240,"duration":3,"mime_type":"video/mp4"},
        "document":{"file_id":"CgACanim","file_unique_id":"a","mime_type":"video/mp4"}}}"#;
    let animation = media(body);
    assert_eq!(
        (animation.kind, animation.id.as_deref()),
        (MediaKind::Video, Some("CgACanim"))
    );
}

#[test]
fn r23_locations_and_venues_are_locations() {
    assert_eq!(
        message(fixture!("location")).content,
        Content::Location {
            latitude: 40.416775,
            longitude: -3.70379,
            name: None,
            address: None
        }
    );
    assert_eq!(
        message(fixture!("venue")).content,
        Content::Location {
            latitude: 40.415363,
            longitude: -3.707398,
            name: Some("Plaza Mayor".into()),
            address: Some("Plaza Mayor, 28012 Madrid".into()),
        }
    );
}

#[test]
fn r23_contacts_polls_and_service_messages_are_unsupported_by_their_telegram_name() {
    assert_eq!(
        message(fixture!("contact")).content,
        Content::Unsupported {
            kind: "contact".into()
        }
    );
    assert_eq!(
        message(fixture!("poll")).content,
        Content::Unsupported { kind: "poll".into() }
    );
    let joined = br#"{"update_id":6,"message":{"message_id":9,"chat":{"id":-100,"type":"group","title":"Shop"},
        "date":1,"from":{"id":1,"is_bot":false,"first_name":"Ana"},"new_chat_members":[{"id":2,"is_bot":false,"first_name":"Bo"}]}}"#;
    let joined = message(joined);
    assert_eq!(
        (joined.from.as_str(), joined.content),
        (
            "-100",
            Content::Unsupported {
                kind: "new_chat_members".into()
            }
        )
    );
}

#[test]
fn r23_an_edit_is_a_new_unsupported_item_dated_by_its_edit() {
    let edit = message(fixture!("edited_message"));
    assert_eq!(
        edit.content,
        Content::Unsupported {
            kind: "edited_message".into()
        }
    );
    assert_eq!(edit.provider_id, "u734110012");
    assert_eq!(edit.sent_at, chrono::DateTime::from_timestamp(1_765_098_060, 0));
    // Not the edited message's id: the original (u734110001) was already recorded.
    assert_ne!(edit.provider_id, message(fixture!("text")).provider_id);
}

#[test]
fn r23_a_pressed_button_is_a_reply_with_its_data_and_the_keyboards_text() {
    let reply = message(fixture!("callback_query"));
    assert_eq!(
        reply,
        NativeMessage {
            channel: Channel::Telegram,
            from: CHAT.into(),
            name: Some("Ana García".into()),
            provider_id: "u734110013".into(),
            sent_at: None,
            content: Content::Reply {
                id: "solved_yes".into(),
                title: "Was your problem solved?".into()
            },
            in_reply_to: Vec::new(),
        }
    );
    // A keyboard on an inline message: no message, so the user's chat and the data as title.
    let inline =
        br#"{"update_id":7,"callback_query":{"id":"1","from":{"id":42,"is_bot":false,"first_name":"Bo"},
        "inline_message_id":"AAA","chat_instance":"1","data":"more"}}"#;
    let inline = message(inline);
    assert_eq!(
        (inline.from.as_str(), inline.content),
        (
            "42",
            Content::Reply {
                id: "more".into(),
                title: "more".into()
            }
        )
    );
}

#[test]
fn r23_other_updates_are_unsupported_items_and_name_their_chat() {
    let blocked = message(fixture!("my_chat_member"));
    assert_eq!(
        (
            blocked.from.as_str(),
            blocked.provider_id.as_str(),
            blocked.content
        ),
        (
            CHAT,
            "u734110014",
            Content::Unsupported {
                kind: "my_chat_member".into()
            }
        )
    );
    // The state of a poll the bot sent names no one: not a customer's doing.
    let poll = br#"{"update_id":8,"poll":{"id":"1","question":"?","options":[],"total_voter_count":3,
        "is_closed":false,"is_anonymous":true,"type":"regular","allows_multiple_answers":false}}"#;
    assert_eq!(parse(poll), Ok(Vec::new()));
}

#[test]
fn r23_a_retried_update_has_the_same_provider_id_and_messages_in_two_chats_do_not_collide() {
    let first = message(fixture!("text"));
    let retried = message(fixture!("text"));
    assert_eq!(first.provider_id, retried.provider_id);
    // Message 41 in another chat, a later update: message_id alone would have collided.
    let other_chat =
        br#"{"update_id":734110099,"message":{"message_id":41,"chat":{"id":555,"type":"private"},
        "date":1765098000,"text":"hi"}}"#;
    assert_ne!(message(other_chat).provider_id, first.provider_id);
}

#[test]
fn r23_malformed_updates_are_refused_naming_what_was_wrong() {
    let cases: [(&[u8], &str); 6] = [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (br#"{"message":{}}"#, "`update_id`"),
        (br#"{"update_id":1}"#, "nothing besides `update_id`"),
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"text":"hi"}}"#,
            "`chat.id`",
        ),
        (
            br#"{"update_id":1,"message":{"message_id":1,"date":1,"chat":{"id":1},"photo":[]}}"#,
            "no sizes",
        ),
    ];
    for (body, says) in cases {
        match parse(body) {
            Err(WebhookError::Malformed(why)) => assert!(why.contains(says), "{why:?} should say {says:?}"),
            other => panic!(
                "{:?} should be malformed, got {other:?}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

#[test]
fn r25_telegram_reports_no_delivery_statuses() {
    let fixtures = [
        fixture!("text"),
        fixture!("photo"),
        fixture!("callback_query"),
        fixture!("my_chat_member"),
    ];
    for body in fixtures {
        let items = parse(body).expect("a valid update");
        assert!(
            items.iter().all(|item| matches!(item, Delivered::Message(_))),
            "{items:?}"
        );
    }
}

#[test]
fn r24_send_message_is_posted_as_json_to_the_bots_url() {
    let request = build_send(
        &outgoing(OutgoingBody::Text("We are on it \"today\"".into())),
        &config(),
    )
    .expect("a text message");
    assert_eq!(
        request,
        PlatformRequest {
            method: "POST",
            url: "http://127.0.0.1:9/bot7000000001:AAE-secret/sendMessage".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: br#"{"chat_id":111222333,"text":"We are on it \"today\""}"#.to_vec(),
        }
    );
    // A channel's public name is a string chat id.
    let mut to_channel = outgoing(OutgoingBody::Text("hi".into()));
    to_channel.to = "@acme_news".into();
    let request = build_send(&to_channel, &config()).expect("a text message");
    assert_eq!(request.body, br#"{"chat_id":"@acme_news","text":"hi"}"#.to_vec());
}

#[test]
fn r24_templates_and_a_missing_token_are_refused_by_name() {
    let template = OutgoingBody::Template {
        name: "order_update".into(),
        language: "en_US".into(),
        params: vec![],
    };
    let err = build_send(&outgoing(template), &config()).expect_err("Telegram has no templates");
    assert!(
        err.contains("order_update") && err.contains("no message templates"),
        "{err}"
    );
    let err = build_send(
        &outgoing(OutgoingBody::Text("hi".into())),
        &PlatformConfig::default(),
    )
    .expect_err("no token");
    assert!(err.contains("`bot_token`"), "{err}");
}

#[test]
fn r24_a_sent_message_answers_its_message_id() {
    assert_eq!(
        read_answer(200, &[], fixture!("send_ok"), now()),
        SendOutcome::Sent {
            provider_id: "53".into()
        }
    );
}

#[test]
fn r24_flood_control_is_retried_after_what_telegram_asked() {
    assert_eq!(
        read_answer(429, &[], fixture!("send_429"), now()),
        SendOutcome::Retry {
            after: Some(Duration::from_secs(35)),
            reason: "Telegram error 429: Too Many Requests: retry after 35".into(),
        }
    );
    // Without `parameters`, the Retry-After header.
    let headers = [("retry-after".to_string(), "12".to_string())];
    let body = br#"{"ok":false,"error_code":429,"description":"Too Many Requests"}"#;
    assert!(matches!(
        read_answer(429, &headers, body, now()),
        SendOutcome::Retry { after: Some(after), .. } if after == Duration::from_secs(12)
    ));
}

#[test]
fn r24_server_errors_are_retried() {
    let body = br#"{"ok":false,"error_code":502,"description":"Bad Gateway"}"#;
    assert_eq!(
        read_answer(502, &[], body, now()),
        SendOutcome::Retry {
            after: None,
            reason: "Telegram error 502: Bad Gateway".into()
        }
    );
    assert!(matches!(
        read_answer(500, &[], b"<html>oops</html>", now()),
        SendOutcome::Retry { .. }
    ));
}

#[test]
fn r24_other_errors_fail_with_telegrams_description() {
    assert_eq!(
        read_answer(403, &[], fixture!("send_403"), now()),
        SendOutcome::Failed {
            reason: "Telegram error 403: Forbidden: bot was blocked by the user".into()
        }
    );
    assert_eq!(
        read_answer(400, &[], fixture!("send_migrated"), now()),
        SendOutcome::Failed {
            reason: "Telegram error 400: Bad Request: group chat was upgraded to a supergroup chat \
                     (the chat is now -1001234567890)"
                .into()
        }
    );
    // A 200 that is not a sent message may still have been shown: failed, not retried twice.
    match read_answer(200, &[], b"{\"ok\":true}", now()) {
        SendOutcome::Failed { reason } => assert!(reason.contains("may have been shown"), "{reason}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}
