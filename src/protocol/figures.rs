//! The KPIs of R14 as supervisors and `GET /v1/analytics` read them, mapped from the core's
//! [`analytics`](crate::core::analytics) figures field by field: each core struct is taken
//! apart whole, so a figure added to the core is a compile error here until it is given a
//! place on the wire (or deliberately left off it). The doc comments are the schemas'
//! descriptions: keep them as they are.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Channel;
use crate::core::analytics as core;
use crate::ids::QueueId;

/// Reopens refused, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Rejections {
    /// The customer was live elsewhere (R03, R09).
    pub active_elsewhere: u64,
    /// The window had closed (R02).
    pub window_closed: u64,
    /// The customer had opted out (R08).
    pub opted_out: u64,
}

impl From<&core::Rejections> for Rejections {
    fn from(rejections: &core::Rejections) -> Self {
        let core::Rejections {
            active_elsewhere,
            window_closed,
            opted_out,
        } = *rejections;
        Rejections {
            active_elsewhere,
            window_closed,
            opted_out,
        }
    }
}

/// Percentiles of a duration, in milliseconds; all zero when there were none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Durations {
    /// How many were measured.
    pub count: u64,
    /// The median (nearest rank).
    pub p50_ms: u64,
    /// The 90th percentile (nearest rank).
    pub p90_ms: u64,
    /// The longest.
    pub max_ms: u64,
}

impl From<&core::Durations> for Durations {
    fn from(durations: &core::Durations) -> Self {
        let core::Durations {
            count,
            p50_ms,
            p90_ms,
            max_ms,
        } = *durations;
        Durations {
            count,
            p50_ms,
            p90_ms,
            max_ms,
        }
    }
}

/// The KPIs of R14 over some events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Figures {
    /// Agent-initiated chats: successful reopens.
    pub reopens: u64,
    /// User-replied chats: reopened chats the customer answered.
    pub replied: u64,
    /// Declined chats: reopened chats the customer answered with #STOP.
    pub declined: u64,
    /// Reopens refused, by reason.
    pub rejected: Rejections,
    /// Template pushes after the window (R07).
    pub templates: u64,
    /// Times a chat took an agent over its limit (R05, forced transfers).
    pub overrides: u64,
    /// From offer to accept, of accepted chats.
    pub time_to_accept: Durations,
    /// From entering the queue to the accept, of accepted chats.
    pub queue_wait: Durations,
    /// SLA attainment of accepted chats whose queue has an SLA (R20).
    #[serde(default)]
    pub sla: Attainment,
    /// The same per queue and channel, by queue then channel.
    #[serde(default)]
    pub sla_by_queue: Vec<QueueAttainment>,
}

impl From<&core::Figures> for Figures {
    fn from(figures: &core::Figures) -> Self {
        let core::Figures {
            reopens,
            replied,
            declined,
            rejected,
            templates,
            overrides,
            time_to_accept,
            queue_wait,
            sla,
            sla_by_queue,
        } = figures;
        Figures {
            reopens: *reopens,
            replied: *replied,
            declined: *declined,
            rejected: rejected.into(),
            templates: *templates,
            overrides: *overrides,
            time_to_accept: time_to_accept.into(),
            queue_wait: queue_wait.into(),
            sla: sla.into(),
            sla_by_queue: sla_by_queue.iter().map(QueueAttainment::from).collect(),
        }
    }
}

/// How many chats were answered within their SLA, of those answered (R20).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Attainment {
    /// Chats answered (accepted) whose queue has an SLA.
    pub answered: u64,
    /// Of those, answered within it.
    pub within: u64,
}

impl From<&core::Attainment> for Attainment {
    fn from(attainment: &core::Attainment) -> Self {
        let core::Attainment { answered, within } = *attainment;
        Attainment { answered, within }
    }
}

/// SLA attainment of one queue on one channel (R20).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct QueueAttainment {
    /// The queue.
    pub queue: QueueId,
    /// The channel.
    pub channel: Channel,
    /// Its figures.
    #[serde(flatten)]
    pub attainment: Attainment,
}

impl From<&core::QueueAttainment> for QueueAttainment {
    fn from(attainment: &core::QueueAttainment) -> Self {
        let core::QueueAttainment {
            queue,
            channel,
            attainment,
        } = attainment;
        QueueAttainment {
            queue: queue.clone(),
            channel: (*channel).into(),
            attainment: attainment.into(),
        }
    }
}
