/**
 * Every frame the engine sends on the agent WebSocket.
 */
export type ServerFrame = {
    agent: AgentProfile;
    /**
     * Every channel's limits as this engine is configured, for the composer.
     */
    channels: ChannelLimits[];
    /**
     * The engine's clock now: countdowns (`window_expires_at`, `expires_at`) are in its
     * time, so a client shows them against this, not its own clock.
     */
    now: string;
    presence: Presence;
    /**
     * The protocol version (1).
     */
    protocol: number;
    /**
     * The last sequence number pushed to this agent; resume from your own if you have one.
     */
    seq: number;
    type: "welcome";
} | {
    /**
     * The request's `id`.
     */
    id: string;
    result: ReplyResult;
    type: "ok";
} | (ErrorFrame & {
    type: "error";
}) | {
    event: Push;
    /**
     * Per agent, starting at 1, no gaps, in order across all its connections (R17).
     */
    seq: number;
    type: "push";
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
 * A messaging channel a customer writes on.
 */
export type Channel = "whatsapp" | "messenger" | "instagram" | "wechat" | "telegram" | "line" | "webchat" | "sms" | "email";
/**
 * Whether an agent takes new chats.
 */
export type Presence = "online" | "away" | "offline";
/**
 * What a successful request returns.
 */
export type ReplyResult = {
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
} | {
    kind: "presence";
    presence: Presence;
} | {
    kind: "resumed";
    /**
     * How many.
     */
    replayed: number;
} | (Snapshot & {
    kind: "snapshot";
}) | {
    kind: "pong";
} | {
    /**
     * The agents' rows, as the supervisors' board shows them.
     */
    agents: AgentRow[];
    kind: "agents";
} | {
    /**
     * When it expires; the connection is closed with 4001 then unless refreshed again.
     */
    expires_at: string | null;
    kind: "refreshed";
};
/**
 * A customer, across all of its channel identities.
 */
export type CustomerId = string;
/**
 * A chat (conversation): one customer on one channel.
 */
export type ChatId = string;
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
 * Something the engine tells an agent without being asked.
 */
export type Push = (OfferView & {
    kind: "chat_offered";
}) | {
    chat_id: ChatId;
    kind: "offer_withdrawn";
    reason: WithdrawReason;
} | {
    chat: ChatView;
    kind: "chat_reopened";
} | {
    by: ActivatedBy;
    chat: ChatView;
    kind: "chat_activated";
    /**
     * Your limit.
     */
    limit: number;
    /**
     * Your load after it.
     */
    load: number;
    /**
     * Whether it took you over your limit (R05, forced transfer).
     */
    over_limit: boolean;
} | {
    chat_id: ChatId;
    kind: "customer_message";
    message: Message;
} | {
    chat_id: ChatId;
    kind: "chat_closed";
    reason: CloseReason;
} | {
    chat_id: ChatId;
    kind: "message_sent";
    message: Message;
} | {
    chat: ChatView;
    kind: "chat_updated";
} | {
    chat_id: ChatId;
    kind: "chat_transferred";
    to: AgentId;
} | {
    entry: ArchiveEntry;
    kind: "archive_entry_changed";
} | {
    kind: "presence_changed";
    presence: Presence;
} | {
    chat_id: ChatId;
    delivery: Delivery;
    kind: "message_status";
    /**
     * The message's place in the chat's history.
     */
    seq: number;
} | {
    kind: "limit_changed";
    /**
     * Your limit.
     */
    limit: number;
    /**
     * Your load.
     */
    load: number;
};
/**
 * Why an offer was taken back.
 */
export type WithdrawReason = "timeout" | "chat_closed" | "agent_unavailable" | "limit_lowered" | "room_taken";
/**
 * Why a chat became active.
 */
export type ActivatedBy = "customer_replied" | "snooze_ended" | "transfer" | "accepted";
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
 * What one channel allows an agent to send, as configured.
 */
export interface ChannelLimits {
    channel: Channel;
    /**
     * The longest message, in characters; a longer one is refused with `message_too_long`.
     */
    max_message_length: number;
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
 * The whole state of one agent's desk, for a client that missed too much.
 */
export interface Snapshot {
    /**
     * Its live chats (active, reopened, snoozed).
     */
    chats: ChatView[];
    /**
     * Its limit.
     */
    limit: number;
    /**
     * Its load.
     */
    load: number;
    /**
     * Its pending offers.
     */
    offers: OfferView[];
    presence: Presence;
    /**
     * Continue from this sequence number.
     */
    seq: number;
}
/**
 * A chat offered to the agent (R06).
 */
export interface OfferView {
    chat: ChatView;
    /**
     * Accept before this, or it goes to the next agent and you are set away.
     */
    expires_at: string;
    queue: QueueId;
    /**
     * The skills it requires at the step it was offered at, with their least levels (R19).
     */
    requires: {
        [k: string]: number | undefined;
    };
    /**
     * That step of its queue's workflow, from 0 (R19).
     */
    step: number;
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
