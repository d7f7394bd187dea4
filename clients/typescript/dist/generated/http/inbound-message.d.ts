/**
 * A routing queue. By default there is one per channel, named after it.
 *
 * This interface was referenced by `InboundMessage`'s JSON-Schema
 * via the `definition` "QueueId".
 */
export type QueueId = string;
/**
 * A customer's message, as a channel delivers it (`POST /v1/channels/{channel}/messages`).
 */
export interface InboundMessage {
    /**
     * Customer attributes the queue's routing rules match (`{"tier": "vip"}`) (R19, R20).
     */
    attributes?: {
        [k: string]: string | undefined;
    };
    /**
     * The customer's email, if known.
     */
    email?: string | null;
    /**
     * The customer's address on the channel (`+4915…`, a PSID, an email address).
     */
    from: string;
    /**
     * The customer's language (`es`): the chat requires the skill `language:es` (R19).
     */
    language?: string | null;
    /**
     * The customer's name, if the channel tells it.
     */
    name?: string | null;
    /**
     * The customer's phone, if known.
     */
    phone?: string | null;
    /**
     * The queue to wait in (R19); absent: the channel's queue.
     */
    queue?: QueueId | null;
    /**
     * When the platform sent it. Required on a channel whose webhooks are signed: a signed
     * body older or newer than the replay window is refused.
     */
    sent_at?: string | null;
    /**
     * Skills the chat requires, each with its least level from 1 to 5 (R19).
     */
    skills?: {
        [k: string]: number | undefined;
    };
    /**
     * The text.
     */
    text: string;
}
