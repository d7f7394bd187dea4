//! A chat's parts as clients read them, mapped from the core's types one variant at a time.
//!
//! The core's types carry no serde: a name on the wire is written here, so renaming or
//! reshaping something in the core is a compile error in these `From`s, never a silent change
//! of what clients read. (The doc comments are the schemas' descriptions.)

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::core::chat as core;
use crate::core::rejection::LiveElsewhere as CoreLiveElsewhere;
use crate::ids::{AgentId, ChatId};

/// Where a chat is in its life. Every state but `closed` is *live* (R01).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    /// In an automated journey; no agent owns it.
    Bot,
    /// Waiting to be routed (possibly offered to an agent who has not answered yet).
    Queued,
    /// Owned by an agent and counting toward its load.
    Active,
    /// Reopened by its owner, waiting for the customer; does not count toward load.
    Reopened,
    /// Owned, set aside until a time or the customer's reply; still counts toward load.
    Snoozed,
    /// In the archive.
    Closed,
}

impl From<core::ChatState> for ChatState {
    fn from(state: core::ChatState) -> Self {
        match state {
            core::ChatState::Bot => ChatState::Bot,
            core::ChatState::Queued => ChatState::Queued,
            core::ChatState::Active => ChatState::Active,
            core::ChatState::Reopened => ChatState::Reopened,
            core::ChatState::Snoozed => ChatState::Snoozed,
            core::ChatState::Closed => ChatState::Closed,
        }
    }
}

impl From<ChatState> for core::ChatState {
    fn from(state: ChatState) -> Self {
        match state {
            ChatState::Bot => core::ChatState::Bot,
            ChatState::Queued => core::ChatState::Queued,
            ChatState::Active => core::ChatState::Active,
            ChatState::Reopened => core::ChatState::Reopened,
            ChatState::Snoozed => core::ChatState::Snoozed,
            ChatState::Closed => core::ChatState::Closed,
        }
    }
}

/// Why a chat was closed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Its owner closed it.
    Agent,
    /// The customer wrote `#STOP` (R08).
    Stop,
    /// A reopened chat's window ran out before the customer replied.
    Timeout,
    /// A supervisor closed it on its owner's behalf.
    Supervisor,
}

impl From<core::CloseReason> for CloseReason {
    fn from(reason: core::CloseReason) -> Self {
        match reason {
            core::CloseReason::Agent => CloseReason::Agent,
            core::CloseReason::Stop => CloseReason::Stop,
            core::CloseReason::Timeout => CloseReason::Timeout,
            core::CloseReason::Supervisor => CloseReason::Supervisor,
        }
    }
}

/// Until when a chat is snoozed (R13).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "until", rename_all = "snake_case")]
pub enum SnoozeUntil {
    /// Until a point in time (or an earlier reply).
    Time {
        /// When the chat returns to `active`.
        #[serde(with = "crate::clock::rfc3339")]
        #[schemars(with = "Timestamp")]
        at: Timestamp,
    },
    /// Until the customer replies.
    Reply,
}

impl From<core::SnoozeUntil> for SnoozeUntil {
    fn from(until: core::SnoozeUntil) -> Self {
        match until {
            core::SnoozeUntil::Time { at } => SnoozeUntil::Time { at },
            core::SnoozeUntil::Reply => SnoozeUntil::Reply,
        }
    }
}

impl From<SnoozeUntil> for core::SnoozeUntil {
    fn from(until: SnoozeUntil) -> Self {
        match until {
            SnoozeUntil::Time { at } => core::SnoozeUntil::Time { at },
            SnoozeUntil::Reply => core::SnoozeUntil::Reply,
        }
    }
}

/// Who wrote a message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Author {
    /// The customer.
    Customer,
    /// An agent.
    Agent {
        /// Which agent.
        agent: AgentId,
    },
    /// The engine itself (the reopen notice).
    System,
}

impl From<&core::Author> for Author {
    fn from(author: &core::Author) -> Self {
        match author {
            core::Author::Customer => Author::Customer,
            core::Author::Agent { agent } => Author::Agent { agent: agent.clone() },
            core::Author::System => Author::System,
        }
    }
}

/// What kind of message it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Free text.
    Text,
    /// A template ("utility push") sent after the window (R07).
    Template,
    /// An automatic notice (the reopen notice of R04).
    Notice,
    /// The queue's after-hours reply to a customer who wrote while it was closed (R21).
    AfterHours,
}

impl From<core::MessageKind> for MessageKind {
    fn from(kind: core::MessageKind) -> Self {
        match kind {
            core::MessageKind::Text => MessageKind::Text,
            core::MessageKind::Template => MessageKind::Template,
            core::MessageKind::Notice => MessageKind::Notice,
            core::MessageKind::AfterHours => MessageKind::AfterHours,
        }
    }
}

/// One message of a chat's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// When the engine took it.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub at: Timestamp,
    /// Who wrote it.
    pub author: Author,
    /// What kind it is.
    pub kind: MessageKind,
    /// The text (for a template, its name and parameters as sent; for media, its caption).
    pub text: String,
    /// What a customer's message carries besides text (R23); absent for plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// Where a message to the customer is (R24, R25); absent for the customer's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<Delivery>,
}

impl From<&core::Message> for Message {
    fn from(message: &core::Message) -> Self {
        Message {
            at: message.at,
            author: Author::from(&message.author),
            kind: message.kind.into(),
            text: message.text.clone(),
            attachment: message.payload.as_deref().map(Attachment::from),
            delivery: message.delivery.as_ref().map(Delivery::from),
        }
    }
}

/// Where a message to the customer is (R24, R25): `pending` in the outbox, `sent` (the
/// platform took it), `delivered`, `read`, or `failed` with the platform's reason — then its
/// agent may send it again (`retry_message`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Delivery {
    /// In the outbox.
    Pending,
    /// The platform took it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It will not arrive.
    Failed {
        /// Why, in the platform's words.
        reason: String,
    },
}

impl From<&core::Delivery> for Delivery {
    fn from(delivery: &core::Delivery) -> Self {
        match delivery {
            core::Delivery::Pending => Delivery::Pending,
            core::Delivery::Sent => Delivery::Sent,
            core::Delivery::Delivered => Delivery::Delivered,
            core::Delivery::Read => Delivery::Read,
            core::Delivery::Failed { reason } => Delivery::Failed {
                reason: reason.clone(),
            },
        }
    }
}

/// What a customer's message carries besides text (R23).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Attachment {
    /// An image, document, audio, video or sticker, to fetch from the platform.
    Media {
        /// What kind.
        kind: MediaKind,
        /// The platform's media id.
        #[serde(default)]
        id: Option<String>,
        /// Where to fetch it, if the platform gave a URL.
        #[serde(default)]
        url: Option<String>,
        /// Its MIME type.
        #[serde(default)]
        mime: Option<String>,
        /// Its file name.
        #[serde(default)]
        filename: Option<String>,
    },
    /// A shared location, in decimal degrees.
    Location {
        /// Degrees north.
        latitude: String,
        /// Degrees east.
        longitude: String,
        /// The place's name.
        #[serde(default)]
        name: Option<String>,
        /// Its address.
        #[serde(default)]
        address: Option<String>,
    },
    /// An answer to a button or list; its title is the message's text.
    Reply {
        /// The button's or row's id.
        id: String,
    },
    /// A type the engine does not carry further, by the platform's name for it.
    Unsupported {
        /// The platform's type.
        kind: String,
    },
}

/// Kinds of media.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A file.
    Document,
    /// A sound or voice note.
    Audio,
    /// A film.
    Video,
    /// A sticker.
    Sticker,
}

impl From<&core::Payload> for Attachment {
    fn from(payload: &core::Payload) -> Self {
        match payload.clone() {
            core::Payload::Media {
                kind,
                id,
                url,
                mime,
                filename,
            } => Attachment::Media {
                kind: match kind {
                    core::MediaKind::Image => MediaKind::Image,
                    core::MediaKind::Document => MediaKind::Document,
                    core::MediaKind::Audio => MediaKind::Audio,
                    core::MediaKind::Video => MediaKind::Video,
                    core::MediaKind::Sticker => MediaKind::Sticker,
                },
                id,
                url,
                mime,
                filename,
            },
            core::Payload::Location {
                latitude,
                longitude,
                name,
                address,
            } => Attachment::Location {
                latitude,
                longitude,
                name,
                address,
            },
            core::Payload::Reply { id } => Attachment::Reply { id },
            core::Payload::Unsupported { kind } => Attachment::Unsupported { kind },
        }
    }
}

/// Where a customer is live, told to an agent whose reopen lost (R03).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct LiveElsewhere {
    /// The live chat.
    pub chat_id: ChatId,
    /// Its state (`bot`, `queued`, `active`, `reopened` or `snoozed`).
    pub state: ChatState,
    /// Its owner, if an agent owns it.
    pub owner: Option<AgentId>,
    /// The owner's display name: the core knows only ids, so the engine fills it in before
    /// the refusal reaches an agent's socket.
    #[serde(default)]
    pub owner_name: Option<String>,
}

impl LiveElsewhere {
    /// Where the core says the customer is live, with the owner's name as `name_of` knows it.
    pub fn of(live: &CoreLiveElsewhere, name_of: impl FnOnce(&AgentId) -> Option<String>) -> Self {
        LiveElsewhere {
            chat_id: live.chat_id.clone(),
            state: live.state.into(),
            owner: live.owner.clone(),
            owner_name: live.owner.as_ref().and_then(name_of),
        }
    }
}
