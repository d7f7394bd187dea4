//! SMS and MMS through Twilio (R23–R26): form-encoded webhooks signed with
//! `X-Twilio-Signature`, status callbacks, and the Messages API.
//!
//! Settings read from [`PlatformConfig`]: `account_sid` and `auth_token` (the API's Basic
//! authorization; the token also signs the webhooks), `from` (our number, or a messaging
//! service's), and optionally `status_callback_url` (where Twilio posts our messages'
//! statuses). `base_url` is `https://api.twilio.com`.
//!
//! A webhook goes: [`parse_form`] on the body, [`verify_signature`] with the URL Twilio posted
//! to and those parameters, then [`parse`]. Signing covers the decoded parameters, not the raw
//! body, which is why the form is read before it is verified.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;

use super::{
    retry_after, Content, Delivered, DeliveryStatus, Media, MediaKind, NativeMessage, NativeStatus, Outgoing,
    OutgoingBody, PlatformConfig, PlatformRequest, SendOutcome, WebhookError,
};
use crate::clock::Timestamp;
use crate::core::Channel;
use crate::security::constant_time_eq;

/// The header Twilio signs its webhooks in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// Checks `X-Twilio-Signature`: base64 of HMAC-SHA1, keyed with the auth token, of the full URL
/// Twilio requested (scheme, host, path and query, exactly as configured in Twilio) followed by
/// every POST parameter's name and value, sorted by name.
///
/// Parameters repeated under one name are sorted by value and counted once, as Twilio's own
/// helper libraries do. The compare takes the same time wherever the signatures differ.
/// `url` must be the public URL Twilio was given, not the one a proxy in front of the gateway
/// rewrote (`https` terminated to `http`, another port): Twilio signed what it called.
pub fn verify_signature(
    header: Option<&str>,
    url: &str,
    form: &[(String, String)],
    auth_token: &str,
) -> Result<(), WebhookError> {
    let presented = header.ok_or(WebhookError::Unsigned(SIGNATURE_HEADER))?;
    // An unconfigured (empty) token would make signatures anyone can compute.
    if auth_token.is_empty() {
        return Err(WebhookError::BadSignature(SIGNATURE_HEADER));
    }
    let expected = signature(url, form, auth_token).ok_or(WebhookError::BadSignature(SIGNATURE_HEADER))?;
    if !constant_time_eq(presented.trim().as_bytes(), expected.as_bytes()) {
        return Err(WebhookError::BadSignature(SIGNATURE_HEADER));
    }
    Ok(())
}

/// The signature Twilio would send for `url` and `form` (see [`verify_signature`]).
fn signature(url: &str, form: &[(String, String)], auth_token: &str) -> Option<String> {
    let mut params: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    params.sort_unstable();
    params.dedup();
    // HMAC takes a key of any length, so this never fails; were it to, no signature matches.
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).ok()?;
    mac.update(url.as_bytes());
    for (name, value) in params {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    Some(BASE64.encode(mac.finalize().into_bytes()))
}

/// Reads an `application/x-www-form-urlencoded` webhook body into its parameters, in order.
///
/// `+` and percent escapes are decoded (an escape that is not UTF-8 becomes U+FFFD, and the
/// signature, computed by Twilio over the real text, then fails). A body that is not text, or
/// is JSON (Twilio's JSON webhooks are signed differently, with `bodySHA256`), is refused.
pub fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, WebhookError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| WebhookError::Malformed("the Twilio webhook body is not form-encoded text".into()))?;
    if text.trim_start().starts_with('{') {
        return Err(WebhookError::Malformed(
            "the Twilio webhook body is JSON, not application/x-www-form-urlencoded".into(),
        ));
    }
    Ok(form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect())
}

/// Reads a verified Twilio webhook's parameters into what it delivered.
///
/// **Status callbacks** (a `MessageStatus` other than `received`/`receiving`) are about a
/// message we sent, named by `MessageSid`:
/// - `sent` → [`DeliveryStatus::Sent`]; `delivered` → `Delivered`; `read` (WhatsApp, RCS) →
///   `Read`; `partially_delivered` (some parts of a multi-part message) → `Delivered`;
/// - `undelivered`, `failed` → `Failed`, with the reason `Twilio error {ErrorCode}` (the code
///   Twilio's error dictionary explains); `canceled` (a scheduled message withdrawn) → `Failed`;
/// - `queued`, `accepted`, `scheduled`, `sending` → no item: Twilio has the message but has not
///   handed it on, which the 201 of the send (read as `Sent` by [`read_answer`]) already said.
///
/// Twilio's status callbacks carry no time, so `at` is `None`.
///
/// **Inbound messages** (SMS and MMS): `from` is `From`, the name is `ProfileName` where Twilio
/// gives one (WhatsApp senders), `provider_id` is `MessageSid` (Twilio repeats it when it
/// retries a webhook). Twilio gives no sending time. A message without media is one
/// [`Content::Text`] (empty if the SMS was). A message with `NumMedia` media is one
/// [`Content::Media`] item per attachment, in order: the first carries `Body` as its caption
/// and `MessageSid` as its id; the `i`-th further one is `{MessageSid}/{i}`, so each item has an
/// id of its own that a retried webhook repeats. None is dropped. `Latitude`/`Longitude` (a
/// WhatsApp location through Twilio) make a [`Content::Location`].
pub fn parse(form: &[(String, String)]) -> Result<Vec<Delivered>, WebhookError> {
    let get = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let required = |name: &str| {
        get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| WebhookError::Malformed(format!("the Twilio webhook has no `{name}`")))
    };
    // `SmsSid`/`SmsStatus` are the older names Twilio still sends beside the new ones.
    let sid = required("MessageSid").or_else(|_| required("SmsSid").map_err(|_| missing("MessageSid")))?;
    let status = get("MessageStatus").or_else(|| get("SmsStatus"));

    if let Some(status) = status.filter(|s| !matches!(*s, "received" | "receiving")) {
        return status_item(sid, status, get("ErrorCode")).map(|item| item.into_iter().collect());
    }

    let from = required("From")?.to_owned();
    let name = get("ProfileName").filter(|n| !n.is_empty()).map(str::to_owned);
    let body = get("Body").unwrap_or_default();
    let count = match get("NumMedia").filter(|n| !n.is_empty()) {
        None => 0,
        Some(n) => n.parse::<usize>().map_err(|_| {
            WebhookError::Malformed(format!("the Twilio webhook's `NumMedia` `{n}` is not a count"))
        })?,
    };
    let message = |provider_id: String, content: Content| {
        Delivered::Message(NativeMessage {
            channel: Channel::Sms,
            from: from.clone(),
            name: name.clone(),
            provider_id,
            sent_at: None,
            content,
            in_reply_to: Vec::new(),
        })
    };

    if count == 0 {
        let location = match (get("Latitude"), get("Longitude")) {
            (Some(lat), Some(lon)) => Some((degrees(lat, "Latitude")?, degrees(lon, "Longitude")?)),
            _ => None,
        };
        let content = match location {
            Some((latitude, longitude)) => Content::Location {
                latitude,
                longitude,
                name: get("Label").filter(|l| !l.is_empty()).map(str::to_owned),
                address: get("Address").filter(|a| !a.is_empty()).map(str::to_owned),
            },
            None => Content::Text(body.to_owned()),
        };
        return Ok(vec![message(sid.to_owned(), content)]);
    }

    let mut items = Vec::with_capacity(count);
    for i in 0..count {
        let url = required(&format!("MediaUrl{i}"))?.to_owned();
        let mime = get(&format!("MediaContentType{i}"))
            .filter(|m| !m.is_empty())
            .map(str::to_owned);
        let provider_id = if i == 0 {
            sid.to_owned()
        } else {
            format!("{sid}/{i}")
        };
        let caption = (i == 0 && !body.is_empty()).then(|| body.to_owned());
        let media = Media {
            kind: media_kind(mime.as_deref()),
            id: None,
            url: Some(url),
            mime,
            filename: None,
            caption,
        };
        items.push(message(provider_id, Content::Media(media)));
    }
    Ok(items)
}

fn missing(name: &str) -> WebhookError {
    WebhookError::Malformed(format!("the Twilio webhook has no `{name}`"))
}

fn degrees(value: &str, name: &str) -> Result<f64, WebhookError> {
    value.trim().parse().map_err(|_| {
        WebhookError::Malformed(format!("the Twilio webhook's `{name}` `{value}` is not a number"))
    })
}

/// What a status callback says about our message `sid`, if anything.
fn status_item(sid: &str, status: &str, error_code: Option<&str>) -> Result<Option<Delivered>, WebhookError> {
    let error_code = error_code.filter(|c| !c.is_empty());
    let (status, reason) = match status {
        "queued" | "accepted" | "scheduled" | "sending" => return Ok(None),
        "sent" => (DeliveryStatus::Sent, None),
        "delivered" | "partially_delivered" => (DeliveryStatus::Delivered, None),
        "read" => (DeliveryStatus::Read, None),
        "undelivered" | "failed" => {
            let reason = match error_code {
                Some(code) => format!("Twilio error {code}"),
                None => format!("Twilio reported the message {status} without an error code"),
            };
            (DeliveryStatus::Failed, Some(reason))
        }
        "canceled" => (
            DeliveryStatus::Failed,
            Some("Twilio canceled the scheduled message".into()),
        ),
        other => {
            return Err(WebhookError::Malformed(format!(
                "the Twilio status callback's `MessageStatus` `{other}` is not one Twilio documents"
            )))
        }
    };
    Ok(Some(Delivered::Status(NativeStatus {
        channel: Channel::Sms,
        provider_id: sid.to_owned(),
        status,
        reason,
        at: None,
    })))
}

/// An MMS attachment's kind by its MIME type; anything not picture, sound or film (vCards,
/// PDFs, …) is a document.
fn media_kind(mime: Option<&str>) -> MediaKind {
    let top = mime.and_then(|m| m.split('/').next()).unwrap_or_default();
    match top.to_ascii_lowercase().as_str() {
        "image" => MediaKind::Image,
        "audio" => MediaKind::Audio,
        "video" => MediaKind::Video,
        _ => MediaKind::Document,
    }
}

/// Builds the Messages API request that sends `out`.
///
/// `POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`, authorized with Basic
/// `account_sid:auth_token`, form-encoded `To`, `From` (the `from` setting), `Body` and, when
/// `status_callback_url` is set, `StatusCallback`. The outbox's idempotency key goes in
/// Twilio's `I-Twilio-Idempotency-Token` header, so a retry after an uncertain failure does not
/// text the customer twice (R24). SMS has no templates, and an [`OutgoingBody::Template`]
/// carries no text to render: it is refused, naming the template.
pub fn build_send(out: &Outgoing, config: &PlatformConfig) -> Result<PlatformRequest, String> {
    let text = match &out.body {
        OutgoingBody::Text(text) => text,
        OutgoingBody::Template { name, .. } => {
            return Err(format!(
                "SMS has no message templates: template `{name}` cannot be sent to {}",
                out.to
            ))
        }
    };
    let account_sid = config.get("account_sid")?;
    let auth_token = config.get("auth_token")?;
    let from = config.get("from")?;

    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("To", &out.to)
        .append_pair("From", from)
        .append_pair("Body", text);
    if let Some(callback) = config
        .settings
        .get("status_callback_url")
        .filter(|c| !c.is_empty())
    {
        form.append_pair("StatusCallback", callback);
    }
    let credentials = BASE64.encode(format!("{account_sid}:{auth_token}"));
    Ok(PlatformRequest {
        method: "POST",
        url: format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages.json",
            config.base_url.trim_end_matches('/')
        ),
        headers: vec![
            ("Authorization".into(), format!("Basic {credentials}")),
            ("Content-Type".into(), "application/x-www-form-urlencoded".into()),
            ("I-Twilio-Idempotency-Token".into(), out.idempotency_key.clone()),
        ],
        body: form.finish().into_bytes(),
    })
}

/// Reads the Messages API's answer to a send.
///
/// - 2xx (201 Created) with the Message's `sid`: [`SendOutcome::Sent`].
/// - 429: [`SendOutcome::Retry`] after `Retry-After`, if given.
/// - 5xx: [`SendOutcome::Retry`].
/// - other 4xx: [`SendOutcome::Failed`] with Twilio's `code` and `message`
///   (`Twilio error 21610: Attempt to send to unsubscribed recipient`).
/// - a 2xx without a `sid`: [`SendOutcome::Retry`]: the idempotency token makes sending again
///   harmless, and the retry's answer names the message.
pub fn read_answer(status: u16, headers: &[(String, String)], body: &[u8], now: Timestamp) -> SendOutcome {
    let answer: Option<Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| answer.as_ref().and_then(|a| a.get(name));

    if (200..300).contains(&status) {
        return match field("sid").and_then(Value::as_str) {
            Some(sid) => SendOutcome::Sent {
                provider_id: sid.to_owned(),
            },
            None => SendOutcome::Retry {
                after: None,
                reason: format!(
                    "Twilio answered {status} without the message's `sid`: {}",
                    String::from_utf8_lossy(body)
                ),
            },
        };
    }

    let message = field("message").and_then(Value::as_str);
    let code = field("code").and_then(|c| {
        c.as_u64()
            .map(|c| c.to_string())
            .or(c.as_str().map(str::to_owned))
    });
    let reason = match (code, message) {
        (Some(code), Some(message)) => format!("Twilio error {code}: {message}"),
        (None, Some(message)) => format!("Twilio answered {status}: {message}"),
        (Some(code), None) => format!("Twilio error {code} (HTTP {status})"),
        (None, None) if body.is_empty() => format!("Twilio answered {status} with no body"),
        (None, None) => format!("Twilio answered {status}: {}", String::from_utf8_lossy(body)),
    };
    if status == 429 || status >= 500 {
        let after = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
            .and_then(|(_, value)| retry_after(value, now));
        return SendOutcome::Retry { after, reason };
    }
    SendOutcome::Failed { reason }
}

/// What an SMS opt keyword asks (R26).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKeyword {
    /// Stop messaging me: the customer is opted out, as `#STOP` does (R08).
    Out,
    /// Message me again: the customer is opted back in.
    In,
}

/// The SMS opt-out or opt-in keyword a customer's whole message is, if it is one (R26).
///
/// Out: `STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`, `QUIT` (R26), and `OPTOUT` and
/// `REVOKE`, which Twilio's default opt-out handling also honours. In: `START`, `UNSTOP`
/// (R26) and `YES`, which Twilio also takes as an opt-in. The engine follows Twilio on both
/// lists because Twilio itself blocks (and unblocks) the number on them: a keyword Twilio acted
/// on that we ignored would leave agents writing to a number Twilio refuses, or unable to
/// answer one it serves again. Case and surrounding whitespace are ignored; a keyword inside
/// a longer message (`please stop calling`) is not one, as carriers and Twilio treat it.
/// `YES` only opts a customer back in who was opted out; to anyone else it is an ordinary
/// answer, which the caller keeps as the message it is.
pub fn opt_keyword(text: &str) -> Option<OptKeyword> {
    const OUT: &[&str] = &[
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "OPTOUT",
        "REVOKE",
    ];
    const IN: &[&str] = &["START", "UNSTOP", "YES"];
    let word = text.trim();
    if OUT.iter().any(|k| k.eq_ignore_ascii_case(word)) {
        Some(OptKeyword::Out)
    } else if IN.iter().any(|k| k.eq_ignore_ascii_case(word)) {
        Some(OptKeyword::In)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
