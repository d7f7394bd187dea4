//! The admin side of the engine (agents created, changed, removed) and who is online.

use super::fanout::{ConnHandle, ConnId, CutOff};
use super::timers::Timer;
use super::{AgentStatus, Engine};
use crate::clock::Timestamp;
use crate::core::queue::{bad_level, MAX_LEVEL};
use crate::core::{AgentProfile, Presence, Skills};
use crate::ids::AgentId;
use crate::protocol::supervisor::QueueView;
use crate::protocol::Push;
use crate::refusal::Refusal;
use crate::security::TokenHash;
use crate::store::{AgentRecord, Change};

/// Whether an upsert is recorded in the store.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Record {
    /// From the admin API: recorded (R27).
    Yes,
    /// Configured, or brought back by the restore: not recorded again.
    No,
}

impl Engine {
    /// Records an agent's limit in the store; the caller holds the router's lock.
    fn store_limit(&self, id: &AgentId, limit: u32) {
        self.store_change(Change::SetAgentLimit {
            agent: id.clone(),
            limit,
        });
    }

    /// Hands `change` to the store, if there is one, without waiting: the caller answers
    /// after the engine's write point is reached (the gateway's `until_durable`).
    fn store_change(&self, change: Change) {
        if let Some(store) = &self.store {
            let _receipt = store.submit(vec![change]);
        }
    }

    /// [`Engine::upsert_agent`] from the admin API: the whole agent (profile, and the digest of
    /// its token if one is given) is recorded, so it outlives a restart (R27). On start a
    /// recorded agent replaces a configured one of the same id (see [`Engine::restore`]).
    pub fn upsert_agent_live(&self, profile: AgentProfile, token: Option<String>) {
        self.upsert(profile, token.as_deref().map(TokenHash::of), Record::Yes);
    }

    /// Creates or updates an agent; `token` (if given) then identifies it on the WebSocket.
    /// Not recorded: for the configured agents, whose record is the configuration.
    pub fn upsert_agent(&self, profile: AgentProfile, token: Option<String>) {
        self.upsert(profile, token.as_deref().map(TokenHash::of), Record::No);
    }

    /// Creates or updates an agent; without a token it keeps the one it has.
    pub(super) fn upsert(&self, profile: AgentProfile, token: Option<TokenHash>, record: Record) {
        let id = profile.id.clone();
        let spec = profile.seat_spec();
        let now = self.now();
        // Profile, token and seat change together under the router's lock (see
        // `remove_agent`).
        let existed = self.with_router(|r| {
            if let Some(token) = token {
                self.directory.set_token(&id, token);
            }
            if record == Record::Yes {
                // Under the same lock as the router's change, like `set_limit`: of two
                // concurrent upserts the one the router keeps is the one stored last.
                self.store_change(Change::UpsertAgent(AgentRecord::of(&profile, token)));
            }
            let existed = self.directory.insert(profile);
            (existed, r.upsert_seat(&id, spec, now))
        });
        if existed {
            self.push_limit(&id);
        }
    }

    /// Removes an agent, and records that it is gone (R27). Its chats stay as they are; its
    /// pending offers go back to the queue. Its seat stays in the router (offline) so that
    /// the chats it still owns keep counting.
    ///
    /// A configured agent comes back on the next start, as the configuration still names it.
    pub fn remove_agent(&self, id: &AgentId) -> Result<(), Refusal> {
        let now = self.now();
        // Under the router's lock, so that a concurrent upsert of the same id cannot leave a
        // profile without a seat or the other way round, nor the store (its token included)
        // out of step with them.
        self.with_router(|r| match self.directory.remove(id) {
            true => {
                self.directory.revoke_token(id);
                self.store_change(Change::RemoveAgent { agent: id.clone() });
                (Ok(()), r.retire_seat(id, now))
            }
            false => (Err(Refusal::not_found("agent", id)), Vec::new()),
        })?;
        self.fanout.close_all(id, CutOff::AgentRemoved);
        Ok(())
    }

    /// The agent a token stands for.
    pub fn agent_by_token(&self, token: &str) -> Option<AgentProfile> {
        self.directory.by_token(token)
    }

    /// How many agents the workspace has (what its `max_agents` counts, R27).
    pub fn agent_count(&self) -> usize {
        self.directory.len()
    }

    /// One agent's profile.
    pub fn agent(&self, id: &AgentId) -> Option<AgentProfile> {
        self.directory.profile(id)
    }

    /// Changes an agent's limit live; lowering it never drops a chat (R06).
    pub fn set_limit(&self, id: &AgentId, limit: u32) -> Result<(), Refusal> {
        if !self.directory.set_limit(id, limit) {
            return Err(Refusal::not_found("agent", id));
        }
        let now = self.now();
        self.try_router(|r| {
            let events = r.set_limit(id, limit, now)?;
            // Under the router's lock, so that of two concurrent changes the one the router
            // keeps is also the one stored last.
            self.store_limit(id, limit);
            Ok(events)
        })?;
        self.push_limit(id);
        Ok(())
    }

    /// Changes an agent's skills live (R19): recorded like a live limit, so they outlive a
    /// restart; the agent may now be offered chats it could not take before.
    pub fn set_skills(&self, id: &AgentId, skills: Skills) -> Result<(), Refusal> {
        if let Some((skill, level)) = bad_level(&skills) {
            return Err(Refusal::BadRequest(format!(
                "skill `{skill}` has level {level}; levels go from 1 to {MAX_LEVEL}"
            )));
        }
        if !self.directory.set_skills(id, skills.clone()) {
            return Err(Refusal::not_found("agent", id));
        }
        let now = self.now();
        self.try_router(|r| {
            let events = r.set_skills(id, skills.clone(), now)?;
            // Under the router's lock, as for limits: the last change kept is the last stored.
            self.store_change(Change::SetAgentSkills {
                agent: id.clone(),
                skills,
            });
            Ok(events)
        })
    }

    pub(super) fn push_limit(&self, id: &AgentId) {
        let router = self.router.lock();
        if let Some(seat) = router.seat(id) {
            self.fanout.push(
                id,
                Push::LimitChanged {
                    limit: seat.limit,
                    load: seat.load,
                },
            );
        }
    }

    /// Every agent with its live figures, sorted by id.
    pub fn agent_statuses(&self) -> Vec<AgentStatus> {
        let profiles = self.directory.profiles();
        let connections: Vec<usize> = profiles.iter().map(|p| self.fanout.connections(&p.id)).collect();
        let router = self.router.lock();
        profiles
            .into_iter()
            .zip(connections)
            .filter_map(|(profile, connections)| {
                let seat = router.seat(&profile.id)?;
                Some(AgentStatus {
                    presence: seat.presence.into(),
                    load: seat.load,
                    offered: seat.offered,
                    overrides: seat.overrides,
                    connections,
                    profile: (&profile).into(),
                })
            })
            .collect()
    }

    /// Every queue with its waiting chats, in offer order.
    pub fn queue_views(&self) -> Vec<QueueView> {
        let now = self.now();
        let router = self.router.lock();
        router
            .queues(now)
            .into_iter()
            .map(|(id, waiting)| self.queue_view(&router, id, &waiting, now))
            .collect()
    }

    /// A new connection of `agent`, and the last sequence number pushed before it joined.
    /// An offline agent comes online with it.
    pub fn connect(&self, agent: &AgentId) -> (ConnHandle, u64) {
        let (handle, seq) = self.fanout.connect(agent);
        let now = self.now();
        self.with_router(|r| {
            let offline = r.seat(agent).is_some_and(|s| s.presence == Presence::Offline);
            let events = if offline {
                r.set_presence(agent, Presence::Online, now).unwrap_or_default()
            } else {
                Vec::new()
            };
            ((), events)
        });
        (handle, seq)
    }

    /// The connection `conn` of `agent` (or a supervisor's) holds a token that expires at
    /// `at`: it is cut off then (4001) unless a refresh moves this again.
    pub fn expire_session_at(&self, agent: &AgentId, conn: ConnId, at: Timestamp) {
        self.timers.schedule(
            at,
            Timer::TokenExpiry {
                agent: agent.clone(),
                conn,
            },
        );
    }

    /// A connection ended. The agent keeps its chats; if no connection comes back within the
    /// grace period it is set offline (R17).
    pub fn disconnect(&self, agent: &AgentId, conn: ConnId) {
        self.timers.cancel_token_expiry(conn);
        self.watchers.unwatch_all(conn);
        if let Some(epoch) = self.fanout.disconnect(agent, conn) {
            self.timers.schedule(
                self.now() + self.config.grace,
                Timer::Grace {
                    agent: agent.clone(),
                    epoch,
                },
            );
        }
    }
}
