//! The stable error codes as clients read them, mapped from the core's
//! [`ErrorCode`](crate::core::ErrorCode) one variant at a time (see [`super::agent`] for why).
//! `refusal.rs` holds the one table of each code's spelling and HTTP status; its tests check
//! that table against these names.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::rejection as core;

/// The stable error codes of the wire protocol.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
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

impl From<core::ErrorCode> for ErrorCode {
    fn from(code: core::ErrorCode) -> Self {
        match code {
            core::ErrorCode::ActiveElsewhere => ErrorCode::ActiveElsewhere,
            core::ErrorCode::WindowClosed => ErrorCode::WindowClosed,
            core::ErrorCode::OptedOut => ErrorCode::OptedOut,
            core::ErrorCode::PushAlreadySent => ErrorCode::PushAlreadySent,
            core::ErrorCode::NotOwner => ErrorCode::NotOwner,
            core::ErrorCode::NotFound => ErrorCode::NotFound,
            core::ErrorCode::AgentUnavailable => ErrorCode::AgentUnavailable,
            core::ErrorCode::OverLimit => ErrorCode::OverLimit,
            core::ErrorCode::MessageTooLong => ErrorCode::MessageTooLong,
            core::ErrorCode::BadRequest => ErrorCode::BadRequest,
            core::ErrorCode::Unauthorized => ErrorCode::Unauthorized,
            core::ErrorCode::Forbidden => ErrorCode::Forbidden,
            core::ErrorCode::RateLimited => ErrorCode::RateLimited,
            core::ErrorCode::StorageUnavailable => ErrorCode::StorageUnavailable,
            core::ErrorCode::QuotaExceeded => ErrorCode::QuotaExceeded,
        }
    }
}

impl From<ErrorCode> for core::ErrorCode {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::ActiveElsewhere => core::ErrorCode::ActiveElsewhere,
            ErrorCode::WindowClosed => core::ErrorCode::WindowClosed,
            ErrorCode::OptedOut => core::ErrorCode::OptedOut,
            ErrorCode::PushAlreadySent => core::ErrorCode::PushAlreadySent,
            ErrorCode::NotOwner => core::ErrorCode::NotOwner,
            ErrorCode::NotFound => core::ErrorCode::NotFound,
            ErrorCode::AgentUnavailable => core::ErrorCode::AgentUnavailable,
            ErrorCode::OverLimit => core::ErrorCode::OverLimit,
            ErrorCode::MessageTooLong => core::ErrorCode::MessageTooLong,
            ErrorCode::BadRequest => core::ErrorCode::BadRequest,
            ErrorCode::Unauthorized => core::ErrorCode::Unauthorized,
            ErrorCode::Forbidden => core::ErrorCode::Forbidden,
            ErrorCode::RateLimited => core::ErrorCode::RateLimited,
            ErrorCode::StorageUnavailable => core::ErrorCode::StorageUnavailable,
            ErrorCode::QuotaExceeded => core::ErrorCode::QuotaExceeded,
        }
    }
}
