//! Deadlines the engine must act on: accept timeouts, snooze ends, reopen expiry, and the
//! disconnect grace period. Firing is lazy: each timer re-checks that it still applies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId};

/// Something to do at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Timer {
    /// An offer's accept timeout (R06).
    OfferExpiry {
        /// The offered chat.
        chat: ChatId,
        /// To whom.
        agent: AgentId,
    },
    /// A timed snooze ends (R13).
    SnoozeEnd {
        /// Whose chat.
        customer: CustomerId,
        /// The chat.
        chat: ChatId,
    },
    /// A reopened chat's wait for the customer ends.
    ReopenExpiry {
        /// Whose chat.
        customer: CustomerId,
        /// The chat.
        chat: ChatId,
        /// Which reopen this was for.
        reopened_at: Timestamp,
    },
    /// An agent without connections is set offline unless it came back (R17).
    Grace {
        /// The agent.
        agent: AgentId,
        /// Its hub's epoch at the disconnect.
        epoch: u64,
    },
}

/// Pending timers by deadline.
#[derive(Debug, Default)]
pub struct Timers {
    due: Mutex<BTreeMap<(Timestamp, u64), Timer>>,
    next_id: AtomicU64,
    /// Woken when a timer is added, so the ticker can sleep until the earliest one.
    pub changed: Notify,
}

impl Timers {
    /// Schedules `timer` at `at`.
    pub fn schedule(&self, at: Timestamp, timer: Timer) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.due.lock().insert((at, id), timer);
        self.changed.notify_one();
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn take_due(&self, now: Timestamp) -> Vec<Timer> {
        let mut due = self.due.lock();
        let later = due.split_off(&(now, u64::MAX));
        std::mem::replace(&mut *due, later).into_values().collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.due.lock().keys().next().map(|(at, _)| *at)
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.due.lock().len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
