//! Bringing the engine's working state back from the store on start (issue 5).
//!
//! The store holds customers and chats as records; everything else the engine keeps is derived
//! from them here: the lookups by address and by chat, the router's loads and queues, the
//! board's reopened chats, and the timers. A timer whose moment passed while the engine was
//! down is due at once, and fires in the round at the end of the restore.
//!
//! Only chats that are live or still inside their channel's window come back into memory,
//! with their history; older ones stay in the database, where archive search and history read
//! them, so memory does not grow with the archive. While the engine runs, [`Engine::evict_archived`]
//! lets go of the chats that leave their window the same way.

use super::agents::Record;
use super::outbound::OutboxItem;
use super::timers::Timer;
use super::{Engine, SharedFile};
use crate::clock::Timestamp;
use crate::core::{Arrival, CustomerFile, RoutingAsk, SnoozeUntil, Stage};
use crate::ids::{AgentId, ChatId};
use crate::store::WorkspaceStore;
use crate::store::{ChatRecord, StoreError};
use chrono::Duration;

/// What a restore brought back, for the start-up log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Agents created or changed over the admin API (R27).
    pub agents: usize,
    /// Customers known.
    pub customers: usize,
    /// Chats back in memory (live, or closed and still inside their window).
    pub chats_in_memory: usize,
    /// Closed chats left in the database only.
    pub chats_archived: usize,
    /// Chats back in their queue.
    pub queued: usize,
    /// Timers set again (those already due fired at the end of the restore).
    pub timers: usize,
    /// Timers that fired at once because they came due while the engine was down.
    pub fired_at_once: usize,
    /// KPI events.
    pub events: usize,
    /// Messages to customers sent again: their change was committed, their platform had not
    /// taken them yet (R24).
    pub outbox: usize,
}

impl Engine {
    /// Restores what `store` holds into this engine. Call once, after the configured agents
    /// are added and before serving: it assumes an engine with no customers yet.
    ///
    /// Agents first, then what was set live, then the chats (R27):
    /// - an agent the admin API created or changed comes back whole, with the digest of its
    ///   token; a recorded agent **replaces** a configured one of the same id, so a change
    ///   made over the API is not undone by the configuration on every start (to go back to
    ///   the configured profile, send it again over the API);
    /// - limits and skills set live since then apply on top;
    /// - only then the chats, so that those of an agent created over the API count toward its
    ///   load again.
    pub fn restore(&self, store: &WorkspaceStore) -> Result<Restored, StoreError> {
        let now = self.now();
        let snapshot = store.load()?;
        let mut restored = Restored {
            agents: snapshot.agents.len(),
            customers: snapshot.customers.len(),
            events: snapshot.events.len(),
            ..Restored::default()
        };
        for event in snapshot.events {
            self.analytics.record(event);
        }
        for record in snapshot.agents {
            let (profile, token) = record.into_profile();
            // Already on disk: recording it again would only cost a write.
            self.upsert(profile, token, Record::No);
        }
        for (agent, limit) in snapshot.agent_limits {
            // A limit set by a supervisor outlives the configured one until set again.
            self.directory.set_limit(&agent, limit);
            let _ = self.try_router(|r| r.set_limit(&agent, limit, now));
        }
        for (agent, skills) in snapshot.agent_skills {
            // Skills set live outlive the configured ones until set again (R19).
            if self.directory.set_skills(&agent, skills.clone()) {
                let _ = self.try_router(|r| r.set_skills(&agent, skills, now));
            }
        }

        let mut queued: Vec<Queued> = Vec::new();
        let mut highest_id = 0;
        for mut file in snapshot.customers {
            highest_id = highest_id.max(super::id_source::number(file.id.as_str()));
            let before = file.chats.len();
            file.chats.retain(|chat| {
                highest_id = highest_id.max(super::id_source::number(chat.id.as_str()));
                chat.stage.is_live() || self.keeps_in_memory(chat, now)
            });
            restored.chats_archived += before - file.chats.len();
            for chat in &mut file.chats {
                chat.messages = store.messages(&chat.id)?;
            }
            restored.chats_in_memory += file.chats.len();
            for chat in &file.chats {
                restored.timers += self.rearm(&file, chat, &mut queued);
                self.index_sent(&file, chat);
            }
            self.customers.insert_restored(file);
        }
        // Back in the order they first queued, across customers.
        queued.sort_by(|a, b| (a.0.since, &a.0.chat).cmp(&(b.0.since, &b.0.chat)));
        restored.queued = queued.len();
        for (arrival, ask, sticky) in queued {
            self.with_router(|r| ((), r.restore_waiting(arrival, &ask, sticky.as_ref(), now)));
        }
        // What was in the outbox goes again, in its order; failed messages wait for a retry.
        let mut pending = Vec::new();
        for record in snapshot.outbox {
            self.outbound.numbers_after(record.id);
            let failed = record.failed.is_some();
            let Some(item) = OutboxItem::from_record(record) else {
                continue;
            };
            match (failed, item.seq) {
                (true, Some(seq)) => {
                    self.failed_outbox.insert((item.chat().clone(), seq), item);
                }
                (true, None) => {}
                (false, _) => pending.push(item),
            }
        }
        restored.outbox = pending.len();
        self.outbound.dispatch(pending, None);
        // Ids of a restarted process start from its clock; this keeps them past the stored
        // ones even if the clock went back (and, the counter being shared, every workspace's).
        self.ids.past(highest_id);
        restored.fired_at_once = self.fire_due_timers();
        Ok(restored)
    }

    /// Drops from memory the closed chats that a restart would not bring back (they are in the
    /// database, and read back on demand); returns how many. The ticker runs it every few
    /// minutes on a blocking thread: it visits every customer. Does nothing without a store.
    pub fn evict_archived(&self) -> usize {
        let Some(store) = &self.store else {
            return 0;
        };
        let now = self.now();
        // First the candidates, as they are now; then a wait until everything submitted so
        // far is on disk (an empty submission is committed after every earlier one); then
        // only the candidates that did not change meanwhile are let go of. So whatever a
        // later read brings back is what memory held: a change made after the wait (a
        // template pushed to an old chat) changes its candidate, which then stays.
        let mut candidates: Vec<(SharedFile, Vec<Candidate>)> = Vec::new();
        let files = self.customers.files();
        for file in files {
            let chats: Vec<Candidate> = file
                .lock()
                .chats
                .iter()
                .filter(|chat| {
                    chat.stage.closed().is_some_and(|(at, _)| at + EVICT_AFTER <= now)
                        && !self.keeps_in_memory(chat, now)
                })
                .map(|chat| (ChatRecord::of(chat), chat.messages.len()))
                .collect();
            if !chats.is_empty() {
                candidates.push((file, chats));
            }
        }
        if candidates.is_empty() {
            return 0;
        }
        if let Err(e) = store.submit(Vec::new()).wait() {
            tracing::warn!(error = %e, "chats kept in memory: the store is not writing");
            return 0;
        }
        let mut evicted = 0;
        for (file, chats) in candidates {
            // A plain lock, not an edit: nothing changes that the store must be told.
            let mut file = file.lock();
            let unchanged = |chat: &crate::core::Chat| {
                chats.iter().any(|(record, messages)| {
                    *record == ChatRecord::of(chat) && *messages == chat.messages.len()
                })
            };
            let gone: Vec<ChatId> = file
                .chats
                .iter()
                .filter(|chat| unchanged(chat))
                .map(|chat| chat.id.clone())
                .collect();
            // Their sent messages' ids go too: a status for one changes nothing in memory.
            for chat in file.chats.iter().filter(|c| gone.contains(&c.id)) {
                for message in &chat.messages {
                    if let Some(id) = &message.provider_id {
                        self.sent_messages.remove(&(chat.channel, id.clone()));
                    }
                }
            }
            file.chats.retain(|chat| !gone.contains(&chat.id));
            for chat in &gone {
                self.customers.chat_evicted(chat);
            }
            evicted += gone.len();
        }
        evicted
    }

    /// Whether a closed chat comes back into memory: while its window is open (it can be
    /// reopened), or while the customer's reply would still revive it. On a channel without a
    /// window only the latter, or every closed chat would. Others are read back on demand.
    fn keeps_in_memory(&self, chat: &crate::core::Chat, now: Timestamp) -> bool {
        let policy = self.config.policies.of(chat.channel);
        let has_window = policy.window_expires_at(Some(now)).is_some();
        let revivable = chat
            .stage
            .closed()
            .is_some_and(|(at, _)| at + policy.revive_window > now);
        revivable || (has_window && policy.window_open(chat.last_customer_message_at, now))
    }

    /// Remembers the platforms' ids of the chat's messages to customers, for their status
    /// webhooks (R25).
    fn index_sent(&self, file: &CustomerFile, chat: &crate::core::Chat) {
        for (seq, message) in chat.messages.iter().enumerate() {
            if let (Some(id), Some(_)) = (&message.provider_id, &message.delivery) {
                self.sent_messages.insert(
                    (chat.channel, id.clone()),
                    super::outbox::SentMessage {
                        customer: file.id.clone(),
                        chat: chat.id.clone(),
                        seq: seq as u64,
                    },
                );
            }
        }
    }

    /// Sets up what the engine derives from one restored chat; returns the timers it set.
    /// A queued chat is noted in `queued`, to wait again in the order it first did.
    fn rearm(&self, file: &CustomerFile, chat: &crate::core::Chat, queued: &mut Vec<Queued>) -> usize {
        match &chat.stage {
            Stage::Queued { since } => {
                // An offer pending at the crash is not kept: the chat waits again and is
                // offered afresh, as after an accept timeout.
                let (arrival, ask) = self.arrival(file, self.chat_view(file, &chat.id), *since);
                queued.push((arrival, ask, file.assigned_agent.clone()));
                0
            }
            Stage::Active { owner } | Stage::Snoozed { owner, .. } => {
                if !self.with_router(|r| (r.restore_load(owner, chat.channel), Vec::new())) {
                    tracing::warn!(%owner, chat = %chat.id, "restored chat's owner is neither configured nor recorded: a removed agent");
                }
                let Some(SnoozeUntil::Time { at }) = chat.stage.snooze() else {
                    return 0;
                };
                self.timers.schedule(
                    at,
                    Timer::SnoozeEnd {
                        customer: file.id.clone(),
                        chat: chat.id.clone(),
                    },
                );
                1
            }
            Stage::Reopened {
                owner,
                since: reopened_at,
            } => {
                let reopened_at = *reopened_at;
                let policy = self.config.policies.of(chat.channel);
                let expires_at = policy
                    .window_expires_at(chat.last_customer_message_at)
                    .unwrap_or(reopened_at + policy.revive_window);
                self.board_reopened(&self.chat_view(file, &chat.id), owner, reopened_at);
                self.timers.schedule(
                    expires_at,
                    Timer::ReopenExpiry {
                        customer: file.id.clone(),
                        chat: chat.id.clone(),
                        reopened_at,
                    },
                );
                1
            }
            Stage::Bot | Stage::Closed { .. } => 0,
        }
    }
}

/// A chat to let go of, as it was when chosen: its record and how many messages it had.
type Candidate = (ChatRecord, usize);

/// How long a closed chat stays in memory at least, whatever its channel.
const EVICT_AFTER: Duration = Duration::hours(1);

/// A chat that was waiting at the restart: where it goes, what it asked of routing, and its
/// sticky agent (R10).
type Queued = (Arrival, RoutingAsk, Option<AgentId>);
