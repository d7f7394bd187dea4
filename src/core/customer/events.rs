//! What an operation on a customer's file did: the events the engine's translator turns into
//! journal records, pushes, board changes, KPIs, timers and outbound messages.
//!
//! An operation returns its events in the order the translator should act on them: a state
//! change before the message that caused it, so that an agent is told "the chat is active
//! again" before "here is the customer's reply". Each event names what it touched; the file
//! itself holds the result (a message's text, a chat's new state), so events stay small.

use crate::clock::Timestamp;
use crate::core::channel::Channel;
use crate::core::chat::{ChatState, CloseReason, SnoozeUntil};
use crate::ids::{AgentId, ChatId, QueueId};

/// One thing that happened to a customer or one of its chats.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CustomerEvent {
    /// The channel told us more about the customer: a new identity, name, email or phone.
    ProfileLearned,
    /// The customer wrote `#STOP` on `channel` (R08).
    OptedOut {
        /// The channel it no longer wants to be written on.
        channel: Channel,
    },
    /// The customer wrote again on a channel it had opted out of (R08).
    OptOutLifted {
        /// The channel.
        channel: Channel,
    },
    /// The customer wrote again after a template push: the next window may take one (R07).
    PushRearmed {
        /// The channel.
        channel: Channel,
    },
    /// The customer's sticky agent changed (R04, R10).
    StickyAgentSet {
        /// The agent new chats of this customer go to first.
        agent: AgentId,
    },
    /// A chat began: new, or a closed one revived with its history (R11).
    ChatStarted {
        /// The chat.
        chat: ChatId,
        /// Whether it is a revived chat (same id) rather than a new one.
        revived: bool,
    },
    /// A message was added to a chat's history.
    MessageAdded {
        /// The chat.
        chat: ChatId,
        /// Its place in the history, from 0.
        seq: u64,
        /// Whether the customer wrote it (it then moves the chat's window, R02).
        by_customer: bool,
        /// For an agent's message past the window: sent with Messenger's human-agent tag.
        human_agent_tag: bool,
    },
    /// A chat waits to be routed: to its sticky agent if that one has room, else its queue
    /// (R09, R10).
    Queued {
        /// The chat.
        chat: ChatId,
        /// The customer's sticky agent.
        sticky: Option<AgentId>,
    },
    /// An agent accepted the offer of a queued chat (R06).
    Accepted {
        /// The chat.
        chat: ChatId,
        /// The agent, now its owner.
        agent: AgentId,
        /// The queue it was offered from.
        queue: QueueId,
        /// How long the chat waited in its queue.
        waited: chrono::Duration,
        /// How long the offer waited for the agent.
        to_accept: chrono::Duration,
        /// Whether it was answered within its queue's SLA, if the queue has one (R20).
        within_sla: Option<bool>,
    },
    /// An agent reopened a closed chat; it waits for the customer (R04).
    Reopened {
        /// The chat.
        chat: ChatId,
        /// The agent who reopened it, now its owner.
        by: AgentId,
        /// When the chat closes again if the customer does not answer.
        until: Timestamp,
    },
    /// The customer answered a reopened chat, which is active with its owner again (R05).
    ReopenAnswered {
        /// The chat.
        chat: ChatId,
        /// The agent who reopened it.
        agent: AgentId,
    },
    /// The owner set its chat aside (R13).
    Snoozed {
        /// The chat.
        chat: ChatId,
        /// Its owner.
        owner: AgentId,
        /// Until when.
        until: SnoozeUntil,
    },
    /// A snooze ended, by the customer's reply or its time (R13); the chat is active again.
    SnoozeEnded {
        /// The chat.
        chat: ChatId,
        /// Its owner.
        owner: AgentId,
    },
    /// A live chat moved to another agent (R12).
    Transferred {
        /// The chat.
        chat: ChatId,
        /// Its owner until now.
        from: AgentId,
        /// Its owner from now.
        to: AgentId,
    },
    /// The one template push after the window went out (R07).
    TemplatePushed {
        /// The chat.
        chat: ChatId,
        /// Who sent it.
        agent: AgentId,
        /// The template's name.
        template: String,
        /// Its parameters.
        params: Vec<String>,
    },
    /// A message to the customer moved on: the platform took it, delivered it, the customer
    /// read it, or it failed (R24, R25); or its agent sent a failed one again (pending).
    DeliveryChanged {
        /// The chat.
        chat: ChatId,
        /// The message's place in the history.
        seq: u64,
    },
    /// An agent retries a failed message: it goes to the outbox again (R24).
    DeliveryRetried {
        /// The chat.
        chat: ChatId,
        /// The message's place in the history.
        seq: u64,
    },
    /// A live chat was closed.
    Closed {
        /// The chat.
        chat: ChatId,
        /// The state it was in.
        prior: ChatState,
        /// Its owner, if it had one.
        owner: Option<AgentId>,
        /// Why.
        reason: CloseReason,
    },
}

impl CustomerEvent {
    /// The chat the event is about; `None` for one about the customer.
    pub fn chat(&self) -> Option<&ChatId> {
        match self {
            CustomerEvent::ProfileLearned
            | CustomerEvent::OptedOut { .. }
            | CustomerEvent::OptOutLifted { .. }
            | CustomerEvent::PushRearmed { .. }
            | CustomerEvent::StickyAgentSet { .. } => None,
            CustomerEvent::ChatStarted { chat, .. }
            | CustomerEvent::MessageAdded { chat, .. }
            | CustomerEvent::Queued { chat, .. }
            | CustomerEvent::Accepted { chat, .. }
            | CustomerEvent::Reopened { chat, .. }
            | CustomerEvent::ReopenAnswered { chat, .. }
            | CustomerEvent::Snoozed { chat, .. }
            | CustomerEvent::SnoozeEnded { chat, .. }
            | CustomerEvent::Transferred { chat, .. }
            | CustomerEvent::TemplatePushed { chat, .. }
            | CustomerEvent::DeliveryChanged { chat, .. }
            | CustomerEvent::DeliveryRetried { chat, .. }
            | CustomerEvent::Closed { chat, .. } => Some(chat),
        }
    }

    /// Whether the customer's own record (profile, identities, opt-outs, pushes, sticky agent)
    /// changed.
    pub fn changes_customer(&self) -> bool {
        match self {
            CustomerEvent::ProfileLearned
            | CustomerEvent::OptedOut { .. }
            | CustomerEvent::OptOutLifted { .. }
            | CustomerEvent::PushRearmed { .. }
            | CustomerEvent::StickyAgentSet { .. }
            | CustomerEvent::TemplatePushed { .. } => true,
            // A new chat's customer may be new too: it is written with its first chat.
            CustomerEvent::ChatStarted { revived, .. } => !revived,
            _ => false,
        }
    }

    /// Whether the chat's own record (state, owner, times) changed; a message alone does not.
    pub fn changes_chat(&self) -> bool {
        match self {
            // The customer's message moves the window (R02); another one leaves the chat be.
            CustomerEvent::MessageAdded { by_customer, .. } => *by_customer,
            // A message's delivery is the message's, not the chat's.
            CustomerEvent::DeliveryChanged { .. } | CustomerEvent::DeliveryRetried { .. } => false,
            other => other.chat().is_some(),
        }
    }
}
