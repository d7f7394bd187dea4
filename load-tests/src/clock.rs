//! The harness's one read of the monotonic clock.
//!
//! The workspace bans `Instant::now` (clippy.toml) so that the engine reads time only through
//! its injected clock. A load generator measures wall time and has nothing to inject, so it
//! reads the clock here and nowhere else.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Now.
#[allow(clippy::disallowed_methods)] // see the module docs
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// The process's epoch: timestamps shared between tasks as plain integers count from it.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(now)
}

/// Nanoseconds since the epoch, for an `AtomicU64` stamp another task reads.
pub(crate) fn stamp() -> u64 {
    now().duration_since(epoch()).as_nanos() as u64
}

/// The time from a stamp until now.
pub(crate) fn since_stamp(stamp: u64) -> Duration {
    Duration::from_nanos(self::stamp().saturating_sub(stamp))
}

/// Microseconds from `start` to now, for a histogram.
pub(crate) fn micros_since(start: Instant) -> u64 {
    now().saturating_duration_since(start).as_micros() as u64
}
