/**
 * An agent (or supervisor, or admin): the person behind one or more connections.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "AgentId".
 */
export type AgentId = string;
/**
 * A messaging channel a customer writes on.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "Channel".
 */
export type Channel = "whatsapp" | "messenger" | "instagram" | "wechat" | "telegram" | "line" | "webchat" | "sms" | "email";
/**
 * A routing queue. By default there is one per channel, named after it.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "QueueId".
 */
export type QueueId = string;
/**
 * The KPIs of R14 over a range (`GET /v1/analytics`, `get_analytics`).
 */
export interface AnalyticsReport {
    /**
     * Each agent's figures, by id; agents without events are left out.
     */
    agents: AgentFigures[];
    query: AnalyticsQuery;
    total: Figures;
}
/**
 * One agent's figures.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "AgentFigures".
 */
export interface AgentFigures {
    agent: AgentId;
    figures: Figures;
}
/**
 * The KPIs of R14 over some events.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "Figures".
 */
export interface Figures {
    /**
     * Declined chats: reopened chats the customer answered with #STOP.
     */
    declined: number;
    /**
     * Times a chat took an agent over its limit (R05, forced transfers).
     */
    overrides: number;
    queue_wait: Durations;
    rejected: Rejections;
    /**
     * Agent-initiated chats: successful reopens.
     */
    reopens: number;
    /**
     * User-replied chats: reopened chats the customer answered.
     */
    replied: number;
    sla: Attainment;
    /**
     * The same per queue and channel, by queue then channel.
     */
    sla_by_queue: QueueAttainment[];
    /**
     * Template pushes after the window (R07).
     */
    templates: number;
    time_to_accept: Durations;
}
/**
 * Percentiles of a duration, in milliseconds; all zero when there were none.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "Durations".
 */
export interface Durations {
    /**
     * How many were measured.
     */
    count: number;
    /**
     * The longest.
     */
    max_ms: number;
    /**
     * The median (nearest rank).
     */
    p50_ms: number;
    /**
     * The 90th percentile (nearest rank).
     */
    p90_ms: number;
}
/**
 * Reopens refused, by reason.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "Rejections".
 */
export interface Rejections {
    /**
     * The customer was live elsewhere (R03, R09).
     */
    active_elsewhere: number;
    /**
     * The customer had opted out (R08).
     */
    opted_out: number;
    /**
     * The window had closed (R02).
     */
    window_closed: number;
}
/**
 * How many chats were answered within their SLA, of those answered (R20).
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "Attainment".
 */
export interface Attainment {
    /**
     * Chats answered (accepted) whose queue has an SLA.
     */
    answered: number;
    /**
     * Of those, answered within it.
     */
    within: number;
}
/**
 * SLA attainment of one queue on one channel (R20).
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "QueueAttainment".
 */
export interface QueueAttainment {
    /**
     * Chats answered (accepted) whose queue has an SLA.
     */
    answered: number;
    channel: Channel;
    queue: QueueId;
    /**
     * Of those, answered within it.
     */
    within: number;
}
/**
 * Which KPI events an analytics query counts; every part is optional.
 *
 * This interface was referenced by `AnalyticsReport`'s JSON-Schema
 * via the `definition` "AnalyticsQuery".
 */
export interface AnalyticsQuery {
    /**
     * Only this agent's.
     */
    agent: AgentId | null;
    /**
     * Only this channel's.
     */
    channel: Channel | null;
    /**
     * From this instant, inclusive.
     */
    from: string | null;
    /**
     * To this instant, exclusive.
     */
    to: string | null;
}
