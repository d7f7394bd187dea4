//! Fairness between workspaces (R27): what one contact centre may take of a process it shares
//! with others, so that one at its limits does not slow or stop the rest.
//!
//! Four limits, each absent (unlimited) unless set: open WebSockets (agents' and supervisors'),
//! agents, channel calls per second (a token bucket: [`Budget`], on the engine's clock), and
//! bytes of messages stored (counted by the store's writer, `store/stored_bytes.rs`). The first
//! of them reached refuses what would go over it, with `quota_exceeded` naming the limit and its
//! value (`rate_limited` for the rate), before any engine work: a full quota never becomes a
//! failed commit, which would stop the store for every workspace.

use crate::budget::{Admission, Budget};
use crate::clock::Timestamp;
use crate::config::Limits;
use crate::lock_order::{Level, Ordered};
use crate::refusal::Refusal;

/// A workspace's limits as they are enforced: the limits, and the bucket of its channel calls.
#[derive(Debug)]
pub struct Fairness {
    state: Ordered<State>,
}

#[derive(Debug, Default)]
struct State {
    limits: Limits,
    /// Made on the first call, at the rate then in force; a new rate starts a full one.
    ingress: Option<Budget<Timestamp>>,
}

impl Default for Fairness {
    fn default() -> Self {
        Self::new(Limits::UNLIMITED)
    }
}

impl Fairness {
    /// Enforces `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            state: Ordered::new(
                Level::WorkspaceLimits,
                State {
                    limits,
                    ingress: None,
                },
            ),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.state.lock().limits
    }

    /// Enforces `limits` from now on (what is over a lowered limit stays; nothing new gets in).
    pub fn set(&self, limits: Limits) {
        let mut state = self.state.lock();
        if state.limits.ingress_per_second != limits.ingress_per_second {
            state.ingress = None;
        }
        state.limits = limits;
    }

    /// One more WebSocket, with `open()` open already (counted only when there is a limit:
    /// it visits every agent's hub). Counted at the handshake, before the socket is
    /// registered: handshakes racing each other may pass the limit by as many as race.
    pub fn admit_connection(&self, open: impl FnOnce() -> usize) -> Result<(), Refusal> {
        match self.limits().max_connections {
            Some(max) => at_most(Some(max), open(), 1, "max_connections", "connections open"),
            None => Ok(()),
        }
    }

    /// `new` more agents, with `existing` already.
    pub fn admit_agents(&self, existing: usize, new: usize) -> Result<(), Refusal> {
        at_most(self.limits().max_agents, existing, new, "max_agents", "agents")
    }

    /// One more channel call, arriving at `now` (the engine's clock).
    pub fn admit_ingress(&self, now: Timestamp) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        let Some(per_second) = state.limits.ingress_per_second else {
            return Ok(());
        };
        let budget = state.ingress.get_or_insert_with(|| Budget::new(per_second, now));
        match budget.admit(now) {
            Admission::Handle => Ok(()),
            // A workspace's calls come from many senders: none of them is cut off.
            Admission::Refuse | Admission::Close => Err(Refusal::RateLimited(format!(
                "the workspace may make {per_second} channel calls per second (`ingress_per_second`, \
                 bursts of twice that): this one was not handled; retry later"
            ))),
        }
    }

    /// A new customer message, with `stored` bytes of messages stored already.
    pub fn admit_message(&self, stored: u64) -> Result<(), Refusal> {
        match self.limits().max_stored_bytes {
            Some(max) if stored >= max => Err(Refusal::QuotaExceeded(format!(
                "the workspace stores {stored} bytes of messages, its limit `max_stored_bytes` is {max}: \
                 no new customer message is taken"
            ))),
            _ => Ok(()),
        }
    }
}

/// Refuses `new` more of what `limit` counts when `count` are there already.
fn at_most(limit: Option<u32>, count: usize, new: usize, name: &str, what: &str) -> Result<(), Refusal> {
    match limit {
        Some(max) if count.saturating_add(new) > max as usize => Err(Refusal::QuotaExceeded(format!(
            "the workspace has {count} {what}, its limit `{name}` is {max}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;
    use crate::core::ErrorCode;

    #[test]
    fn r27_limits_read_back_as_stored_and_refuse_what_goes_over_them() {
        assert_eq!(Limits::from_stored("{}"), Ok(Limits::UNLIMITED));
        let limits = Limits {
            max_connections: Some(2),
            max_agents: Some(1),
            ingress_per_second: Some(1),
            max_stored_bytes: Some(10),
        };
        assert_eq!(Limits::from_stored(&limits.to_stored()), Ok(limits));
        assert!(Limits::from_stored(r#"{"max_agent": 1}"#).is_err());
        assert!(Limits::from_stored(r#"{"ingress_per_second": 0}"#).is_err());

        let fairness = Fairness::new(limits);
        assert!(fairness.admit_connection(|| 1).is_ok());
        let refused = fairness.admit_connection(|| 2).expect_err("at 2 of 2");
        assert_eq!(refused.code(), ErrorCode::QuotaExceeded);
        assert!(
            refused.to_string().contains("`max_connections` is 2"),
            "{refused}"
        );
        assert!(fairness.admit_agents(0, 1).is_ok());
        assert!(fairness.admit_agents(0, 2).is_err(), "a batch over the limit");
        assert!(fairness.admit_message(9).is_ok());
        assert_eq!(
            fairness.admit_message(10).map_err(|r| r.code()),
            Err(ErrorCode::QuotaExceeded)
        );

        let start = Utc
            .with_ymd_and_hms(2025, 3, 3, 9, 0, 0)
            .single()
            .expect("a time");
        assert!(fairness.admit_ingress(start).is_ok());
        assert!(fairness.admit_ingress(start).is_ok(), "a burst of twice the rate");
        let refused = fairness.admit_ingress(start).expect_err("over the rate");
        assert_eq!(refused.code(), ErrorCode::RateLimited);
        assert!(fairness.admit_ingress(start + Duration::seconds(1)).is_ok());

        fairness.set(Limits::UNLIMITED);
        assert!(fairness.admit_connection(|| 1_000).is_ok());
        assert!(fairness.admit_ingress(start).is_ok());
    }
}
