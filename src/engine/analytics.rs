//! The KPI events of R14 as the engine records them, and the figures it answers with.
//!
//! Every event is kept (issue: durable storage moves them to disk), so that any range can be
//! counted exactly. Today's figures are also tallied as events come, for the supervisors' live
//! board, which must not rescan the day on every change.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::lock_order::{Level, Ordered};
use chrono::{NaiveTime, TimeZone, Utc};

use crate::clock::Timestamp;
use crate::core::analytics::{summarize, Event, Filter, Tally};
use crate::protocol::supervisor::{AgentFigures, AnalyticsQuery, AnalyticsReport, Kpis};

/// Every KPI event, and today's tally.
#[derive(Debug)]
pub struct Analytics {
    inner: Ordered<Inner>,
    /// Set by every event; the supervisors' task clears it when it sends the KPIs.
    changed: AtomicBool,
}

impl Default for Analytics {
    fn default() -> Self {
        Self {
            inner: Ordered::default_at(Level::Analytics),
            changed: AtomicBool::new(false),
        }
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
    /// Records one event.
    pub fn record(&self, event: Event) {
        let mut inner = self.inner.lock();
        inner.roll(event.at);
        if inner.day.is_some_and(|day| event.at >= day) {
            inner.today.add(event.kind);
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
            figures: inner.today.figures(),
        }
    }

    /// The figures over `query`'s range, in total and per agent.
    pub fn report(&self, query: AnalyticsQuery) -> AnalyticsReport {
        let filter = Filter {
            from: query.from,
            to: query.to,
            agent: query.agent.clone(),
            channel: query.channel,
        };
        let (total, by_agent) = {
            let inner = self.inner.lock();
            summarize(&inner.events, &filter)
        };
        AnalyticsReport {
            query,
            total,
            agents: by_agent
                .into_iter()
                .map(|(agent, figures)| AgentFigures { agent, figures })
                .collect(),
        }
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
