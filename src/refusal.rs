//! Every error a client can meet, and the one table that says how each reaches the wire.
//!
//! The core refuses with a [`Rejection`]: a product rule said no. Everything else a request
//! can run into is not a rule: a malformed frame, credentials that do not hold, a role that
//! does not allow it, too much too fast, a database that cannot be written. [`Refusal`] holds
//! both kinds; [`ERRORS`] gives each wire code its spelling and its HTTP status, [`Close`]
//! each reason the engine closes a WebSocket, and [`Refusal::details`] the detail fields an
//! error carries. `protocol/README.md`'s two tables are checked against these in the tests.

use crate::clock::Timestamp;
use crate::core::{ErrorCode, LiveElsewhere, Rejection};

/// Why a request was refused, whoever refused it.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Refusal {
    /// A product rule refused it (the core).
    #[error(transparent)]
    Rule(#[from] Rejection),
    /// The frame or body does not make sense as asked; the text names what.
    #[error("{0}")]
    BadRequest(String),
    /// No valid credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role does not allow it, or its agent was removed.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Too much, too fast.
    #[error("{0}")]
    RateLimited(String),
    /// The durable store could not be read or written; the text says why, never where.
    #[error("{0}")]
    StorageUnavailable(String),
    /// The workspace is at one of its limits (R27); the text names the limit and its value.
    #[error("{0}")]
    QuotaExceeded(String),
}

/// The detail fields an `error` frame or body carries beside its code and message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    /// With `active_elsewhere`: where the customer is live.
    pub live: Option<LiveElsewhere>,
    /// With `window_closed`: when the window closed.
    pub expired_at: Option<Timestamp>,
}

impl Refusal {
    /// The wire code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::Rule(r) => r.code(),
            Refusal::BadRequest(_) => ErrorCode::BadRequest,
            Refusal::Unauthorized(_) => ErrorCode::Unauthorized,
            Refusal::Forbidden(_) => ErrorCode::Forbidden,
            Refusal::RateLimited(_) => ErrorCode::RateLimited,
            Refusal::StorageUnavailable(_) => ErrorCode::StorageUnavailable,
            Refusal::QuotaExceeded(_) => ErrorCode::QuotaExceeded,
        }
    }

    /// The detail fields that go with the code.
    pub fn details(&self) -> Details {
        match self {
            Refusal::Rule(Rejection::ActiveElsewhere { live }) => Details {
                live: Some(live.clone()),
                ..Details::default()
            },
            Refusal::Rule(Rejection::WindowClosed { expired_at }) => Details {
                expired_at: *expired_at,
                ..Details::default()
            },
            _ => Details::default(),
        }
    }

    /// A `not_found` for `what` named `id`.
    pub fn not_found(what: &'static str, id: impl ToString) -> Self {
        Refusal::Rule(Rejection::not_found(what, id))
    }
}

/// One wire error code: how it is spelled and the HTTP status it always has.
#[derive(Clone, Copy, Debug)]
pub struct ErrorRow {
    /// The code.
    pub code: ErrorCode,
    /// Its spelling on the wire (and in metric labels).
    pub name: &'static str,
    /// The HTTP status of a body with this code.
    pub http: u16,
}

/// Every error code, in the order `protocol/README.md` lists them.
pub const ERRORS: [ErrorRow; 15] = [
    row(ErrorCode::ActiveElsewhere, "active_elsewhere", 409),
    row(ErrorCode::WindowClosed, "window_closed", 409),
    row(ErrorCode::OptedOut, "opted_out", 409),
    row(ErrorCode::PushAlreadySent, "push_already_sent", 409),
    row(ErrorCode::NotOwner, "not_owner", 403),
    row(ErrorCode::NotFound, "not_found", 404),
    row(ErrorCode::AgentUnavailable, "agent_unavailable", 409),
    row(ErrorCode::OverLimit, "over_limit", 409),
    row(ErrorCode::MessageTooLong, "message_too_long", 413),
    row(ErrorCode::BadRequest, "bad_request", 400),
    row(ErrorCode::Unauthorized, "unauthorized", 401),
    row(ErrorCode::Forbidden, "forbidden", 403),
    row(ErrorCode::RateLimited, "rate_limited", 429),
    row(ErrorCode::StorageUnavailable, "storage_unavailable", 503),
    row(ErrorCode::QuotaExceeded, "quota_exceeded", 429),
];

const fn row(code: ErrorCode, name: &'static str, http: u16) -> ErrorRow {
    ErrorRow { code, name, http }
}

fn row_of(code: ErrorCode) -> &'static ErrorRow {
    ERRORS
        .iter()
        .find(|r| r.code == code)
        .expect("every code has a row (checked in the tests)")
}

/// The HTTP status of a body with `code`.
pub fn http_status(code: ErrorCode) -> u16 {
    row_of(code).http
}

/// `code` as it is spelled on the wire.
pub fn wire_name(code: ErrorCode) -> &'static str {
    row_of(code).name
}

/// Why the engine closes a WebSocket, and the close code it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// The connection's outbox filled up: the client did not read fast enough.
    SlowConsumer,
    /// The token expired and was not refreshed.
    TokenExpired,
    /// The client kept sending more frames than its budget after `rate_limited` errors.
    TooManyFrames,
    /// Nothing, not even a pong, came from the client for too many heartbeats.
    Idle,
    /// An admin removed the agent.
    AgentRemoved,
    /// The engine is shutting down.
    GoingAway,
    /// A frame over the hard limit, which the transport refuses to read.
    TooBig,
    /// The connection's workspace is no longer served by this engine (R27): unloaded, to be
    /// served again here or elsewhere.
    WorkspaceClosed,
}

impl Close {
    /// Every close reason, in the order `protocol/README.md` lists them.
    pub const ALL: [Close; 8] = [
        Close::SlowConsumer,
        Close::TokenExpired,
        Close::TooManyFrames,
        Close::Idle,
        Close::AgentRemoved,
        Close::GoingAway,
        Close::TooBig,
        Close::WorkspaceClosed,
    ];

    /// The WebSocket close code.
    pub const fn code(self) -> u16 {
        match self {
            Close::SlowConsumer => 4008,
            Close::TokenExpired => 4001,
            Close::TooManyFrames => 4029,
            Close::Idle => 4002,
            Close::AgentRemoved => 4003,
            Close::GoingAway => 1001,
            Close::TooBig => 1009,
            Close::WorkspaceClosed => 4503,
        }
    }

    /// The close frame's reason text.
    pub const fn reason(self) -> &'static str {
        match self {
            Close::SlowConsumer => "outbox full: reconnect and resume",
            Close::TokenExpired => "token expired: reconnect with a fresh token",
            Close::TooManyFrames => "too many frames: slow down and reconnect",
            Close::Idle => "no frame received: reconnect",
            Close::AgentRemoved => "agent removed",
            Close::GoingAway => "engine shutting down",
            Close::TooBig => "frame too big: the limit is 1 MiB",
            Close::WorkspaceClosed => "workspace closed on this engine: reconnect and resume",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/protocol/README.md"))
            .expect("protocol/README.md")
    }

    #[test]
    fn every_code_has_one_row_spelled_as_serde_spells_it() {
        for row in ERRORS {
            let serde =
                serde_json::to_value(crate::protocol::ErrorCode::from(row.code)).expect("codes serialize");
            assert_eq!(serde, row.name, "{:?}", row.code);
            assert_eq!(ERRORS.iter().filter(|r| r.code == row.code).count(), 1);
        }
    }

    #[test]
    fn the_protocol_s_error_table_is_this_table() {
        let readme = readme();
        let documented: Vec<(String, u16)> = readme
            .lines()
            .filter(|l| l.starts_with("| `"))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let name = cells.get(1)?.trim_matches('`').to_owned();
                let http = cells.get(cells.len().checked_sub(2)?)?.parse().ok()?;
                Some((name, http))
            })
            .collect();
        let ours: Vec<(String, u16)> = ERRORS.iter().map(|r| (r.name.to_owned(), r.http)).collect();
        assert_eq!(
            documented, ours,
            "protocol/README.md's error codes differ from src/refusal.rs"
        );
    }

    #[test]
    fn the_protocol_s_close_table_is_this_table() {
        let readme = readme();
        let documented: Vec<u16> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.parse().ok())
            .collect();
        let ours: Vec<u16> = Close::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(
            documented, ours,
            "protocol/README.md's close codes differ from src/refusal.rs"
        );
    }

    #[test]
    fn a_rule_s_details_go_with_its_code() {
        let live = LiveElsewhere {
            chat_id: "c1".to_owned().into(),
            state: crate::core::ChatState::Active,
            owner: None,
        };
        let refusal = Refusal::from(Rejection::ActiveElsewhere { live: live.clone() });
        assert_eq!(refusal.code(), ErrorCode::ActiveElsewhere);
        assert_eq!(refusal.details().live, Some(live));
        let storage = Refusal::StorageUnavailable("disk full".into());
        assert_eq!(storage.details(), Details::default());
        assert_eq!(http_status(storage.code()), 503);
    }
}
