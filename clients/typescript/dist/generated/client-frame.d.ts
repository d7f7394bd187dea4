/**
 * A request from an agent's client.
 */
export type ClientFrame = {
    /**
     * Chosen by the client; echoed in the one reply to this request.
     */
    id: string;
} & ({
    chat_id: ChatId;
    type: "reopen";
} | {
    chat_id: ChatId;
    /**
     * Tag the message `human_agent` (Messenger/Instagram, after the 24 h window).
     */
    human_agent_tag?: boolean;
    /**
     * The text; at most the channel's length.
     */
    text: string;
    type: "send_message";
} | {
    chat_id: ChatId;
    /**
     * The failed message's place in the chat's history.
     */
    seq: number;
    type: "retry_message";
} | {
    chat_id: ChatId;
    /**
     * Its parameters.
     */
    params?: string[];
    /**
     * The template's name.
     */
    template: string;
    type: "send_template";
} | {
    chat_id: ChatId;
    type: "accept";
} | {
    chat_id: ChatId;
    type: "decline";
} | {
    chat_id: ChatId;
    /**
     * Ignore the target's limit; supervisors and admins only.
     */
    force?: boolean;
    to: AgentId;
    type: "transfer";
} | {
    chat_id: ChatId;
    type: "close";
} | {
    chat_id: ChatId;
    type: "snooze";
    /**
     * Until when; absent or null means until the customer replies.
     */
    until?: string | null;
} | {
    presence: Presence;
    type: "set_presence";
} | {
    /**
     * The previous page's `next`, for the page after it (older entries); absent for the
     * first page. Opaque: pass it back as it came.
     */
    before?: string | null;
    /**
     * At most this many entries, newest first (default 50, at most 200).
     */
    limit?: number | null;
    /**
     * Search by customer name, email or phone: every word must match the start of a
     * word of the name or email (`ana` finds "Ana Lima" and "ana@x.io"), and text made of
     * digits and phone punctuation matches the start of the phone number (`+49 15` finds
     * "+4915112345"); any case. An engine without a database matches a case-insensitive
     * substring of the name, email, phone or channel address instead.
     */
    query?: string | null;
    scope?: Scope;
    /**
     * Only chats in this state.
     */
    state?: ChatState | null;
    type: "list_archive";
} | {
    /**
     * The chats on screen.
     */
    chat_ids: ChatId[];
    type: "watch_archive";
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
     * The last sequence number the client processed.
     */
    after_seq: number;
    type: "resume";
} | {
    type: "snapshot";
} | {
    /**
     * The sequence number.
     */
    seq: number;
    type: "ack";
} | {
    type: "ping";
} | {
    type: "list_agents";
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
 * Which chats an archive listing covers (R16).
 *
 * This interface was referenced by `undefined`'s JSON-Schema
 * via the `definition` "Scope".
 */
export type Scope = "mine" | "all";
