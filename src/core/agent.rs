//! Agents: who they are and whether they take chats.

use std::collections::BTreeMap;

use super::channel::Channel;
use super::queue::Skills;
use super::router::SeatSpec;
use crate::ids::{AgentId, QueueId};

/// What an agent may do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Role {
    /// Handles chats.
    #[default]
    Agent,
    /// Handles chats, watches queues, may force transfers.
    Supervisor,
    /// Everything a supervisor may, plus configuration.
    Admin,
}

impl Role {
    /// Whether the role may act on other agents' behalf (forced transfer, live limits).
    pub fn supervises(self) -> bool {
        matches!(self, Role::Supervisor | Role::Admin)
    }
}

/// Whether an agent takes new chats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Presence {
    /// Takes offers from the queue.
    Online,
    /// Keeps its chats but takes no new ones.
    Away,
    /// Not connected.
    #[default]
    Offline,
}

/// An agent's standing data.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AgentProfile {
    /// Its id.
    pub id: AgentId,
    /// The name shown to others.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// How many chats it may hold active at once.
    pub limit: u32,
    /// The queues it serves; empty means all.
    pub queues: Vec<QueueId>,
    /// Its skills, each with a level from 1 to 5 (R19).
    pub skills: Skills,
    /// Its limits per channel, where it has any (R22).
    pub channel_limits: BTreeMap<Channel, u32>,
}

impl AgentProfile {
    /// What it brings to routing.
    pub fn seat_spec(&self) -> SeatSpec {
        SeatSpec {
            limit: self.limit,
            queues: self.queues.clone(),
            skills: self.skills.clone(),
            channel_limits: self.channel_limits.clone(),
        }
    }
}
