//! Firing due timers: accept timeouts, snooze ends, reopen expiry, the grace period.

use super::*;

impl Engine {
    /// Fires every timer due by the engine's clock; returns how many ran. The runtime calls
    /// this from its ticker; tests call it after moving a manual clock.
    pub fn fire_due_timers(&self) -> usize {
        let now = self.now();
        let due = self.timers.take_due(now);
        let count = due.len();
        for timer in due {
            match timer {
                Timer::OfferExpiry { chat, agent } => {
                    self.with_router(|r| ((), r.expire_offer(&chat, &agent, now)));
                }
                Timer::SnoozeEnd { customer, chat } => {
                    let Some(file) = self.customers.get(&customer).map(|f| f.clone()) else {
                        continue;
                    };
                    let mut file = file.lock();
                    if let Some(owner) = file.wake(&chat, now) {
                        self.push_snooze_ended(&file, &chat, &owner);
                        self.archive_changed(&file, now);
                    }
                }
                Timer::ReopenExpiry {
                    customer,
                    chat,
                    reopened_at,
                } => {
                    let Some(file) = self.customers.get(&customer).map(|f| f.clone()) else {
                        continue;
                    };
                    let mut file = file.lock();
                    if let Some(owner) = file.expire_reopen(&chat, reopened_at, now) {
                        self.fanout.push(
                            &owner,
                            Push::ChatClosed {
                                chat_id: chat.clone(),
                                reason: crate::core::CloseReason::Timeout,
                            },
                        );
                        self.archive_changed(&file, now);
                    }
                }
                Timer::Grace { agent, epoch } => {
                    if self.fanout.gone_since(&agent, epoch) {
                        let changed = self.with_router(|r| {
                            let was = r.seat(&agent).map(|s| s.presence);
                            let events = r.set_presence(&agent, Presence::Offline, now).unwrap_or_default();
                            (was.is_some_and(|p| p != Presence::Offline), events)
                        });
                        if changed {
                            // Kept in the log: the agent sees it when it resumes.
                            self.fanout.push(
                                &agent,
                                Push::PresenceChanged {
                                    presence: Presence::Offline,
                                },
                            );
                        }
                    }
                }
            }
        }
        count
    }
}
