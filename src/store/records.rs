//! What the engine hands the store, and what the store hands back on start.

use std::collections::BTreeMap;

use crate::clock::Timestamp;
use crate::core::agent::{AgentProfile, Role};
use crate::core::analytics::Event;
use crate::core::channel::Channel;
use crate::core::chat::{Chat, ChatState, Delivery, Message, Stage};
use crate::core::customer::{CustomerFile, Profile};
use crate::core::queue::{RoutingAsk, Skills};
use crate::ids::{AgentId, ChatId, CustomerId, QueueId, WorkspaceId};
use crate::security::TokenHash;

use super::workspace_rows::WorkspaceState;

/// One change to record. Every variant is idempotent except [`Change::Analytics`]: writing the
/// same upsert or append twice leaves one row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Inserts or replaces a customer (its profile, identities, opt-outs, pushes, assignment).
    UpsertCustomer(CustomerRecord),
    /// Inserts or replaces a chat's state (not its messages).
    UpsertChat(ChatRecord),
    /// Adds message number `seq` (0-based, in order) to a chat's history; a second write of
    /// the same `(chat, seq)` is ignored, so a replay does not duplicate it.
    AppendMessage {
        /// The chat.
        chat: ChatId,
        /// The message's position in the chat's history.
        seq: u64,
        /// The message.
        message: Message,
    },
    /// Records a KPI event (R14). Appended as it comes: not deduplicated.
    Analytics(Event),
    /// A supervisor set an agent's concurrency limit (R06).
    SetAgentLimit {
        /// The agent.
        agent: AgentId,
        /// Its new limit.
        limit: u32,
    },
    /// A message to the customer moved on (R24, R25): its delivery, and the platform's id
    /// of it once known.
    SetDelivery {
        /// The chat.
        chat: ChatId,
        /// The message's place in the history.
        seq: u64,
        /// Where it is now.
        delivery: Delivery,
        /// The platform's id of it, when this change learnt it.
        provider_id: Option<String>,
    },
    /// A message to a customer joins the outbox, in the commit of the change that caused it
    /// (R24).
    Outbox(OutboxRecord),
    /// An attempt to send an outbox message failed and will be made again.
    OutboxAttempt {
        /// The outbox entry.
        id: u64,
        /// Attempts made so far.
        attempts: u32,
        /// When the next is due.
        next_at: Timestamp,
        /// What went wrong.
        error: String,
    },
    /// An outbox message finally failed: kept, marked, for its agent to retry (R24).
    OutboxFailed {
        /// The outbox entry.
        id: u64,
        /// Why.
        reason: String,
    },
    /// The platform took an outbox message, or its agent sent a failed one again: it leaves
    /// the outbox.
    OutboxDone {
        /// The outbox entry.
        id: u64,
    },
    /// A supervisor or admin set an agent's skills (R19).
    SetAgentSkills {
        /// The agent.
        agent: AgentId,
        /// Its skills now.
        skills: Skills,
    },
    /// The admin API created or replaced an agent (R27): its whole profile. The agent's
    /// earlier live limit and skills are superseded (their rows go, as the profile in memory
    /// replaced them); a record without a token keeps the stored one, as the engine keeps
    /// the agent's token when an update gives none.
    UpsertAgent(AgentRecord),
    /// The admin API removed an agent: its profile, live limit and live skills go together.
    RemoveAgent {
        /// The agent.
        agent: AgentId,
    },
    /// The platform API created a workspace (R27): its row in `workspaces`, under the key the
    /// store allocated (the submission's). See `store/workspace_rows.rs`.
    CreateWorkspace {
        /// Its id.
        id: WorkspaceId,
        /// Its display name, if given.
        name: Option<String>,
        /// When it was created.
        created_at: Timestamp,
    },
    /// A workspace was suspended, resumed or marked for deletion.
    SetWorkspaceState(WorkspaceState),
    /// A workspace's admin key was generated (on create, or rotated): its digest replaces the
    /// one before, which stops opening anything.
    SetWorkspaceAdminKey(TokenHash),
    /// A workspace's settings, as JSON (`config::WorkspaceSettings`), secrets included.
    SetWorkspaceSettings(String),
    /// A workspace's limits were set (R27): their JSON, as `workspaces.limits` holds it.
    SetWorkspaceLimits(String),
    /// Deletes up to `batch` of the workspace's rows from each of its tables, so that one big
    /// tenant's delete is many short transactions, not one that holds the writer.
    PurgeWorkspace {
        /// Rows per table at most.
        batch: u32,
    },
    /// Deletes the workspace's own row, once its other rows are purged.
    DeleteWorkspace,
}

/// An agent as stored (R27): an [`AgentProfile`] spelt out field by field, so that what a
/// database holds does not follow the core type's own (de)serialisation, and a digest of its
/// static token instead of the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentRecord {
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
    /// Its skills with their levels (R19).
    pub skills: Skills,
    /// Its limits per channel (R22).
    pub channel_limits: BTreeMap<Channel, u32>,
    /// The SHA-256 of its static token, if the admin API gave it one.
    pub token_sha256: Option<TokenHash>,
}

impl AgentRecord {
    /// The record of `profile`, with the digest of its token if one was given.
    pub fn of(profile: &AgentProfile, token_sha256: Option<TokenHash>) -> Self {
        Self {
            id: profile.id.clone(),
            name: profile.name.clone(),
            role: profile.role,
            limit: profile.limit,
            queues: profile.queues.clone(),
            skills: profile.skills.clone(),
            channel_limits: profile.channel_limits.clone(),
            token_sha256,
        }
    }

    /// The profile this records, and its token's digest.
    pub fn into_profile(self) -> (AgentProfile, Option<TokenHash>) {
        let profile = AgentProfile {
            id: self.id,
            name: self.name,
            role: self.role,
            limit: self.limit,
            queues: self.queues,
            skills: self.skills,
            channel_limits: self.channel_limits,
        };
        (profile, self.token_sha256)
    }
}

/// A customer as stored: a [`CustomerFile`] without its chats, which are stored one by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecord {
    /// Its id.
    pub id: CustomerId,
    /// Name, email, phone: what the archive search finds it by.
    pub profile: Profile,
    /// One address per channel.
    pub identities: Vec<(Channel, String)>,
    /// Channels it opted out of (R08).
    pub opted_out: Vec<Channel>,
    /// Channels a template was pushed on since it last wrote there (R07).
    pub pushed: Vec<Channel>,
    /// Its originally assigned agent (R10).
    pub assigned_agent: Option<AgentId>,
}

impl CustomerRecord {
    /// The record of `file`.
    pub fn of(file: &CustomerFile) -> Self {
        Self {
            id: file.id.clone(),
            profile: file.profile.clone(),
            identities: file.identities.clone(),
            opted_out: file.opted_out.clone(),
            pushed: file.pushed.clone(),
            assigned_agent: file.assigned_agent.clone(),
        }
    }

    /// A customer file with these fields and the given chats.
    pub fn into_file(self, chats: Vec<Chat>) -> CustomerFile {
        CustomerFile {
            id: self.id,
            profile: self.profile,
            identities: self.identities,
            chats,
            opted_out: self.opted_out,
            pushed: self.pushed,
            assigned_agent: self.assigned_agent,
        }
    }
}

/// A chat as stored: a [`Chat`] without its messages, which are appended one by one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatRecord {
    /// Its id.
    pub id: ChatId,
    /// Whose chat it is.
    pub customer: CustomerId,
    /// Its channel.
    pub channel: Channel,
    /// Where it is in its life, with what that stage holds.
    pub stage: Stage,
    /// The agent that last reopened it.
    pub reopened_by: Option<AgentId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The customer's last message: the window runs from here (R02).
    pub last_customer_message_at: Option<Timestamp>,
    /// What it asked of routing (R19).
    pub routing: RoutingAsk,
}

impl ChatRecord {
    /// The record of `chat`.
    pub fn of(chat: &Chat) -> Self {
        Self {
            id: chat.id.clone(),
            customer: chat.customer.clone(),
            channel: chat.channel,
            stage: chat.stage.clone(),
            reopened_by: chat.reopened_by.clone(),
            created_at: chat.created_at,
            last_customer_message_at: chat.last_customer_message_at,
            routing: chat.routing.clone(),
        }
    }

    /// Its state's tag.
    pub fn state(&self) -> ChatState {
        self.stage.state()
    }

    /// What the archive is ordered by: when it was closed, else when it was created.
    pub fn newest_at(&self) -> Timestamp {
        self.stage.closed().map_or(self.created_at, |(at, _)| at)
    }

    /// A chat with these fields and no messages loaded.
    pub fn into_chat(self) -> Chat {
        Chat {
            id: self.id,
            customer: self.customer,
            channel: self.channel,
            stage: self.stage,
            reopened_by: self.reopened_by,
            created_at: self.created_at,
            last_customer_message_at: self.last_customer_message_at,
            messages: Vec::new(),
            routing: self.routing,
        }
    }
}

/// A message to a customer waiting in the outbox (R24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Its number: increasing in the order the engine made them.
    pub id: u64,
    /// The customer.
    pub customer: CustomerId,
    /// The chat.
    pub chat: ChatId,
    /// The message of the chat's history it sends, if it is one (a template push is).
    pub seq: Option<u64>,
    /// What goes to the connector, as JSON (the engine's outbound message).
    pub message: String,
    /// The same on every attempt, so a platform that takes one drops a repeat (R24).
    pub idempotency_key: String,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due; none for at once.
    pub next_at: Option<Timestamp>,
    /// What went wrong last.
    pub last_error: Option<String>,
    /// Why it finally failed, if it did: it then waits for its agent to retry it.
    pub failed: Option<String>,
}

/// Everything the engine restores on start.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Every customer with every chat, oldest chat first. Chats come **without** messages
    /// (`messages` is empty): history is read page by page with [`super::Store::history`], so
    /// memory does not grow with it.
    pub customers: Vec<CustomerFile>,
    /// Every KPI event, in the order recorded.
    pub events: Vec<Event>,
    /// Agents created or changed over the admin API, by id (R27).
    pub agents: Vec<AgentRecord>,
    /// Limits set by supervisors, by agent id.
    pub agent_limits: Vec<(AgentId, u32)>,
    /// Skills set live, by agent id (R19).
    pub agent_skills: Vec<(AgentId, Skills)>,
    /// Messages to customers not yet taken by their platform, in the order they were made.
    pub outbox: Vec<OutboxRecord>,
}
