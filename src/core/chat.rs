//! A chat (conversation) and its states. No serde here: the protocol (`protocol/chat.rs`)
//! and the store (`store/codec.rs`) each write down how these look to them.

use super::channel::Channel;
use super::queue::RoutingAsk;
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId};

/// Where a chat is in its life. Every state but `closed` is *live* (R01).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SnoozeUntil {
    /// Until a point in time (or an earlier reply).
    Time {
        /// When the chat returns to `active`.
        at: Timestamp,
    },
    /// Until the customer replies.
    Reply,
}

/// Who wrote a message.
#[derive(Clone, PartialEq, Eq, Debug)]
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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MessageKind {
    /// Free text.
    Text,
    /// A template ("utility push") sent after the window (R07).
    Template,
    /// An automatic notice (the reopen notice of R04).
    Notice,
    /// The queue's after-hours reply, sent once to a chat that came while it was closed (R21).
    AfterHours,
}

/// One message of a chat's history.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Message {
    /// When the engine took it.
    pub at: Timestamp,
    /// Who wrote it.
    pub author: Author,
    /// What kind it is.
    pub kind: MessageKind,
    /// The text (for a template, its name and parameters as sent; for media, its caption).
    pub text: String,
    /// What a customer's message carries besides text: media, a location, an interactive
    /// reply, or a type the engine does not know (R23). Boxed: few messages have one, and
    /// inline it took 104 of a message's 216 bytes, in every chat's history the engine keeps.
    pub payload: Option<Box<Payload>>,
    /// The platform's id of the message: a customer's (a retried delivery repeats it, R23),
    /// or ours once the platform took it (its status webhooks name it, R25).
    pub provider_id: Option<String>,
    /// Where a message to the customer is (R24, R25); none for the customer's own.
    pub delivery: Option<Delivery>,
}

/// What a customer's message carries besides its text (R23).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Payload {
    /// An image, document, audio, video or sticker, to fetch from the platform.
    Media {
        /// What kind.
        kind: MediaKind,
        /// The platform's media id.
        id: Option<String>,
        /// Where to fetch it, if the platform gave a URL.
        url: Option<String>,
        /// Its MIME type.
        mime: Option<String>,
        /// Its file name.
        filename: Option<String>,
    },
    /// A shared location, in decimal degrees as the platform wrote them.
    Location {
        /// Degrees north.
        latitude: String,
        /// Degrees east.
        longitude: String,
        /// The place's name.
        name: Option<String>,
        /// Its address.
        address: Option<String>,
    },
    /// An answer to a button or list.
    Reply {
        /// The button's or row's id.
        id: String,
    },
    /// A type the engine does not carry further, by the platform's name for it.
    Unsupported {
        /// The platform's type.
        kind: String,
    },
}

/// Kinds of media.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A file.
    Document,
    /// A sound or voice note.
    Audio,
    /// A film.
    Video,
    /// A sticker.
    Sticker,
}

/// Where a message to the customer is (R24, R25). It only moves forward — pending, sent,
/// delivered, read — except that a failed message may be retried by its agent.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Delivery {
    /// In the outbox: the change that caused it is being committed, or the platform has not
    /// taken it yet (it may be retrying).
    Pending,
    /// The platform took it.
    Sent,
    /// It reached the customer's device.
    Delivered,
    /// The customer read it.
    Read,
    /// It will not arrive, in the platform's words (or after every retry failed).
    Failed {
        /// Why.
        reason: String,
    },
}

impl Delivery {
    /// How far along it is; a status update may only move it further (a failure may come
    /// after `sent`, never after `delivered`).
    fn rank(&self) -> u8 {
        match self {
            Delivery::Pending => 0,
            Delivery::Sent => 1,
            Delivery::Failed { .. } => 2,
            Delivery::Delivered => 3,
            Delivery::Read => 4,
        }
    }

    /// Whether `next` moves it forward.
    pub fn may_become(&self, next: &Delivery) -> bool {
        next.rank() > self.rank()
    }
}

/// What an inbound message brings besides who sent it and when.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Incoming {
    /// Its text (a caption, a location's name, a reply's title).
    pub text: String,
    /// Media, a location, a reply or an unsupported type (R23).
    pub payload: Option<Payload>,
    /// The platform's id of it, to record a retried delivery once (R23).
    pub provider_id: Option<String>,
}

impl From<&str> for Incoming {
    fn from(text: &str) -> Self {
        Incoming {
            text: text.to_owned(),
            ..Incoming::default()
        }
    }
}

/// Where a chat is in its life, with what that stage holds and nothing else: an owner exactly
/// where one is needed, a snooze only while snoozed, a close time only once closed. Every stage
/// but `Closed` is *live* (R01). [`ChatState`] is its tag, for the wire and for rejections.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Stage {
    /// In an automated journey; no agent owns it (R09).
    Bot,
    /// Waiting to be routed (possibly offered to an agent who has not answered yet).
    Queued {
        /// When it entered the queue: the oldest is offered first.
        since: Timestamp,
    },
    /// Owned by an agent and counting toward its load.
    Active {
        /// The agent working it.
        owner: AgentId,
    },
    /// Reopened by its owner, waiting for the customer; does not count toward load (R04).
    Reopened {
        /// The agent who reopened it.
        owner: AgentId,
        /// When: the reopen's expiry timer names it, so that an older timer cannot close a
        /// newer reopen.
        since: Timestamp,
    },
    /// Owned, set aside until a time or the customer's reply; still counts toward load (R13).
    Snoozed {
        /// The agent it returns to.
        owner: AgentId,
        /// Until when.
        until: SnoozeUntil,
    },
    /// In the archive.
    Closed {
        /// When it was closed.
        at: Timestamp,
        /// Why.
        why: CloseReason,
        /// The agent that owned it last, if any: the archive's "mine" (R16).
        owner: Option<AgentId>,
    },
}

impl Stage {
    /// The stage's tag.
    pub fn state(&self) -> ChatState {
        match self {
            Stage::Bot => ChatState::Bot,
            Stage::Queued { .. } => ChatState::Queued,
            Stage::Active { .. } => ChatState::Active,
            Stage::Reopened { .. } => ChatState::Reopened,
            Stage::Snoozed { .. } => ChatState::Snoozed,
            Stage::Closed { .. } => ChatState::Closed,
        }
    }

    /// Whether the chat is live (anything but closed).
    pub fn is_live(&self) -> bool {
        !matches!(self, Stage::Closed { .. })
    }

    /// The agent that owns the chat now, or owned it last once it is closed.
    pub fn owner(&self) -> Option<&AgentId> {
        match self {
            Stage::Active { owner } | Stage::Reopened { owner, .. } | Stage::Snoozed { owner, .. } => {
                Some(owner)
            }
            Stage::Closed { owner, .. } => owner.as_ref(),
            Stage::Bot | Stage::Queued { .. } => None,
        }
    }

    /// The agent that owns the chat while it is live: none once it is closed.
    pub fn live_owner(&self) -> Option<&AgentId> {
        self.owner().filter(|_| self.is_live())
    }

    /// The agent whose load the chat counts toward (active and snoozed chats, R06).
    pub fn load_owner(&self) -> Option<&AgentId> {
        match self {
            Stage::Active { owner } | Stage::Snoozed { owner, .. } => Some(owner),
            _ => None,
        }
    }

    /// Until when the chat is snoozed, while it is.
    pub fn snooze(&self) -> Option<SnoozeUntil> {
        match self {
            Stage::Snoozed { until, .. } => Some(*until),
            _ => None,
        }
    }

    /// When the chat was closed, and why, once it is.
    pub fn closed(&self) -> Option<(Timestamp, CloseReason)> {
        match self {
            Stage::Closed { at, why, .. } => Some((*at, *why)),
            _ => None,
        }
    }
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
    pub stage: Stage,
    /// The agent that last reopened it: kept after the customer's reply and after close, so
    /// that views can say whose reopen brought the chat back (R05); forgotten when the chat is
    /// revived as a new conversation (R11). History, not stage, which is why it stands apart.
    pub reopened_by: Option<AgentId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// The customer's last message: the messaging window runs from here (R02).
    pub last_customer_message_at: Option<Timestamp>,
    /// Every message, oldest first.
    pub messages: Vec<Message>,
    /// What it asked of routing when it came in (R19): its queue, language, skills and the
    /// customer attributes routing rules match.
    pub routing: RoutingAsk,
}

impl Chat {
    /// A new chat at `stage`, created at `now`.
    pub fn new(id: ChatId, customer: CustomerId, channel: Channel, stage: Stage, now: Timestamp) -> Self {
        Self {
            id,
            customer,
            channel,
            stage,
            reopened_by: None,
            created_at: now,
            last_customer_message_at: None,
            messages: Vec::new(),
            routing: RoutingAsk::default(),
        }
    }

    /// Its state's tag.
    pub fn state(&self) -> ChatState {
        self.stage.state()
    }

    /// Whether `agent` owns the chat while it is live.
    pub fn is_owned_by(&self, agent: &AgentId) -> bool {
        self.stage.live_owner() == Some(agent)
    }

    /// Closes the live chat for `why`, keeping its owner for the archive; returns the state it
    /// was in and that owner.
    pub fn close(&mut self, now: Timestamp, why: CloseReason) -> (ChatState, Option<AgentId>) {
        let prior = self.state();
        let owner = self.stage.owner().cloned();
        self.stage = Stage::Closed {
            at: now,
            why,
            owner: owner.clone(),
        };
        (prior, owner)
    }

    /// Adds a customer's message with what it carries (R23) and says so.
    pub fn add_incoming(&mut self, at: Timestamp, incoming: Incoming) -> super::customer::CustomerEvent {
        let event = self.add(at, Author::Customer, MessageKind::Text, incoming.text);
        if let Some(message) = self.messages.last_mut() {
            message.payload = incoming.payload.map(Box::new);
            message.provider_id = incoming.provider_id;
        }
        event
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
        // Everything but the customer's own goes out to the customer: it starts in the outbox.
        let delivery = (!by_customer).then_some(Delivery::Pending);
        self.messages.push(Message {
            at,
            author,
            kind,
            text: text.into(),
            payload: None,
            provider_id: None,
            delivery,
        });
        super::customer::CustomerEvent::MessageAdded {
            chat: self.id.clone(),
            seq: self.messages.len() as u64 - 1,
            by_customer,
            human_agent_tag: false,
        }
    }
}
