//! The KPI events of R14 as the engine records them, and the figures it answers with.
//!
//! Every event is kept (issue: durable storage moves them to disk), so that any range can be
//! counted exactly. Today's figures are also tallied as events come, for the supervisors' live
//! board, which must not rescan the day on every change.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::lock_order::{Level, Ordered};
use chrono::{NaiveTime, TimeZone, Utc};
use prometheus_client::metrics::histogram::Histogram;

use crate::clock::Timestamp;
use crate::core::analytics::{summarize, Event, EventKind, Filter, Rejections, Tally};
use crate::core::ErrorCode;
use crate::protocol::supervisor::{AgentFigures, AnalyticsQuery, AnalyticsReport, Kpis};

/// Every KPI event, and today's tally.
#[derive(Debug)]
pub struct Analytics {
    inner: Ordered<Inner>,
    /// Set by every event; the supervisors' task clears it when it sends the KPIs.
    changed: AtomicBool,
    /// The events of this run, for /metrics.
    live: LiveKpis,
}

impl Default for Analytics {
    fn default() -> Self {
        Self {
            inner: Ordered::default_at(Level::Analytics),
            changed: AtomicBool::new(false),
            live: LiveKpis::default(),
        }
    }
}

/// Upper bounds of the wait buckets, in seconds: a second to an hour. Chats wait seconds to
/// minutes for an agent; the top buckets catch a queue nobody serves.
const WAIT_BUCKETS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// The KPI events that happened since the engine started, for /metrics: counted as they
/// happen (restored events are not), so that they only grow, as Prometheus counters must.
/// Atomics and two histograms, each behind a lock of its own that only a scrape shares.
#[derive(Debug)]
pub struct LiveKpis {
    reopened: AtomicU64,
    replied: AtomicU64,
    declined: AtomicU64,
    active_elsewhere: AtomicU64,
    window_closed: AtomicU64,
    opted_out: AtomicU64,
    queue_wait: Histogram,
    to_accept: Histogram,
}

impl Default for LiveKpis {
    fn default() -> Self {
        Self {
            reopened: AtomicU64::new(0),
            replied: AtomicU64::new(0),
            declined: AtomicU64::new(0),
            active_elsewhere: AtomicU64::new(0),
            window_closed: AtomicU64::new(0),
            opted_out: AtomicU64::new(0),
            queue_wait: Histogram::new(WAIT_BUCKETS),
            to_accept: Histogram::new(WAIT_BUCKETS),
        }
    }
}

/// How this run's reopens ended, as counted in [`LiveKpis`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReopenOutcomes {
    /// Reopens that succeeded (agent-initiated chats).
    pub reopened: u64,
    /// Reopened chats the customer answered.
    pub replied: u64,
    /// Reopened chats the customer answered with #STOP.
    pub declined: u64,
    /// Reopens refused by a rule, by reason.
    pub rejected: Rejections,
}

impl LiveKpis {
    fn count(&self, kind: EventKind) {
        let one = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::Relaxed);
        };
        match kind {
            EventKind::Reopened => one(&self.reopened),
            EventKind::ReopenReplied => one(&self.replied),
            EventKind::ReopenDeclined => one(&self.declined),
            EventKind::ReopenRejected(ErrorCode::ActiveElsewhere) => one(&self.active_elsewhere),
            EventKind::ReopenRejected(ErrorCode::WindowClosed) => one(&self.window_closed),
            EventKind::ReopenRejected(ErrorCode::OptedOut) => one(&self.opted_out),
            EventKind::Accepted {
                waited_ms,
                to_accept_ms,
                ..
            } => {
                self.queue_wait.observe(waited_ms as f64 / 1000.0);
                self.to_accept.observe(to_accept_ms as f64 / 1000.0);
            }
            // Other refusals are client mistakes, not KPIs; overrides and templates have
            // their own metrics.
            EventKind::ReopenRejected(_) | EventKind::TemplatePushed | EventKind::LimitOverride => {}
        }
    }

    /// How this run's reopens ended.
    pub fn reopen_outcomes(&self) -> ReopenOutcomes {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ReopenOutcomes {
            reopened: read(&self.reopened),
            replied: read(&self.replied),
            declined: read(&self.declined),
            rejected: Rejections {
                active_elsewhere: read(&self.active_elsewhere),
                window_closed: read(&self.window_closed),
                opted_out: read(&self.opted_out),
            },
        }
    }

    /// Seconds from entering the queue to the accept, of each chat accepted.
    pub fn queue_waits(&self) -> &Histogram {
        &self.queue_wait
    }

    /// Seconds from the offer to the accept, of each chat accepted.
    pub fn times_to_accept(&self) -> &Histogram {
        &self.to_accept
    }
}

#[derive(Debug, Default)]
struct Inner {
    events: Vec<Event>,
    day: Option<Timestamp>,
    today: Tally,
}

/// Midnight UTC of the day `at` falls in.
pub fn start_of_day(at: Timestamp) -> Timestamp {
    Utc.from_utc_datetime(&at.date_naive().and_time(NaiveTime::MIN))
}

impl Inner {
    /// Starts a new tally when `now` is on a later day than the current one.
    fn roll(&mut self, now: Timestamp) {
        let day = start_of_day(now);
        if self.day.is_none_or(|d| d < day) {
            self.day = Some(day);
            self.today = Tally::default();
        }
    }
}

impl Analytics {
    /// Records an event that just happened: kept, and counted in [`Analytics::live`].
    pub fn record_new(&self, event: Event) {
        self.live.count(event.kind);
        self.record(event);
    }

    /// Records one event (a restored one: not counted in [`Analytics::live`]).
    pub fn record(&self, event: Event) {
        let mut inner = self.inner.lock();
        inner.roll(event.at);
        if inner.day.is_some_and(|day| event.at >= day) {
            inner.today.add(&event);
        }
        inner.events.push(event);
        self.changed.store(true, Ordering::Release);
    }

    /// Starts today's tally if `now` is on a later day than the last event; the KPIs changed
    /// then (back to zero), though no event came. Whether they did.
    pub fn roll_over(&self, now: Timestamp) -> bool {
        let mut inner = self.inner.lock();
        let before = inner.day;
        inner.roll(now);
        let rolled = before.is_some() && inner.day != before;
        if rolled {
            self.changed.store(true, Ordering::Release);
        }
        rolled
    }

    /// Whether an event came since the last call.
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Today's figures (UTC), as of `now`.
    pub fn kpis(&self, now: Timestamp) -> Kpis {
        let mut inner = self.inner.lock();
        inner.roll(now);
        Kpis {
            since: inner.day.unwrap_or_else(|| start_of_day(now)),
            figures: (&inner.today.figures()).into(),
        }
    }

    /// The figures over `query`'s range, in total and per agent.
    pub fn report(&self, query: AnalyticsQuery) -> AnalyticsReport {
        let filter = Filter {
            from: query.from,
            to: query.to,
            agent: query.agent.clone(),
            channel: query.channel.map(Into::into),
        };
        let (total, by_agent) = {
            let inner = self.inner.lock();
            summarize(&inner.events, &filter)
        };
        AnalyticsReport {
            query,
            total: (&total).into(),
            agents: by_agent
                .into_iter()
                .map(|(agent, figures)| AgentFigures {
                    agent,
                    figures: (&figures).into(),
                })
                .collect(),
        }
    }

    /// The events of this run, for /metrics.
    pub fn live(&self) -> &LiveKpis {
        &self.live
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().events.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use crate::core::Channel;
    use crate::ids::AgentId;

    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            at: Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("date"),
            agent: AgentId::from("ana"),
            channel: Channel::Whatsapp,
            queue: None,
            kind,
        }
    }

    #[test]
    fn issue14_live_kpis_count_this_run_s_events_and_not_restored_ones() {
        let analytics = Analytics::default();
        analytics.record(event(EventKind::Reopened));
        analytics.record_new(event(EventKind::Reopened));
        analytics.record_new(event(EventKind::ReopenDeclined));
        analytics.record_new(event(EventKind::ReopenRejected(ErrorCode::WindowClosed)));
        analytics.record_new(event(EventKind::ReopenRejected(ErrorCode::NotFound)));
        analytics.record_new(event(EventKind::Accepted {
            waited_ms: 1_500,
            to_accept_ms: 500,
            within_sla: None,
        }));
        assert_eq!(analytics.len(), 6, "every event is kept");

        let live = analytics.live();
        assert_eq!(
            live.reopen_outcomes(),
            ReopenOutcomes {
                reopened: 1,
                declined: 1,
                rejected: Rejections {
                    window_closed: 1,
                    ..Rejections::default()
                },
                ..ReopenOutcomes::default()
            },
            "a client's mistake (not_found) is no outcome"
        );
        assert_eq!((live.queue_waits().count(), live.queue_waits().sum()), (1, 1.5));
        assert_eq!(live.times_to_accept().sum(), 0.5);
    }
}
