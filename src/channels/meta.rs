//! Meta's platforms: the WhatsApp Cloud API, Messenger and Instagram (R23–R25). One webhook
//! format serves all three (`object` tells them apart), signed with `X-Hub-Signature-256` and
//! set up with the `hub.challenge` handshake; all three send through the Graph API.
//!
//! Settings read from [`PlatformConfig::settings`]:
//! - `access_token`: WhatsApp's system-user token, or the Page access token for Messenger and
//!   Instagram ([`build_send`], as `Authorization: Bearer`);
//! - `phone_number_id`: WhatsApp only, the business number messages go from ([`build_send`]);
//! - `page_id`: Messenger and Instagram, optional: sends go to `/{page_id}/messages`, or to
//!   `/me/messages` (the Page the token belongs to) without it ([`build_send`]);
//! - `app_secret`: the app secret the webhooks are signed with; the gateway passes it to
//!   [`verify_signature`];
//! - `verify_token`: the token typed into the app dashboard; the gateway passes it to
//!   [`verify_handshake`].
//!
//! What is deliberately not turned into a [`Delivered`] item (each is not a customer's message
//! and has no message id of ours to attach a status to):
//! - WhatsApp changes whose `field` is not `messages` (template reviews, account updates), the
//!   `errors` of a change that concern no message, and statuses other than `sent`,
//!   `delivered`, `read` and `failed` (Meta adds new ones; refusing the webhook would only make
//!   Meta redeliver it for days);
//! - our own messages echoed back (`is_echo`), a customer's unsend (`is_deleted`, the same
//!   `mid` as the message it retracts), `standby` events (another app owns the thread), and
//!   events other than messages, postbacks, reactions, deliveries and reads (opt-ins,
//!   referrals, handovers).
//!
//! Messenger's read receipts carry only a watermark ("everything sent up to this time is
//! read") and no message id, and its delivery receipts may leave out their `mids`: each becomes
//! a [`Delivered::Watermark`] for the customer, which the engine applies to the messages it
//! sent them up to that time. Instagram's `messaging_seen` names its `mid` and becomes a `read`
//! [`Delivered::Status`].
//!
//! A Messenger or Instagram message with several attachments (or text and attachments) becomes
//! one [`NativeMessage`] per part, since [`Content`] holds one: the first keeps the `mid`, the
//! others get `{mid}#1`, `{mid}#2`…, so a redelivery still repeats every provider id (R23).

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{
    retry_after, Content, Delivered, DeliveryStatus, Media, MediaKind, NativeMessage, NativeStatus,
    NativeWatermark, Outgoing, OutgoingBody, PlatformConfig, PlatformRequest, SendOutcome, WebhookError,
};
use crate::clock::Timestamp;
use crate::core::Channel;

/// The header Meta signs its webhooks with: `sha256=<hex HMAC-SHA256 of the raw body>`.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// Graph API error codes that mean "too many requests, slow down", whatever the HTTP status
/// they come with: 4 (application), 17 (user), 32 (Page), 613 (custom rate limit), 80007
/// (WhatsApp Business account), 130429 (Cloud API throughput), 131056 (too many messages to
/// the same customer).
pub const THROTTLING_CODES: [i64; 7] = [4, 17, 32, 613, 80007, 130429, 131056];

/// Graph API error codes Meta documents as temporary (retry later): 1 (unknown, possibly
/// temporary), 2 (service temporarily unavailable), 131016 (Cloud API service unavailable).
pub const TRANSIENT_CODES: [i64; 3] = [1, 2, 131016];

/// Answers Meta's verification handshake (the `GET` Meta sends when the webhook URL is saved):
/// `hub.mode=subscribe`, `hub.verify_token` equal to the configured `verify_token` (compared
/// in constant time) and the `hub.challenge` to echo back as the response body.
pub fn verify_handshake(
    query: &BTreeMap<String, String>,
    verify_token: &str,
) -> Result<String, WebhookError> {
    let mode = query
        .get("hub.mode")
        .ok_or_else(|| malformed("hub.mode is missing".to_owned()))?;
    if mode != "subscribe" {
        return Err(malformed(format!("hub.mode is `{mode}`, not `subscribe`")));
    }
    let token = query
        .get("hub.verify_token")
        .ok_or(WebhookError::Unsigned("hub.verify_token"))?;
    // An empty configured token would admit anyone who sends an empty one.
    if verify_token.is_empty() || !constant_time_eq(token.as_bytes(), verify_token.as_bytes()) {
        return Err(WebhookError::BadSignature("hub.verify_token"));
    }
    query
        .get("hub.challenge")
        .cloned()
        .ok_or_else(|| malformed("hub.challenge is missing".to_owned()))
}

/// Checks the `X-Hub-Signature-256` header's value (`sha256=` and 64 hex digits, either case)
/// against the HMAC-SHA256 of the raw body keyed with the app secret, in constant time.
///
/// A header that is not of that form is refused as [`WebhookError::BadSignature`] too: it is
/// not the body's signature, and the answer (401) is the same.
pub fn verify_signature(
    headers_value: Option<&str>,
    body: &[u8],
    app_secret: &str,
) -> Result<(), WebhookError> {
    let value = headers_value.ok_or(WebhookError::Unsigned(SIGNATURE_HEADER))?;
    // Anyone can compute an HMAC keyed with the empty string: an unset secret must not pass.
    if app_secret.is_empty() {
        return Err(WebhookError::BadSignature(SIGNATURE_HEADER));
    }
    let digits = value
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::BadSignature(SIGNATURE_HEADER))?;
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(digits, &mut claimed).map_err(|_| WebhookError::BadSignature(SIGNATURE_HEADER))?;
    // HMAC takes a key of any length, so this never fails; a failure would refuse, not pass.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .map_err(|_| WebhookError::BadSignature(SIGNATURE_HEADER))?;
    mac.update(body);
    mac.verify_slice(&claimed)
        .map_err(|_| WebhookError::BadSignature(SIGNATURE_HEADER))
}

/// Reads a (verified) webhook body: WhatsApp (`object: "whatsapp_business_account"`),
/// Messenger (`"page"`) or Instagram (`"instagram"`). Customers' messages of every type come
/// out as [`Delivered::Message`] (types without a [`Content`] of their own as
/// [`Content::Unsupported`]), the platform's news about ours as [`Delivered::Status`]. What is
/// left out, and why, is listed in the module's documentation. A body that is not what Meta
/// sends is refused with the path of the field that was wrong.
pub fn parse(body: &[u8]) -> Result<Vec<Delivered>, WebhookError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(malformed("the body is not a JSON object".to_owned()));
    }
    let root = Node::root(&value);
    match root.req_str("object")? {
        "whatsapp_business_account" => parse_whatsapp(&root),
        "page" => parse_messaging(&root, Channel::Messenger),
        "instagram" => parse_messaging(&root, Channel::Instagram),
        other => Err(malformed(format!(
            "object `{other}` is not a Meta messaging webhook (whatsapp_business_account, page or instagram)"
        ))),
    }
}

/// The Graph API request that sends `out`.
///
/// - WhatsApp: `POST {base_url}/{phone_number_id}/messages` with the text, or the template
///   with its language and body parameters.
/// - Messenger and Instagram: `POST {base_url}/{page_id}/messages` (or `/me/messages`) with
///   `messaging_type: RESPONSE`, or `MESSAGE_TAG` with the `HUMAN_AGENT` tag when
///   [`Outgoing::human_agent_tag`] is set. Templates are WhatsApp's: refused here.
///
/// The token goes in the `Authorization` header, which the Graph API accepts everywhere,
/// rather than in the URL, where proxies and logs would keep it. Neither API takes an
/// idempotency key, so [`Outgoing::idempotency_key`] is not sent: a retry after an uncertain
/// failure may deliver twice.
pub fn build_send(out: &Outgoing, config: &PlatformConfig) -> Result<PlatformRequest, String> {
    let token = config.get("access_token")?;
    let base = config.base_url.trim_end_matches('/');
    let (url, body) = match out.channel {
        Channel::Whatsapp => {
            let phone_number_id = config.get("phone_number_id")?;
            let mut body = json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": out.to,
            });
            match &out.body {
                OutgoingBody::Text(text) => {
                    body["type"] = json!("text");
                    body["text"] = json!({ "body": text });
                }
                OutgoingBody::Template {
                    name,
                    language,
                    params,
                } => {
                    let mut template = json!({ "name": name, "language": { "code": language } });
                    // A template without variables takes no components; an empty body
                    // component would be refused as a parameter-count mismatch.
                    if !params.is_empty() {
                        let parameters: Vec<Value> = params
                            .iter()
                            .map(|p| json!({ "type": "text", "text": p }))
                            .collect();
                        template["components"] = json!([{ "type": "body", "parameters": parameters }]);
                    }
                    body["type"] = json!("template");
                    body["template"] = template;
                }
            }
            (format!("{base}/{phone_number_id}/messages"), body)
        }
        Channel::Messenger | Channel::Instagram => {
            let text = match &out.body {
                OutgoingBody::Text(text) => text,
                OutgoingBody::Template { name, .. } => {
                    return Err(format!(
                        "the template `{name}` cannot be sent on {}: templates are WhatsApp's; send text",
                        out.channel
                    ))
                }
            };
            let mut body = json!({
                "recipient": { "id": out.to },
                "messaging_type": "RESPONSE",
                "message": { "text": text },
            });
            if out.human_agent_tag {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!("HUMAN_AGENT");
            }
            let page = config.settings.get("page_id").map_or("me", String::as_str);
            (format!("{base}/{page}/messages"), body)
        }
        other => return Err(format!("the Meta adapter does not send on {other}")),
    };
    if out.to.is_empty() {
        return Err("the message has no recipient (`to` is empty)".to_owned());
    }
    Ok(PlatformRequest {
        method: "POST",
        url,
        headers: vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ],
        body: body.to_string().into_bytes(),
    })
}

/// What the Graph API's answer to a send means: 2xx is [`SendOutcome::Sent`] with the message
/// id (`messages[0].id` on WhatsApp, `message_id` on Messenger and Instagram); 429, a
/// throttling code ([`THROTTLING_CODES`]), a temporary one ([`TRANSIENT_CODES`]), 408 and 5xx
/// are [`SendOutcome::Retry`], after the `Retry-After` the answer gave, if any; any other
/// answer is [`SendOutcome::Failed`] with Meta's `error.message`, details and code.
pub fn read_answer(status: u16, headers: &[(String, String)], body: &[u8], now: Timestamp) -> SendOutcome {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let id = json.as_ref().and_then(|v| {
            v.pointer("/messages/0/id")
                .or_else(|| v.get("message_id"))
                .and_then(Value::as_str)
        });
        return match id {
            Some(id) => SendOutcome::Sent {
                provider_id: id.to_owned(),
            },
            // Taken, probably, but unmatchable to its statuses: shown to the agent rather than
            // retried blindly into a duplicate.
            None => SendOutcome::Failed {
                reason: format!(
                    "Meta answered {status} without a message id (`messages[0].id` or `message_id`): {}",
                    snippet(body)
                ),
            },
        };
    }
    let error = json.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
    let reason = match error {
        Some(e) => format!("HTTP {status}: {}", describe_error(e)),
        None => format!("HTTP {status}: {}", snippet(body)),
    };
    let retryable = status == 429
        || status == 408
        || status >= 500
        || code.is_some_and(|c| THROTTLING_CODES.contains(&c) || TRANSIENT_CODES.contains(&c));
    if retryable {
        let after = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, value)| retry_after(value, now));
        SendOutcome::Retry { after, reason }
    } else {
        SendOutcome::Failed { reason }
    }
}

// ---------------------------------------------------------------------------------------------
// WhatsApp

fn parse_whatsapp(root: &Node<'_>) -> Result<Vec<Delivered>, WebhookError> {
    let mut out = Vec::new();
    for entry in root.req_items("entry")? {
        for change in entry.req_items("changes")? {
            if change.opt_str("field")?.is_some_and(|field| field != "messages") {
                continue;
            }
            let value = change.req("value")?;
            let contacts = value.opt_items("contacts")?;
            for message in value.opt_items("messages")? {
                out.push(Delivered::Message(whatsapp_message(&message, &contacts)?));
            }
            for status in value.opt_items("statuses")? {
                if let Some(status) = whatsapp_status(&status)? {
                    out.push(Delivered::Status(status));
                }
            }
        }
    }
    Ok(out)
}

fn whatsapp_message(message: &Node<'_>, contacts: &[Node<'_>]) -> Result<NativeMessage, WebhookError> {
    let from = message.req_str("from")?;
    let provider_id = message.req_str("id")?;
    let sent_at = message.get("timestamp").map(|t| t.seconds()).transpose()?;
    let content = match message.req_str("type")? {
        "text" => Content::Text(message.req("text")?.req_str("body")?.to_owned()),
        "image" => whatsapp_media(message, "image", MediaKind::Image)?,
        "document" => whatsapp_media(message, "document", MediaKind::Document)?,
        "audio" => whatsapp_media(message, "audio", MediaKind::Audio)?,
        "video" => whatsapp_media(message, "video", MediaKind::Video)?,
        "sticker" => whatsapp_media(message, "sticker", MediaKind::Sticker)?,
        "location" => {
            let location = message.req("location")?;
            Content::Location {
                latitude: location.req("latitude")?.f64()?,
                longitude: location.req("longitude")?.f64()?,
                name: location.opt_str("name")?.map(str::to_owned),
                address: location.opt_str("address")?.map(str::to_owned),
            }
        }
        "interactive" => {
            let interactive = message.req("interactive")?;
            match interactive.req_str("type")? {
                kind @ ("button_reply" | "list_reply") => {
                    let reply = interactive.req(kind)?;
                    Content::Reply {
                        id: reply.req_str("id")?.to_owned(),
                        title: reply.req_str("title")?.to_owned(),
                    }
                }
                // Flows (`nfm_reply`) and whatever Meta adds: typed, not dropped (R23).
                other => Content::Unsupported {
                    kind: format!("interactive.{other}"),
                },
            }
        }
        // A template's quick-reply button: `payload` is what we set on the button.
        "button" => {
            let button = message.req("button")?;
            let title = button.req_str("text")?;
            Content::Reply {
                id: button.opt_str("payload")?.unwrap_or(title).to_owned(),
                title: title.to_owned(),
            }
        }
        // reaction, contacts, order, system, request_welcome, unknown, unsupported, …
        other => Content::Unsupported {
            kind: other.to_owned(),
        },
    };
    Ok(NativeMessage {
        channel: Channel::Whatsapp,
        from: from.to_owned(),
        name: whatsapp_name(from, contacts),
        provider_id: provider_id.to_owned(),
        sent_at,
        content,
        in_reply_to: Vec::new(),
    })
}

/// The sender's profile name from the change's `contacts`: the one with its `wa_id`, or the
/// only one. A missing or odd name is no reason to refuse the message.
fn whatsapp_name(from: &str, contacts: &[Node<'_>]) -> Option<String> {
    let name = |c: &Node<'_>| {
        c.value
            .pointer("/profile/name")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    contacts
        .iter()
        .find(|c| c.value.get("wa_id").and_then(Value::as_str) == Some(from))
        .and_then(name)
        .or_else(|| match contacts {
            [only] => name(only),
            _ => None,
        })
}

fn whatsapp_media(message: &Node<'_>, key: &str, kind: MediaKind) -> Result<Content, WebhookError> {
    let media = message.req(key)?;
    let opt = |field: &str| -> Result<Option<String>, WebhookError> {
        Ok(media.opt_str(field)?.map(str::to_owned))
    };
    Ok(Content::Media(Media {
        kind,
        // The id is the only way to fetch WhatsApp media: without it the message is useless.
        id: Some(media.req_str("id")?.to_owned()),
        url: opt("url")?,
        mime: opt("mime_type")?,
        filename: opt("filename")?,
        caption: opt("caption")?,
    }))
}

fn whatsapp_status(status: &Node<'_>) -> Result<Option<NativeStatus>, WebhookError> {
    let provider_id = status.req_str("id")?;
    let delivery = match status.req_str("status")? {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return Ok(None),
    };
    let at = status.get("timestamp").map(|t| t.seconds()).transpose()?;
    let reason = (delivery == DeliveryStatus::Failed).then(|| {
        status
            .value
            .pointer("/errors/0")
            .map(describe_error)
            .unwrap_or_else(|| "WhatsApp reported the message failed, without a reason".to_owned())
    });
    Ok(Some(NativeStatus {
        channel: Channel::Whatsapp,
        provider_id: provider_id.to_owned(),
        status: delivery,
        reason,
        at,
    }))
}

// ---------------------------------------------------------------------------------------------
// Messenger and Instagram

/// `changes[].field` values whose `value` is a messaging event: read too, in case a setup
/// (Instagram's newer logins, the dashboard's test sends) wraps an event as a change rather
/// than putting it in `messaging`; other changes (feed, comments) are not messages.
const MESSAGING_FIELDS: [&str; 6] = [
    "messages",
    "messaging_postbacks",
    "messaging_seen",
    "message_deliveries",
    "message_reads",
    "message_reactions",
];

fn parse_messaging(root: &Node<'_>, channel: Channel) -> Result<Vec<Delivered>, WebhookError> {
    let mut out = Vec::new();
    for entry in root.req_items("entry")? {
        for event in entry.opt_items("messaging")? {
            messaging_event(&event, channel, &mut out)?;
        }
        for change in entry.opt_items("changes")? {
            if change
                .opt_str("field")?
                .is_some_and(|f| MESSAGING_FIELDS.contains(&f))
            {
                messaging_event(&change.req("value")?, channel, &mut out)?;
            }
        }
    }
    Ok(out)
}

fn messaging_event(event: &Node<'_>, channel: Channel, out: &mut Vec<Delivered>) -> Result<(), WebhookError> {
    let sent_at = event.get("timestamp").map(|t| t.millis()).transpose()?;
    let message = |provider_id: String, content: Content| -> Result<Delivered, WebhookError> {
        Ok(Delivered::Message(NativeMessage {
            channel,
            from: event.req("sender")?.req_str("id")?.to_owned(),
            name: None,
            provider_id,
            sent_at,
            content,
            in_reply_to: Vec::new(),
        }))
    };
    let up_to = |status: DeliveryStatus, watermark: &Node<'_>| -> Result<Delivered, WebhookError> {
        Ok(Delivered::Watermark(NativeWatermark {
            channel,
            customer: event.req("sender")?.req_str("id")?.to_owned(),
            status,
            up_to: watermark.millis()?,
        }))
    };
    let status = |provider_id: &str, status: DeliveryStatus| {
        Delivered::Status(NativeStatus {
            channel,
            provider_id: provider_id.to_owned(),
            status,
            reason: None,
            at: sent_at,
        })
    };

    if let Some(msg) = event.get("message") {
        if msg.flag("is_echo")? || msg.flag("is_deleted")? {
            return Ok(());
        }
        let mid = msg.req_str("mid")?;
        let text = msg.opt_str("text")?;
        let mut parts = Vec::new();
        if let Some(quick_reply) = msg.get("quick_reply") {
            let payload = quick_reply.req_str("payload")?;
            parts.push(Content::Reply {
                id: payload.to_owned(),
                title: text.unwrap_or(payload).to_owned(),
            });
        } else if let Some(text) = text {
            parts.push(Content::Text(text.to_owned()));
        }
        for attachment in msg.opt_items("attachments")? {
            parts.push(messaging_attachment(&attachment)?);
        }
        if parts.is_empty() {
            // Meta's "unsupported message" (`is_unsupported`), or a type not yet known: typed,
            // not dropped (R23).
            parts.push(Content::Unsupported {
                kind: "unsupported".to_owned(),
            });
        }
        for (i, content) in parts.into_iter().enumerate() {
            let provider_id = if i == 0 {
                mid.to_owned()
            } else {
                format!("{mid}#{i}")
            };
            out.push(message(provider_id, content)?);
        }
    } else if let Some(postback) = event.get("postback") {
        let payload = postback.req_str("payload")?;
        let title = postback.opt_str("title")?.unwrap_or(payload);
        // Postbacks carry a `mid` since v11; older ones get an id that a redelivery repeats.
        let provider_id = match postback.opt_str("mid")? {
            Some(mid) => mid.to_owned(),
            None => format!(
                "postback:{}:{}",
                event.req("sender")?.req_str("id")?,
                event.req("timestamp")?.value
            ),
        };
        out.push(message(
            provider_id,
            Content::Reply {
                id: payload.to_owned(),
                title: title.to_owned(),
            },
        )?);
    } else if let Some(reaction) = event.get("reaction") {
        // A reaction has no id of its own: the reacted message's, the action and the time make
        // one that a redelivery repeats.
        let action = reaction.opt_str("action")?.unwrap_or("react");
        let provider_id = format!(
            "reaction:{}:{action}:{}",
            reaction.req_str("mid")?,
            event.req("timestamp")?.value
        );
        out.push(message(
            provider_id,
            Content::Unsupported {
                kind: "reaction".to_owned(),
            },
        )?);
    } else if let Some(delivery) = event.get("delivery") {
        let mids = delivery.opt_items("mids")?;
        for mid in &mids {
            out.push(status(mid.str()?, DeliveryStatus::Delivered));
        }
        // `mids` is optional: without it, the watermark says what arrived.
        if mids.is_empty() {
            if let Some(watermark) = delivery.get("watermark") {
                out.push(up_to(DeliveryStatus::Delivered, &watermark)?);
            }
        }
    } else if let Some(read) = event.get("read") {
        // Instagram names the message read; Messenger gives a watermark: everything we sent
        // up to it was read.
        if let Some(mid) = read.opt_str("mid")? {
            out.push(status(mid, DeliveryStatus::Read));
        } else if let Some(watermark) = read.get("watermark") {
            out.push(up_to(DeliveryStatus::Read, &watermark)?);
        }
    }
    Ok(())
}

fn messaging_attachment(attachment: &Node<'_>) -> Result<Content, WebhookError> {
    let kind = attachment.req_str("type")?;
    let payload = attachment.get("payload");
    let payload_str = |field: &str| -> Result<Option<String>, WebhookError> {
        Ok(match &payload {
            Some(p) => p.opt_str(field)?.map(str::to_owned),
            None => None,
        })
    };
    let media = |kind: MediaKind| -> Result<Content, WebhookError> {
        Ok(Content::Media(Media {
            kind,
            id: None,
            url: payload_str("url")?,
            mime: None,
            filename: None,
            caption: None,
        }))
    };
    match kind {
        // Messenger sends a sticker as an image with a `sticker_id`.
        "image" if payload.as_ref().is_some_and(|p| p.get("sticker_id").is_some()) => {
            media(MediaKind::Sticker)
        }
        "image" => media(MediaKind::Image),
        "video" => media(MediaKind::Video),
        "audio" => media(MediaKind::Audio),
        "file" => media(MediaKind::Document),
        "location" => {
            let coordinates = attachment.req("payload")?.req("coordinates")?;
            Ok(Content::Location {
                latitude: coordinates.req("lat")?.f64()?,
                longitude: coordinates.req("long")?.f64()?,
                name: attachment.opt_str("title")?.map(str::to_owned),
                address: None,
            })
        }
        // fallback (a shared link), template, reel, ig_reel, share, story_mention, …
        other => Ok(Content::Unsupported {
            kind: other.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn malformed(what: String) -> WebhookError {
    WebhookError::Malformed(what)
}

/// Compares two secrets in time that depends on their length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A Graph API error object in words: its message (or title), the details WhatsApp adds in
/// `error_data.details`, and its code and subcode.
fn describe_error(error: &Value) -> String {
    let text = |key: &str| error.get(key).and_then(Value::as_str).filter(|s| !s.is_empty());
    let headline = text("message")
        .or_else(|| text("title"))
        .unwrap_or("an error without a message");
    let mut out = headline.to_owned();
    if let Some(details) = error.pointer("/error_data/details").and_then(Value::as_str) {
        if !details.is_empty() && details != headline {
            out.push_str(": ");
            out.push_str(details);
        }
    }
    if let Some(code) = error.get("code").and_then(Value::as_i64) {
        match error.get("error_subcode").and_then(Value::as_i64) {
            Some(sub) => out.push_str(&format!(" (code {code}, subcode {sub})")),
            None => out.push_str(&format!(" (code {code})")),
        }
    }
    out
}

/// The start of a body, for a reason that has nothing better.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "an empty body".to_owned();
    }
    text.chars().take(200).collect()
}

/// A JSON value and where it is in the body (`entry[0].changes[0].value`), so that an error
/// names the field that was wrong.
struct Node<'a> {
    value: &'a Value,
    path: String,
}

impl<'a> Node<'a> {
    fn root(value: &'a Value) -> Self {
        Node {
            value,
            path: String::new(),
        }
    }

    fn child_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The field `key`, if present and not null.
    fn get(&self, key: &str) -> Option<Node<'a>> {
        match self.value.get(key) {
            None | Some(Value::Null) => None,
            Some(value) => Some(Node {
                value,
                path: self.child_path(key),
            }),
        }
    }

    fn req(&self, key: &str) -> Result<Node<'a>, WebhookError> {
        self.get(key)
            .ok_or_else(|| malformed(format!("{} is missing", self.child_path(key))))
    }

    fn str(&self) -> Result<&'a str, WebhookError> {
        self.value
            .as_str()
            .ok_or_else(|| malformed(format!("{} is not a string", self.path)))
    }

    fn req_str(&self, key: &str) -> Result<&'a str, WebhookError> {
        self.req(key)?.str()
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, WebhookError> {
        self.get(key).map(|n| n.str()).transpose()
    }

    /// A boolean flag, false when absent.
    fn flag(&self, key: &str) -> Result<bool, WebhookError> {
        match self.get(key) {
            None => Ok(false),
            Some(n) => n
                .value
                .as_bool()
                .ok_or_else(|| malformed(format!("{} is not true or false", n.path))),
        }
    }

    fn items(&self) -> Result<Vec<Node<'a>>, WebhookError> {
        let items = self
            .value
            .as_array()
            .ok_or_else(|| malformed(format!("{} is not an array", self.path)))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.path),
            })
            .collect())
    }

    fn req_items(&self, key: &str) -> Result<Vec<Node<'a>>, WebhookError> {
        self.req(key)?.items()
    }

    fn opt_items(&self, key: &str) -> Result<Vec<Node<'a>>, WebhookError> {
        self.get(key).map_or(Ok(Vec::new()), |n| n.items())
    }

    /// A number, or a string holding one (WhatsApp writes some numbers as strings).
    fn f64(&self) -> Result<f64, WebhookError> {
        let number = match self.value {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        number
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| malformed(format!("{} is not a number", self.path)))
    }

    fn integer(&self) -> Option<i64> {
        match self.value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Unix seconds (WhatsApp's `"timestamp": "1749416383"`).
    fn seconds(&self) -> Result<Timestamp, WebhookError> {
        self.integer()
            .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
            .ok_or_else(|| malformed(format!("{} is not a time in Unix seconds", self.path)))
    }

    /// Unix milliseconds (Messenger's and Instagram's `"timestamp": 1458692752478`).
    fn millis(&self) -> Result<Timestamp, WebhookError> {
        self.integer()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .ok_or_else(|| malformed(format!("{} is not a time in Unix milliseconds", self.path)))
    }
}

#[cfg(test)]
mod tests;
