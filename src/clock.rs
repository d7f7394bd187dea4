//! The one place that reads the wall clock. Everything else is handed `now`.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

/// A point in time, in UTC.
pub type Timestamp = DateTime<Utc>;

/// Where the runtime gets `now` from; tests inject a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned read of the wall clock
    fn now(&self) -> Timestamp {
        Utc::now()
    }
}

/// A clock that only moves when told to, so tests cross a 24 h window without sleeping.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(start)))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock() += by;
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Timestamp) {
        *self.0.lock() = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }
}

/// A clock handle shared across the runtime.
pub type SharedClock = Arc<dyn Clock>;
