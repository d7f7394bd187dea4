//! The messaging platforms' own formats (R23–R26): what their webhooks deliver and what their
//! send APIs expect, one module per platform.
//!
//! Everything here is pure: a module reads a webhook (headers and body) into [`Delivered`]
//! items, or refuses it, naming what was wrong; and it builds the exact HTTP request the
//! platform's send API expects for an [`Outgoing`] message and reads the platform's answer
//! into a [`SendOutcome`]. No I/O: the gateway serves the webhooks, the engine's outbox sends
//! the requests (after the change that caused them is committed, R24).
//!
//! - [`meta`]: WhatsApp Cloud API, Messenger and Instagram (Meta's webhooks,
//!   `X-Hub-Signature-256`, the `hub.challenge` handshake).
//! - [`telegram`]: Bot API updates (`X-Telegram-Bot-Api-Secret-Token`) and `sendMessage`.
//! - [`twilio`]: SMS, form-encoded, `X-Twilio-Signature`, status callbacks, Messages API.
//! - [`email`]: a raw RFC 5322 message posted by the mail server, threaded by
//!   `In-Reply-To`/`References`; replies go out over SMTP.

use std::time::Duration;

use crate::clock::Timestamp;
use crate::core::Channel;

pub mod email;
pub mod meta;
pub mod telegram;
pub mod twilio;

/// One thing a platform's webhook delivered.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivered {
    /// A customer's message.
    Message(NativeMessage),
    /// The platform's news about a message we sent (R25).
    Status(NativeStatus),
    /// The platform's news about every message we sent a customer up to a moment, where it
    /// names no message (Messenger's read receipts carry only a watermark, R25).
    Watermark(NativeWatermark),
}

/// A customer's message as the platform delivered it.
#[derive(Clone, Debug, PartialEq)]
pub struct NativeMessage {
    /// The channel it came on (one Meta webhook serves WhatsApp, Messenger and Instagram).
    pub channel: Channel,
    /// The customer's address on the channel: a WhatsApp id, a page-scoped id, a Telegram
    /// chat id, a phone number, an email address.
    pub from: String,
    /// The customer's name, where the platform tells it.
    pub name: Option<String>,
    /// The platform's id of the message: a retried delivery repeats it (R23).
    pub provider_id: String,
    /// When the platform says it was sent.
    pub sent_at: Option<Timestamp>,
    /// What it says or carries.
    pub content: Content,
    /// Email: the `Message-ID`s it answers (`In-Reply-To`, then `References`), newest first,
    /// to thread it into the chat whose message it answers.
    pub in_reply_to: Vec<String>,
}

/// What a customer's message carries (R23): none is dropped, whatever its type.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// Plain text (an email's text part, an SMS, a chat message).
    Text(String),
    /// An image, document, audio, video or sticker.
    Media(Media),
    /// A shared location.
    Location {
        /// Degrees north.
        latitude: f64,
        /// Degrees east.
        longitude: f64,
        /// The place's name, if given.
        name: Option<String>,
        /// Its address, if given.
        address: Option<String>,
    },
    /// An answer to an interactive message: a button or a list row.
    Reply {
        /// The id of the button or row, as we sent it.
        id: String,
        /// Its title, as the customer saw it.
        title: String,
    },
    /// Anything else, typed by the platform's own name for it.
    Unsupported {
        /// The platform's type (`"reaction"`, `"contacts"`, …).
        kind: String,
    },
}

/// A media attachment.
#[derive(Clone, Debug, PartialEq)]
pub struct Media {
    /// What kind of media.
    pub kind: MediaKind,
    /// The platform's media id, to fetch it with (WhatsApp, Telegram's `file_id`).
    pub id: Option<String>,
    /// A URL to fetch it from, where the platform gives one (Messenger, Twilio).
    pub url: Option<String>,
    /// Its MIME type, if known.
    pub mime: Option<String>,
    /// Its file name, if known.
    pub filename: Option<String>,
    /// Its caption, if any.
    pub caption: Option<String>,
}

/// Kinds of media: the core's own (a platform's media is a core payload as it is).
pub use crate::core::MediaKind;

/// The platform's news about a message we sent (R25).
#[derive(Clone, Debug, PartialEq)]
pub struct NativeStatus {
    /// The channel.
    pub channel: Channel,
    /// The platform's id of our message, as its send API answered it.
    pub provider_id: String,
    /// What happened to it.
    pub status: DeliveryStatus,
    /// Why it failed, in the platform's words, when it did.
    pub reason: Option<String>,
    /// When, if the platform says.
    pub at: Option<Timestamp>,
}

/// Every message we sent a customer on a channel up to a moment reached a status (R25).
#[derive(Clone, Debug, PartialEq)]
pub struct NativeWatermark {
    /// The channel.
    pub channel: Channel,
    /// The customer's address on it (who read or received them).
    pub customer: String,
    /// What happened to them: delivered or read.
    pub status: DeliveryStatus,
    /// Every message sent at or before this moment, by the platform's clock.
    pub up_to: Timestamp,
}

/// Where a message to a customer is (R25).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryStatus {
    /// The platform took it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It will not arrive.
    Failed,
}

/// Why a webhook was refused; each names what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The signature (or secret token) is missing: the platform always sends one (401).
    #[error("missing {0}")]
    Unsigned(&'static str),
    /// The signature does not match the body (401).
    #[error("{0} does not match the body")]
    BadSignature(&'static str),
    /// The body is not what the platform sends, with the field that was wrong (400).
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

/// A message to send to a customer through the platform.
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    /// The channel.
    pub channel: Channel,
    /// The customer's address on it.
    pub to: String,
    /// Text, or a template.
    pub body: OutgoingBody,
    /// Messenger: send with the `HUMAN_AGENT` tag (after 24 h, R07).
    pub human_agent_tag: bool,
    /// Unique per message, the same on every attempt: where the platform takes one, it
    /// makes a retry after an uncertain failure harmless (R24).
    pub idempotency_key: String,
    /// Email: the subject and the `Message-ID`s it answers, for threading.
    pub email: Option<EmailThread>,
}

/// What is sent.
#[derive(Clone, Debug, PartialEq)]
pub enum OutgoingBody {
    /// Free text.
    Text(String),
    /// A pre-approved template (WhatsApp), with its language and parameters.
    Template {
        /// Its name.
        name: String,
        /// Its language code (`en_US`).
        language: String,
        /// Body parameters, in order.
        params: Vec<String>,
    },
}

/// Email threading for an outgoing reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailThread {
    /// The subject (`Re: …`).
    pub subject: String,
    /// The `Message-ID` it answers, for `In-Reply-To`.
    pub in_reply_to: Option<String>,
    /// The thread's `Message-ID`s, for `References`.
    pub references: Vec<String>,
    /// The `Message-ID` of this reply.
    pub message_id: String,
}

/// An HTTP request to a platform's send API, exactly as it expects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformRequest {
    /// `POST`, mostly.
    pub method: &'static str,
    /// The full URL, from the configured base URL (tests point it at a fake platform).
    pub url: String,
    /// Headers, authorization and content type included.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What a platform's answer to a send means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Taken; the platform's id of the message, to match its status webhooks with.
    Sent {
        /// The platform's message id.
        provider_id: String,
    },
    /// Try again later: a 5xx, a timeout, or 429 with the `Retry-After` it gave.
    Retry {
        /// How long the platform asked us to wait, if it said.
        after: Option<Duration>,
        /// What went wrong, for logs and a final failure.
        reason: String,
    },
    /// It will never go: the platform's reason (a blocked user, a bad number, an expired
    /// window, …).
    Failed {
        /// The platform's reason, in its words.
        reason: String,
    },
}

// The platforms' credentials are the edge's to hold (`security`); the adapters read them.
pub use crate::security::PlatformConfig;

/// The `Retry-After` header's delay: seconds, or an HTTP date relative to `now`.
pub fn retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}
