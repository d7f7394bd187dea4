//! A chat (conversation) and its states.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channel::Channel;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId};

/// Where a chat is in its life. Every state but `closed` is *live* (R01).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatState {
    /// In an automated journey; no agent owns it.
    Bot,
    /// Waiting to be routed (possibly offered to an agent who has not answered yet).
    Queued,
    /// Owned by an agent and counting toward its load.
    Active,
    /// Reopened by its owner, waiting for the customer; does not count toward load.
    Reopened,
    /// Owned, set aside until a time or the customer's reply; still counts toward load.
    Snoozed,
    /// In the archive.
    Closed,
}

impl ChatState {
    /// The state's wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Bot => "bot",
            ChatState::Queued => "queued",
            ChatState::Active => "active",
            ChatState::Reopened => "reopened",
            ChatState::Snoozed => "snoozed",
            ChatState::Closed => "closed",
        }
    }

    /// Whether the chat is live (anything but closed).
    pub fn is_live(self) -> bool {
        self != ChatState::Closed
    }

    /// Whether a chat in this state counts toward its owner's load.
    pub fn counts_toward_load(self) -> bool {
        matches!(self, ChatState::Active | ChatState::Snoozed)
    }
}

/// Why a chat was closed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// Its owner closed it.
    Agent,
    /// The customer wrote `#STOP` (R08).
    Stop,
    /// A reopened chat's window ran out before the customer replied.
    Timeout,
    /// A supervisor closed it on its owner's behalf.
    Supervisor,
}

/// Until when a chat is snoozed (R13).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "until", rename_all = "snake_case")]
pub enum SnoozeUntil {
    /// Until a point in time (or an earlier reply).
    Time {
        /// When the chat returns to `active`.
        #[serde(with = "crate::clock::rfc3339")]
        #[schemars(with = "Timestamp")]
        at: Timestamp,
    },
    /// Until the customer replies.
    Reply,
}

/// Who wrote a message.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Author {
    /// The customer.
    Customer,
    /// An agent.
    Agent {
        /// Which agent.
        agent: AgentId,
    },
    /// The engine itself (the reopen notice).
    System,
}

/// What kind of message it is.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Free text.
    Text,
    /// A template ("utility push") sent after the window (R07).
    Template,
    /// An automatic notice (the reopen notice of R04).
    Notice,
}

/// One message of a chat's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize, JsonSchema)]
pub struct Message {
    /// When the engine took it.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub at: Timestamp,
    /// Who wrote it.
    pub author: Author,
    /// What kind it is.
    pub kind: MessageKind,
    /// The text (for a template, its name and parameters as sent).
    pub text: String,
}

/// A conversation: one customer on one channel, with its history.
#[derive(Clone, Debug)]
pub struct Chat {
    /// Its id.
    pub id: ChatId,
    /// Whose chat it is.
    pub customer: CustomerId,
    /// The channel it is on.
    pub channel: Channel,
    /// Where it is in its life.
    pub state: ChatState,
    /// The agent that owns it (active, reopened, snoozed; kept after close for "mine").
    pub owner: Option<AgentId>,
    /// The agent that reopened it, while reopened or after the customer's reply (R05, R10).
    pub reopened_by: Option<AgentId>,
    /// When it was last reopened.
    pub reopened_at: Option<Timestamp>,
    /// Until when it is snoozed.
    pub snooze: Option<SnoozeUntil>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it entered the queue last.
    pub queued_at: Option<Timestamp>,
    /// The customer's last message: the messaging window runs from here (R02).
    pub last_customer_message_at: Option<Timestamp>,
    /// When it was closed last, and why.
    pub closed: Option<(Timestamp, CloseReason)>,
    /// Every message, oldest first.
    pub messages: Vec<Message>,
}

impl Chat {
    /// A new chat in `state`, created at `now`.
    pub fn new(id: ChatId, customer: CustomerId, channel: Channel, state: ChatState, now: Timestamp) -> Self {
        Self {
            id,
            customer,
            channel,
            state,
            owner: None,
            reopened_by: None,
            reopened_at: None,
            snooze: None,
            created_at: now,
            queued_at: None,
            last_customer_message_at: None,
            closed: None,
            messages: Vec::new(),
        }
    }

    /// Whether `agent` owns the chat while it is live.
    pub fn is_owned_by(&self, agent: &AgentId) -> bool {
        self.state.is_live() && self.owner.as_ref() == Some(agent)
    }

    /// Adds a message to the history and says so.
    pub fn add(
        &mut self,
        at: Timestamp,
        author: Author,
        kind: MessageKind,
        text: impl Into<String>,
    ) -> super::customer::CustomerEvent {
        let by_customer = author == Author::Customer;
        self.messages.push(Message {
            at,
            author,
            kind,
            text: text.into(),
        });
        super::customer::CustomerEvent::MessageAdded {
            chat: self.id.clone(),
            seq: self.messages.len() as u64 - 1,
            by_customer,
            human_agent_tag: false,
        }
    }
}
