//! Timing one operation alone, shared by the benches of the pure core.

use std::time::{Duration, Instant};

/// Times `op` alone over `iters` runs; `prepare` and `reset` run untimed around each.
pub(crate) fn timed<S>(
    iters: u64,
    state: &mut S,
    mut prepare: impl FnMut(&mut S),
    mut op: impl FnMut(&mut S),
    mut reset: impl FnMut(&mut S),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        prepare(state);
        let started = Instant::now();
        op(state);
        total += started.elapsed();
        reset(state);
    }
    total
}
