//! Agents as clients read them (their role, presence and standing data) and why an offer was
//! taken back, mapped from the core's types one variant at a time.
//!
//! As in [`super::chat`], the core's types carry no serde: a name on the wire is written here,
//! and each `From` matches every variant, so a variant added or renamed in the core is a
//! compile error here, never a silent change of the wire. (The doc comments are the schemas'
//! descriptions: keep them as they are.)

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Channel;
use crate::core::agent as core;
use crate::core::router::WithdrawReason as CoreWithdrawReason;
use crate::ids::{AgentId, QueueId};

/// What an agent may do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Handles chats.
    Agent,
    /// Handles chats, watches queues, may force transfers.
    Supervisor,
    /// Everything a supervisor may, plus configuration.
    Admin,
}

impl From<core::Role> for Role {
    fn from(role: core::Role) -> Self {
        match role {
            core::Role::Agent => Role::Agent,
            core::Role::Supervisor => Role::Supervisor,
            core::Role::Admin => Role::Admin,
        }
    }
}

impl From<Role> for core::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Agent => core::Role::Agent,
            Role::Supervisor => core::Role::Supervisor,
            Role::Admin => core::Role::Admin,
        }
    }
}

/// Whether an agent takes new chats.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Takes offers from the queue.
    Online,
    /// Keeps its chats but takes no new ones.
    Away,
    /// Not connected.
    Offline,
}

impl From<core::Presence> for Presence {
    fn from(presence: core::Presence) -> Self {
        match presence {
            core::Presence::Online => Presence::Online,
            core::Presence::Away => Presence::Away,
            core::Presence::Offline => Presence::Offline,
        }
    }
}

impl From<Presence> for core::Presence {
    fn from(presence: Presence) -> Self {
        match presence {
            Presence::Online => core::Presence::Online,
            Presence::Away => core::Presence::Away,
            Presence::Offline => core::Presence::Offline,
        }
    }
}

/// An agent's standing data.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
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
    #[serde(default)]
    pub queues: Vec<QueueId>,
    /// Its skills, each with a level from 1 to 5 (R19).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Its limits per channel, where it has any (R22).
    #[serde(default)]
    pub channel_limits: BTreeMap<Channel, u32>,
}

impl From<&core::AgentProfile> for AgentProfile {
    fn from(profile: &core::AgentProfile) -> Self {
        // Taken apart whole, so that a field added to the core's profile is a compile error
        // here until someone decides whether clients see it.
        let core::AgentProfile {
            id,
            name,
            role,
            limit,
            queues,
            skills,
            channel_limits,
        } = profile;
        AgentProfile {
            id: id.clone(),
            name: name.clone(),
            role: (*role).into(),
            limit: *limit,
            queues: queues.clone(),
            skills: skills.clone(),
            channel_limits: channel_limits.iter().map(|(c, n)| ((*c).into(), *n)).collect(),
        }
    }
}

/// An agent as the admin API lists it (`GET /v1/admin/agents`).
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct AgentStatus {
    /// Its standing data.
    #[serde(flatten)]
    pub profile: AgentProfile,
    /// Whether it takes chats.
    pub presence: Presence,
    /// Active and snoozed chats.
    pub load: u32,
    /// Pending offers.
    pub offered: u32,
    /// Times a chat took it over its limit.
    pub overrides: u64,
    /// Open connections.
    pub connections: usize,
}

/// Why an offer was taken back.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithdrawReason {
    /// Not accepted within the accept timeout; the agent was set away.
    Timeout,
    /// The chat ended (the customer wrote #STOP).
    ChatClosed,
    /// The agent went away or offline.
    AgentUnavailable,
    /// The agent's limit was lowered below what its offers needed.
    LimitLowered,
    /// A chat that came outside an offer (the customer answered the agent's reopened chat,
    /// or a chat was transferred to it by force) took the slot the offer held.
    RoomTaken,
}

impl From<CoreWithdrawReason> for WithdrawReason {
    fn from(reason: CoreWithdrawReason) -> Self {
        match reason {
            CoreWithdrawReason::Timeout => WithdrawReason::Timeout,
            CoreWithdrawReason::ChatClosed => WithdrawReason::ChatClosed,
            CoreWithdrawReason::AgentUnavailable => WithdrawReason::AgentUnavailable,
            CoreWithdrawReason::LimitLowered => WithdrawReason::LimitLowered,
            CoreWithdrawReason::RoomTaken => WithdrawReason::RoomTaken,
        }
    }
}
