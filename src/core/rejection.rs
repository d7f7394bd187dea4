//! Why the core refused an operation; each maps to one stable wire error code.

use super::channel::Channel;
use super::chat::ChatState;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId};

/// The stable error codes of the wire protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ErrorCode {
    /// The customer already has a live chat somewhere (R03, R09).
    ActiveElsewhere,
    /// The channel's messaging window is closed (R02, R07).
    WindowClosed,
    /// The customer opted out on this channel with #STOP (R08).
    OptedOut,
    /// The one template push after the window was already sent (R07).
    PushAlreadySent,
    /// Only the chat's owner may do that (R12).
    NotOwner,
    /// No such chat, agent, offer or customer.
    NotFound,
    /// The target agent is not online.
    AgentUnavailable,
    /// The target agent is at its concurrency limit.
    OverLimit,
    /// The message is longer than the channel allows.
    MessageTooLong,
    /// The frame or request is malformed, or the chat is in the wrong state for it.
    BadRequest,
    /// No valid credentials.
    Unauthorized,
    /// The role does not allow it.
    Forbidden,
    /// Too many requests.
    RateLimited,
    /// The change could not be saved to the durable store (a full disk, a failed database):
    /// it is not acknowledged, and may be gone after a restart.
    StorageUnavailable,
    /// The workspace is at one of its limits (connections, agents, stored bytes; R27): the
    /// message names the limit and its value.
    QuotaExceeded,
}

/// Where a customer is live, told to an agent whose reopen lost (R03).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LiveElsewhere {
    /// The live chat.
    pub chat_id: ChatId,
    /// Its state (`bot`, `queued`, `active`, `reopened` or `snoozed`).
    pub state: ChatState,
    /// Its owner, if an agent owns it.
    pub owner: Option<AgentId>,
}

/// A typed refusal from the core: a product rule said no. Malformed input, credentials,
/// roles, rate limits and storage are not rules: `refusal.rs` holds those.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Rejection {
    /// The customer is live elsewhere.
    #[error("the customer already has a live chat {} ({}{})", live.chat_id, live.state.as_str(), live.owner.as_ref().map(|o| format!(" with {o}")).unwrap_or_default())]
    ActiveElsewhere {
        /// Where.
        live: LiveElsewhere,
    },
    /// The messaging window is closed.
    #[error("the messaging window closed at {}", expired_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()))]
    WindowClosed {
        /// When it closed.
        expired_at: Option<Timestamp>,
    },
    /// Opted out with #STOP.
    #[error("the customer opted out on {channel} and has not written since")]
    OptedOut {
        /// On which channel.
        channel: Channel,
    },
    /// The single push was used.
    #[error("a template was already pushed since the customer last wrote")]
    PushAlreadySent,
    /// Someone else owns it.
    #[error("only the owner ({}) may do that", owner.as_ref().map(|o| o.as_str()).unwrap_or("nobody"))]
    NotOwner {
        /// The owner, if any.
        owner: Option<AgentId>,
    },
    /// Missing thing.
    #[error("no {what} `{id}`")]
    NotFound {
        /// What kind of thing.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The agent is not online.
    #[error("agent {agent} is not online")]
    AgentUnavailable {
        /// Which agent.
        agent: AgentId,
    },
    /// At the limit.
    #[error("agent {agent} is at its limit ({load}/{limit})")]
    OverLimit {
        /// Which agent.
        agent: AgentId,
        /// Its load.
        load: u32,
        /// Its limit.
        limit: u32,
    },
    /// Too long.
    #[error("message is {len} characters; {channel} allows {max}")]
    MessageTooLong {
        /// Its length in characters.
        len: usize,
        /// The channel's maximum.
        max: usize,
        /// The channel.
        channel: Channel,
    },
    /// The chat is not in a state that allows this.
    #[error("chat {chat} is {}: {why}", state.as_str())]
    WrongState {
        /// The chat.
        chat: ChatId,
        /// Its state.
        state: ChatState,
        /// What would be needed.
        why: &'static str,
    },
}

impl Rejection {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Rejection::ActiveElsewhere { .. } => ErrorCode::ActiveElsewhere,
            Rejection::WindowClosed { .. } => ErrorCode::WindowClosed,
            Rejection::OptedOut { .. } => ErrorCode::OptedOut,
            Rejection::PushAlreadySent => ErrorCode::PushAlreadySent,
            Rejection::NotOwner { .. } => ErrorCode::NotOwner,
            Rejection::NotFound { .. } => ErrorCode::NotFound,
            Rejection::AgentUnavailable { .. } => ErrorCode::AgentUnavailable,
            Rejection::OverLimit { .. } => ErrorCode::OverLimit,
            Rejection::MessageTooLong { .. } => ErrorCode::MessageTooLong,
            Rejection::WrongState { .. } => ErrorCode::BadRequest,
        }
    }

    /// A `not_found` for `what` named `id`.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Rejection::NotFound {
            what,
            id: id.to_string(),
        }
    }
}
