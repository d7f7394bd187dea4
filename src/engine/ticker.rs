//! Drives the engine's timers from the real clock: fires what is due, then waits until the
//! earliest deadline, a new timer, or shutdown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::sync::watch;

use super::Engine;

/// Never wait longer than this, so a clock that jumps is noticed.
const MAX_TIMER_WAIT: StdDuration = StdDuration::from_secs(1);

/// How often chats that left their window are let go of (`Engine::evict_archived`).
const EVICT_EVERY: StdDuration = StdDuration::from_secs(600);

/// Runs until `shutdown` turns true.
pub async fn run_ticker(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    let mut evict = tokio::time::interval(EVICT_EVERY);
    evict.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    evict.tick().await;
    let evicting = Arc::new(AtomicBool::new(false));
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
            _ = evict.tick() => {
                // It visits every customer and waits for the store: off the workers that serve
                // connections, and not waited for here, so that timers keep firing meanwhile.
                if !evicting.swap(true, Ordering::AcqRel) {
                    let (engine, evicting) = (engine.clone(), evicting.clone());
                    tokio::task::spawn_blocking(move || {
                        let evicted = engine.evict_archived();
                        tracing::debug!(evicted, "chats out of their window let go of");
                        evicting.store(false, Ordering::Release);
                    });
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}
