//! Drives the engine's timers from the real clock: fires what is due, then waits until the
//! earliest deadline, a new timer, or shutdown.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::watch;

use super::Engine;

/// Never wait longer than this, so a clock that jumps is noticed.
const MAX_TIMER_WAIT: StdDuration = StdDuration::from_secs(1);

/// Runs until `shutdown` turns true.
pub async fn run_ticker(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    loop {
        engine.fire_due_timers();
        let timer_wait = engine
            .timers()
            .next_deadline()
            .and_then(|at| (at - engine.now()).to_std().ok())
            .map_or(MAX_TIMER_WAIT, |d| d.min(MAX_TIMER_WAIT));
        tokio::select! {
            _ = tokio::time::sleep(timer_wait) => {}
            _ = engine.timers().changed.notified() => {}
            _ = shutdown.changed() => return,
        }
    }
}
