//! Firing due timers: accept timeouts, snooze ends, reopen expiry, the grace period.

use super::fanout::CutOff;
use super::retries::Side;
use super::timers::Timer;
use super::Engine;
use crate::clock::Timestamp;
use crate::core::Presence;

impl Engine {
    /// Waits until the engine's clock reads `at`, or until as long as that was from now has
    /// passed on the wall, whichever comes first (the outbox's backoffs, R24). Under the
    /// system clock the two are the same; a clock moved forward — a manual clock in tests, a
    /// corrected wall clock — ends the wait when the engine next looks for due timers, as it
    /// makes timers due.
    pub async fn wait_until(&self, at: Timestamp) {
        let Ok(wall) = (at - self.now()).to_std() else {
            return;
        };
        let on_the_wall = tokio::time::sleep(wall);
        tokio::pin!(on_the_wall);
        loop {
            // Registered before the clock is read, so a look in between is not missed.
            let looked = self.timers.looked.notified();
            tokio::pin!(looked);
            looked.as_mut().enable();
            if self.now() >= at {
                return;
            }
            tokio::select! {
                _ = &mut on_the_wall => return,
                _ = looked => {}
            }
        }
    }

    /// Fires every timer due by the engine's clock; returns how many ran. The runtime calls
    /// this from its ticker; tests call it after moving a manual clock.
    pub fn fire_due_timers(&self) -> usize {
        let now = self.now();
        // The board's KPIs are today's: at midnight they go back to zero, and supervisors
        // are told then rather than at the next event.
        if self.analytics.roll_over(now) {
            self.supervision.nudge();
        }
        self.timers.looked.notify_waiters();
        let due = self.timers.take_due(now);
        let count = due.len();
        for timer in due {
            match timer {
                Timer::Routing => self.tick_routing(),
                Timer::OfferExpiry { chat, agent } => {
                    self.with_router(|r| ((), r.expire_offer(&chat, &agent, now)));
                }
                Timer::SnoozeEnd { customer, chat } => {
                    let Some(file) = self.customers.file(&customer) else {
                        continue;
                    };
                    let mut file = file.lock();
                    let mut effects = self.effects(&file, now);
                    let events = file.wake(&chat, now);
                    effects.apply(&file, &events);
                    effects.finish(&file);
                }
                Timer::ReopenExpiry {
                    customer,
                    chat,
                    reopened_at,
                } => {
                    let Some(file) = self.customers.file(&customer) else {
                        continue;
                    };
                    let mut file = file.lock();
                    let mut effects = self.effects(&file, now);
                    let events = file.expire_reopen(&chat, reopened_at, now);
                    effects.apply(&file, &events);
                    effects.finish(&file);
                }
                Timer::TokenExpiry { agent, conn } => {
                    self.fanout.cut_off(&agent, conn, CutOff::TokenExpired);
                    self.supervision.cut_off(conn, CutOff::TokenExpired);
                }
                Timer::Grace { agent, epoch } => {
                    // Checked under the router's lock: a connection registers before it takes
                    // that lock to come online, so a reconnect cannot slip in between.
                    let gone = self.with_router(|r| {
                        if self.fanout.gone_since(&agent, epoch) {
                            (
                                true,
                                r.set_presence(&agent, Presence::Offline, now).unwrap_or_default(),
                            )
                        } else {
                            (false, Vec::new())
                        }
                    });
                    if gone {
                        // Retries come within the grace period; the agent's are over.
                        self.retries.forget(Side::Agent, &agent);
                    }
                }
            }
        }
        count
    }
}
