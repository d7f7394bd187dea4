/**
 * A request from a supervisor's client.
 */
export type SupervisorFrame = {
    /**
     * Chosen by the client; echoed in the one reply to this request.
     */
    id: string;
} & ({
    /**
     * The last sequence number the client processed.
     */
    after_seq?: number | null;
    /**
     * The queues; absent or null means every queue.
     */
    queues?: QueueId[] | null;
    type: "subscribe";
} | {
    agent: AgentId;
    /**
     * The new limit.
     */
    limit: number;
    type: "set_limit";
} | {
    agent: AgentId;
    /**
     * Its skills now, each with a level from 1 to 5.
     */
    skills: {
        [k: string]: number | undefined;
    };
    type: "set_skills";
} | {
    agent: AgentId;
    presence: Presence;
    type: "set_presence";
} | {
    chat_id: ChatId;
    to: AgentId;
    type: "transfer";
} | {
    chat_id: ChatId;
    type: "close";
} | {
    /**
     * Only messages before this one (the previous page's `next_before_seq`); absent for
     * the newest page.
     */
    before_seq?: number | null;
    chat_id: ChatId;
    /**
     * At most this many messages (default 50, at most 500).
     */
    limit?: number | null;
    type: "get_chat";
} | {
    /**
     * The previous page's `next`.
     */
    before?: string | null;
    /**
     * At most this many entries, as on the agent socket.
     */
    limit?: number | null;
    /**
     * Customer search text, as on the agent socket.
     */
    query?: string | null;
    /**
     * Only chats in this state (`active`: the chats a transfer can move).
     */
    state?: ChatState | null;
    type: "list_archive";
} | {
    /**
     * Only this agent's.
     */
    agent?: AgentId | null;
    /**
     * Only this channel's.
     */
    channel?: Channel | null;
    /**
     * From this instant, inclusive.
     */
    from?: string | null;
    /**
     * To this instant, exclusive.
     */
    to?: string | null;
    type: "get_analytics";
} | {
    type: "ping";
} | {
    /**
     * The new token (a JWT).
     */
    token: string;
    type: "refresh";
});
/**
 * An agent (or supervisor, or admin): the person behind one or more connections.
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "AgentId".
 */
export type AgentId = string;
/**
 * A messaging channel a customer writes on.
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "Channel".
 */
export type Channel = "whatsapp" | "messenger" | "instagram" | "wechat" | "telegram" | "line" | "webchat" | "sms" | "email";
/**
 * A chat (conversation): one customer on one channel.
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "ChatId".
 */
export type ChatId = string;
/**
 * Where a chat is in its life. Every state but `closed` is *live* (R01).
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "ChatState".
 */
export type ChatState = "bot" | "queued" | "active" | "reopened" | "snoozed" | "closed";
/**
 * Whether an agent takes new chats.
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "Presence".
 */
export type Presence = "online" | "away" | "offline";
/**
 * A routing queue. By default there is one per channel, named after it.
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "QueueId".
 */
export type QueueId = string;
