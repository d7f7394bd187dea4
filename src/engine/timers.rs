//! Deadlines the engine must act on: accept timeouts, snooze ends, reopen expiry, and the
//! disconnect grace period. Firing is lazy: each timer re-checks that it still applies.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lock_order::{Level, Ordered};
use tokio::sync::Notify;

use super::fanout::ConnId;
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
    /// A waiting chat's workflow step times out, or a queue opens (R19, R21).
    Routing,
    /// The token a connection was opened (or last refreshed) with expires: it is closed.
    TokenExpiry {
        /// Whose connection (an agent's or a supervisor's).
        agent: AgentId,
        /// The connection.
        conn: ConnId,
    },
}

/// What a timer is for: a new timer for the same thing replaces the old one, so that a chat
/// reopened a thousand times holds one expiry, not a thousand.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum TimerKey {
    Offer(ChatId),
    Snooze(ChatId),
    Reopen(ChatId),
    Grace(AgentId),
    Token(ConnId),
    Routing,
}

impl Timer {
    fn key(&self) -> TimerKey {
        match self {
            Timer::OfferExpiry { chat, .. } => TimerKey::Offer(chat.clone()),
            Timer::SnoozeEnd { chat, .. } => TimerKey::Snooze(chat.clone()),
            Timer::ReopenExpiry { chat, .. } => TimerKey::Reopen(chat.clone()),
            Timer::Grace { agent, .. } => TimerKey::Grace(agent.clone()),
            Timer::TokenExpiry { conn, .. } => TimerKey::Token(*conn),
            Timer::Routing => TimerKey::Routing,
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    by_time: BTreeMap<(Timestamp, u64), Timer>,
    by_key: HashMap<TimerKey, (Timestamp, u64)>,
}

/// Pending timers by deadline, at most one per purpose.
#[derive(Debug)]
pub struct Timers {
    due: Ordered<Book>,
    next_id: AtomicU64,
    /// Woken when a timer is added, so the ticker can sleep until the earliest one.
    pub changed: Notify,
    /// Woken whenever the engine looks at its clock for due timers (the ticker, or a test
    /// that moved a manual clock): waits measured by the engine's clock look again then
    /// ([`crate::engine::Engine::wait_until`]).
    pub(super) looked: Notify,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            due: Ordered::default_at(Level::Timers),
            next_id: AtomicU64::new(0),
            changed: Notify::new(),
            looked: Notify::new(),
        }
    }
}

impl Timers {
    /// Schedules `timer` at `at`, replacing any pending timer for the same purpose.
    pub fn schedule(&self, at: Timestamp, timer: Timer) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let earliest = {
            let mut book = self.due.lock();
            if let Some(old) = book.by_key.insert(timer.key(), (at, id)) {
                book.by_time.remove(&old);
            }
            book.by_time.insert((at, id), timer);
            book.by_time.keys().next() == Some(&(at, id))
        };
        // Only an earlier deadline changes how long the ticker sleeps.
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Forgets a connection's token expiry (it closed).
    pub fn cancel_token_expiry(&self, conn: ConnId) {
        let mut book = self.due.lock();
        if let Some(slot) = book.by_key.remove(&TimerKey::Token(conn)) {
            book.by_time.remove(&slot);
        }
    }

    /// Removes and returns every timer due at `now`, earliest first.
    pub fn take_due(&self, now: Timestamp) -> Vec<Timer> {
        let mut book = self.due.lock();
        let later = book.by_time.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut book.by_time, later);
        due.into_iter()
            .map(|(slot, timer)| {
                let key = timer.key();
                if book.by_key.get(&key) == Some(&slot) {
                    book.by_key.remove(&key);
                }
                timer
            })
            .collect()
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.due.lock().by_time.keys().next().map(|(at, _)| *at)
    }

    /// How many are pending.
    pub fn len(&self) -> usize {
        self.due.lock().by_time.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};

    use super::*;

    fn reopen_expiry(chat: &str, at: Timestamp) -> Timer {
        Timer::ReopenExpiry {
            customer: "cu1".into(),
            chat: chat.into(),
            reopened_at: at,
        }
    }

    #[test]
    fn a_new_timer_for_the_same_purpose_replaces_the_old_one() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).single().expect("date");
        let timers = Timers::default();
        for i in 0..1000 {
            timers.schedule(
                t0 + Duration::hours(24) + Duration::seconds(i),
                reopen_expiry("ch1", t0),
            );
        }
        timers.schedule(t0 + Duration::hours(1), reopen_expiry("ch2", t0));
        assert_eq!(timers.len(), 2, "one per chat");
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::hours(1)));
        assert_eq!(
            timers.take_due(t0 + Duration::hours(24)),
            [reopen_expiry("ch2", t0)]
        );
        assert_eq!(timers.take_due(t0 + Duration::days(2)).len(), 1);
        assert!(timers.is_empty());
        // A purpose whose timer fired can be scheduled again.
        timers.schedule(t0 + Duration::days(3), reopen_expiry("ch2", t0));
        assert_eq!(timers.len(), 1);
    }
}
