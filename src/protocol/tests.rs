//! The core's values as the wire spells them (issue 13, item 5): one table per mapped enum.
//!
//! Each table lists every core variant with the name clients read. Beside it, a `*_row`
//! function matches every core variant to its row: a variant added to the core does not
//! compile here until it has one, and a renamed one keeps its wire name unless this table
//! (and `protocol/`, which the drift test checks) is changed on purpose.

use std::collections::BTreeMap;
use std::fmt::Debug;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::*;
use crate::core;

/// Every value a unit enum takes on the wire, read from its JSON schema, in order.
pub(crate) fn schema_names<T: JsonSchema>() -> Vec<String> {
    fn collect(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("const", Value::String(s)) => into.push(s.clone()),
                        ("enum", Value::Array(values)) => {
                            into.extend(values.iter().filter_map(|v| v.as_str().map(str::to_owned)))
                        }
                        _ => collect(value, into),
                    }
                }
            }
            Value::Array(values) => values.iter().for_each(|v| collect(v, into)),
            _ => {}
        }
    }
    let schema = serde_json::to_value(schemars::schema_for!(T)).expect("a schema serializes");
    let mut names = Vec::new();
    collect(&schema, &mut names);
    names
}

/// Checks that `rows` give each core variant its wire name through `W: From<C>`, that each
/// variant sits at the row `row_of` says, and that the wire type has no name without a row.
fn assert_written<C, W>(rows: &[(C, &str)], row_of: fn(C) -> usize)
where
    C: Copy + PartialEq + Debug,
    W: From<C> + Serialize + JsonSchema,
{
    for (i, (core, name)) in rows.iter().enumerate() {
        assert_eq!(row_of(*core), i, "{core:?} is not in its row");
        let wire = serde_json::to_value(W::from(*core)).expect("serializes");
        assert_eq!(wire, Value::from(*name), "{core:?}");
    }
    let names: Vec<String> = rows.iter().map(|(_, name)| (*name).to_owned()).collect();
    assert_eq!(schema_names::<W>(), names, "the wire type's names, in order");
}

/// Checks that every wire name in `rows` reads back as its core variant.
fn assert_read<C, W>(rows: &[(C, &str)])
where
    C: Copy + PartialEq + Debug + From<W>,
    W: DeserializeOwned,
{
    for (core, name) in rows {
        let wire: W = serde_json::from_value(Value::from(*name)).expect("a wire name reads");
        assert_eq!(C::from(wire), *core, "{name}");
    }
}

const CHANNELS: [(core::Channel, &str); 9] = [
    (core::Channel::Whatsapp, "whatsapp"),
    (core::Channel::Messenger, "messenger"),
    (core::Channel::Instagram, "instagram"),
    (core::Channel::Wechat, "wechat"),
    (core::Channel::Telegram, "telegram"),
    (core::Channel::Line, "line"),
    (core::Channel::Webchat, "webchat"),
    (core::Channel::Sms, "sms"),
    (core::Channel::Email, "email"),
];

fn channel_row(channel: core::Channel) -> usize {
    match channel {
        core::Channel::Whatsapp => 0,
        core::Channel::Messenger => 1,
        core::Channel::Instagram => 2,
        core::Channel::Wechat => 3,
        core::Channel::Telegram => 4,
        core::Channel::Line => 5,
        core::Channel::Webchat => 6,
        core::Channel::Sms => 7,
        core::Channel::Email => 8,
    }
}

const PRESENCES: [(core::Presence, &str); 3] = [
    (core::Presence::Online, "online"),
    (core::Presence::Away, "away"),
    (core::Presence::Offline, "offline"),
];

fn presence_row(presence: core::Presence) -> usize {
    match presence {
        core::Presence::Online => 0,
        core::Presence::Away => 1,
        core::Presence::Offline => 2,
    }
}

const ROLES: [(core::Role, &str); 3] = [
    (core::Role::Agent, "agent"),
    (core::Role::Supervisor, "supervisor"),
    (core::Role::Admin, "admin"),
];

fn role_row(role: core::Role) -> usize {
    match role {
        core::Role::Agent => 0,
        core::Role::Supervisor => 1,
        core::Role::Admin => 2,
    }
}

const ERROR_CODES: [(core::ErrorCode, &str); 15] = [
    (core::ErrorCode::ActiveElsewhere, "active_elsewhere"),
    (core::ErrorCode::WindowClosed, "window_closed"),
    (core::ErrorCode::OptedOut, "opted_out"),
    (core::ErrorCode::PushAlreadySent, "push_already_sent"),
    (core::ErrorCode::NotOwner, "not_owner"),
    (core::ErrorCode::NotFound, "not_found"),
    (core::ErrorCode::AgentUnavailable, "agent_unavailable"),
    (core::ErrorCode::OverLimit, "over_limit"),
    (core::ErrorCode::MessageTooLong, "message_too_long"),
    (core::ErrorCode::BadRequest, "bad_request"),
    (core::ErrorCode::Unauthorized, "unauthorized"),
    (core::ErrorCode::Forbidden, "forbidden"),
    (core::ErrorCode::RateLimited, "rate_limited"),
    (core::ErrorCode::StorageUnavailable, "storage_unavailable"),
    (core::ErrorCode::QuotaExceeded, "quota_exceeded"),
];

fn error_code_row(code: core::ErrorCode) -> usize {
    match code {
        core::ErrorCode::ActiveElsewhere => 0,
        core::ErrorCode::WindowClosed => 1,
        core::ErrorCode::OptedOut => 2,
        core::ErrorCode::PushAlreadySent => 3,
        core::ErrorCode::NotOwner => 4,
        core::ErrorCode::NotFound => 5,
        core::ErrorCode::AgentUnavailable => 6,
        core::ErrorCode::OverLimit => 7,
        core::ErrorCode::MessageTooLong => 8,
        core::ErrorCode::BadRequest => 9,
        core::ErrorCode::Unauthorized => 10,
        core::ErrorCode::Forbidden => 11,
        core::ErrorCode::RateLimited => 12,
        core::ErrorCode::StorageUnavailable => 13,
        core::ErrorCode::QuotaExceeded => 14,
    }
}

const WITHDRAW_REASONS: [(core::WithdrawReason, &str); 5] = [
    (core::WithdrawReason::Timeout, "timeout"),
    (core::WithdrawReason::ChatClosed, "chat_closed"),
    (core::WithdrawReason::AgentUnavailable, "agent_unavailable"),
    (core::WithdrawReason::LimitLowered, "limit_lowered"),
    (core::WithdrawReason::RoomTaken, "room_taken"),
];

fn withdraw_reason_row(reason: core::WithdrawReason) -> usize {
    match reason {
        core::WithdrawReason::Timeout => 0,
        core::WithdrawReason::ChatClosed => 1,
        core::WithdrawReason::AgentUnavailable => 2,
        core::WithdrawReason::LimitLowered => 3,
        core::WithdrawReason::RoomTaken => 4,
    }
}

const CHAT_STATES: [(core::ChatState, &str); 6] = [
    (core::ChatState::Bot, "bot"),
    (core::ChatState::Queued, "queued"),
    (core::ChatState::Active, "active"),
    (core::ChatState::Reopened, "reopened"),
    (core::ChatState::Snoozed, "snoozed"),
    (core::ChatState::Closed, "closed"),
];

fn chat_state_row(state: core::ChatState) -> usize {
    match state {
        core::ChatState::Bot => 0,
        core::ChatState::Queued => 1,
        core::ChatState::Active => 2,
        core::ChatState::Reopened => 3,
        core::ChatState::Snoozed => 4,
        core::ChatState::Closed => 5,
    }
}

const CLOSE_REASONS: [(core::CloseReason, &str); 4] = [
    (core::CloseReason::Agent, "agent"),
    (core::CloseReason::Stop, "stop"),
    (core::CloseReason::Timeout, "timeout"),
    (core::CloseReason::Supervisor, "supervisor"),
];

fn close_reason_row(reason: core::CloseReason) -> usize {
    match reason {
        core::CloseReason::Agent => 0,
        core::CloseReason::Stop => 1,
        core::CloseReason::Timeout => 2,
        core::CloseReason::Supervisor => 3,
    }
}

const MESSAGE_KINDS: [(core::MessageKind, &str); 4] = [
    (core::MessageKind::Text, "text"),
    (core::MessageKind::Template, "template"),
    (core::MessageKind::Notice, "notice"),
    (core::MessageKind::AfterHours, "after_hours"),
];

fn message_kind_row(kind: core::MessageKind) -> usize {
    match kind {
        core::MessageKind::Text => 0,
        core::MessageKind::Template => 1,
        core::MessageKind::Notice => 2,
        core::MessageKind::AfterHours => 3,
    }
}

#[test]
fn issue13_every_core_channel_has_its_wire_name_both_ways() {
    assert_eq!(CHANNELS.len(), core::Channel::ALL.len());
    assert_written::<_, Channel>(&CHANNELS, channel_row);
    assert_read::<_, Channel>(&CHANNELS);
    // The core's own spelling (URL paths, default queue ids, messages) stays the wire's.
    for (channel, name) in CHANNELS {
        assert_eq!(channel.as_str(), name);
    }
}

#[test]
fn issue13_every_core_presence_and_role_has_its_wire_name_both_ways() {
    assert_written::<_, Presence>(&PRESENCES, presence_row);
    assert_read::<_, Presence>(&PRESENCES);
    assert_written::<_, Role>(&ROLES, role_row);
    assert_read::<_, Role>(&ROLES);
}

#[test]
fn issue13_every_core_error_code_has_its_wire_name_both_ways() {
    assert_written::<_, ErrorCode>(&ERROR_CODES, error_code_row);
    assert_read::<_, ErrorCode>(&ERROR_CODES);
}

#[test]
fn issue13_every_core_withdraw_reason_has_its_wire_name() {
    assert_written::<_, WithdrawReason>(&WITHDRAW_REASONS, withdraw_reason_row);
}

#[test]
fn issue13_every_chat_state_close_reason_and_message_kind_has_its_wire_name() {
    assert_written::<_, ChatState>(&CHAT_STATES, chat_state_row);
    assert_read::<_, ChatState>(&CHAT_STATES);
    assert_written::<_, CloseReason>(&CLOSE_REASONS, close_reason_row);
    assert_written::<_, MessageKind>(&MESSAGE_KINDS, message_kind_row);
}

#[test]
fn issue13_an_agent_profile_reads_on_the_wire_field_by_field() {
    let profile = core::AgentProfile {
        id: "ana".into(),
        name: "Ana".into(),
        role: core::Role::Supervisor,
        limit: 3,
        queues: vec!["billing".into()],
        skills: BTreeMap::from([("language:es".to_owned(), 5)]),
        channel_limits: BTreeMap::from([(core::Channel::Email, 5), (core::Channel::Sms, 1)]),
    };
    assert_eq!(
        serde_json::to_value(AgentProfile::from(&profile)).expect("serializes"),
        json!({
            "id": "ana",
            "name": "Ana",
            "role": "supervisor",
            "limit": 3,
            "queues": ["billing"],
            "skills": {"language:es": 5},
            "channel_limits": {"sms": 1, "email": 5},
        })
    );
}

#[test]
fn issue13_the_kpis_read_on_the_wire_figure_by_figure() {
    use core::analytics as kpi;

    let figures = kpi::Figures {
        reopens: 1,
        replied: 2,
        declined: 3,
        rejected: kpi::Rejections {
            active_elsewhere: 4,
            window_closed: 5,
            opted_out: 6,
        },
        templates: 7,
        overrides: 8,
        time_to_accept: kpi::Durations {
            count: 9,
            p50_ms: 10,
            p90_ms: 11,
            max_ms: 12,
        },
        queue_wait: kpi::Durations {
            count: 13,
            p50_ms: 14,
            p90_ms: 15,
            max_ms: 16,
        },
        sla: kpi::Attainment {
            answered: 17,
            within: 18,
        },
        sla_by_queue: vec![kpi::QueueAttainment {
            queue: "billing".into(),
            channel: core::Channel::Webchat,
            attainment: kpi::Attainment {
                answered: 19,
                within: 20,
            },
        }],
    };
    assert_eq!(
        serde_json::to_value(Figures::from(&figures)).expect("serializes"),
        json!({
            "reopens": 1,
            "replied": 2,
            "declined": 3,
            "rejected": {"active_elsewhere": 4, "window_closed": 5, "opted_out": 6},
            "templates": 7,
            "overrides": 8,
            "time_to_accept": {"count": 9, "p50_ms": 10, "p90_ms": 11, "max_ms": 12},
            "queue_wait": {"count": 13, "p50_ms": 14, "p90_ms": 15, "max_ms": 16},
            "sla": {"answered": 17, "within": 18},
            "sla_by_queue": [
                {"queue": "billing", "channel": "webchat", "answered": 19, "within": 20},
            ],
        })
    );
}
