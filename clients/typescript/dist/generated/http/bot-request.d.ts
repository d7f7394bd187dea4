/**
 * A customer entering or leaving a bot journey (`POST /v1/channels/{channel}/bot/start` and
 * `…/bot/handover`).
 */
export interface BotRequest {
    /**
     * The customer's address on the channel.
     */
    from: string;
    /**
     * The customer's name, if the channel tells it.
     */
    name?: string | null;
    /**
     * When the platform sent it; required on a channel whose webhooks are signed, as for
     * messages.
     */
    sent_at?: string | null;
}
