//! Email (R23–R25): a raw RFC 5322 message posted by the mail server or provider, threaded into
//! its chat by `In-Reply-To`/`References`; replies built as RFC 5322 messages and sent over SMTP.
//!
//! Inbound is pure: [`verify_token`] checks the shared secret the posting mail server sends,
//! [`parse`] reads the raw message (with `mail-parser`) into [`Delivered`] items, and
//! [`is_auto_reply`] tells vacation notices and bulk mail apart so they need not open chats.
//! Outbound, [`build_message`] builds the reply's bytes (with `lettre`'s builder), purely;
//! [`send_smtp`] is the one function here that does I/O (in `email/smtp.rs`).
//!
//! Settings read from [`PlatformConfig::settings`]:
//! - `from`: the reply's `From`, e.g. `Support <support@example.com>` ([`build_message`]);
//! - `smtp_host`, `smtp_port` (default 587, or 465 for `tls`, 25 for `none`), `smtp_tls`
//!   (`starttls`, the default; `tls` for implicit TLS; `none` for tests only), `smtp_user` and
//!   `smtp_password` (both or neither), `smtp_timeout_secs` (default 30) ([`send_smtp`]).

use std::time::SystemTime;

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::Message as LettreMessage;
use mail_parser::{HeaderValue as ParsedValue, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::{
    Content, Delivered, Media, MediaKind, NativeMessage, Outgoing, OutgoingBody, PlatformConfig, WebhookError,
};
use crate::clock::Timestamp;
use crate::core::Channel;

mod smtp;
pub use smtp::send_smtp;

#[cfg(test)]
mod tests;

/// The header the posting mail server may carry its shared secret in, instead of
/// `Authorization: Bearer …` (some providers' inbound-mail hooks can set only custom headers).
pub const TOKEN_HEADER: &str = "X-Switchboard-Mail-Token";

/// The header every reply carries its [`Outgoing::idempotency_key`] in (R24): a relay or a
/// mailbox that sees the same key twice can tell a retry from a second message.
pub const IDEMPOTENCY_HEADER: &str = "X-Switchboard-Idempotency-Key";

/// Checks the shared secret of the mail server that posts raw messages.
///
/// `header` is the value of `Authorization` (`Bearer <token>`, scheme case-insensitive) or of
/// [`TOKEN_HEADER`] (the bare token); `token` is the configured secret. The comparison is
/// constant-time: both sides are hashed with SHA-256 and the digests compared without an early
/// exit, so neither the content nor the length of the secret leaks through timing.
/// No header → [`WebhookError::Unsigned`]; a wrong token, or an empty configured one (which
/// must never let anything in) → [`WebhookError::BadSignature`].
pub fn verify_token(header: Option<&str>, token: &str) -> Result<(), WebhookError> {
    const WHAT: &str = "mail token (Authorization: Bearer or X-Switchboard-Mail-Token)";
    let value = header.ok_or(WebhookError::Unsigned(WHAT))?.trim();
    let presented = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    };
    let a = Sha256::digest(presented.as_bytes());
    let b = Sha256::digest(token.as_bytes());
    let diff = a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if diff == 0 && !token.is_empty() {
        Ok(())
    } else {
        Err(WebhookError::BadSignature(WHAT))
    }
}

/// Reads a raw RFC 5322 message into the customer's message and its attachments (R23).
///
/// - `from`: the `From` address, lowercased; `name`: its display name.
/// - `provider_id`: the `Message-ID` without `<>` (a retried post repeats it); a message
///   without one is refused, since nothing else identifies a retry.
/// - `sent_at`: the `Date` header.
/// - `in_reply_to`: the `In-Reply-To` ids, then the `References` ids newest first, without
///   `<>` and without repeats: the first that belongs to a chat threads the message into it.
/// - The text: the `text/plain` body parts (an HTML-only message's HTML converted to text by
///   `mail-parser`), with the quoted reply trimmed by [`trim_quoted`]. It is one
///   [`Content::Text`] item, left out only when it is empty and there are attachments.
/// - Each attachment (inline images included) is one more item with [`Content::Media`] and
///   `provider_id` `"{message-id}#{n}"`, `n` counting attachments from 1 in the message's
///   order, so none is dropped and a retried post repeats every id. The bytes are not in
///   [`Media`] (it has no field for them); [`attachment`] extracts attachment `n` from the
///   same raw message, and [`Media::id`] carries the same `"{message-id}#{n}"` key for it.
pub fn parse(raw: &[u8]) -> Result<Vec<Delivered>, WebhookError> {
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| !m.headers().is_empty())
        .ok_or_else(|| malformed("the body is not an RFC 5322 message (no headers)"))?;
    let message_id = message
        .message_id()
        .map(strip_angles)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| malformed("the email has no Message-ID header"))?;
    let sender = message
        .from()
        .and_then(|a| a.first())
        .ok_or_else(|| malformed("the email has no From address"))?;
    let from = sender
        .address()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| malformed("the email's From header has no address"))?;
    let name = sender
        .name()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let sent_at = message
        .date()
        .and_then(|d| chrono::DateTime::from_timestamp(d.to_timestamp(), 0));

    // In-Reply-To names the parent; References lists the thread oldest first, so it is read
    // backwards: the newest ancestor is the likeliest to be a message of a live chat.
    let mut in_reply_to: Vec<String> = Vec::new();
    let references = message.references();
    let ancestors = ids(message.in_reply_to())
        .into_iter()
        .chain(ids(references).into_iter().rev());
    for id in ancestors {
        if !id.is_empty() && !in_reply_to.contains(&id) {
            in_reply_to.push(id);
        }
    }

    let item = |provider_id: String, content: Content| {
        Delivered::Message(NativeMessage {
            channel: Channel::Email,
            from: from.clone(),
            name: name.clone(),
            provider_id,
            sent_at,
            content,
            in_reply_to: in_reply_to.clone(),
        })
    };

    // Inline images of a multipart/mixed message are listed among the text bodies too; only
    // text and HTML parts make the text, the rest arrives as attachments.
    let text: Vec<String> = message
        .text_bodies()
        .filter_map(|part| match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            PartType::Html(html) => Some(html_to_text(html)),
            _ => None,
        })
        .collect();
    let text = trim_quoted(&text.join("\n"));

    let mut items = Vec::new();
    let attachments: Vec<_> = message.attachments().collect();
    if !text.is_empty() || attachments.is_empty() {
        items.push(item(message_id.clone(), Content::Text(text)));
    }
    for (i, part) in attachments.iter().enumerate() {
        let key = format!("{message_id}#{}", i + 1);
        let mime = part.content_type().map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_lowercase(),
            None => ct.ctype().to_lowercase(),
        });
        let kind = match mime.as_deref().and_then(|m| m.split('/').next()) {
            Some("image") => MediaKind::Image,
            Some("audio") => MediaKind::Audio,
            Some("video") => MediaKind::Video,
            _ => MediaKind::Document,
        };
        let media = Media {
            kind,
            id: Some(key.clone()),
            url: None,
            mime,
            filename: part.attachment_name().map(str::to_owned),
            caption: None,
        };
        items.push(item(key, Content::Media(media)));
    }
    Ok(items)
}

/// The bytes of attachment `n` (from 1, as in [`parse`]'s `"{message-id}#{n}"`) of a raw
/// message, decoded from its transfer encoding; `None` if there is no such attachment.
///
/// [`Media`] has no field for content, so whoever stores the attachment extracts it here.
pub fn attachment(raw: &[u8], n: usize) -> Option<Vec<u8>> {
    let message = MessageParser::default().parse(raw)?;
    let part = message.attachments().nth(n.checked_sub(1)?)?;
    Some(match &part.body {
        // An attached email is kept whole, as it was in the message.
        PartType::Message(inner) => inner.raw_message().to_vec(),
        _ => part.contents().to_vec(),
    })
}

/// Whether a message is an automatic one that must not be answered or open a chat: an
/// `Auto-Submitted` header other than `no` (RFC 3834: vacation notices, bounces), `Precedence:
/// bulk`, `junk`, `list` or `auto_reply`, or an `X-Autoreply` / `X-Autorespond` header (older
/// responders that set neither). Unparseable input is not an auto-reply: [`parse`] refuses it.
pub fn is_auto_reply(raw: &[u8]) -> bool {
    let Some(message) = MessageParser::default().parse_headers(raw) else {
        return false;
    };
    let automatic = message.headers_raw().any(|(name, value)| {
        let value = value.trim().to_ascii_lowercase();
        if name.eq_ignore_ascii_case("Auto-Submitted") {
            // The value may carry parameters or a comment: `no; …`, `no (…)`.
            let keyword = value.split([';', '(', ' ']).next().unwrap_or_default();
            keyword != "no"
        } else if name.eq_ignore_ascii_case("Precedence") {
            matches!(value.as_str(), "bulk" | "junk" | "list" | "auto_reply")
        } else {
            name.eq_ignore_ascii_case("X-Autoreply") || name.eq_ignore_ascii_case("X-Autorespond")
        }
    });
    automatic
}

/// Trims the quoted message a reply carries below the customer's words.
///
/// Only the trailing block goes, and only in the simple shape mail clients write: from the
/// end, blank lines and lines starting with `>`, then one attribution line `On … wrote:`
/// (also when the client wrapped it, so that `wrote:` ends the next line), then the blank
/// lines above it. Quotes between the customer's own lines (inline answers) stay, as context
/// for the agent. If trimming would leave nothing (a message that is only a quote), the text
/// is kept whole: nothing a customer sent is dropped.
pub fn trim_quoted(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<&str> = text.lines().collect();
    let mut end = lines.len();
    let mut quoted = false;
    while end > 0 {
        let line = lines[end - 1].trim_start();
        if line.is_empty() {
            end -= 1;
        } else if line.starts_with('>') {
            quoted = true;
            end -= 1;
        } else {
            break;
        }
    }
    if quoted && end > 0 {
        let last = lines[end - 1].trim();
        if last.ends_with("wrote:") {
            if last.starts_with("On ") {
                end -= 1;
            } else if end >= 2 && lines[end - 2].trim_start().starts_with("On ") {
                end -= 2;
            }
        }
    }
    while end > 0 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let trimmed = lines[..end].join("\n");
    if trimmed.trim().is_empty() {
        text.trim().to_owned()
    } else {
        trimmed.trim_matches('\n').trim_end().to_owned()
    }
}

/// Builds the RFC 5322 reply for `out`, as the bytes to hand to SMTP.
///
/// `From` is the `from` setting; `To` is [`Outgoing::to`]; `Subject`, `Message-ID` and
/// `In-Reply-To` come from [`Outgoing::email`], and `References` is its `references` with the
/// `in_reply_to` id appended when missing (RFC 5322 §3.6.4: the parent's references, then the
/// parent). Ids are written in `<>` whether or not they were given with them. `Date` is `now`,
/// so the bytes depend only on the arguments; [`IDEMPOTENCY_HEADER`] carries the idempotency
/// key. The body is `text/plain; charset=utf-8` (lettre picks 7bit, quoted-printable or base64).
/// A template, a non-email channel, a missing `email` thread, a bad address or an id that
/// could smuggle a header is refused, naming it.
pub fn build_message(out: &Outgoing, config: &PlatformConfig, now: Timestamp) -> Result<Vec<u8>, String> {
    if out.channel != Channel::Email {
        return Err(format!(
            "an email reply was asked for a {:?} message",
            out.channel
        ));
    }
    let text = match &out.body {
        OutgoingBody::Text(text) => text,
        OutgoingBody::Template { name, .. } => {
            return Err(format!(
                "email has no templates: the message is the template `{name}`"
            ))
        }
    };
    let thread = out
        .email
        .as_ref()
        .ok_or("an email reply needs its subject and Message-ID, and `email` is empty")?;
    let from_setting = config.get("from")?;
    let from: Mailbox = from_setting
        .parse()
        .map_err(|e| format!("the `from` setting `{from_setting}` is not a mailbox: {e}"))?;
    let to: Mailbox = out
        .to
        .parse()
        .map_err(|e| format!("the recipient `{}` is not an email address: {e}", out.to))?;
    let message_id = angle_id(&thread.message_id, "message_id")?;

    let mut references = thread
        .references
        .iter()
        .map(|id| angle_id(id, "references"))
        .collect::<Result<Vec<_>, _>>()?;
    // Subjects arrive from agents and customers: line breaks would otherwise fold oddly.
    let subject = thread.subject.replace(['\r', '\n'], " ");
    let mut builder = LettreMessage::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .date(SystemTime::from(now))
        .message_id(Some(message_id));
    if let Some(parent) = &thread.in_reply_to {
        let parent = angle_id(parent, "in_reply_to")?;
        if !references.contains(&parent) {
            references.push(parent.clone());
        }
        builder = builder.in_reply_to(parent);
    }
    if !references.is_empty() {
        builder = builder.references(references.join(" "));
    }
    let key = &out.idempotency_key;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "the idempotency key `{key}` is empty or not printable ASCII without spaces"
        ));
    }
    let name = HeaderName::new_from_ascii_str(IDEMPOTENCY_HEADER);
    builder = builder.raw_header(HeaderValue::new(name, key.clone()));
    // A single part rather than a bare body: lettre writes `MIME-Version` only for MIME parts,
    // and a UTF-8 body with a transfer encoding needs it (RFC 2045).
    let message = builder
        .singlepart(SinglePart::plain(text.clone()))
        .map_err(|e| format!("the email reply could not be built: {e}"))?;
    Ok(message.formatted())
}

/// `id` as `<id>`: given with or without its angle brackets, it must be one `left@right`
/// token with nothing that could end the header or the id.
fn angle_id(id: &str, field: &str) -> Result<String, String> {
    let bare = strip_angles(id.trim());
    let ok = !bare.is_empty()
        && bare.contains('@')
        && bare
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    if ok {
        Ok(format!("<{bare}>"))
    } else {
        Err(format!(
            "the email thread's {field} `{id}` is not a Message-ID (id@domain)"
        ))
    }
}

/// `mail-parser` gives ids without `<>` already; ids from elsewhere may have them.
fn strip_angles(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').to_owned()
}

/// The ids of an `In-Reply-To` or `References` header, in the header's order.
fn ids(value: &ParsedValue<'_>) -> Vec<String> {
    match value {
        ParsedValue::Text(id) => vec![strip_angles(id)],
        ParsedValue::TextList(list) => list.iter().map(|id| strip_angles(id)).collect(),
        _ => Vec::new(),
    }
}

/// A crude HTML-to-text for HTML-only mail: `mail-parser`'s own conversion (tags dropped,
/// entities decoded, block ends as line breaks).
fn html_to_text(html: &str) -> String {
    mail_parser::decoders::html::html_to_text(html)
}

fn malformed(what: &str) -> WebhookError {
    WebhookError::Malformed(what.to_owned())
}
