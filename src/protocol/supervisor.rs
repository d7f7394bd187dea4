//! Every frame on the supervisor WebSocket (`/v1/supervisor/ws`, R14, R15), and the analytics
//! report of `GET /v1/analytics`.
//!
//! A supervisor subscribes to queues and gets a [`Board`]: the queues with their waiting chats,
//! every agent's row, the reopened chats and today's KPIs. Every change after it comes as a
//! [`BoardEvent`] with a sequence number, in `pushes` frames that batch what happened since
//! the last one.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AgentProfile, ArchiveEntry, Channel, ChatState, ChatView, CustomerView, ErrorFrame, Figures,
    HistoryMessage, Presence, Role,
};
use crate::clock::Timestamp;
use crate::ids::{AgentId, ChatId, CustomerId, QueueId};

/// A request from a supervisor's client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SupervisorFrame {
    /// Chosen by the client; echoed in the one reply to this request.
    pub id: String,
    /// What is asked.
    #[serde(flatten)]
    pub request: SupervisorRequest,
}

/// Every request a supervisor can make.
#[derive(Clone, Debug, PartialEq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SupervisorRequest {
    /// Watch these queues (absent or null: all), replacing any earlier subscription. Without
    /// `after_seq` the reply is the board, and every change after it follows. With it
    /// (reconnecting), the changes after it are sent first and the reply says how many; or,
    /// where they are gone, the reply is a fresh board.
    Subscribe {
        /// The queues; absent or null means every queue.
        #[serde(default)]
        queues: Option<Vec<QueueId>>,
        /// The last sequence number the client processed.
        #[serde(default)]
        after_seq: Option<u64>,
    },
    /// Change an agent's concurrency limit live; lowering it takes no chat away (R06).
    SetLimit {
        /// The agent.
        agent: AgentId,
        /// The new limit.
        limit: u32,
    },
    /// Change an agent's skills live (R19): it may be offered chats it could not take before;
    /// offers it holds stay. Kept across restarts.
    SetSkills {
        /// The agent.
        agent: AgentId,
        /// Its skills now, each with a level from 1 to 5.
        skills: BTreeMap<String, u8>,
    },
    /// Set an agent online, away or offline; away or offline takes back its pending offers.
    SetPresence {
        /// The agent.
        agent: AgentId,
        /// The new presence.
        presence: Presence,
    },
    /// Move an active chat to another online agent, over its limit if need be (counted as an
    /// override, R06).
    Transfer {
        /// The chat.
        chat_id: ChatId,
        /// The new owner.
        to: AgentId,
    },
    /// Close a live chat on its owner's behalf.
    Close {
        /// The chat.
        chat_id: ChatId,
    },
    /// Read a chat with a page of its history, as on the agent socket.
    GetChat {
        /// The chat.
        chat_id: ChatId,
        /// Only messages before this one (the previous page's `next_before_seq`); absent for
        /// the newest page.
        #[serde(default)]
        before_seq: Option<u64>,
        /// At most this many messages (default 50, at most 500).
        #[serde(default)]
        limit: Option<u32>,
    },
    /// List everyone's chats as the agents' archive does (R16), to pick one to act on: the
    /// live ones with `state`, a customer with `query`.
    ListArchive {
        /// Only chats in this state (`active`: the chats a transfer can move).
        #[serde(default)]
        state: Option<ChatState>,
        /// At most this many entries, as on the agent socket.
        #[serde(default)]
        limit: Option<u32>,
        /// Customer search text, as on the agent socket.
        #[serde(default)]
        query: Option<String>,
        /// The previous page's `next`.
        #[serde(default)]
        before: Option<String>,
    },
    /// The KPIs of R14 over a range, in total and per agent.
    GetAnalytics {
        /// The query.
        #[serde(flatten)]
        query: AnalyticsQuery,
    },
    /// Liveness check.
    Ping,
    /// Replace the connection's token with a fresh one of the same supervisor.
    Refresh {
        /// The new token (a JWT).
        token: String,
    },
}

impl crate::protocol::RequestFrame for SupervisorFrame {
    fn takes_no_fields(&self) -> bool {
        matches!(self.request, SupervisorRequest::Ping)
    }
}

impl SupervisorRequest {
    /// The request's wire name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            SupervisorRequest::Subscribe { .. } => "subscribe",
            SupervisorRequest::SetLimit { .. } => "set_limit",
            SupervisorRequest::SetSkills { .. } => "set_skills",
            SupervisorRequest::SetPresence { .. } => "set_presence",
            SupervisorRequest::Transfer { .. } => "transfer",
            SupervisorRequest::Close { .. } => "close",
            SupervisorRequest::GetChat { .. } => "get_chat",
            SupervisorRequest::ListArchive { .. } => "list_archive",
            SupervisorRequest::GetAnalytics { .. } => "get_analytics",
            SupervisorRequest::Ping => "ping",
            SupervisorRequest::Refresh { .. } => "refresh",
        }
    }

    /// Whether the request changes something: a retry of it with the same id gets its first
    /// reply again instead of running twice (R17).
    pub fn changes_state(&self) -> bool {
        match self {
            SupervisorRequest::SetLimit { .. }
            | SupervisorRequest::SetSkills { .. }
            | SupervisorRequest::SetPresence { .. }
            | SupervisorRequest::Transfer { .. }
            | SupervisorRequest::Close { .. } => true,
            SupervisorRequest::Subscribe { .. }
            | SupervisorRequest::GetChat { .. }
            | SupervisorRequest::ListArchive { .. }
            | SupervisorRequest::GetAnalytics { .. }
            | SupervisorRequest::Ping
            | SupervisorRequest::Refresh { .. } => false,
        }
    }
}

/// Which KPI events an analytics query counts; every part is optional.
#[derive(Clone, Debug, Default, PartialEq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct AnalyticsQuery {
    /// From this instant, inclusive.
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub from: Option<Timestamp>,
    /// To this instant, exclusive.
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub to: Option<Timestamp>,
    /// Only this agent's.
    #[serde(default)]
    pub agent: Option<AgentId>,
    /// Only this channel's.
    #[serde(default)]
    pub channel: Option<Channel>,
}

/// Every frame the engine sends on the supervisor WebSocket.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum SupervisorServerFrame {
    /// Sent once, first, after the handshake. Nothing is pushed before a `subscribe`.
    Welcome {
        /// The protocol version (1).
        protocol: u32,
        /// Who the token belongs to.
        supervisor: AgentProfile,
        /// The last sequence number of the board's changes.
        seq: u64,
        /// The engine's clock now: countdowns (`window_expires_at`, `expires_at`) are in its
        /// time, so a client shows them against this, not its own clock.
        #[serde(with = "crate::clock::rfc3339")]
        #[schemars(with = "Timestamp")]
        now: Timestamp,
    },
    /// The request succeeded.
    Ok {
        /// The request's `id`.
        id: String,
        /// What came of it.
        result: SupervisorResult,
    },
    /// The request (or an unreadable frame) failed; nothing changed.
    Error(ErrorFrame),
    /// Changes, oldest first.
    Pushes {
        /// The changes.
        events: Vec<BoardEvent>,
    },
}

/// What a successful supervisor request returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum SupervisorResult {
    /// Everything on the subscribed board now (subscribe).
    Board(Board),
    /// The missed changes were sent before this reply (subscribe with `after_seq`).
    Resumed {
        /// How many events they held.
        replayed: u64,
    },
    /// Done; nothing to return.
    Done,
    /// The chat as it is now (transfer).
    Chat {
        /// The chat.
        chat: ChatView,
    },
    /// A chat with a page of its history (get_chat).
    History {
        /// The chat.
        chat: ChatView,
        /// The page: the newest messages before `before_seq` (or of all), oldest first.
        messages: Vec<HistoryMessage>,
        /// Pass as `before_seq` for the next, older page; null when this page starts at the
        /// chat's first message.
        next_before_seq: Option<u64>,
    },
    /// Archive entries (list_archive).
    Archive {
        /// Newest first.
        entries: Vec<ArchiveEntry>,
        /// Pass as `before` for the next, older page; null when this was the last.
        next: Option<String>,
    },
    /// The KPIs (get_analytics).
    Analytics(AnalyticsReport),
    /// Answer to ping.
    Pong,
    /// The connection now runs on the new token (refresh).
    Refreshed {
        /// When it expires.
        #[serde(with = "crate::clock::rfc3339::option")]
        #[schemars(with = "Option<Timestamp>")]
        expires_at: Option<Timestamp>,
    },
}

/// The whole board a supervisor watches.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Board {
    /// The changes that follow carry sequence numbers after this one. A change may repeat
    /// what the board already shows; every event is an upsert, so applying it again is safe.
    pub seq: u64,
    /// The subscribed queues with their waiting chats.
    pub queues: Vec<QueueView>,
    /// Every agent.
    pub agents: Vec<AgentRow>,
    /// Every reopened chat of the subscribed queues, waiting for its customer.
    pub reopened: Vec<ReopenedChat>,
    /// Today's KPIs.
    pub kpis: Kpis,
}

/// A queue and its waiting chats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct QueueView {
    /// Its id.
    pub id: QueueId,
    /// Waiting chats, next first (R20: effective priority, then age). Offered chats are not
    /// waiting.
    pub waiting: Vec<WaitingView>,
    /// Its priority (R20).
    #[serde(default)]
    pub priority: i32,
    /// Its SLA: answer within this many seconds (R20); null when it has none.
    #[serde(default)]
    pub sla_secs: Option<u64>,
    /// Whether it takes offers now (R21: a queue outside its opening hours does not).
    #[serde(default = "open_by_default")]
    pub open: bool,
}

fn open_by_default() -> bool {
    true
}

/// One waiting chat.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WaitingView {
    /// The chat.
    pub chat_id: ChatId,
    /// Its customer.
    pub customer_id: CustomerId,
    /// Its customer's name and contact as when it was queued; null where the engine does
    /// not know them.
    #[serde(default)]
    pub customer: Option<CustomerView>,
    /// 1 = next.
    pub position: usize,
    /// Since when it has waited (an offer that came back keeps it).
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub since: Timestamp,
    /// Its channel.
    #[serde(default)]
    pub channel: Option<Channel>,
    /// The step of its queue's workflow it has reached, from 0 (R19).
    #[serde(default)]
    pub step: usize,
    /// How many steps the workflow has.
    #[serde(default)]
    pub steps: usize,
    /// The skills it requires at its step, with their least levels (R19).
    #[serde(default)]
    pub requires: BTreeMap<String, u8>,
    /// Its effective priority when this view was made: the queue's, its rules', and what
    /// waiting and a near SLA add (R20).
    #[serde(default)]
    pub priority: i64,
    /// When its SLA is due; null when its queue has none (R20).
    #[serde(default)]
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub due_at: Option<Timestamp>,
    /// How long it may still wait at its position, in seconds, from the queue's recent answer
    /// rate; null until the queue has answered a few chats (R20).
    #[serde(default)]
    pub estimated_wait_secs: Option<u64>,
}

/// An agent as supervisors see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentRow {
    /// Its id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Whether it takes chats.
    pub presence: Presence,
    /// Active and snoozed chats.
    pub load: u32,
    /// Its concurrency limit.
    pub limit: u32,
    /// Offers it has not answered.
    pub offered: u32,
    /// Whether its load is above its limit (R05, forced transfer).
    pub over_limit: bool,
    /// Times a chat took it over its limit or a channel's, since the engine started.
    pub overrides: u64,
    /// Its skills with their levels (R19).
    #[serde(default)]
    pub skills: BTreeMap<String, u8>,
    /// Its limits per channel (R22).
    #[serde(default)]
    pub channel_limits: BTreeMap<Channel, u32>,
    /// Chats it holds or is offered, per channel (R22).
    #[serde(default)]
    pub channel_load: BTreeMap<Channel, u32>,
}

/// A reopened chat waiting for its customer ("supervise and tip-off", R15).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReopenedChat {
    /// The chat.
    pub chat_id: ChatId,
    /// Its customer.
    pub customer: CustomerView,
    /// The channel.
    pub channel: Channel,
    /// The queue of that channel.
    pub queue: QueueId,
    /// Who reopened it.
    pub reopened_by: AgentId,
    /// When.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub reopened_at: Timestamp,
    /// When the window closes and the reopen lapses; null on channels without one.
    #[serde(with = "crate::clock::rfc3339::option")]
    #[schemars(with = "Option<Timestamp>")]
    pub window_expires_at: Option<Timestamp>,
}

/// How a reopened chat stopped waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReopenOutcome {
    /// The customer replied; the chat is active with the agent (R05).
    Replied,
    /// The customer answered #STOP (R08): a declined chat.
    Declined,
    /// The window ran out first.
    Expired,
    /// The agent, or a supervisor, closed it.
    Closed,
}

/// The KPIs of R14 since the start of the current UTC day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Kpis {
    /// The start of the day they count from.
    #[serde(with = "crate::clock::rfc3339")]
    #[schemars(with = "Timestamp")]
    pub since: Timestamp,
    /// The figures.
    pub figures: Figures,
}

/// One change of the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BoardEvent {
    /// Increasing by one for every change of any queue; a subscription to some queues sees
    /// only theirs, so it may skip numbers. Nothing is skipped within a connection otherwise.
    pub seq: u64,
    /// What changed.
    #[serde(flatten)]
    pub change: BoardChange,
}

/// What changed on the board.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum BoardChange {
    /// An agent's row as it is now. Within one `pushes` frame only an agent's latest row is
    /// sent: rows are state, not history (the overrides count keeps the history).
    AgentChanged {
        /// The row.
        agent: AgentRow,
    },
    /// A chat joined a queue at `chat.position`; those at or after it move one back.
    ChatQueued {
        /// The queue.
        queue: QueueId,
        /// The chat.
        chat: WaitingView,
    },
    /// A waiting chat moved on to a wider step of its queue's workflow (R19); it keeps its
    /// place unless the step changed its priority. The view replaces the one shown.
    ChatStepped {
        /// The queue.
        queue: QueueId,
        /// The chat, as it waits now.
        chat: WaitingView,
    },
    /// A queue opened or closed by its opening hours (R21): the queue's `open` on the board.
    QueueHours {
        /// The queue.
        queue: QueueId,
        /// Whether it takes offers now.
        open: bool,
    },
    /// A chat left a queue; those after it move one forward.
    ChatLeftQueue {
        /// The queue.
        queue: QueueId,
        /// The chat.
        chat_id: ChatId,
        /// The agent it was offered to; null when it ended while waiting (#STOP).
        offered_to: Option<AgentId>,
    },
    /// An agent was removed; its row goes.
    AgentRemoved {
        /// The agent.
        agent_id: AgentId,
    },
    /// An agent reopened a chat.
    ChatReopened {
        /// The chat.
        chat: ReopenedChat,
    },
    /// A reopened chat stopped waiting for its customer.
    ReopenEnded {
        /// The chat.
        chat_id: ChatId,
        /// How.
        outcome: ReopenOutcome,
    },
    /// Today's KPIs changed (sent at most once per `pushes` frame).
    KpisChanged {
        /// The KPIs now.
        kpis: Kpis,
    },
}

/// The KPIs of R14 over a range (`GET /v1/analytics`, `get_analytics`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AnalyticsReport {
    /// The query answered.
    pub query: AnalyticsQuery,
    /// Everyone's figures together.
    pub total: Figures,
    /// Each agent's figures, by id; agents without events are left out.
    pub agents: Vec<AgentFigures>,
}

/// One agent's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AgentFigures {
    /// The agent.
    pub agent: AgentId,
    /// Its figures.
    pub figures: Figures,
}
