//! Every frame on the agent WebSocket, in one place. `protocol/` is generated from here
//! (see [`schema`]); a test fails when the checked-in files drift.
//!
//! Client → engine: a [`ClientFrame`], a request with a client-chosen `id`. Engine → client:
//! [`ServerFrame`]s: `welcome` once, exactly one `ok` or `error` per request, and `push`es
//! carrying a per-agent sequence number (R17).

pub mod agent;
pub mod channel;
pub mod chat;
pub mod error;
pub mod figures;
pub mod schema;
pub mod supervisor;
#[cfg(test)]
pub(crate) mod tests;

pub use agent::{AgentProfile, Presence, Role, WithdrawReason};
pub use channel::Channel;
pub use chat::{
    Attachment, Author, ChatState, CloseReason, Delivery, LiveElsewhere, MediaKind, Message, MessageKind,
    SnoozeUntil,
};
pub use error::ErrorCode;
pub use figures::{Attainment, Durations, Figures, QueueAttainment, Rejections};

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};

/// The protocol version, announced in `welcome`. Additive changes (new optional fields, new
/// push kinds, new request types) keep the number; anything else bumps it.
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest text frame the engine reads; a larger one gets a `bad_request` error.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A request from an agent's client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ClientFrame {
    /// Chosen by the client; echoed in the one reply to this request.
    pub id: String,
    /// What is asked.
    #[serde(flatten)]
    pub request: Request,
}

/// A request frame as decoded, for the rule that a field the engine does not know is refused
/// (see protocol/README.md, Versioning): serde's `deny_unknown_fields` refuses it in a
/// request with fields, but does not reach one without any.
pub trait RequestFrame {
    /// Whether its request takes no field beyond `id` and `type`.
    fn takes_no_fields(&self) -> bool;
}

impl RequestFrame for ClientFrame {
    fn takes_no_fields(&self) -> bool {
        matches!(
            self.request,
            Request::Snapshot | Request::Ping | Request::ListAgents
        )
    }
}

/// Which chats an archive listing covers (R16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Chats the agent owns or last owned.
    #[default]
    Mine,
    /// Everyone's.
    All,
}

/// Every request an agent can make.
#[derive(Clone, Debug, PartialEq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Reopen a closed chat (R02–R04).
    Reopen {
        /// The closed chat.
        chat_id: ChatId,
    },
    /// Write to a live chat you own (R12).
    SendMessage {
        /// The chat.
        chat_id: ChatId,
        /// The text; at most the channel's length.
        text: String,
        /// Tag the message `human_agent` (Messenger/Instagram, after the 24 h window).
        #[serde(default)]
        human_agent_tag: bool,
    },
    /// Send a failed message to the customer again (R24): it goes back to the outbox under a
    /// new idempotency key. Only the chat's owner may.
    RetryMessage {
        /// The chat.
        chat_id: ChatId,
        /// The failed message's place in the chat's history.
        seq: u64,
    },
    /// The one template push after the window (R07).
    SendTemplate {
        /// The closed chat whose customer is pushed to.
        chat_id: ChatId,
        /// The template's name.
        template: String,
        /// Its parameters.
        #[serde(default)]
        params: Vec<String>,
    },
    /// Take an offered chat (R06).
    Accept {
        /// The offered chat.
        chat_id: ChatId,
    },
    /// Turn down an offered chat (R06).
    Decline {
        /// The offered chat.
        chat_id: ChatId,
    },
    /// Hand your active chat to another online agent (R12).
    Transfer {
        /// The chat.
        chat_id: ChatId,
        /// The target agent.
        to: AgentId,
        /// Ignore the target's limit; supervisors and admins only.
        #[serde(default)]
        force: bool,
    },
    /// Close your chat (R12).
    Close {
        /// The chat.
        chat_id: ChatId,
    },
    /// Set your active chat aside (R13).
    Snooze {
        /// The chat.
        chat_id: ChatId,
        /// Until when; absent or null means until the customer replies.
        #[serde(default)]
        #[serde(with = "crate::clock::rfc3339::option")]
        #[schemars(with = "Option<Timestamp>")]
        until: Option<Timestamp>,
    },
    /// Go online, away or offline.
    SetPresence {
        /// The new presence.
        presence: Presence,
    },
    /// List archive entries (R16).
    ListArchive {
        /// Yours or everyone's.
        #[serde(default)]
        scope: Scope,
        /// Only chats in this state.
        #[serde(default)]
        state: Option<ChatState>,
        /// Search by customer name, email or phone: every word must match the start of a
        /// word of the name or email (`ana` finds "Ana Lima" and "ana@x.io"), and text made of
        /// digits and phone punctuation matches the start of the phone number (`+49 15` finds
        /// "+4915112345"); any case. An engine without a database matches a case-insensitive
        /// substring of the name, email, phone or channel address instead.
        #[serde(default)]
        query: Option<String>,
        /// At most this many entries, newest first (default 50, at most 200).
        #[serde(default)]
        limit: Option<u32>,
        /// The previous page's `next`, for the page after it (older entries); absent for the
        /// first page. Opaque: pass it back as it came.
        #[serde(default)]
        before: Option<String>,
    },
    /// Say which archive entries this connection shows, replacing the previous set; changes to
    /// them (the reopen button) are pushed as `archive_entry_changed`.
    WatchArchive {
        /// The chats on screen.
        chat_ids: Vec<ChatId>,
    },
    /// Read one chat with a page of its history (owner, or supervisors): the newest messages
    /// first, then older pages with `before_seq`.
    GetChat {
        /// The chat.
        chat_id: ChatId,
        /// Only messages before this one (the previous page's `next_before_seq`); absent for
        /// the newest page.
        #[serde(default)]
        before_seq: Option<u64>,
        /// At most this many messages (default 50, at most 500).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Get every push after `after_seq` (R17), or a snapshot if they are gone.
    Resume {
        /// The last sequence number the client processed.
        after_seq: u64,
    },
    /// Everything on the agent's desk now, without replaying pushes (a fresh client).
    Snapshot,
    /// Acknowledge pushes up to `seq`; a seq never sent is an error.
    Ack {
        /// The sequence number.
        seq: u64,
    },
    /// Liveness check.
    Ping,
    /// Every agent with its presence, load and limit: whom a chat can be transferred to.
    ListAgents,
    /// Replace the connection's token with a fresh one of the same agent before it expires.
    Refresh {
        /// The new token (a JWT).
        token: String,
    },
}

impl Request {
    /// The request's wire name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Reopen { .. } => "reopen",
            Request::SendMessage { .. } => "send_message",
            Request::RetryMessage { .. } => "retry_message",
            Request::SendTemplate { .. } => "send_template",
            Request::Accept { .. } => "accept",
            Request::Decline { .. } => "decline",
            Request::Transfer { .. } => "transfer",
            Request::Close { .. } => "close",
            Request::Snooze { .. } => "snooze",
            Request::SetPresence { .. } => "set_presence",
            Request::ListArchive { .. } => "list_archive",
            Request::WatchArchive { .. } => "watch_archive",
            Request::GetChat { .. } => "get_chat",
            Request::Resume { .. } => "resume",
            Request::Snapshot => "snapshot",
            Request::Ack { .. } => "ack",
            Request::Ping => "ping",
            Request::ListAgents => "list_agents",
            Request::Refresh { .. } => "refresh",
        }
    }

    /// Whether the request changes something. A retry of one, with the same id, gets its
    /// first reply again instead of running twice (R17); a read simply runs again.
    pub fn changes_state(&self) -> bool {
        match self {
            Request::Reopen { .. }
            | Request::SendMessage { .. }
            | Request::RetryMessage { .. }
            | Request::SendTemplate { .. }
            | Request::Accept { .. }
            | Request::Decline { .. }
            | Request::Transfer { .. }
            | Request::Close { .. }
            | Request::Snooze { .. }
            | Request::SetPresence { .. } => true,
            Request::ListArchive { .. }
            | Request::WatchArchive { .. }
            | Request::GetChat { .. }
            | Request::Resume { .. }
            | Request::Snapshot
            | Request::Ack { .. }
            | Request::Ping
            | Request::ListAgents
            | Request::Refresh { .. } => false,
        }
    }

    /// The chat the request is about, if it names one.
    pub fn chat_id(&self) -> Option<&ChatId> {
        match self {
            Request::Reopen { chat_id }
            | Request::SendMessage { chat_id, .. }
            | Request::RetryMessage { chat_id, .. }
            | Request::SendTemplate { chat_id, .. }
            | Request::Accept { chat_id }
            | Request::Decline { chat_id }
            | Request::Transfer { chat_id, .. }
            | Request::Close { chat_id }
            | Request::Snooze { chat_id, .. }
            | Request::GetChat { chat_id, .. } => Some(chat_id),
            Request::SetPresence { .. }
            | Request::ListArchive { .. }
            | Request::WatchArchive { .. }
            | Request::Resume { .. }
            | Request::Snapshot
            | Request::Ack { .. }
            | Request::Ping
            | Request::ListAgents
            | Request::Refresh { .. } => None,
        }
    }
}

/// Every frame the engine sends on the agent WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum ServerFrame {
    /// Sent once, first, after the handshake.
    Welcome {
        /// The protocol version (1).
        protocol: u32,
        /// Who the token belongs to.
        agent: AgentProfile,
        /// The last sequence number pushed to this agent; resume from your own if you have one.
        seq: u64,
        /// The agent's presence now.
        presence: Presence,
        /// The engine's clock now: countdowns (`window_expires_at`, `expires_at`) are in its
        /// time, so a client shows them against this, not its own clock.
        #[serde(with = "crate::clock::rfc3339")]
        #[schemars(with = "Timestamp")]
        now: Timestamp,
        /// Every channel's limits as this engine is configured, for the composer.
        #[serde(default)]
        channels: Vec<ChannelLimits>,
    },
    /// The request succeeded.
    Ok {
        /// The request's `id`.
        id: String,
        /// What came of it.
        result: ReplyResult,
    },
    /// The request (or an unreadable frame) failed; nothing changed.
    Error(ErrorFrame),
    /// Something happened that this agent must see.
    Push {
        /// Per agent, starting at 1, no gaps, in order across all its connections (R17).
        seq: u64,
        /// What happened.
        event: Push,
    },
}

/// What one channel allows an agent to send, as configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChannelLimits {
    /// The channel.
    pub channel: Channel,
    /// The longest message, in characters; a longer one is refused with `message_too_long`.
    pub max_message_length: usize,
}

/// An error reply.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorFrame {
    /// The request's `id`; null when the frame was too broken to have one.
    pub id: Option<String>,
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence naming what was wrong.
    pub message: String,
    /// With `active_elsewhere`: where the customer is live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveElsewhere>,
    /// With `window_closed`: when the window closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub expired_at: Option<Timestamp>,
}

/// What a successful request returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyResult {
    /// Done; nothing to return.
    Done,
    /// The chat as it is now (reopen, accept, snooze, transfer).
    Chat {
        /// The chat.
        chat: ChatView,
    },
    /// A chat with a page of its history (get_chat).
    History {
        /// The chat.
        chat: ChatView,
        /// The page: the newest messages before `before_seq` (or of all), oldest first.
        messages: Vec<HistoryMessage>,
        /// Pass as `before_seq` for the next, older page; null when this page starts at the
        /// chat's first message.
        next_before_seq: Option<u64>,
    },
    /// Archive entries (list_archive).
    Archive {
        /// Newest first.
        entries: Vec<ArchiveEntry>,
        /// Pass as `before` for the next, older page; null when this was the last.
        next: Option<String>,
    },
    /// The presence now (set_presence).
    Presence {
        /// The presence.
        presence: Presence,
    },
    /// Missed pushes were sent before this reply (resume).
    Resumed {
        /// How many.
        replayed: u64,
    },
    /// Everything on the desk (snapshot, or resume when the pushes asked for are gone).
    Snapshot(Snapshot),
    /// Answer to ping.
    Pong,
    /// Every agent, by id (list_agents).
    Agents {
        /// The agents' rows, as the supervisors' board shows them.
        agents: Vec<supervisor::AgentRow>,
    },
    /// The connection now runs on the new token (refresh).
    Refreshed {
        /// When it expires; the connection is closed with 4001 then unless refreshed again.
        #[serde(with = "crate::clock::rfc3339::option")]
        #[schemars(with = "Option<Timestamp>")]
        expires_at: Option<Timestamp>,
    },
}

/// The whole state of one agent's desk, for a client that missed too much.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    /// Continue from this sequence number.
    pub seq: u64,
    /// The agent's presence.
    pub presence: Presence,
    /// Its load.
    pub load: u32,
    /// Its limit.
    pub limit: u32,
    /// Its live chats (active, reopened, snoozed).
    pub chats: Vec<ChatView>,
    /// Its pending offers.
    pub offers: Vec<OfferView>,
}

/// A customer as agents see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerView {
    /// Its id.
    pub id: CustomerId,
    /// Name, if known.
    pub name: Option<String>,
    /// Email, if known.
    pub email: Option<String>,
    /// Phone, if known.
    pub phone: Option<String>,
}

/// A chat as agents see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChatView {
    /// Its id.
    pub id: ChatId,
    /// The customer.
    pub customer: CustomerView,
    /// The channel.
    pub channel: Channel,
    /// Its state.
    pub state: ChatState,
    /// Its owner.
    pub owner: Option<AgentId>,
    /// The agent who reopened it, if it was reopened.
    pub reopened_by: Option<AgentId>,
    /// The customer's last message.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub last_customer_message_at: Option<Timestamp>,
    /// When the messaging window closes; null on channels without one.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub window_expires_at: Option<Timestamp>,
    /// Until when it is snoozed.
    pub snooze: Option<SnoozeUntil>,
    /// The newest message.
    pub last_message: Option<Message>,
}

/// A message of a chat's history, with its place in it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryMessage {
    /// Its position in the chat's history: 0 for the first message, then one more each.
    pub seq: u64,
    /// The message.
    #[serde(flatten)]
    pub message: Message,
}

/// A chat offered to the agent (R06).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OfferView {
    /// The chat.
    pub chat: ChatView,
    /// The queue it came from.
    pub queue: QueueId,
    /// Accept before this, or it goes to the next agent and you are set away.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub expires_at: Timestamp,
    /// The skills it requires at the step it was offered at, with their least levels (R19).
    #[serde(default)]
    pub requires: BTreeMap<String, u8>,
    /// That step of its queue's workflow, from 0 (R19).
    #[serde(default)]
    pub step: usize,
}

/// One row of the archive (R16).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchiveEntry {
    /// The chat.
    pub chat_id: ChatId,
    /// The customer.
    pub customer: CustomerView,
    /// The channel.
    pub channel: Channel,
    /// The chat's state.
    pub state: ChatState,
    /// Its owner, or last owner.
    pub owner: Option<AgentId>,
    /// When it closed, if closed.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub closed_at: Option<Timestamp>,
    /// Why it closed, if closed.
    pub close_reason: Option<CloseReason>,
    /// The customer's last message.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub last_customer_message_at: Option<Timestamp>,
    /// When the messaging window closes (for the countdown); null on channels without one.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub window_expires_at: Option<Timestamp>,
    /// Whether the Reopen button is on now (R02, R03, R08).
    pub reopenable: bool,
    /// Whether the one template push is available now (R07).
    pub template_allowed: bool,
}

/// Why a chat became active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivatedBy {
    /// The customer answered a reopened chat (R05).
    CustomerReplied,
    /// A snooze ended, by time or reply (R13).
    SnoozeEnded,
    /// It was transferred to this agent.
    Transfer,
    /// This agent accepted its offer.
    Accepted,
}

/// Something the engine tells an agent without being asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Push {
    /// A queued chat is offered to you (R06).
    ChatOffered(OfferView),
    /// An offer to you was taken back.
    OfferWithdrawn {
        /// The chat.
        chat_id: ChatId,
        /// Why.
        reason: WithdrawReason,
    },
    /// You reopened a chat; it is in your reopened section (R04).
    ChatReopened {
        /// The chat.
        chat: ChatView,
    },
    /// A chat of yours became active.
    ChatActivated {
        /// The chat.
        chat: ChatView,
        /// Why.
        by: ActivatedBy,
        /// Your load after it.
        load: u32,
        /// Your limit.
        limit: u32,
        /// Whether it took you over your limit (R05, forced transfer).
        over_limit: bool,
    },
    /// A customer wrote in a chat of yours.
    CustomerMessage {
        /// The chat.
        chat_id: ChatId,
        /// The message.
        message: Message,
    },
    /// A chat of yours was closed.
    ChatClosed {
        /// The chat.
        chat_id: ChatId,
        /// Why.
        reason: CloseReason,
    },
    /// You wrote in a chat (so that every connection of yours shows it).
    MessageSent {
        /// The chat.
        chat_id: ChatId,
        /// The message as recorded.
        message: Message,
    },
    /// A chat of yours changed in place (snoozed).
    ChatUpdated {
        /// The chat.
        chat: ChatView,
    },
    /// A chat of yours went to another agent.
    ChatTransferred {
        /// The chat.
        chat_id: ChatId,
        /// The new owner.
        to: AgentId,
    },
    /// An archive entry you watch changed (its reopen button, mostly).
    ArchiveEntryChanged {
        /// The entry as it is now.
        entry: ArchiveEntry,
    },
    /// Your presence changed: on another connection, or by the engine (accept timeout,
    /// disconnect grace period).
    PresenceChanged {
        /// The new presence.
        presence: Presence,
    },
    /// A message to the customer of one of your chats moved on (R24, R25): the platform took
    /// it, delivered it, the customer read it, or it failed with the platform's reason.
    MessageStatus {
        /// The chat.
        chat_id: ChatId,
        /// The message's place in the chat's history.
        seq: u64,
        /// Where it is now.
        delivery: Delivery,
    },
    /// Your limit was changed by an admin or supervisor; with your load at that moment.
    LimitChanged {
        /// Your limit.
        limit: u32,
        /// Your load.
        load: u32,
    },
}

/// The agent a token stands for, as the gateway hands it to the engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub id: AgentId,
    /// With which role.
    pub role: crate::core::Role,
}

/// A customer's message, as a channel delivers it (`POST /v1/channels/{channel}/messages`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct InboundMessage {
    /// The customer's address on the channel (`+4915…`, a PSID, an email address).
    pub from: String,
    /// The text.
    pub text: String,
    /// The customer's name, if the channel tells it.
    #[serde(default)]
    pub name: Option<String>,
    /// The customer's email, if known.
    #[serde(default)]
    pub email: Option<String>,
    /// The customer's phone, if known.
    #[serde(default)]
    pub phone: Option<String>,
    /// When the platform sent it. Required on a channel whose webhooks are signed: a signed
    /// body older or newer than the replay window is refused.
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub sent_at: Option<Timestamp>,
    /// The queue to wait in (R19); absent: the channel's queue.
    #[serde(default)]
    pub queue: Option<QueueId>,
    /// The customer's language (`es`): the chat requires the skill `language:es` (R19).
    #[serde(default)]
    pub language: Option<String>,
    /// Skills the chat requires, each with its least level from 1 to 5 (R19).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Customer attributes the queue's routing rules match (`{"tier": "vip"}`) (R19, R20).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A platform's news about a message the engine sent through the channel's webhook
/// (`POST /v1/channels/{channel}/statuses`, R25): what a native platform's status webhook
/// says, for channels served by an adapter of your own. `provider_id` is the `id` the webhook
/// answered when it took the message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReport {
    /// The platform's id of the message: the `id` your webhook answered for it.
    pub provider_id: String,
    /// How far it got.
    pub status: ReportedStatus,
    /// Why it failed, in the platform's words (only with `failed`).
    #[serde(default)]
    pub reason: Option<String>,
    /// When the platform sent the news; required on a channel whose webhooks are signed, as
    /// for messages.
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub sent_at: Option<Timestamp>,
}

/// The statuses a platform reports (R25); a report may only move a message further along
/// (`failed` may follow `sent`, never `delivered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportedStatus {
    /// The platform took it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It will not arrive.
    Failed,
}

/// A customer entering or leaving a bot journey (`POST /v1/channels/{channel}/bot/start` and
/// `…/bot/handover`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BotRequest {
    /// The customer's address on the channel.
    pub from: String,
    /// The customer's name, if the channel tells it.
    #[serde(default)]
    pub name: Option<String>,
    /// When the platform sent it; required on a channel whose webhooks are signed, as for
    /// messages.
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub sent_at: Option<Timestamp>,
    /// On hand-over, what the bot learnt for routing: as for messages (R19). (The same four
    /// fields as [`InboundMessage`]'s, written out: unknown fields are refused, and serde
    /// cannot refuse them through a flattened struct.)
    /// The queue to wait in (R19); absent: the channel's queue.
    #[serde(default)]
    pub queue: Option<QueueId>,
    /// The customer's language (`es`): the chat requires the skill `language:es` (R19).
    #[serde(default)]
    pub language: Option<String>,
    /// Skills the chat requires, each with its least level from 1 to 5 (R19).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Customer attributes the queue's routing rules match (`{"tier": "vip"}`) (R19, R20).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// What the engine did with an inbound message or bot call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngressReceipt {
    /// The customer (created on first contact).
    pub customer_id: CustomerId,
    /// The chat the message went to; null for a #STOP with no live chat.
    pub chat_id: Option<ChatId>,
    /// That chat's state now.
    pub state: Option<ChatState>,
    /// Its owner now.
    pub owner: Option<AgentId>,
    /// Its place in the queue, if it waits (1 = next), in offer order (R20).
    pub queue_position: Option<usize>,
    /// The queue it waits in, if it waits.
    #[serde(default)]
    pub queue: Option<QueueId>,
    /// How long it may wait, in seconds, from the queue's recent answer rate; null until the
    /// queue has answered a few chats (R20).
    #[serde(default)]
    pub estimated_wait_secs: Option<u64>,
}

/// What an ingress call asked of routing, in the core's terms.
pub fn routing_ask(
    queue: &Option<QueueId>,
    language: &Option<String>,
    skills: &BTreeMap<String, u8>,
    attributes: &BTreeMap<String, String>,
) -> crate::core::RoutingAsk {
    crate::core::RoutingAsk {
        queue: queue.clone(),
        language: language.clone().filter(|l| !l.trim().is_empty()),
        skills: skills.clone(),
        attributes: attributes.clone(),
    }
}

/// A message the engine sends to a customer through the outbound connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboundMessage {
    /// The channel.
    pub channel: Channel,
    /// The customer's address on it.
    pub to: String,
    /// The customer.
    pub customer_id: CustomerId,
    /// The chat.
    pub chat_id: ChatId,
    /// Text, template or the automatic reopen notice.
    pub kind: MessageKind,
    /// The text, or the template name.
    pub text: String,
    /// The template's parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<String>,
    /// Sent with the `human_agent` tag.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub human_agent_tag: bool,
    /// The agent behind it, if any.
    pub agent: Option<AgentId>,
    /// The platform's id of the customer's last message in the chat (email: its
    /// `Message-ID`), so that a reply can thread under it (`In-Reply-To`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// The workspace (R27) the message is of, so that one webhook can serve many; absent
    /// for `default`. Added in this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}
