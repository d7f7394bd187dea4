/**
 * A chat (conversation): one customer on one channel.
 *
 * This interface was referenced by `IngressReceipt`'s JSON-Schema
 * via the `definition` "ChatId".
 */
export type ChatId = string;
/**
 * A customer, across all of its channel identities.
 *
 * This interface was referenced by `IngressReceipt`'s JSON-Schema
 * via the `definition` "CustomerId".
 */
export type CustomerId = string;
/**
 * An agent (or supervisor, or admin): the person behind one or more connections.
 *
 * This interface was referenced by `IngressReceipt`'s JSON-Schema
 * via the `definition` "AgentId".
 */
export type AgentId = string;
/**
 * A routing queue. By default there is one per channel, named after it.
 *
 * This interface was referenced by `IngressReceipt`'s JSON-Schema
 * via the `definition` "QueueId".
 */
export type QueueId = string;
/**
 * Where a chat is in its life. Every state but `closed` is *live* (R01).
 *
 * This interface was referenced by `IngressReceipt`'s JSON-Schema
 * via the `definition` "ChatState".
 */
export type ChatState = "bot" | "queued" | "active" | "reopened" | "snoozed" | "closed";
/**
 * What the engine did with an inbound message or bot call.
 */
export interface IngressReceipt {
    /**
     * The chat the message went to; null for a #STOP with no live chat.
     */
    chat_id: ChatId | null;
    customer_id: CustomerId;
    /**
     * How long it may wait, in seconds, from the queue's recent answer rate; null until the
     * queue has answered a few chats (R20).
     */
    estimated_wait_secs: number | null;
    /**
     * Its owner now.
     */
    owner: AgentId | null;
    /**
     * The queue it waits in, if it waits.
     */
    queue: QueueId | null;
    /**
     * Its place in the queue, if it waits (1 = next), in offer order (R20).
     */
    queue_position: number | null;
    /**
     * That chat's state now.
     */
    state: ChatState | null;
}
