//! Where the ids the engine makes (customers `cu…`, chats `ch…`) come from: one counter for
//! the whole process, shared by every workspace's engine (R27), so that no two workspaces ever
//! hold the same chat or customer id and an id of one is simply absent from another.
//!
//! It starts from the clock (milliseconds × 1000), so that a restarted process starts past
//! what the last one made, and every restore moves it past the ids it read back, in case the
//! clock went back; so does the registry for the ids of a workspace it does not load
//! (suspended), which must not be made again for another while it sleeps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::clock::Timestamp;

/// A source of ids, cheap to clone: clones share the one counter.
#[derive(Clone, Debug)]
pub struct IdSource(Arc<AtomicU64>);

impl IdSource {
    /// A counter starting from `now`'s milliseconds × 1000.
    pub fn starting_at(now: Timestamp) -> Self {
        Self(Arc::new(AtomicU64::new(Self::seed(now))))
    }

    /// The first id a counter started at `now` makes.
    pub fn seed(now: Timestamp) -> u64 {
        now.timestamp_millis().max(0) as u64 * 1000
    }

    /// The next id: never one this counter (or a clone) made before.
    pub fn next(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes sure every later id is past `used` (an id's [number](number)).
    pub fn past(&self, used: u64) {
        self.0.fetch_max(used.saturating_add(1), Ordering::Relaxed);
    }
}

/// The number in an id the engine made (`cu…`, `ch…`: a prefix and hex digits); 0 for others.
pub fn number(id: &str) -> u64 {
    let digits = id.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    u64::from_str_radix(digits, 16).unwrap_or(0)
}
