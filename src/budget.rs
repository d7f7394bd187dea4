//! A token bucket: how many events may come per second, in bursts. One per WebSocket connection
//! (its frames, R18) and one per workspace (its channel calls, R27).

use std::ops::Add;
use std::time::Duration;

/// A moment a [`Budget`] can be kept in: it has an order and moves forward by durations.
pub trait Moment: Copy + Ord + Add<Duration, Output = Self> {}

impl<T: Copy + Ord + Add<Duration, Output = T>> Moment for T {}

/// How many events (a connection's frames, a workspace's channel calls) may come: `per_second`
/// on average, in bursts of twice that.
///
/// A token bucket holding a burst, kept as the moment it will be full again (the generic cell
/// rate algorithm): no timer per connection, and exact arithmetic on durations. A frame the
/// bucket has no token for is refused; a client that collects [`Self::CLOSE_AFTER_BURSTS`]
/// bursts' worth of refusals without ever letting the bucket fill up again is closed.
///
/// Time is whatever moment type the caller keeps: a connection's is tokio's monotonic
/// `Instant`, a workspace's ingress the engine's clock (which tests drive by hand).
#[derive(Debug)]
pub struct Budget<T> {
    /// Frames per second, for the error message.
    per_second: u32,
    /// What one frame costs: the time the bucket takes to earn a token back.
    cost: Duration,
    /// A full bucket: a burst's worth of cost.
    burst: Duration,
    /// When the bucket will be full again if no other frame comes.
    full_at: T,
    /// Frames refused since the bucket was last full.
    refused: u32,
    /// The refusal that closes the connection.
    close_at: u32,
}

/// What to do with one event, as its [`Budget`] says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Handle it.
    Handle,
    /// Answer it `rate_limited`, without handling it.
    Refuse,
    /// Close the connection ([`Close::TooManyFrames`]).
    Close,
}

impl<T: Moment> Budget<T> {
    /// Refusals, in bursts, that close a connection unless its bucket fills up in between.
    pub const CLOSE_AFTER_BURSTS: u32 = 2;

    /// A full bucket at `now` for `per_second` frames (at least 1) per second.
    pub fn new(per_second: u32, now: T) -> Self {
        let per_second = per_second.max(1);
        let burst_frames = per_second.saturating_mul(2);
        let cost = Duration::from_secs(1) / per_second;
        Self {
            per_second,
            cost,
            burst: cost * burst_frames,
            full_at: now,
            refused: 0,
            close_at: burst_frames.saturating_mul(Self::CLOSE_AFTER_BURSTS),
        }
    }

    /// Events per second on average.
    pub fn per_second(&self) -> u32 {
        self.per_second
    }

    /// Takes a token for a frame that arrived at `now`, if there is one.
    pub fn admit(&mut self, now: T) -> Admission {
        if self.full_at <= now {
            // The client slowed down long enough to earn a whole burst back: forgiven.
            self.refused = 0;
        }
        let full_at = self.full_at.max(now) + self.cost;
        if full_at <= now + self.burst {
            self.full_at = full_at;
            return Admission::Handle;
        }
        self.refused += 1;
        if self.refused >= self.close_at {
            Admission::Close
        } else {
            Admission::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::time::Instant;

    use super::*;

    /// Any start: the budget reads no clock of its own.
    #[allow(clippy::disallowed_methods)]
    fn monotonic_now() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_burst_of_twice_the_rate_passes_and_the_bucket_refills_at_the_rate() {
        let start = monotonic_now();
        let mut budget = Budget::new(50, start);
        for _ in 0..100 {
            assert_eq!(budget.admit(start), Admission::Handle);
        }
        assert_eq!(budget.admit(start), Admission::Refuse);
        // 20 ms earns one frame back, and only one.
        let later = start + Duration::from_millis(20);
        assert_eq!(budget.admit(later), Admission::Handle);
        assert_eq!(budget.admit(later), Admission::Refuse);
        // A client at exactly the rate is never refused.
        for i in 1..=500 {
            assert_eq!(
                budget.admit(later + Duration::from_millis(20) * i),
                Admission::Handle,
                "frame {i}"
            );
        }
    }

    #[test]
    fn refusals_close_the_connection_unless_the_bucket_fills_up_in_between() {
        let start = monotonic_now();
        let mut budget = Budget::new(5, start);
        let empty_it = |budget: &mut Budget<Instant>, at| {
            for _ in 0..10 {
                assert_eq!(budget.admit(at), Admission::Handle);
            }
            for _ in 0..19 {
                assert_eq!(budget.admit(at), Admission::Refuse);
            }
        };
        empty_it(&mut budget, start);
        // Two seconds of quiet fill the bucket: the refusals are forgiven.
        let later = start + Duration::from_secs(2);
        empty_it(&mut budget, later);
        assert_eq!(
            budget.admit(later),
            Admission::Close,
            "the 20th refusal since it was full"
        );

        // A client sending twice the rate, steadily, gets some frames through but is closed.
        let mut budget = Budget::new(5, start);
        let every = Duration::from_millis(100);
        let closed_at = (1..100u32).find(|&i| budget.admit(start + every * i) == Admission::Close);
        assert!(
            matches!(closed_at, Some(i) if i > 20),
            "closed at frame {closed_at:?}"
        );
    }
}
