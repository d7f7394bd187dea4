/**
 * A routing queue. By default there is one per channel, named after it.
 *
 * This interface was referenced by `BotRequest`'s JSON-Schema
 * via the `definition` "QueueId".
 */
export type QueueId = string;
/**
 * A customer entering or leaving a bot journey (`POST /v1/channels/{channel}/bot/start` and
 * `…/bot/handover`).
 */
export interface BotRequest {
    /**
     * Customer attributes the queue's routing rules match (`{"tier": "vip"}`) (R19, R20).
     */
    attributes?: {
        [k: string]: string | undefined;
    };
    /**
     * The customer's address on the channel.
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
     * On hand-over, what the bot learnt for routing: as for messages (R19). (The same four
     * fields as [`InboundMessage`]'s, written out: unknown fields are refused, and serde
     * cannot refuse them through a flattened struct.)
     * The queue to wait in (R19); absent: the channel's queue.
     */
    queue?: QueueId | null;
    /**
     * When the platform sent it; required on a channel whose webhooks are signed, as for
     * messages.
     */
    sent_at?: string | null;
    /**
     * Skills the chat requires, each with its least level from 1 to 5 (R19).
     */
    skills?: {
        [k: string]: number | undefined;
    };
}
