//! Telegram's Bot API (R23, R24): webhook updates in, `sendMessage` out.
//!
//! Settings read from [`PlatformConfig`]: `bot_token` (the send URL carries it) and, for the
//! webhook, `secret_token` (what `setWebhook` was given; the gateway passes it to
//! [`verify_secret`]). `base_url` is `https://api.telegram.org`.
//!
//! Telegram has no delivery or read receipts for bots, so [`parse`] yields no
//! [`Delivered::Status`]: a Telegram message we sent stays `sent` (R25).
//!
//! Which update kinds arrive is chosen by `setWebhook`'s `allowed_updates`; the channel is meant
//! to be registered with `["message", "edited_message", "callback_query"]`. Any other kind that
//! still arrives and names a chat or user becomes [`Content::Unsupported`] with the update's
//! field name as its kind, so nothing a customer did is dropped without a trace.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{
    retry_after, Content, Delivered, Media, MediaKind, NativeMessage, Outgoing, OutgoingBody, PlatformConfig,
    PlatformRequest, SendOutcome, WebhookError,
};
use crate::clock::Timestamp;
use crate::core::Channel;
use crate::security::constant_time_eq;

/// The header Telegram puts `setWebhook`'s `secret_token` in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// Checks the `X-Telegram-Bot-Api-Secret-Token` header against the configured secret token.
///
/// Telegram does not sign its updates: the secret token given to `setWebhook` coming back in
/// this header is the only proof that a request is Telegram's. The compare takes the same time
/// wherever the values differ, so the token cannot be guessed byte by byte. An empty configured
/// token refuses every request: Telegram never sends an empty one, and accepting an empty header
/// would let anyone in.
pub fn verify_secret(header: Option<&str>, secret_token: &str) -> Result<(), WebhookError> {
    let presented = header.ok_or(WebhookError::Unsigned(SECRET_HEADER))?;
    if secret_token.is_empty() || !constant_time_eq(presented.as_bytes(), secret_token.as_bytes()) {
        return Err(WebhookError::BadSignature(SECRET_HEADER));
    }
    Ok(())
}

/// Reads one webhook request's body, a Bot API `Update`, into what it delivered.
///
/// - `message`: the customer's message, by its type (below).
/// - `edited_message`: a new [`Content::Unsupported`] `{kind: "edited_message"}` item, dated
///   by its `edit_date`. An edit is neither ignored nor applied over the original: the agent
///   sees that the customer changed a message, and the history keeps what was first said.
/// - `callback_query` (an inline keyboard button pressed): [`Content::Reply`] with the
///   button's `data` as id and the text of the message that carried the keyboard as title
///   (the button's own label is not in the update), or `data` again when that message is gone.
/// - any other update naming a chat or a user: [`Content::Unsupported`] with the update's
///   field name (`my_chat_member`, `message_reaction`, …) as kind. Updates that name nobody
///   (`poll`, the state of a poll the bot sent) are not a customer's doing and yield nothing.
///
/// A message's content: `text`; the largest `photo` size's `file_id` as an image (its
/// `caption` kept); `animation` as video; `document`; `audio` and `voice` as audio; `video`
/// and `video_note` as video; `sticker`; `venue` and `location` as a location; anything else
/// (`contact`, `poll`, `dice`, `game`, `story`, service messages, …) as
/// [`Content::Unsupported`] named by its field.
///
/// `from` is the chat's id (where replies go; a private chat's id is the user's id); the name
/// is the sender's `first_name last_name`, or `@username`. `provider_id` is `u{update_id}`:
/// Telegram re-posts an update it could not deliver with the same `update_id`, while a
/// `message_id` is only unique within its chat (two chats both have a message 7) and an edit
/// keeps its message's `message_id`. The `u` keeps these ids apart from the `message_id`s
/// [`read_answer`] gives to our own messages. (Telegram restarts `update_id`s at a random
/// number after a week without updates, so the id is unique per bot in practice, not by
/// contract.)
pub fn parse(body: &[u8]) -> Result<Vec<Delivered>, WebhookError> {
    let update: Value = serde_json::from_slice(body)
        .map_err(|e| WebhookError::Malformed(format!("the Telegram update is not JSON: {e}")))?;
    let update = update
        .as_object()
        .ok_or_else(|| malformed("the Telegram update is not a JSON object"))?;
    let update_id = update
        .get("update_id")
        .and_then(Value::as_i64)
        .ok_or_else(|| malformed("the Telegram update has no integer `update_id`"))?;
    let provider_id = format!("u{update_id}");

    if let Some(message) = update.get("message") {
        let message = object(message, "message")?;
        let content = message_content(message)?;
        return Ok(vec![Delivered::Message(native(
            message,
            "message",
            provider_id,
            content,
            "date",
        )?)]);
    }
    if let Some(message) = update.get("edited_message") {
        let message = object(message, "edited_message")?;
        let content = Content::Unsupported {
            kind: "edited_message".into(),
        };
        return Ok(vec![Delivered::Message(native(
            message,
            "edited_message",
            provider_id,
            content,
            "edit_date",
        )?)]);
    }
    if let Some(query) = update.get("callback_query") {
        return Ok(vec![Delivered::Message(callback(
            object(query, "callback_query")?,
            provider_id,
        )?)]);
    }
    // Any other kind: the update's one field besides `update_id` names it.
    let Some((kind, value)) = update.iter().find(|(key, _)| key.as_str() != "update_id") else {
        return Err(malformed(
            "the Telegram update carries nothing besides `update_id`",
        ));
    };
    let Some(sender) = value.as_object().and_then(other_sender) else {
        return Ok(Vec::new());
    };
    let (from, name) = sender;
    Ok(vec![Delivered::Message(NativeMessage {
        channel: Channel::Telegram,
        from,
        name,
        provider_id,
        sent_at: value.get("date").and_then(Value::as_i64).and_then(unix),
        content: Content::Unsupported { kind: kind.clone() },
        in_reply_to: Vec::new(),
    })])
}

/// Builds the `sendMessage` request for a message to a customer.
///
/// `POST {base_url}/bot{bot_token}/sendMessage` with `{"chat_id": …, "text": …}`; the chat id is
/// sent as a number when it is one (`@channel` names as strings, as the Bot API takes both).
/// Telegram has no message templates, and a [`OutgoingBody::Template`] carries only a name and
/// parameters, not the text to render: it is refused, naming the template, rather than sent as
/// something the agent did not write. Telegram takes no idempotency key either: a retry after a
/// timeout may show the customer the message twice (R24 accepts a duplicate over a loss).
pub fn build_send(out: &Outgoing, config: &PlatformConfig) -> Result<PlatformRequest, String> {
    let text = match &out.body {
        OutgoingBody::Text(text) => text,
        OutgoingBody::Template { name, .. } => {
            return Err(format!(
                "Telegram has no message templates: template `{name}` cannot be sent to chat {}",
                out.to
            ))
        }
    };
    let token = config.get("bot_token")?;
    let chat_id = match out.to.parse::<i64>() {
        Ok(id) => json!(id),
        Err(_) => json!(out.to),
    };
    let body = serde_json::to_vec(&json!({ "chat_id": chat_id, "text": text }))
        .map_err(|e| format!("the sendMessage body could not be encoded: {e}"))?;
    Ok(PlatformRequest {
        method: "POST",
        url: format!("{}/bot{token}/sendMessage", config.base_url.trim_end_matches('/')),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body,
    })
}

/// Reads the Bot API's answer to `sendMessage`.
///
/// - `{"ok": true, "result": {"message_id": …}}`: [`SendOutcome::Sent`] with the message id.
/// - 429 (flood control): [`SendOutcome::Retry`] after `parameters.retry_after`, or else the
///   `Retry-After` header.
/// - 5xx: [`SendOutcome::Retry`] (with `Retry-After` if given).
/// - any other error (`Forbidden: bot was blocked by the user`, `Bad Request: chat not found`,
///   a group migrated to a supergroup, a wrong token): [`SendOutcome::Failed`] with Telegram's
///   `description` and `error_code`.
/// - a 2xx whose body is not a sent message: [`SendOutcome::Failed`], saying the message may
///   have been shown. Telegram takes no idempotency key, so a retry could post it twice; the
///   agent, who sees the failure, decides.
pub fn read_answer(status: u16, headers: &[(String, String)], body: &[u8], now: Timestamp) -> SendOutcome {
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    let answer = answer.as_ref().and_then(Value::as_object);
    let description = answer
        .and_then(|a| a.get("description"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let header_delay = header(headers, "retry-after").and_then(|v| retry_after(v, now));

    if (200..300).contains(&status) {
        let ok = answer.and_then(|a| a.get("ok")).and_then(Value::as_bool) == Some(true);
        let id = answer
            .and_then(|a| a.get("result"))
            .and_then(|r| r.get("message_id"))
            .and_then(Value::as_i64);
        return match (ok, id) {
            (true, Some(id)) => SendOutcome::Sent {
                provider_id: id.to_string(),
            },
            _ => SendOutcome::Failed {
                reason: format!(
                    "Telegram answered {status} without a sent message (`ok` and `result.message_id`); \
                     the message may have been shown: {}",
                    String::from_utf8_lossy(body)
                ),
            },
        };
    }

    let parameters = answer.and_then(|a| a.get("parameters"));
    let reason = match &description {
        Some(description) => format!("Telegram error {status}: {description}"),
        None => format!("Telegram answered {status}: {}", String::from_utf8_lossy(body)),
    };
    if status == 429 {
        let body_delay = parameters
            .and_then(|p| p.get("retry_after"))
            .and_then(Value::as_u64)
            .map(Duration::from_secs);
        return SendOutcome::Retry {
            after: body_delay.or(header_delay),
            reason,
        };
    }
    if status >= 500 {
        return SendOutcome::Retry {
            after: header_delay,
            reason,
        };
    }
    // A group that became a supergroup answers with its new id: say it, so the agent knows
    // where the customer went.
    match parameters
        .and_then(|p| p.get("migrate_to_chat_id"))
        .and_then(Value::as_i64)
    {
        Some(new_id) => SendOutcome::Failed {
            reason: format!("{reason} (the chat is now {new_id})"),
        },
        None => SendOutcome::Failed { reason },
    }
}

fn malformed(what: &str) -> WebhookError {
    WebhookError::Malformed(what.to_owned())
}

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, WebhookError> {
    value
        .as_object()
        .ok_or_else(|| WebhookError::Malformed(format!("the Telegram update's `{field}` is not an object")))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn unix(secs: i64) -> Option<Timestamp> {
    chrono::DateTime::from_timestamp(secs, 0)
}

fn string(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

/// A Telegram id (an integer, up to 52 bits) as text.
fn id_text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_i64).map(|id| id.to_string())
}

/// `first_name last_name`, else `@username`, of a User or a private Chat.
fn display_name(person: Option<&Value>) -> Option<String> {
    let person = person?.as_object()?;
    let first = person.get("first_name").and_then(Value::as_str);
    let last = person.get("last_name").and_then(Value::as_str);
    let full: Vec<&str> = [first, last]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect();
    if !full.is_empty() {
        return Some(full.join(" "));
    }
    if let Some(username) = person.get("username").and_then(Value::as_str) {
        return Some(format!("@{username}"));
    }
    string(person.get("title"))
}

/// A customer's message from a `Message` object, dated by `date_field`.
fn native(
    message: &Map<String, Value>,
    field: &str,
    provider_id: String,
    content: Content,
    date_field: &str,
) -> Result<NativeMessage, WebhookError> {
    let from = id_text(message.get("chat").and_then(|c| c.get("id")))
        .ok_or_else(|| WebhookError::Malformed(format!("the Telegram `{field}` has no integer `chat.id`")))?;
    let name = display_name(message.get("from")).or_else(|| display_name(message.get("chat")));
    let sent_at = message
        .get(date_field)
        .or_else(|| message.get("date"))
        .and_then(Value::as_i64)
        .and_then(unix);
    Ok(NativeMessage {
        channel: Channel::Telegram,
        from,
        name,
        provider_id,
        sent_at,
        content,
        in_reply_to: Vec::new(),
    })
}

/// Fields of a `Message` that say who, where and when, not what: never its kind.
const ENVELOPE: &[&str] = &[
    "message_id",
    "message_thread_id",
    "from",
    "sender_chat",
    "sender_boost_count",
    "sender_business_bot",
    "date",
    "edit_date",
    "business_connection_id",
    "chat",
    "forward_origin",
    "is_topic_message",
    "is_automatic_forward",
    "reply_to_message",
    "external_reply",
    "quote",
    "reply_to_story",
    "via_bot",
    "has_protected_content",
    "is_from_offline",
    "media_group_id",
    "author_signature",
    "entities",
    "caption",
    "caption_entities",
    "show_caption_above_media",
    "has_media_spoiler",
    "link_preview_options",
    "effect_id",
    "reply_markup",
];

/// What a `Message` carries.
fn message_content(message: &Map<String, Value>) -> Result<Content, WebhookError> {
    let caption = string(message.get("caption"));
    let file = |field: &str, file: &Value, kind: MediaKind| -> Result<Content, WebhookError> {
        let file = object(file, field)?;
        let id = string(file.get("file_id")).ok_or_else(|| {
            WebhookError::Malformed(format!("the Telegram message's `{field}` has no `file_id`"))
        })?;
        Ok(Content::Media(Media {
            kind,
            id: Some(id),
            url: None,
            mime: string(file.get("mime_type")).or_else(|| sticker_mime(field, file)),
            filename: string(file.get("file_name")),
            caption: caption.clone(),
        }))
    };

    if let Some(text) = message.get("text") {
        let text = text
            .as_str()
            .ok_or_else(|| malformed("the Telegram message's `text` is not a string"))?;
        return Ok(Content::Text(text.to_owned()));
    }
    if let Some(photo) = message.get("photo") {
        return photo_content(photo, caption);
    }
    // `animation` first: Telegram also fills `document` in an animation message, for old clients.
    let media = [
        ("animation", MediaKind::Video),
        ("document", MediaKind::Document),
        ("audio", MediaKind::Audio),
        ("voice", MediaKind::Audio),
        ("video", MediaKind::Video),
        ("video_note", MediaKind::Video),
        ("sticker", MediaKind::Sticker),
    ];
    for (field, kind) in media {
        if let Some(value) = message.get(field) {
            return file(field, value, kind);
        }
    }
    // `venue` first: a venue message also carries its `location`.
    if let Some(venue) = message.get("venue") {
        let venue = object(venue, "venue")?;
        let (latitude, longitude) = coordinates(venue.get("location"), "venue.location")?;
        return Ok(Content::Location {
            latitude,
            longitude,
            name: string(venue.get("title")),
            address: string(venue.get("address")),
        });
    }
    if let Some(location) = message.get("location") {
        let (latitude, longitude) = coordinates(Some(location), "location")?;
        return Ok(Content::Location {
            latitude,
            longitude,
            name: None,
            address: None,
        });
    }
    let kind = message
        .keys()
        .find(|key| !ENVELOPE.contains(&key.as_str()))
        .cloned()
        .unwrap_or_else(|| "message".into());
    Ok(Content::Unsupported { kind })
}

/// A photo message: Telegram sends each size it made; the largest is the one to fetch.
fn photo_content(photo: &Value, caption: Option<String>) -> Result<Content, WebhookError> {
    let sizes = photo
        .as_array()
        .ok_or_else(|| malformed("the Telegram message's `photo` is not an array of sizes"))?;
    let area = |size: &Value| {
        let side = |key: &str| size.get(key).and_then(Value::as_u64).unwrap_or(0);
        (
            side("width") * side("height"),
            size.get("file_size").and_then(Value::as_u64).unwrap_or(0),
        )
    };
    // On equal areas the later size wins: Telegram lists them smallest first.
    let largest = sizes
        .iter()
        .enumerate()
        .max_by_key(|&(index, size)| (area(size), index))
        .map(|(_, size)| size)
        .ok_or_else(|| malformed("the Telegram message's `photo` has no sizes"))?;
    let id = string(largest.get("file_id"))
        .ok_or_else(|| malformed("a Telegram `photo` size has no `file_id`"))?;
    Ok(Content::Media(Media {
        kind: MediaKind::Image,
        id: Some(id),
        url: None,
        // Telegram re-encodes every photo as JPEG.
        mime: Some("image/jpeg".into()),
        filename: None,
        caption,
    }))
}

/// A sticker has no `mime_type`; its format is told by flags.
fn sticker_mime(field: &str, sticker: &Map<String, Value>) -> Option<String> {
    if field != "sticker" {
        return None;
    }
    let flag = |key: &str| sticker.get(key).and_then(Value::as_bool) == Some(true);
    let mime = if flag("is_animated") {
        "application/x-tgsticker"
    } else if flag("is_video") {
        "video/webm"
    } else {
        "image/webp"
    };
    Some(mime.into())
}

fn coordinates(location: Option<&Value>, field: &str) -> Result<(f64, f64), WebhookError> {
    let location = location.and_then(Value::as_object);
    let degrees = |key: &str| location.and_then(|l| l.get(key)).and_then(Value::as_f64);
    match (degrees("latitude"), degrees("longitude")) {
        (Some(latitude), Some(longitude)) => Ok((latitude, longitude)),
        _ => Err(WebhookError::Malformed(format!(
            "the Telegram message's `{field}` has no numeric `latitude` and `longitude`"
        ))),
    }
}

/// An inline keyboard button pressed.
fn callback(query: &Map<String, Value>, provider_id: String) -> Result<NativeMessage, WebhookError> {
    let message = query.get("message").and_then(Value::as_object);
    // The chat where the keyboard was; a keyboard on an inline message has none, and then the
    // user's id is their private chat's id.
    let from = id_text(message.and_then(|m| m.get("chat")).and_then(|c| c.get("id")))
        .or_else(|| id_text(query.get("from").and_then(|f| f.get("id"))))
        .ok_or_else(|| {
            malformed("the Telegram `callback_query` has neither `message.chat.id` nor `from.id`")
        })?;
    // `data` is what we put on the button; a game button has `game_short_name` instead.
    let data = string(query.get("data"))
        .or_else(|| string(query.get("game_short_name")))
        .ok_or_else(|| malformed("the Telegram `callback_query` has no `data`"))?;
    let title = string(message.and_then(|m| m.get("text"))).unwrap_or_else(|| data.clone());
    Ok(NativeMessage {
        channel: Channel::Telegram,
        from,
        name: display_name(query.get("from")),
        provider_id,
        // The update does not say when the button was pressed (the message's `date` is when
        // the keyboard was sent).
        sent_at: None,
        content: Content::Reply { id: data, title },
        in_reply_to: Vec::new(),
    })
}

/// The chat (or else the user) another kind of update is about, and their name.
fn other_sender(update: &Map<String, Value>) -> Option<(String, Option<String>)> {
    // `chat` for chat-member and reaction updates; `message.chat` for business-connection
    // shaped ones; `from` or `user` for queries and poll answers.
    let chat = update
        .get("chat")
        .or_else(|| update.get("message").and_then(|m| m.get("chat")));
    let user = update.get("from").or_else(|| update.get("user"));
    let from = id_text(chat.and_then(|c| c.get("id"))).or_else(|| id_text(user.and_then(|u| u.get("id"))))?;
    Some((from, display_name(user).or_else(|| display_name(chat))))
}

#[cfg(test)]
mod tests;
