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
     * Its owner now.
     */
    owner: AgentId | null;
    /**
     * Its place in the queue, if it waits (1 = next).
     */
    queue_position: number | null;
    /**
     * That chat's state now.
     */
    state: ChatState | null;
}
