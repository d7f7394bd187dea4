/**
 * A customer's message, as a channel delivers it (`POST /v1/channels/{channel}/messages`).
 */
export interface InboundMessage {
    /**
     * The customer's email, if known.
     */
    email?: string | null;
    /**
     * The customer's address on the channel (`+4915…`, a PSID, an email address).
     */
    from: string;
    /**
     * The customer's name, if the channel tells it.
     */
    name?: string | null;
    /**
     * The customer's phone, if known.
     */
    phone?: string | null;
    /**
     * When the platform sent it. Required on a channel whose webhooks are signed: a signed
     * body older or newer than the replay window is refused.
     */
    sent_at?: string | null;
    /**
     * The text.
     */
    text: string;
}
