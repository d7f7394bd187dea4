/**
 * Every frame the engine sends on the supervisor WebSocket.
 */
export type SupervisorServerFrame = {
    /**
     * The engine's clock now: countdowns (`window_expires_at`, `expires_at`) are in its
     * time, so a client shows them against this, not its own clock.
     */
    now: string;
    /**
     * The protocol version (1).
     */
    protocol: number;
    /**
     * The last sequence number of the board's changes.
     */
    seq: number;
    supervisor: AgentProfile;
    type: "welcome";
} | {
    /**
     * The request's `id`.
     */
    id: string;
    result: SupervisorResult;
    type: "ok";
} | (ErrorFrame & {
    type: "error";
}) | {
    /**
     * The changes.
     */
    events: BoardEvent[];
    type: "pushes";
};
/**
 * An agent (or supervisor, or admin): the person behind one or more connections.
 */
export type AgentId = string;
/**
 * A routing queue. By default there is one per channel, named after it.
 */
export type QueueId = string;
/**
 * What an agent may do.
 */
export type Role = "agent" | "supervisor" | "admin";
/**
 * What a successful supervisor request returns.
 */
export type SupervisorResult = (Board & {
    kind: "board";
}) | {
    kind: "resumed";
    /**
     * How many events they held.
     */
    replayed: number;
} | {
    kind: "done";
} | {
    chat: ChatView;
    kind: "chat";
} | {
    chat: ChatView;
    kind: "history";
    /**
     * The page: the newest messages before `before_seq` (or of all), oldest first.
     */
    messages: HistoryMessage[];
    /**
     * Pass as `before_seq` for the next, older page; null when this page starts at the
     * chat's first message.
     */
    next_before_seq: number | null;
} | {
    /**
     * Newest first.
     */
    entries: ArchiveEntry[];
    kind: "archive";
    /**
     * Pass as `before` for the next, older page; null when this was the last.
     */
    next: string | null;
} | (AnalyticsReport & {
    kind: "analytics";
}) | {
    kind: "pong";
} | {
    /**
     * When it expires.
     */
    expires_at: string | null;
    kind: "refreshed";
};
/**
 * Whether an agent takes new chats.
 */
export type Presence = "online" | "away" | "offline";
/**
 * A messaging channel a customer writes on.
 */
export type Channel = "whatsapp" | "messenger" | "instagram" | "wechat" | "telegram" | "line" | "webchat" | "sms" | "email";
/**
 * A chat (conversation): one customer on one channel.
 */
export type ChatId = string;
/**
 * A customer, across all of its channel identities.
 */
export type CustomerId = string;
/**
 * What a customer's message carries besides text (R23).
 */
export type Attachment = {
    /**
     * Its file name.
     */
    filename: string | null;
    /**
     * The platform's media id.
     */
    id: string | null;
    kind: MediaKind;
    /**
     * Its MIME type.
     */
    mime: string | null;
    type: "media";
    /**
     * Where to fetch it, if the platform gave a URL.
     */
    url: string | null;
} | {
    /**
     * Its address.
     */
    address: string | null;
    /**
     * Degrees north.
     */
    latitude: string;
    /**
     * Degrees east.
     */
    longitude: string;
    /**
     * The place's name.
     */
    name: string | null;
    type: "location";
} | {
    /**
     * The button's or row's id.
     */
    id: string;
    type: "reply";
} | {
    /**
     * The platform's type.
     */
    kind: string;
    type: "unsupported";
};
/**
 * Kinds of media.
 */
export type MediaKind = "image" | "document" | "audio" | "video" | "sticker";
/**
 * Who wrote a message.
 */
export type Author = {
    by: "customer";
} | {
    agent: AgentId;
    by: "agent";
} | {
    by: "system";
};
/**
 * Where a message to the customer is (R24, R25): `pending` in the outbox, `sent` (the
 * platform took it), `delivered`, `read`, or `failed` with the platform's reason — then its
 * agent may send it again (`retry_message`).
 */
export type Delivery = {
    status: "pending";
} | {
    status: "sent";
} | {
    status: "delivered";
} | {
    status: "read";
} | {
    /**
     * Why, in the platform's words.
     */
    reason: string;
    status: "failed";
};
/**
 * What kind of message it is.
 */
export type MessageKind = "text" | "template" | "notice" | "after_hours";
/**
 * Until when a chat is snoozed (R13).
 */
export type SnoozeUntil = {
    /**
     * When the chat returns to `active`.
     */
    at: string;
    until: "time";
} | {
    until: "reply";
};
/**
 * Where a chat is in its life. Every state but `closed` is *live* (R01).
 */
export type ChatState = "bot" | "queued" | "active" | "reopened" | "snoozed" | "closed";
/**
 * Why a chat was closed.
 */
export type CloseReason = "agent" | "stop" | "timeout" | "supervisor";
/**
 * The stable error codes of the wire protocol.
 */
export type ErrorCode = "active_elsewhere" | "window_closed" | "opted_out" | "push_already_sent" | "not_owner" | "not_found" | "agent_unavailable" | "over_limit" | "message_too_long" | "bad_request" | "unauthorized" | "forbidden" | "rate_limited" | "storage_unavailable" | "quota_exceeded";
/**
 * One change of the board.
 */
export type BoardEvent = {
    /**
     * Increasing by one for every change of any queue; a subscription to some queues sees
     * only theirs, so it may skip numbers. Nothing is skipped within a connection otherwise.
     */
    seq: number;
} & BoardEvent1;
export type BoardEvent1 = {
    agent: AgentRow;
    kind: "agent_changed";
} | {
    chat: WaitingView;
    kind: "chat_queued";
    queue: QueueId;
} | {
    chat: WaitingView;
    kind: "chat_stepped";
    queue: QueueId;
} | {
    kind: "queue_hours";
    /**
     * Whether it takes offers now.
     */
    open: boolean;
    queue: QueueId;
} | {
    chat_id: ChatId;
    kind: "chat_left_queue";
    /**
     * The agent it was offered to; null when it ended while waiting (#STOP).
     */
    offered_to: AgentId | null;
    queue: QueueId;
} | {
    agent_id: AgentId;
    kind: "agent_removed";
} | {
    chat: ReopenedChat;
    kind: "chat_reopened";
} | {
    chat_id: ChatId;
    kind: "reopen_ended";
    outcome: ReopenOutcome;
} | {
    kind: "kpis_changed";
    kpis: Kpis;
};
/**
 * How a reopened chat stopped waiting.
 */
export type ReopenOutcome = "replied" | "declined" | "expired" | "closed";
/**
 * An agent's standing data.
 */
export interface AgentProfile {
    /**
     * Its limits per channel, where it has any (R22).
     */
    channel_limits: {
        [k: string]: number | undefined;
    };
    id: AgentId;
    /**
     * How many chats it may hold active at once.
     */
    limit: number;
    /**
     * The name shown to others.
     */
    name: string;
    /**
     * The queues it serves; empty means all.
     */
    queues: QueueId[];
    role: Role;
    /**
     * Its skills, each with a level from 1 to 5 (R19).
     */
    skills: {
        [k: string]: number | undefined;
    };
}
/**
 * The whole board a supervisor watches.
 */
export interface Board {
    /**
     * Every agent.
     */
    agents: AgentRow[];
    kpis: Kpis;
    /**
     * The subscribed queues with their waiting chats.
     */
    queues: QueueView[];
    /**
     * Every reopened chat of the subscribed queues, waiting for its customer.
     */
    reopened: ReopenedChat[];
    /**
     * The changes that follow carry sequence numbers after this one. A change may repeat
     * what the board already shows; every event is an upsert, so applying it again is safe.
     */
    seq: number;
}
/**
 * An agent as supervisors see it.
 */
export interface AgentRow {
    /**
     * Its limits per channel (R22).
     */
    channel_limits: {
        [k: string]: number | undefined;
    };
    /**
     * Chats it holds or is offered, per channel (R22).
     */
    channel_load: {
        [k: string]: number | undefined;
    };
    id: AgentId;
    /**
     * Its concurrency limit.
     */
    limit: number;
    /**
     * Active and snoozed chats.
     */
    load: number;
    /**
     * Display name.
     */
    name: string;
    /**
     * Offers it has not answered.
     */
    offered: number;
    /**
     * Whether its load is above its limit (R05, forced transfer).
     */
    over_limit: boolean;
    /**
     * Times a chat took it over its limit or a channel's, since the engine started.
     */
    overrides: number;
    presence: Presence;
    role: Role;
    /**
     * Its skills with their levels (R19).
     */
    skills: {
        [k: string]: number | undefined;
    };
}
/**
 * The KPIs of R14 since the start of the current UTC day.
 */
export interface Kpis {
    figures: Figures;
    /**
     * The start of the day they count from.
     */
    since: string;
}
/**
 * The KPIs of R14 over some events.
 */
export interface Figures {
    /**
     * Declined chats: reopened chats the customer answered with #STOP.
     */
    declined: number;
    /**
     * Times a chat took an agent over its limit (R05, forced transfers).
     */
    overrides: number;
    queue_wait: Durations;
    rejected: Rejections;
    /**
     * Agent-initiated chats: successful reopens.
     */
    reopens: number;
    /**
     * User-replied chats: reopened chats the customer answered.
     */
    replied: number;
    sla: Attainment;
    /**
     * The same per queue and channel, by queue then channel.
     */
    sla_by_queue: QueueAttainment[];
    /**
     * Template pushes after the window (R07).
     */
    templates: number;
    time_to_accept: Durations;
}
/**
 * Percentiles of a duration, in milliseconds; all zero when there were none.
 */
export interface Durations {
    /**
     * How many were measured.
     */
    count: number;
    /**
     * The longest.
     */
    max_ms: number;
    /**
     * The median (nearest rank).
     */
    p50_ms: number;
    /**
     * The 90th percentile (nearest rank).
     */
    p90_ms: number;
}
/**
 * Reopens refused, by reason.
 */
export interface Rejections {
    /**
     * The customer was live elsewhere (R03, R09).
     */
    active_elsewhere: number;
    /**
     * The customer had opted out (R08).
     */
    opted_out: number;
    /**
     * The window had closed (R02).
     */
    window_closed: number;
}
/**
 * How many chats were answered within their SLA, of those answered (R20).
 */
export interface Attainment {
    /**
     * Chats answered (accepted) whose queue has an SLA.
     */
    answered: number;
    /**
     * Of those, answered within it.
     */
    within: number;
}
/**
 * SLA attainment of one queue on one channel (R20).
 */
export interface QueueAttainment {
    /**
     * Chats answered (accepted) whose queue has an SLA.
     */
    answered: number;
    channel: Channel;
    queue: QueueId;
    /**
     * Of those, answered within it.
     */
    within: number;
}
/**
 * A queue and its waiting chats.
 */
export interface QueueView {
    id: QueueId;
    /**
     * Whether it takes offers now (R21: a queue outside its opening hours does not).
     */
    open: boolean;
    /**
     * Its priority (R20).
     */
    priority: number;
    /**
     * Its SLA: answer within this many seconds (R20); null when it has none.
     */
    sla_secs: number | null;
    /**
     * Waiting chats, next first (R20: effective priority, then age). Offered chats are not
     * waiting.
     */
    waiting: WaitingView[];
}
/**
 * One waiting chat.
 */
export interface WaitingView {
    /**
     * Its channel.
     */
    channel: Channel | null;
    chat_id: ChatId;
    /**
     * Its customer's name and contact as when it was queued; null where the engine does
     * not know them.
     */
    customer: CustomerView | null;
    customer_id: CustomerId;
    /**
     * When its SLA is due; null when its queue has none (R20).
     */
    due_at: string | null;
    /**
     * How long it may still wait at its position, in seconds, from the queue's recent answer
     * rate; null until the queue has answered a few chats (R20).
     */
    estimated_wait_secs: number | null;
    /**
     * 1 = next.
     */
    position: number;
    /**
     * Its effective priority when this view was made: the queue's, its rules', and what
     * waiting and a near SLA add (R20).
     */
    priority: number;
    /**
     * The skills it requires at its step, with their least levels (R19).
     */
    requires: {
        [k: string]: number | undefined;
    };
    /**
     * Since when it has waited (an offer that came back keeps it).
     */
    since: string;
    /**
     * The step of its queue's workflow it has reached, from 0 (R19).
     */
    step: number;
    /**
     * How many steps the workflow has.
     */
    steps: number;
}
/**
 * A customer as agents see it.
 */
export interface CustomerView {
    /**
     * Email, if known.
     */
    email: string | null;
    id: CustomerId;
    /**
     * Name, if known.
     */
    name: string | null;
    /**
     * Phone, if known.
     */
    phone: string | null;
}
/**
 * A reopened chat waiting for its customer ("supervise and tip-off", R15).
 */
export interface ReopenedChat {
    channel: Channel;
    chat_id: ChatId;
    customer: CustomerView;
    queue: QueueId;
    /**
     * When.
     */
    reopened_at: string;
    reopened_by: AgentId;
    /**
     * When the window closes and the reopen lapses; null on channels without one.
     */
    window_expires_at: string | null;
}
/**
 * A chat as agents see it.
 */
export interface ChatView {
    channel: Channel;
    customer: CustomerView;
    id: ChatId;
    /**
     * The customer's last message.
     */
    last_customer_message_at: string | null;
    /**
     * The newest message.
     */
    last_message: Message | null;
    /**
     * Its owner.
     */
    owner: AgentId | null;
    /**
     * The agent who reopened it, if it was reopened.
     */
    reopened_by: AgentId | null;
    /**
     * Until when it is snoozed.
     */
    snooze: SnoozeUntil | null;
    state: ChatState;
    /**
     * When the messaging window closes; null on channels without one.
     */
    window_expires_at: string | null;
}
/**
 * One message of a chat's history.
 */
export interface Message {
    /**
     * When the engine took it.
     */
    at: string;
    /**
     * What a customer's message carries besides text (R23); absent for plain text.
     */
    attachment?: Attachment | null;
    author: Author;
    /**
     * Where a message to the customer is (R24, R25); absent for the customer's own.
     */
    delivery?: Delivery | null;
    kind: MessageKind;
    /**
     * The text (for a template, its name and parameters as sent; for media, its caption).
     */
    text: string;
}
/**
 * A message of a chat's history, with its place in it.
 */
export interface HistoryMessage {
    /**
     * When the engine took it.
     */
    at: string;
    /**
     * What a customer's message carries besides text (R23); absent for plain text.
     */
    attachment?: Attachment | null;
    author: Author;
    /**
     * Where a message to the customer is (R24, R25); absent for the customer's own.
     */
    delivery?: Delivery | null;
    kind: MessageKind;
    /**
     * Its position in the chat's history: 0 for the first message, then one more each.
     */
    seq: number;
    /**
     * The text (for a template, its name and parameters as sent; for media, its caption).
     */
    text: string;
}
/**
 * One row of the archive (R16).
 */
export interface ArchiveEntry {
    channel: Channel;
    chat_id: ChatId;
    /**
     * Why it closed, if closed.
     */
    close_reason: CloseReason | null;
    /**
     * When it closed, if closed.
     */
    closed_at: string | null;
    customer: CustomerView;
    /**
     * The customer's last message.
     */
    last_customer_message_at: string | null;
    /**
     * Its owner, or last owner.
     */
    owner: AgentId | null;
    /**
     * Whether the Reopen button is on now (R02, R03, R08).
     */
    reopenable: boolean;
    state: ChatState;
    /**
     * Whether the one template push is available now (R07).
     */
    template_allowed: boolean;
    /**
     * When the messaging window closes (for the countdown); null on channels without one.
     */
    window_expires_at: string | null;
}
/**
 * The KPIs of R14 over a range (`GET /v1/analytics`, `get_analytics`).
 */
export interface AnalyticsReport {
    /**
     * Each agent's figures, by id; agents without events are left out.
     */
    agents: AgentFigures[];
    query: AnalyticsQuery;
    total: Figures;
}
/**
 * One agent's figures.
 */
export interface AgentFigures {
    agent: AgentId;
    figures: Figures;
}
/**
 * Which KPI events an analytics query counts; every part is optional.
 */
export interface AnalyticsQuery {
    /**
     * Only this agent's.
     */
    agent: AgentId | null;
    /**
     * Only this channel's.
     */
    channel: Channel | null;
    /**
     * From this instant, inclusive.
     */
    from: string | null;
    /**
     * To this instant, exclusive.
     */
    to: string | null;
}
/**
 * An error reply.
 */
export interface ErrorFrame {
    code: ErrorCode;
    /**
     * With `window_closed`: when the window closed.
     */
    expired_at?: string | null;
    /**
     * The request's `id`; null when the frame was too broken to have one.
     */
    id: string | null;
    /**
     * With `active_elsewhere`: where the customer is live.
     */
    live?: LiveElsewhere | null;
    /**
     * A sentence naming what was wrong.
     */
    message: string;
}
/**
 * Where a customer is live, told to an agent whose reopen lost (R03).
 */
export interface LiveElsewhere {
    chat_id: ChatId;
    /**
     * Its owner, if an agent owns it.
     */
    owner: AgentId | null;
    /**
     * The owner's display name: the core knows only ids, so the engine fills it in before
     * the refusal reaches an agent's socket.
     */
    owner_name: string | null;
    state: ChatState;
}
