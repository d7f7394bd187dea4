//! How domain values become SQLite values and back.
//!
//! Enums are stored as snake_case names written down here (readable in the `sqlite3` shell,
//! stable across refactors of the Rust names, and the same as the wire's); timestamps as
//! nanoseconds since the epoch. The core's types have no serde: every stored shape is spelled
//! out in this file.

use chrono::DateTime;
use rusqlite::types::FromSql;
use rusqlite::types::Type;
use rusqlite::Row;

/// A row's cells, however the backend fetched them: SQLite's rows, and the PostgreSQL
/// backend's rows turned into SQLite values (`postgres/row.rs`), so that one decoder reads
/// both.
pub(crate) trait Cells {
    /// Cell `idx` as a `T`, converted as SQLite converts it.
    fn cell<T: FromSql>(&self, idx: usize) -> rusqlite::Result<T>;
}

impl Cells for Row<'_> {
    fn cell<T: FromSql>(&self, idx: usize) -> rusqlite::Result<T> {
        self.get(idx)
    }
}
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

use super::records::{AgentRecord, ChatRecord, CustomerRecord};
use super::StoreError;
use crate::clock::Timestamp;
use crate::core::agent::Role;
use crate::core::analytics::EventKind;
use crate::core::channel::Channel;
use crate::core::chat::{
    Author, ChatState, CloseReason, Delivery, MediaKind, Message, MessageKind, Payload, SnoozeUntil, Stage,
};
use crate::core::customer::Profile;
use crate::core::queue::RoutingAsk;
use crate::core::rejection::ErrorCode;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};
use crate::security::TokenHash;

/// `t` as nanoseconds since the epoch; the range is 1677–2262.
pub(crate) fn nanos(t: &Timestamp) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt()
        .ok_or_else(|| StoreError::Unrepresentable {
            what: format!("timestamp {t} (outside 1677–2262)"),
        })
}

/// `Option` of [`nanos`].
pub(crate) fn nanos_opt(t: Option<&Timestamp>) -> Result<Option<i64>, StoreError> {
    t.map(nanos).transpose()
}

/// `value` as JSON text, for columns that are only ever read back whole.
pub(crate) fn json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Unrepresentable {
        what: format!("a value as JSON: {e}"),
    })
}

/// A unit enum of the core as the database names it. The names are written here, not
/// derived, so that renaming a variant in the core cannot change what a database holds (and
/// an older database stays readable); `stored` matches every variant, so a new one does not
/// compile until it has a name.
pub(crate) trait Stored: Sized + Copy + 'static {
    /// Every variant, for reading names back.
    const ALL: &'static [Self];

    /// The stored name.
    fn stored(self) -> &'static str;

    /// The variant stored as `name`.
    fn from_stored(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.stored() == name)
    }
}

impl Stored for ChatState {
    const ALL: &'static [Self] = &[
        ChatState::Bot,
        ChatState::Queued,
        ChatState::Active,
        ChatState::Reopened,
        ChatState::Snoozed,
        ChatState::Closed,
    ];

    fn stored(self) -> &'static str {
        match self {
            ChatState::Bot => "bot",
            ChatState::Queued => "queued",
            ChatState::Active => "active",
            ChatState::Reopened => "reopened",
            ChatState::Snoozed => "snoozed",
            ChatState::Closed => "closed",
        }
    }
}

impl Stored for CloseReason {
    const ALL: &'static [Self] = &[
        CloseReason::Agent,
        CloseReason::Stop,
        CloseReason::Timeout,
        CloseReason::Supervisor,
    ];

    fn stored(self) -> &'static str {
        match self {
            CloseReason::Agent => "agent",
            CloseReason::Stop => "stop",
            CloseReason::Timeout => "timeout",
            CloseReason::Supervisor => "supervisor",
        }
    }
}

impl Stored for MessageKind {
    const ALL: &'static [Self] = &[
        MessageKind::Text,
        MessageKind::Template,
        MessageKind::Notice,
        MessageKind::AfterHours,
    ];

    fn stored(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Template => "template",
            MessageKind::Notice => "notice",
            MessageKind::AfterHours => "after_hours",
        }
    }
}

impl Stored for Role {
    const ALL: &'static [Self] = &[Role::Agent, Role::Supervisor, Role::Admin];

    fn stored(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// The same names as [`Channel::as_str`], which the `chats` and `analytics_events` columns
/// hold (a test keeps the two in step); written out here for the same reason as the others.
impl Stored for Channel {
    const ALL: &'static [Self] = &Channel::ALL;

    fn stored(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::Wechat => "wechat",
            Channel::Telegram => "telegram",
            Channel::Line => "line",
            Channel::Webchat => "webchat",
            Channel::Sms => "sms",
            Channel::Email => "email",
        }
    }
}

/// The reasons a refused reopen is counted under (`analytics_events.reason`).
impl Stored for ErrorCode {
    const ALL: &'static [Self] = &[
        ErrorCode::ActiveElsewhere,
        ErrorCode::WindowClosed,
        ErrorCode::OptedOut,
        ErrorCode::PushAlreadySent,
        ErrorCode::NotOwner,
        ErrorCode::NotFound,
        ErrorCode::AgentUnavailable,
        ErrorCode::OverLimit,
        ErrorCode::MessageTooLong,
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::RateLimited,
        ErrorCode::StorageUnavailable,
        ErrorCode::QuotaExceeded,
    ];

    fn stored(self) -> &'static str {
        match self {
            ErrorCode::ActiveElsewhere => "active_elsewhere",
            ErrorCode::WindowClosed => "window_closed",
            ErrorCode::OptedOut => "opted_out",
            ErrorCode::PushAlreadySent => "push_already_sent",
            ErrorCode::NotOwner => "not_owner",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AgentUnavailable => "agent_unavailable",
            ErrorCode::OverLimit => "over_limit",
            ErrorCode::MessageTooLong => "message_too_long",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::QuotaExceeded => "quota_exceeded",
        }
    }
}

/// Reads a column written with [`Stored::stored`].
pub(crate) fn column_stored<T: Stored>(row: &impl Cells, idx: usize) -> rusqlite::Result<T> {
    let text: String = row.cell(idx)?;
    stored_as(idx, &text)
}

/// Reads a nullable column written with [`Stored::stored`].
fn column_stored_opt<T: Stored>(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.cell(idx)?;
    text.map(|t| stored_as(idx, &t)).transpose()
}

/// The variant stored as `text` in column `idx`, or an error naming the value.
fn stored_as<T: Stored>(idx: usize, text: &str) -> rusqlite::Result<T> {
    T::from_stored(text).ok_or_else(|| conversion_failure(idx, BadValue(format!("unknown value `{text}`"))))
}

/// A snooze as the `snooze` column holds it: JSON, `{"until":"reply"}` or
/// `{"until":"time","at":"<RFC 3339>"}`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "until", rename_all = "snake_case")]
enum StoredSnooze {
    Time {
        #[serde(with = "crate::clock::rfc3339")]
        at: Timestamp,
    },
    Reply,
}

/// The `snooze` column's text for `until`.
pub(crate) fn snooze_json(until: SnoozeUntil) -> Result<String, StoreError> {
    json(&match until {
        SnoozeUntil::Time { at } => StoredSnooze::Time { at },
        SnoozeUntil::Reply => StoredSnooze::Reply,
    })
}

/// Reads the (nullable) `snooze` column.
fn column_snooze(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<SnoozeUntil>> {
    Ok(column_json::<Option<StoredSnooze>>(row, idx)?.map(|s| match s {
        StoredSnooze::Time { at } => SnoozeUntil::Time { at },
        StoredSnooze::Reply => SnoozeUntil::Reply,
    }))
}

fn conversion_failure(idx: usize, e: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))
}

/// Reads a (nullable) column written by [`json`].
pub(crate) fn column_json<T: DeserializeOwned>(row: &impl Cells, idx: usize) -> rusqlite::Result<T> {
    let text: Option<String> = row.cell(idx)?;
    serde_json::from_str(text.as_deref().unwrap_or("null")).map_err(|e| conversion_failure(idx, e))
}

/// The `identities` column's text: JSON, one `["<channel>", "<address>"]` pair per identity.
pub(crate) fn identities_json(identities: &[(Channel, String)]) -> Result<String, StoreError> {
    json(
        &identities
            .iter()
            .map(|(channel, address)| (channel.stored(), address.as_str()))
            .collect::<Vec<_>>(),
    )
}

/// Reads the `identities` column.
fn column_identities(row: &impl Cells, idx: usize) -> rusqlite::Result<Vec<(Channel, String)>> {
    column_json::<Vec<(String, String)>>(row, idx)?
        .into_iter()
        .map(|(channel, address)| Ok((stored_as(idx, &channel)?, address)))
        .collect()
}

/// The text of a column holding channels (`opted_out`, `pushed`): JSON, `["sms", …]`.
pub(crate) fn channels_json(channels: &[Channel]) -> Result<String, StoreError> {
    json(&channels.iter().map(|c| c.stored()).collect::<Vec<_>>())
}

/// Reads a column written by [`channels_json`].
fn column_channels(row: &impl Cells, idx: usize) -> rusqlite::Result<Vec<Channel>> {
    column_json::<Vec<String>>(row, idx)?
        .iter()
        .map(|channel| stored_as(idx, channel))
        .collect()
}

/// Reads a timestamp column.
pub(crate) fn column_time(row: &impl Cells, idx: usize) -> rusqlite::Result<Timestamp> {
    Ok(DateTime::from_timestamp_nanos(row.cell(idx)?))
}

/// Reads a nullable timestamp column.
pub(crate) fn column_time_opt(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.cell::<Option<i64>>(idx)?.map(DateTime::from_timestamp_nanos))
}

/// Reads a customer's name, email and phone from three columns from `first` on.
pub(crate) fn column_profile(row: &impl Cells, first: usize) -> rusqlite::Result<Profile> {
    Ok(Profile {
        name: row.cell(first)?,
        email: row.cell(first + 1)?,
        phone: row.cell(first + 2)?,
    })
}

/// Reads when and why a chat was last closed from two columns (`closed_at`, `close_reason`)
/// from `first` on: both or neither.
pub(crate) fn column_closed(
    row: &impl Cells,
    first: usize,
) -> rusqlite::Result<Option<(Timestamp, CloseReason)>> {
    Ok(
        match (
            column_time_opt(row, first)?,
            column_stored_opt::<CloseReason>(row, first + 1)?,
        ) {
            (Some(at), Some(reason)) => Some((at, reason)),
            _ => None,
        },
    )
}

/// Reads a nullable id column.
pub(crate) fn column_id_opt<T: From<String>>(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<T>> {
    Ok(row.cell::<Option<String>>(idx)?.map(T::from))
}

/// A message's author as (`customer` | `agent` | `system`, the agent).
pub(crate) fn author_columns(author: &Author) -> (&'static str, Option<&str>) {
    match author {
        Author::Customer => ("customer", None),
        Author::Agent { agent } => ("agent", Some(agent.as_str())),
        Author::System => ("system", None),
    }
}

/// Reads what [`author_columns`] wrote at `idx` and `idx + 1`.
pub(crate) fn column_author(row: &impl Cells, idx: usize) -> rusqlite::Result<Author> {
    let by: String = row.cell(idx)?;
    match by.as_str() {
        "customer" => Ok(Author::Customer),
        "system" => Ok(Author::System),
        "agent" => match row.cell::<Option<String>>(idx + 1)? {
            Some(agent) => Ok(Author::Agent {
                agent: AgentId::from(agent),
            }),
            None => Err(conversion_failure(
                idx + 1,
                BadValue("an agent's message without its agent".into()),
            )),
        },
        other => Err(conversion_failure(
            idx,
            BadValue(format!("unknown author `{other}`")),
        )),
    }
}

/// An analytics event's kind as (kind, rejection reason, waited ms, to-accept ms, within SLA).
pub(crate) type EventColumns = (
    &'static str,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<bool>,
);

/// Splits an event kind into its columns.
pub(crate) fn event_columns(kind: &EventKind) -> Result<EventColumns, StoreError> {
    let ms = |v: u64| {
        i64::try_from(v).map_err(|_| StoreError::Unrepresentable {
            what: format!("duration {v} ms"),
        })
    };
    Ok(match kind {
        EventKind::Reopened => ("reopened", None, None, None, None),
        EventKind::ReopenReplied => ("reopen_replied", None, None, None, None),
        EventKind::ReopenDeclined => ("reopen_declined", None, None, None, None),
        EventKind::ReopenRejected(code) => (
            "reopen_rejected",
            Some(code.stored().to_owned()),
            None,
            None,
            None,
        ),
        EventKind::TemplatePushed => ("template_pushed", None, None, None, None),
        EventKind::LimitOverride => ("limit_override", None, None, None, None),
        EventKind::Accepted {
            waited_ms,
            to_accept_ms,
            within_sla,
        } => (
            "accepted",
            None,
            Some(ms(*waited_ms)?),
            Some(ms(*to_accept_ms)?),
            *within_sla,
        ),
    })
}

/// Reads what [`event_columns`] wrote, starting at `idx` (kind, reason, waited, to accept,
/// within SLA).
pub(crate) fn column_event_kind(row: &impl Cells, idx: usize) -> rusqlite::Result<EventKind> {
    let kind: String = row.cell(idx)?;
    let ms = |i: usize| -> rusqlite::Result<u64> {
        let v: i64 = row.cell(i)?;
        u64::try_from(v).map_err(|e| conversion_failure(i, e))
    };
    Ok(match kind.as_str() {
        "reopened" => EventKind::Reopened,
        "reopen_replied" => EventKind::ReopenReplied,
        "reopen_declined" => EventKind::ReopenDeclined,
        "reopen_rejected" => EventKind::ReopenRejected(column_stored(row, idx + 1)?),
        "template_pushed" => EventKind::TemplatePushed,
        "limit_override" => EventKind::LimitOverride,
        "accepted" => EventKind::Accepted {
            waited_ms: ms(idx + 2)?,
            to_accept_ms: ms(idx + 3)?,
            within_sla: row.cell(idx + 4)?,
        },
        other => {
            return Err(conversion_failure(
                idx,
                BadValue(format!("unknown event kind `{other}`")),
            ))
        }
    })
}

/// A stored value that means nothing to this build.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadValue(String);

/// The columns [`chat_record`] reads, in its order.
pub(crate) const CHAT_COLUMNS: &str =
    "id, customer, channel, state, owner, reopened_by, reopened_at, snooze, \
     created_at, queued_at, last_customer_message_at, closed_at, close_reason, routing";

/// A chat row selected with [`CHAT_COLUMNS`].
pub(crate) fn chat_record(r: &impl Cells) -> rusqlite::Result<ChatRecord> {
    let created_at = column_time(r, 8)?;
    Ok(ChatRecord {
        id: ChatId::from(r.cell::<String>(0)?),
        customer: CustomerId::from(r.cell::<String>(1)?),
        channel: column_stored(r, 2)?,
        stage: column_stage(r, created_at)?,
        reopened_by: column_id_opt(r, 5)?,
        created_at,
        last_customer_message_at: column_time_opt(r, 10)?,
        routing: column_routing(r, 13)?,
    })
}

/// A chat's values for the columns of `chats`, in the order both writers insert them: its
/// stage spread over `state`, `owner`, `reopened_at`, `snooze`, `queued_at`, `closed_at` and
/// `close_reason`, which [`chat_record`] gathers back.
pub(crate) struct ChatColumns<'c> {
    pub(crate) id: &'c str,
    pub(crate) customer: &'c str,
    pub(crate) channel: &'static str,
    pub(crate) state: &'static str,
    pub(crate) owner: Option<&'c str>,
    pub(crate) reopened_by: Option<&'c str>,
    pub(crate) reopened_at: Option<i64>,
    pub(crate) snooze: Option<String>,
    pub(crate) created_at: i64,
    pub(crate) queued_at: Option<i64>,
    pub(crate) last_customer_message_at: Option<i64>,
    pub(crate) closed_at: Option<i64>,
    pub(crate) close_reason: Option<&'static str>,
    pub(crate) newest_at: i64,
    pub(crate) routing: Option<String>,
}

impl<'c> ChatColumns<'c> {
    /// The columns of `c`, or which value cannot be stored.
    pub(crate) fn of(c: &'c ChatRecord) -> Result<Self, StoreError> {
        let reopened_at = match c.stage {
            Stage::Reopened { since, .. } => Some(since),
            _ => None,
        };
        let queued_at = match c.stage {
            Stage::Queued { since } => Some(since),
            _ => None,
        };
        let closed = c.stage.closed();
        Ok(Self {
            id: c.id.as_str(),
            customer: c.customer.as_str(),
            channel: c.channel.stored(),
            state: c.state().stored(),
            owner: c.stage.owner().map(AgentId::as_str),
            reopened_by: c.reopened_by.as_ref().map(AgentId::as_str),
            reopened_at: nanos_opt(reopened_at.as_ref())?,
            snooze: c.stage.snooze().map(snooze_json).transpose()?,
            created_at: nanos(&c.created_at)?,
            queued_at: nanos_opt(queued_at.as_ref())?,
            last_customer_message_at: nanos_opt(c.last_customer_message_at.as_ref())?,
            closed_at: nanos_opt(closed.as_ref().map(|(at, _)| at))?,
            close_reason: closed.map(|(_, reason)| reason.stored()),
            newest_at: nanos(&c.newest_at())?,
            routing: routing_json(&c.routing)?,
        })
    }
}

/// A message's values for the columns of `messages`, in the order both writers insert them.
pub(crate) struct MessageColumns<'m> {
    pub(crate) seq: i64,
    pub(crate) at: i64,
    pub(crate) author: &'static str,
    pub(crate) agent: Option<&'m str>,
    pub(crate) kind: &'static str,
    pub(crate) text: &'m str,
    pub(crate) payload: Option<String>,
    pub(crate) provider_id: Option<&'m str>,
    pub(crate) delivery: Option<&'static str>,
    pub(crate) delivery_reason: Option<String>,
}

impl<'m> MessageColumns<'m> {
    /// The columns of message number `seq` `m`, or which value cannot be stored.
    pub(crate) fn of(seq: u64, m: &'m Message) -> Result<Self, StoreError> {
        let (author, agent) = author_columns(&m.author);
        let (delivery, delivery_reason) = delivery_columns(m.delivery.as_ref());
        Ok(Self {
            seq: i64::try_from(seq).map_err(|_| StoreError::Unrepresentable {
                what: format!("message number {seq}"),
            })?,
            at: nanos(&m.at)?,
            author,
            agent,
            kind: m.kind.stored(),
            text: &m.text,
            payload: m.payload.as_deref().map(payload_json).transpose()?,
            provider_id: m.provider_id.as_deref(),
            delivery,
            delivery_reason,
        })
    }

    /// What the message counts toward its workspace's stored bytes (R27): its text and its
    /// payload's JSON as written.
    pub(crate) fn stored_bytes(&self) -> u64 {
        (self.text.len() + self.payload.as_ref().map_or(0, String::len)) as u64
    }
}

/// What a chat asked of routing as the `routing` column holds it (R19): JSON, null when it
/// asked nothing. The core's [`RoutingAsk`] has no serde of its own; this is its stored shape.
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct StoredAsk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    language: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    skills: BTreeMap<String, u8>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
}

/// The `routing` column's text for `ask`; none when it asks nothing.
pub(crate) fn routing_json(ask: &RoutingAsk) -> Result<Option<String>, StoreError> {
    if ask.is_empty() {
        return Ok(None);
    }
    json(&StoredAsk {
        queue: ask.queue.as_ref().map(|q| q.as_str().to_owned()),
        language: ask.language.clone(),
        skills: ask.skills.clone(),
        attributes: ask.attributes.clone(),
    })
    .map(Some)
}

/// A message's payload as the `payload` column holds it (R23): JSON tagged by `type`. The
/// core's [`Payload`] has no serde of its own; this is its stored shape.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StoredPayload {
    Media {
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        filename: Option<String>,
    },
    Location {
        latitude: String,
        longitude: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
    },
    Reply {
        id: String,
    },
    Unsupported {
        kind: String,
    },
}

impl Stored for MediaKind {
    const ALL: &'static [Self] = &[
        MediaKind::Image,
        MediaKind::Document,
        MediaKind::Audio,
        MediaKind::Video,
        MediaKind::Sticker,
    ];

    fn stored(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Sticker => "sticker",
        }
    }
}

/// The `payload` column's text for `payload`.
pub(crate) fn payload_json(payload: &Payload) -> Result<String, StoreError> {
    json(&match payload.clone() {
        Payload::Media {
            kind,
            id,
            url,
            mime,
            filename,
        } => StoredPayload::Media {
            kind: kind.stored().to_owned(),
            id,
            url,
            mime,
            filename,
        },
        Payload::Location {
            latitude,
            longitude,
            name,
            address,
        } => StoredPayload::Location {
            latitude,
            longitude,
            name,
            address,
        },
        Payload::Reply { id } => StoredPayload::Reply { id },
        Payload::Unsupported { kind } => StoredPayload::Unsupported { kind },
    })
}

/// Reads the (nullable) `payload` column.
pub(crate) fn column_payload(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<Payload>> {
    let Some(stored) = column_json::<Option<StoredPayload>>(row, idx)? else {
        return Ok(None);
    };
    Ok(Some(match stored {
        StoredPayload::Media {
            kind,
            id,
            url,
            mime,
            filename,
        } => Payload::Media {
            kind: stored_as(idx, &kind)?,
            id,
            url,
            mime,
            filename,
        },
        StoredPayload::Location {
            latitude,
            longitude,
            name,
            address,
        } => Payload::Location {
            latitude,
            longitude,
            name,
            address,
        },
        StoredPayload::Reply { id } => Payload::Reply { id },
        StoredPayload::Unsupported { kind } => Payload::Unsupported { kind },
    }))
}

/// A delivery as the `delivery` and `delivery_reason` columns hold it (R24, R25).
pub(crate) fn delivery_columns(delivery: Option<&Delivery>) -> (Option<&'static str>, Option<String>) {
    match delivery {
        None => (None, None),
        Some(Delivery::Pending) => (Some("pending"), None),
        Some(Delivery::Sent) => (Some("sent"), None),
        Some(Delivery::Delivered) => (Some("delivered"), None),
        Some(Delivery::Read) => (Some("read"), None),
        Some(Delivery::Failed { reason }) => (Some("failed"), Some(reason.clone())),
    }
}

/// Reads what [`delivery_columns`] wrote at `idx` and `idx + 1`.
pub(crate) fn column_delivery(row: &impl Cells, idx: usize) -> rusqlite::Result<Option<Delivery>> {
    let Some(name) = row.cell::<Option<String>>(idx)? else {
        return Ok(None);
    };
    Ok(Some(match name.as_str() {
        "pending" => Delivery::Pending,
        "sent" => Delivery::Sent,
        "delivered" => Delivery::Delivered,
        "read" => Delivery::Read,
        "failed" => Delivery::Failed {
            reason: row.cell::<Option<String>>(idx + 1)?.unwrap_or_default(),
        },
        other => {
            return Err(conversion_failure(
                idx,
                BadValue(format!("unknown delivery `{other}`")),
            ))
        }
    }))
}

/// Reads the (nullable) `routing` column.
fn column_routing(row: &impl Cells, idx: usize) -> rusqlite::Result<RoutingAsk> {
    let stored = column_json::<Option<StoredAsk>>(row, idx)?.unwrap_or_default();
    Ok(RoutingAsk {
        queue: stored.queue.map(QueueId::from),
        language: stored.language,
        skills: stored.skills,
        attributes: stored.attributes,
    })
}

/// A chat's [`Stage`] from the columns the writer spreads it over (state 3, owner 4,
/// reopened_at 6, snooze 7, queued_at 9, closed_at 11, close_reason 12). A row whose columns
/// do not make a stage (an active chat without an owner, …) is refused, naming the column.
fn column_stage(r: &impl Cells, created_at: Timestamp) -> rusqlite::Result<Stage> {
    let missing = |idx: usize, what: &str| {
        let chat: String = r.cell(0).unwrap_or_default();
        let state: String = r.cell(3).unwrap_or_default();
        conversion_failure(idx, BadValue(format!("chat {chat} is {state} without {what}")))
    };
    let owner = || column_id_opt::<AgentId>(r, 4)?.ok_or_else(|| missing(4, "an owner"));
    Ok(match column_stored::<ChatState>(r, 3)? {
        ChatState::Bot => Stage::Bot,
        // Rows written before queued_at was kept have none: the chat waited since it began.
        ChatState::Queued => Stage::Queued {
            since: column_time_opt(r, 9)?.unwrap_or(created_at),
        },
        ChatState::Active => Stage::Active { owner: owner()? },
        ChatState::Reopened => Stage::Reopened {
            owner: owner()?,
            since: column_time_opt(r, 6)?.ok_or_else(|| missing(6, "reopened_at"))?,
        },
        ChatState::Snoozed => Stage::Snoozed {
            owner: owner()?,
            until: column_snooze(r, 7)?.ok_or_else(|| missing(7, "a snooze"))?,
        },
        ChatState::Closed => {
            let (at, why) = column_closed(r, 11)?.ok_or_else(|| missing(11, "closed_at and close_reason"))?;
            Stage::Closed {
                at,
                why,
                owner: column_id_opt(r, 4)?,
            }
        }
    })
}

/// The columns [`customer_record`] reads, in its order.
pub(crate) const CUSTOMER_COLUMNS: &str =
    "id, name, email, phone, identities, opted_out, pushed, assigned_agent";

/// A customer row selected with [`CUSTOMER_COLUMNS`].
pub(crate) fn customer_record(r: &impl Cells) -> rusqlite::Result<CustomerRecord> {
    Ok(CustomerRecord {
        id: CustomerId::from(r.cell::<String>(0)?),
        profile: column_profile(r, 1)?,
        identities: column_identities(r, 4)?,
        opted_out: column_channels(r, 5)?,
        pushed: column_channels(r, 6)?,
        assigned_agent: column_id_opt(r, 7)?,
    })
}

/// The columns [`agent_record`] reads, in its order (the writer's `upsert_agent` writes them).
pub(crate) const AGENT_COLUMNS: &str =
    "agent, name, role, max_active, queues, skills, channel_limits, token_sha256";

/// An agent's `queues`, `skills` and `channel_limits` columns (R27): JSON with the queues'
/// ids, the skills' names and the channels' stored names as text, none of it through the
/// core types' own serde.
pub(crate) fn agent_json(a: &AgentRecord) -> Result<(String, String, String), StoreError> {
    let queues: Vec<&str> = a.queues.iter().map(|q| q.as_str()).collect();
    let channel_limits: BTreeMap<&str, u32> = a
        .channel_limits
        .iter()
        .map(|(channel, limit)| (channel.stored(), *limit))
        .collect();
    Ok((json(&queues)?, json(&a.skills)?, json(&channel_limits)?))
}

/// An agent row selected with [`AGENT_COLUMNS`].
pub(crate) fn agent_record(r: &impl Cells) -> rusqlite::Result<AgentRecord> {
    let channel_limits: BTreeMap<String, u32> = column_json(r, 6)?;
    let token_sha256 = match r.cell::<Option<Vec<u8>>>(7)? {
        None => None,
        Some(bytes) => Some(TokenHash::from_bytes(&bytes).ok_or_else(|| {
            conversion_failure(
                7,
                BadValue(format!("a token digest of {} bytes, not 32", bytes.len())),
            )
        })?),
    };
    Ok(AgentRecord {
        id: AgentId::from(r.cell::<String>(0)?),
        name: r.cell(1)?,
        role: column_stored(r, 2)?,
        limit: r.cell(3)?,
        queues: column_json::<Vec<String>>(r, 4)?
            .into_iter()
            .map(QueueId::from)
            .collect(),
        skills: column_json(r, 5)?,
        channel_limits: channel_limits
            .into_iter()
            .map(|(name, limit)| Ok((stored_as(6, &name)?, limit)))
            .collect::<rusqlite::Result<_>>()?,
        token_sha256,
    })
}
