/**
 * The statuses a platform reports (R25); a report may only move a message further along
 * (`failed` may follow `sent`, never `delivered`).
 *
 * This interface was referenced by `DeliveryReport`'s JSON-Schema
 * via the `definition` "ReportedStatus".
 */
export type ReportedStatus = "sent" | "delivered" | "read" | "failed";
/**
 * A platform's news about a message the engine sent through the channel's webhook
 * (`POST /v1/channels/{channel}/statuses`, R25): what a native platform's status webhook
 * says, for channels served by an adapter of your own. `provider_id` is the `id` the webhook
 * answered when it took the message.
 */
export interface DeliveryReport {
    /**
     * The platform's id of the message: the `id` your webhook answered for it.
     */
    provider_id: string;
    /**
     * Why it failed, in the platform's words (only with `failed`).
     */
    reason?: string | null;
    /**
     * When the platform sent the news; required on a channel whose webhooks are signed, as
     * for messages.
     */
    sent_at?: string | null;
    status: ReportedStatus;
}
