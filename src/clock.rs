//! The one place that reads the wall clock. Everything else is handed `now`.

use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Measures how long something took, for metrics (request latency, the store's commits).
#[derive(Clone, Copy, Debug)]
pub struct Stopwatch(Instant);

impl Stopwatch {
    /// Starts measuring.
    // Latency is not domain time: it must be the real monotonic clock, not the injected one
    // (which tests hold still), so this is the one read of `Instant::now`.
    #[allow(clippy::disallowed_methods)]
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// The time since [`start`](Self::start).
    pub fn elapsed(&self) -> Duration {
        self.0.elapsed()
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

/// Timestamps on the wire: RFC 3339 in UTC, written straight into a stack buffer. The text is
/// exactly chrono's (`AutoSi` fraction, `Z`), without its per-character formatting path,
/// which was a tenth of the cost of every push.
pub mod rfc3339 {
    use chrono::{Datelike, SecondsFormat, Timelike};
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Timestamp;

    /// Writes `t` into `buf`, or returns `None` for years outside 0–9999 and leap seconds.
    pub fn write(t: &Timestamp, buf: &mut [u8; 30]) -> Option<usize> {
        let (year, nanos) = (t.year(), t.nanosecond());
        if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
            return None;
        }
        let mut put = |at: usize, value: u32, digits: usize| {
            let mut v = value;
            for i in (0..digits).rev() {
                buf[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, year as u32, 4);
        put(5, t.month(), 2);
        put(8, t.day(), 2);
        put(11, t.hour(), 2);
        put(14, t.minute(), 2);
        put(17, t.second(), 2);
        let len = match nanos {
            0 => 19,
            n if n % 1_000_000 == 0 => {
                put(20, n / 1_000_000, 3);
                23
            }
            n if n % 1_000 == 0 => {
                put(20, n / 1_000, 6);
                26
            }
            n => {
                put(20, n, 9);
                29
            }
        };
        for (at, c) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
        ] {
            buf[at] = c;
        }
        buf[len] = b'Z';
        Some(len + 1)
    }

    /// For `#[serde(with = "rfc3339")]`.
    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 30];
        match write(t, &mut buf) {
            // Only ASCII digits and separators were written.
            Some(len) => s.serialize_str(std::str::from_utf8(&buf[..len]).unwrap_or_default()),
            None => s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        }
    }

    /// For `#[serde(with = "rfc3339")]`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        Timestamp::deserialize(d)
    }

    /// For `#[serde(with = "rfc3339::option")]`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        use super::Timestamp;

        /// Serializes `Some` as a timestamp, `None` as null.
        pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a timestamp or null.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
            Option::<Timestamp>::deserialize(d)
        }
    }

    #[cfg(test)]
    mod tests {
        use chrono::{Duration, TimeZone, Utc};
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #[test]
            fn writes_exactly_what_chrono_writes(secs in -100_000_000_000i64..250_000_000_000, nanos in prop_oneof![Just(0u32), 0..1000u32, (0..1000u32).prop_map(|m| m * 1_000_000), (0..1_000_000u32).prop_map(|u| u * 1000), 0..1_000_000_000u32]) {
                let t = Utc.timestamp_opt(secs, nanos).single().expect("in range");
                let ours = serde_json::to_string(&Wrap(t)).expect("serializes");
                let theirs = serde_json::to_string(&t).expect("serializes");
                prop_assert_eq!(ours, theirs);
            }
        }

        #[derive(serde::Serialize)]
        struct Wrap(#[serde(with = "super")] Timestamp);

        #[test]
        fn far_dates_fall_back_to_chrono() {
            let t = Timestamp::MIN_UTC + Duration::days(1);
            assert_eq!(
                serde_json::to_string(&Wrap(t)).expect("serializes"),
                serde_json::to_string(&t).expect("serializes")
            );
        }
    }
}
