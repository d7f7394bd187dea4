//! The reopen KPIs (R14): the events they are counted from, and the figures over a range.
//!
//! Counting is exact: every figure is a count of recorded events, and the percentiles are
//! nearest-rank over the recorded durations, not estimates.

use std::collections::BTreeMap;

use super::channel::Channel;
use super::rejection::ErrorCode;
use crate::clock::Timestamp;
use crate::ids::{AgentId, QueueId};

/// One thing that happened that a KPI counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Timestamp,
    /// The agent it is counted for.
    pub agent: AgentId,
    /// The chat's channel.
    pub channel: Channel,
    /// The queue the chat came from, for events of routing (an accepted offer).
    pub queue: Option<QueueId>,
    /// What.
    pub kind: EventKind,
}

/// What a KPI event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The agent reopened a chat: an agent-initiated chat.
    Reopened,
    /// The customer answered a reopened chat: a user-replied chat.
    ReopenReplied,
    /// The customer answered a reopened chat with #STOP: a declined chat.
    ReopenDeclined,
    /// A reopen was refused by a rule (active elsewhere, window closed, opted out).
    ReopenRejected(ErrorCode),
    /// The one template push after the window went out.
    TemplatePushed,
    /// A chat took the agent over its limit (R05, forced transfer).
    LimitOverride,
    /// The agent accepted an offered chat.
    Accepted {
        /// From entering the queue to the accept.
        waited_ms: u64,
        /// From the offer to the accept.
        to_accept_ms: u64,
        /// Whether it was answered within its queue's SLA; none when the queue has none (R20).
        within_sla: Option<bool>,
    },
}

/// Which events a range query counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// From this instant, inclusive.
    pub from: Option<Timestamp>,
    /// To this instant, exclusive.
    pub to: Option<Timestamp>,
    /// Only this agent's.
    pub agent: Option<AgentId>,
    /// Only this channel's.
    pub channel: Option<Channel>,
}

impl Filter {
    /// Whether the filter counts `event`.
    pub fn matches(&self, event: &Event) -> bool {
        self.from.is_none_or(|from| event.at >= from)
            && self.to.is_none_or(|to| event.at < to)
            && self.agent.as_ref().is_none_or(|a| &event.agent == a)
            && self.channel.is_none_or(|c| event.channel == c)
    }
}

/// Reopens refused, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rejections {
    /// The customer was live elsewhere (R03, R09).
    pub active_elsewhere: u64,
    /// The window had closed (R02).
    pub window_closed: u64,
    /// The customer had opted out (R08).
    pub opted_out: u64,
}

/// Percentiles of a duration, in milliseconds; all zero when there were none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

impl Durations {
    /// Nearest-rank percentiles of `samples` (reordered in place).
    pub fn of(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let rank = |p: u64| {
            // The smallest value with at least p% of the samples at or below it.
            let n = samples.len() as u64;
            let i = (p * n).div_ceil(100).max(1) - 1;
            samples[i as usize]
        };
        Self {
            count: samples.len() as u64,
            p50_ms: rank(50),
            p90_ms: rank(90),
            max_ms: samples[samples.len() - 1],
        }
    }
}

/// The KPIs of R14 over some events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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
    pub sla: Attainment,
    /// The same per queue and channel, by queue then channel.
    pub sla_by_queue: Vec<QueueAttainment>,
}

/// How many chats were answered within their SLA, of those answered (R20).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attainment {
    /// Chats answered (accepted) whose queue has an SLA.
    pub answered: u64,
    /// Of those, answered within it.
    pub within: u64,
}

/// SLA attainment of one queue on one channel (R20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueAttainment {
    /// The queue.
    pub queue: QueueId,
    /// The channel.
    pub channel: Channel,
    /// Its figures.
    pub attainment: Attainment,
}

impl Attainment {
    fn count(&mut self, within: bool) {
        self.answered += 1;
        self.within += u64::from(within);
    }
}

/// Adds events up into [`Figures`]; durations are kept until [`Tally::figures`].
#[derive(Clone, Debug, Default)]
pub struct Tally {
    figures: Figures,
    to_accept: Vec<u64>,
    waited: Vec<u64>,
    by_queue: BTreeMap<(QueueId, Channel), Attainment>,
}

impl Tally {
    /// Counts one event.
    pub fn add(&mut self, event: &Event) {
        let f = &mut self.figures;
        match event.kind {
            EventKind::Reopened => f.reopens += 1,
            EventKind::ReopenReplied => f.replied += 1,
            EventKind::ReopenDeclined => f.declined += 1,
            EventKind::ReopenRejected(code) => match code {
                ErrorCode::ActiveElsewhere => f.rejected.active_elsewhere += 1,
                ErrorCode::WindowClosed => f.rejected.window_closed += 1,
                ErrorCode::OptedOut => f.rejected.opted_out += 1,
                // Only the rules' refusals are KPIs; the rest are client mistakes.
                _ => {}
            },
            EventKind::TemplatePushed => f.templates += 1,
            EventKind::LimitOverride => f.overrides += 1,
            EventKind::Accepted {
                waited_ms,
                to_accept_ms,
                within_sla,
            } => {
                self.waited.push(waited_ms);
                self.to_accept.push(to_accept_ms);
                if let Some(within) = within_sla {
                    f.sla.count(within);
                    if let Some(queue) = &event.queue {
                        self.by_queue
                            .entry((queue.clone(), event.channel))
                            .or_default()
                            .count(within);
                    }
                }
            }
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> Figures {
        Figures {
            time_to_accept: Durations::of(&mut self.to_accept.clone()),
            queue_wait: Durations::of(&mut self.waited.clone()),
            sla_by_queue: self
                .by_queue
                .iter()
                .map(|((queue, channel), attainment)| QueueAttainment {
                    queue: queue.clone(),
                    channel: *channel,
                    attainment: attainment.clone(),
                })
                .collect(),
            ..self.figures.clone()
        }
    }
}

/// The figures of the events `filter` counts, in total and per agent.
pub fn summarize<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    filter: &Filter,
) -> (Figures, BTreeMap<AgentId, Figures>) {
    let mut total = Tally::default();
    let mut by_agent: BTreeMap<AgentId, Tally> = BTreeMap::new();
    for event in events.into_iter().filter(|e| filter.matches(e)) {
        total.add(event);
        by_agent.entry(event.agent.clone()).or_default().add(event);
    }
    let by_agent = by_agent.into_iter().map(|(a, t)| (a, t.figures())).collect();
    (total.figures(), by_agent)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(minute: u32) -> Timestamp {
        chrono::Utc
            .with_ymd_and_hms(2026, 3, 2, 9, minute, 0)
            .single()
            .expect("date")
    }

    fn event(minute: u32, agent: &str, channel: Channel, kind: EventKind) -> Event {
        Event {
            at: at(minute),
            agent: AgentId::from(agent),
            channel,
            queue: None,
            kind,
        }
    }

    #[test]
    fn r14_percentiles_are_nearest_rank_over_every_sample() {
        let mut samples: Vec<u64> = (1..=10).map(|i| i * 100).collect();
        let d = Durations::of(&mut samples);
        assert_eq!(
            d,
            Durations {
                count: 10,
                p50_ms: 500,
                p90_ms: 900,
                max_ms: 1000
            }
        );
        assert_eq!(
            Durations::of(&mut [7]),
            Durations {
                count: 1,
                p50_ms: 7,
                p90_ms: 7,
                max_ms: 7
            }
        );
        assert_eq!(Durations::of(&mut []), Durations::default());
    }

    #[test]
    fn r14_a_range_counts_from_inclusive_to_exclusive_per_agent_and_channel() {
        let events = [
            event(0, "ana", Channel::Whatsapp, EventKind::Reopened),
            event(1, "ana", Channel::Whatsapp, EventKind::ReopenReplied),
            event(2, "ben", Channel::Messenger, EventKind::Reopened),
            event(
                3,
                "ben",
                Channel::Messenger,
                EventKind::ReopenRejected(ErrorCode::WindowClosed),
            ),
            event(
                4,
                "ben",
                Channel::Messenger,
                EventKind::ReopenRejected(ErrorCode::NotFound),
            ),
            event(5, "ana", Channel::Whatsapp, EventKind::LimitOverride),
        ];
        let everything = summarize(&events, &Filter::default());
        assert_eq!(everything.0.reopens, 2);
        assert_eq!(everything.0.replied, 1);
        assert_eq!(everything.0.rejected.window_closed, 1);
        assert_eq!(everything.0.overrides, 1);
        assert_eq!(everything.1.len(), 2);
        assert_eq!(everything.1[&AgentId::from("ben")].reopens, 1);

        let window = Filter {
            from: Some(at(1)),
            to: Some(at(5)),
            ..Filter::default()
        };
        let (figures, _) = summarize(&events, &window);
        assert_eq!((figures.reopens, figures.replied, figures.overrides), (1, 1, 0));

        let whatsapp = Filter {
            channel: Some(Channel::Whatsapp),
            ..Filter::default()
        };
        let (figures, agents) = summarize(&events, &whatsapp);
        assert_eq!((figures.reopens, figures.overrides), (1, 1));
        assert_eq!(agents.keys().collect::<Vec<_>>(), [&AgentId::from("ana")]);
    }
}
