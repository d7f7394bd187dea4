/**
 * An agent (or supervisor, or admin): the person behind one or more connections.
 *
 * This interface was referenced by `OutboundMessage`'s JSON-Schema
 * via the `definition` "AgentId".
 */
export type AgentId = string;
/**
 * A messaging channel a customer writes on.
 *
 * This interface was referenced by `OutboundMessage`'s JSON-Schema
 * via the `definition` "Channel".
 */
export type Channel = "whatsapp" | "messenger" | "instagram" | "wechat" | "telegram" | "line" | "webchat" | "sms" | "email";
/**
 * A chat (conversation): one customer on one channel.
 *
 * This interface was referenced by `OutboundMessage`'s JSON-Schema
 * via the `definition` "ChatId".
 */
export type ChatId = string;
/**
 * A customer, across all of its channel identities.
 *
 * This interface was referenced by `OutboundMessage`'s JSON-Schema
 * via the `definition` "CustomerId".
 */
export type CustomerId = string;
/**
 * What kind of message it is.
 *
 * This interface was referenced by `OutboundMessage`'s JSON-Schema
 * via the `definition` "MessageKind".
 */
export type MessageKind = "text" | "template" | "notice" | "after_hours";
/**
 * A message the engine sends to a customer through the outbound connector.
 */
export interface OutboundMessage {
    /**
     * The agent behind it, if any.
     */
    agent: AgentId | null;
    channel: Channel;
    chat_id: ChatId;
    customer_id: CustomerId;
    /**
     * Sent with the `human_agent` tag.
     */
    human_agent_tag?: boolean;
    kind: MessageKind;
    /**
     * The template's parameters.
     */
    params?: string[];
    /**
     * The platform's id of the customer's last message in the chat (email: its
     * `Message-ID`), so that a reply can thread under it (`In-Reply-To`).
     */
    reply_to?: string | null;
    /**
     * The text, or the template name.
     */
    text: string;
    /**
     * The customer's address on it.
     */
    to: string;
    /**
     * The workspace (R27) the message is of, so that one webhook can serve many; absent
     * for `default`. Added in this version.
     */
    workspace?: string | null;
}
