import type { ErrorCode, ErrorFrame, Push, ReplyResult, ServerFrame } from "./generated/server-frame.js";
import type { ClientFrame as AgentFrame } from "./generated/client-frame.js";
import type { SupervisorFrame } from "./generated/supervisor-frame.js";
import type { Board, BoardEvent, SupervisorResult, SupervisorServerFrame } from "./generated/supervisor-server-frame.js";
export type * from "./generated/server-frame.js";
export type { AgentFrame, SupervisorFrame, SupervisorServerFrame, SupervisorResult, Board, BoardEvent };
/** The fields of the request of type `T` in the frame union `F`, without `id` and `type`. */
export type RequestFields<F extends {
    type: string;
}, T extends F["type"]> = Omit<Extract<F, {
    type: T;
}>, "id" | "type">;
/** `request(type)` where every field is optional, `request(type, fields)` otherwise. */
type FieldsArg<F extends {
    type: string;
}, T extends F["type"]> = Record<string, never> extends RequestFields<F, T> ? [fields?: RequestFields<F, T>] : [fields: RequestFields<F, T>];
export type AgentRequestType = AgentFrame["type"];
export type SupervisorRequestType = SupervisorFrame["type"];
export type AgentWelcome = Extract<ServerFrame, {
    type: "welcome";
}>;
export type SupervisorWelcome = Extract<SupervisorServerFrame, {
    type: "welcome";
}>;
/** A push as it arrives on the agent socket: `{type: "push", seq, event}`. */
export type PushFrame = Extract<ServerFrame, {
    type: "push";
}>;
export type PushKind = Push["kind"];
export type BoardEventKind = BoardEvent["kind"];
/** What the client did after a (re)connect: replayed the missed pushes, or took a snapshot. */
export type AgentSync = Extract<ReplyResult, {
    kind: "snapshot" | "resumed";
}>;
/** What a `subscribe` (first or after a reconnect) answered: a board, or the missed events. */
export type SupervisorSync = SupervisorResult & {
    kind: "board" | "resumed";
};
/** The engine answered a request with an `error` frame: nothing changed. */
export declare class SwitchboardError extends Error {
    readonly name = "SwitchboardError";
    /** The stable code: program against it, not the message. */
    readonly code: ErrorCode;
    /** The request's id. */
    readonly id: string | null;
    /** The fields some codes carry: `live` (`active_elsewhere`), `expired_at` (`window_closed`). */
    readonly details: Omit<ErrorFrame, "code" | "message" | "id">;
    /** With `active_elsewhere`: where the customer is live (also in `details`). */
    readonly live: ErrorFrame["live"];
    /** With `window_closed`: when the window closed (also in `details`). */
    readonly expired_at: ErrorFrame["expired_at"];
    constructor(frame: ErrorFrame);
}
/** No reply came within `requestTimeoutMs` (over any number of reconnects). */
export declare class RequestTimeoutError extends Error {
    readonly type: string;
    readonly id: string;
    readonly timeoutMs: number;
    readonly name = "RequestTimeoutError";
    readonly code = "timeout";
    constructor(type: string, id: string, timeoutMs: number);
}
/**
 * The request will get no reply: the client was stopped, the connection ended for good, or
 * (for reads the client does not retry) it dropped before the reply. `code` is
 * `disconnected`, as web/socket.js had it.
 */
export declare class DisconnectedError extends Error {
    readonly closeCode: number | null;
    readonly name = "DisconnectedError";
    readonly code = "disconnected";
    constructor(message: string, closeCode?: number | null);
}
/** Why the client stopped reconnecting (see the close table in protocol/README.md). */
export interface Fatal {
    /** The WebSocket close code, or null when the first connection never got its welcome. */
    closeCode: number | null;
    message: string;
}
/** The part of a WebSocket the client uses: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
    readonly readyState: number;
    onopen: ((event: unknown) => void) | null;
    onmessage: ((event: {
        data: unknown;
    }) => void) | null;
    onclose: ((event: {
        code: number;
        reason: string;
    }) => void) | null;
    onerror: ((event: unknown) => void) | null;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    /** `ws` only: drop the socket without a closing handshake. */
    terminate?(): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;
export interface Backoff {
    /** The ceiling of the first wait (default 500 ms); each failed attempt doubles it … */
    initialMs?: number;
    /** … up to this (default 15 s). The wait is between half the ceiling and the ceiling. */
    maxMs?: number;
}
export interface Heartbeat {
    /** How often to send a `ping` request (default 20 s; 0 turns the heartbeat off). */
    intervalMs?: number;
    /** A ping unanswered for this long (default 10 s) counts as a dead socket: reconnect. */
    timeoutMs?: number;
}
export interface ClientOptions {
    /** The engine: `https://host`, `http://127.0.0.1:8080` or the same with `ws(s)://`. */
    url: string;
    /** The agent's or supervisor's token (sent as `?token=`). `refresh()` replaces it. */
    token: string;
    /**
     * The workspace (R27) whose paths the client uses: `/v1/w/{workspace}/agent/ws`, and so on.
     * Absent: the unprefixed paths (`/v1/agent/ws`), which are the `default` workspace's. A
     * signed token opens only the workspace it names.
     */
    workspace?: string;
    /** The WebSocket class; default `globalThis.WebSocket` (in Node 20: `import WebSocket from "ws"`). */
    WebSocket?: WebSocketConstructor;
    /** A request not answered within this long rejects with `RequestTimeoutError` (default 10 s). */
    requestTimeoutMs?: number;
    backoff?: Backoff;
    heartbeat?: Heartbeat;
    /** Where an exception thrown by a handler goes (default `console.error`). */
    onHandlerError?: (error: unknown) => void;
    /**
     * Renews a signed token before it expires (default off): `true` asks the engine
     * (`POST /v1/token` with the token held), a function gets the token held and returns a
     * fresh one (say, from your identity provider). The live connection gets it by `refresh`,
     * every reconnect uses it, and `onToken` tells you. Static tokens (no `exp`) are left alone.
     */
    renewToken?: boolean | ((token: string) => Promise<string>);
}
/** `offline` between connections; `stopped` after `close()` or a fatal close. */
export type Status = "connecting" | "online" | "offline" | "stopped";
/** The claims of a signed token (JWT) the client reads, or null for a static token. */
export declare function tokenClaims(token: string): {
    exp?: number;
    iat?: number;
} | null;
/** The path below which a workspace's API lives: `/v1/w/{workspace}`, or `/v1` for none. */
export declare function workspacePrefix(workspace: string | undefined): string;
type Listener<A> = (arg: A) => void;
/** Listeners by name; each `add` returns its own removal. */
declare class Listeners<A> {
    private readonly report;
    private readonly sets;
    constructor(report: (error: unknown) => void);
    add(name: string, listener: Listener<A>): () => void;
    emit(name: string, arg: A): void;
}
/**
 * One logical connection over as many WebSockets as it takes: ids, replies, timeouts,
 * retries with the same id, heartbeat, reconnect with backoff, the engine's clock. The agent
 * and supervisor clients add what their socket syncs after a reconnect.
 */
declare abstract class Core<Welcome extends {
    seq: number;
    now: string;
}, Event, Sync> {
    private readonly socket;
    protected readonly options: Required<Pick<ClientOptions, "requestTimeoutMs">> & ClientOptions;
    private readonly WebSocketClass;
    private token;
    private ws;
    /** `ws` has sent its welcome: requests go out on it. */
    private welcomed;
    private everWelcomed;
    private stopped;
    private attempt;
    private retryTimer;
    private pingTimer;
    private renewTimer;
    /** A renewal is under way: a welcome meanwhile does not schedule another. */
    private renewing;
    private offsetMs;
    private readonly idPrefix;
    private nextId;
    private readonly pending;
    private status;
    private firstWelcome;
    private readonly onlineListener;
    /** The seq of the last push (or board event) delivered; null before the first sync. */
    protected lastSeq: number | null;
    /** Between a welcome (or `subscribe`) and its sync reply, events wait here. */
    private held;
    protected readonly hooks: Listeners<unknown>;
    private readonly byKind;
    private readonly report;
    /** `/v1` or `/v1/w/{workspace}`: where the socket and `POST …/token` are. */
    private readonly prefix;
    /** `socket`: the socket's path below the workspace's prefix (`/agent/ws`). */
    protected constructor(options: ClientOptions, socket: string);
    /**
     * Opens the connection and keeps it open until `close()` or a fatal close. Resolves with
     * the first welcome once the client has synced; rejects when the first connection is
     * refused (a bad token, an unreachable engine: a browser cannot tell which). After a fatal
     * close, `connect(freshToken)` signs in again and resumes where the client stopped.
     */
    connect(token?: string): Promise<Welcome>;
    /** Closes the connection for good; pending requests reject with `DisconnectedError`. */
    close(): void;
    /**
     * Sends a request and resolves with the `ok` result, or rejects with a `SwitchboardError`
     * (the `error` frame), a `RequestTimeoutError`, or a `DisconnectedError` once stopped.
     * While offline the request waits (within its timeout) for the next connection; a request
     * whose reply was lost with its connection is sent again with the same id, which the engine
     * answers with the first reply.
     */
    request(type: string, fields?: object): Promise<unknown>;
    /** `status` changes: `connecting`, `online` (welcomed), `offline` (waiting to retry), `stopped`. */
    onStatus(listener: (status: Status) => void): () => void;
    /** Every welcome, before the client syncs. */
    onWelcome(listener: (welcome: Welcome) => void): () => void;
    /** The client stopped reconnecting: a fatal close code, or a first connection refused. */
    onFatal(listener: (fatal: Fatal) => void): () => void;
    /**
     * After each sync, before the events held meanwhile are delivered. Agent: a `snapshot`
     * (replace everything you hold) or `resumed`; supervisor: a `board` or `resumed`.
     */
    onSync(listener: (sync: Sync) => void): () => void;
    /** The token changed (`refresh`, or a renewal): keep it for the next sign-in, if you like. */
    onToken(listener: (token: string) => void): () => void;
    /** Every frame that is neither a welcome, a reply to a request nor an event (for logs). */
    onOtherFrame(listener: (frame: unknown) => void): () => void;
    /** The engine's clock now, in ms since the epoch: `welcome.now` plus the time since. */
    now(): number;
    /** The engine's clock minus this one's, as of the last welcome. */
    get clockOffsetMs(): number;
    get currentStatus(): Status;
    /** The seq of the last push (or board event) delivered; null before the first sync. */
    get seq(): number | null;
    /**
     * Replaces the token: sends `refresh` with it (a signed token of the same agent and role)
     * and uses it for every reconnect from then on.
     */
    refresh(token: string): Promise<unknown>;
    /** What to do after each welcome: resume or snapshot, subscribe again, watch again. */
    protected abstract afterWelcome(welcome: Welcome): Promise<void>;
    /** The events of one frame (a push, a `pushes` batch), or null for other frames. */
    protected abstract eventsOf(frame: {
        type: string;
    }): {
        seq: number;
        event: Event;
    }[] | null;
    /** Hands one event, in order and once, to its listeners. */
    protected abstract deliver(seq: number, event: Event): void;
    protected send(type: string, fields: object, retry: boolean, timeoutMs?: number): Promise<unknown>;
    /** Listeners for events of one `kind`. */
    protected addKind(kind: string, listener: Listener<unknown>): () => void;
    protected emitKind(kind: string, event: unknown): void;
    /**
     * Runs `sync` (a resume, snapshot or subscribe) with events held back meanwhile; `apply`
     * takes its result (a snapshot sets `lastSeq`); then the held events above `lastSeq` are
     * delivered in seq order: replayed pushes come before the reply, and live ones may repeat
     * them (R17, step 4). When the sync fails the held events are dropped: the next one
     * covers them.
     */
    protected synced<R>(sync: () => Promise<R>, apply: (result: R) => void): Promise<R>;
    /** The current socket has had its welcome: requests go out now. */
    protected get isOnline(): boolean;
    /** Sends again, with the same id, every request not yet sent on the current socket. */
    protected flushPending(): void;
    private socketUrl;
    private open;
    private receive;
    private accept;
    private welcome;
    private transmit;
    private drop;
    private closed;
    /** Reconnects at once if waiting to (the browser says the network is back). */
    retryNow(): void;
    /**
     * Drops the current socket as if the network had (for tests, and for a page that knows
     * better); the client reconnects, resumes and retries as usual.
     */
    dropConnection(): void;
    private useToken;
    /** Sets the renewal timer for the token held (once the engine's clock is known). */
    private scheduleRenewal;
    private renew;
    /** `POST /v1/token` (or `/v1/w/{workspace}/token`) with the token held: a fresh one of the same caller. */
    private fetchToken;
    private startHeartbeat;
    private stop;
    private failAll;
    private fatal;
    private setStatus;
}
/**
 * The agent socket (`/v1/agent/ws`, or `/v1/w/{workspace}/agent/ws`). After every welcome it syncs by itself: `snapshot` the
 * first time (and after an engine restart), `resume` from the last seq otherwise, falling
 * back to `snapshot` when the engine has no replay; then it watches the archive entries
 * again. Pushes reach `on(kind)` and `onPush` in seq order, each once.
 */
export declare class AgentClient extends Core<AgentWelcome, Push, AgentSync> {
    private watched;
    constructor(options: ClientOptions);
    request<T extends AgentRequestType>(type: T, ...[fields]: FieldsArg<AgentFrame, T>): Promise<Extract<ReplyResult, {
        kind: string;
    }>>;
    /**
     * Watches these archive entries (`archive_entry_changed`), on this connection and, after a
     * reconnect, on the next one; `[]` stops.
     */
    watchArchive(chatIds: string[]): Promise<ReplyResult>;
    /** Pushes of one kind, with their event. */
    on<K extends PushKind>(kind: K, listener: (event: Extract<Push, {
        kind: K;
    }>, seq: number) => void): () => void;
    /** Every push, in seq order (also kinds this version does not know). */
    onPush(listener: (push: PushFrame) => void): () => void;
    protected afterWelcome(welcome: AgentWelcome): Promise<void>;
    protected eventsOf(frame: {
        type: string;
    }): {
        seq: number;
        event: Push;
    }[] | null;
    protected deliver(seq: number, event: Push): void;
}
/**
 * The supervisor socket (`/v1/supervisor/ws`, or below its workspace). `subscribe()` returns the board; the client
 * remembers the subscription and after a reconnect subscribes again with `after_seq`, so
 * the missed events come first (or a fresh board, when they are gone).
 */
export declare class SupervisorClient extends Core<SupervisorWelcome, BoardEvent, SupervisorSync> {
    /** The last `subscribe`'s queues (undefined: all), or null before the first. */
    private subscription;
    constructor(options: ClientOptions);
    request<T extends SupervisorRequestType>(type: T, ...[fields]: FieldsArg<SupervisorFrame, T>): Promise<SupervisorResult>;
    /** Watches these queues (all without), replacing the last subscription: the board. */
    subscribe(queues?: string[]): Promise<SupervisorSync>;
    /** Board events of one kind. */
    on<K extends BoardEventKind>(kind: K, listener: (event: Extract<BoardEvent, {
        kind: K;
    }>) => void): () => void;
    /** Every board event, in seq order. */
    onEvent(listener: (event: BoardEvent) => void): () => void;
    protected afterWelcome(welcome: SupervisorWelcome): Promise<void>;
    private resubscribe;
    protected eventsOf(frame: {
        type: string;
    }): {
        seq: number;
        event: BoardEvent;
    }[] | null;
    protected deliver(_seq: number, event: BoardEvent): void;
}
