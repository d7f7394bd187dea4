// A client for Switchboard's agent and supervisor WebSockets (protocol/README.md), for
// browsers and Node. One file on purpose: its compiled form, dist/client.js, has no imports
// at run time (the generated types are erased), so the engine can serve it to the desk as
// one module, with no bundler.

import type {
  ErrorCode,
  ErrorFrame,
  Push,
  ReplyResult,
  ServerFrame,
} from "./generated/server-frame.js";
import type { ClientFrame as AgentFrame } from "./generated/client-frame.js";
import type { SupervisorFrame } from "./generated/supervisor-frame.js";
import type {
  Board,
  BoardEvent,
  SupervisorResult,
  SupervisorServerFrame,
} from "./generated/supervisor-server-frame.js";

export type * from "./generated/server-frame.js";
export type { AgentFrame, SupervisorFrame, SupervisorServerFrame, SupervisorResult, Board, BoardEvent };

// ---- types derived from the generated ones ----------------------------------------------

/** The fields of the request of type `T` in the frame union `F`, without `id` and `type`. */
export type RequestFields<F extends { type: string }, T extends F["type"]> = Omit<
  Extract<F, { type: T }>,
  "id" | "type"
>;
/** `request(type)` where every field is optional, `request(type, fields)` otherwise. */
type FieldsArg<F extends { type: string }, T extends F["type"]> =
  Record<string, never> extends RequestFields<F, T>
    ? [fields?: RequestFields<F, T>]
    : [fields: RequestFields<F, T>];

export type AgentRequestType = AgentFrame["type"];
export type SupervisorRequestType = SupervisorFrame["type"];
export type AgentWelcome = Extract<ServerFrame, { type: "welcome" }>;
export type SupervisorWelcome = Extract<SupervisorServerFrame, { type: "welcome" }>;
/** A push as it arrives on the agent socket: `{type: "push", seq, event}`. */
export type PushFrame = Extract<ServerFrame, { type: "push" }>;
export type PushKind = Push["kind"];
export type BoardEventKind = BoardEvent["kind"];
/** What the client did after a (re)connect: replayed the missed pushes, or took a snapshot. */
export type AgentSync = Extract<ReplyResult, { kind: "snapshot" | "resumed" }>;
/** What a `subscribe` (first or after a reconnect) answered: a board, or the missed events. */
export type SupervisorSync = SupervisorResult & { kind: "board" | "resumed" };

// ---- errors -------------------------------------------------------------------------------

/** The engine answered a request with an `error` frame: nothing changed. */
export class SwitchboardError extends Error {
  override readonly name = "SwitchboardError";
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

  constructor(frame: ErrorFrame) {
    super(frame.message);
    const { code, message: _message, id, ...details } = frame;
    this.code = code;
    this.id = id;
    this.details = details;
    this.live = details.live;
    this.expired_at = details.expired_at;
  }
}

/** No reply came within `requestTimeoutMs` (over any number of reconnects). */
export class RequestTimeoutError extends Error {
  override readonly name = "RequestTimeoutError";
  readonly code = "timeout";
  constructor(
    readonly type: string,
    readonly id: string,
    readonly timeoutMs: number,
  ) {
    super(`no reply to \`${type}\` (${id}) within ${timeoutMs} ms`);
  }
}

/**
 * The request will get no reply: the client was stopped, the connection ended for good, or
 * (for reads the client does not retry) it dropped before the reply. `code` is
 * `disconnected`, as web/socket.js had it.
 */
export class DisconnectedError extends Error {
  override readonly name = "DisconnectedError";
  readonly code = "disconnected";
  constructor(
    message: string,
    readonly closeCode: number | null = null,
  ) {
    super(message);
  }
}

/** Why the client stopped reconnecting (see the close table in protocol/README.md). */
export interface Fatal {
  /** The WebSocket close code, or null when the first connection never got its welcome. */
  closeCode: number | null;
  message: string;
}

// ---- options -------------------------------------------------------------------------------

/** The part of a WebSocket the client uses: the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
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

// ---- the core both sockets share ----------------------------------------------------------

/** Close codes after which reconnecting with the same token cannot work. */
const FATAL_CLOSES: Record<number, string> = {
  4001: "the session expired: the token was not refreshed in time",
  4003: "this agent was removed by an admin",
};
/**
 * A signed token is renewed this long before it expires: a quarter of its lifetime, at least
 * 10 s and at most 5 min, but never more than half of it; a failed try is repeated after 10 s.
 */
const RENEW_MIN_MS = 10_000;
const RENEW_MAX_MS = 300_000;
const RENEW_RETRY_MS = 10_000;

/** The claims of a signed token (JWT) the client reads, or null for a static token. */
export function tokenClaims(token: string): { exp?: number; iat?: number } | null {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    const claims: unknown = JSON.parse(atob(parts[1]!.replace(/-/g, "+").replace(/_/g, "/")));
    return typeof claims === "object" && claims !== null ? claims : null;
  } catch {
    return null;
  }
}

/** What the engine accepts as a workspace id (R27). */
const WORKSPACE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;

/** The path below which a workspace's API lives: `/v1/w/{workspace}`, or `/v1` for none. */
export function workspacePrefix(workspace: string | undefined): string {
  if (workspace === undefined) return "/v1";
  if (!WORKSPACE_ID.test(workspace)) {
    throw new TypeError(
      `workspace ${JSON.stringify(workspace)} is not a workspace id: lower-case letters, digits and '-', at most 63, not starting with '-'`,
    );
  }
  return `/v1/w/${workspace}`;
}

/** The close code the client uses for a socket it gives up on (heartbeat, `close()`). */
const DROPPED = 4000;
const OPEN = 1;

interface Pending {
  frame: { id: string; type: string };
  resolve: (result: unknown) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  /** Sent again, with the same id, after a reconnect (R17 "Retries"); reads of the sync not. */
  retry: boolean;
  /** The socket it was last sent on. */
  sentOn: WebSocketLike | null;
}

type Listener<A> = (arg: A) => void;

/** Listeners by name; each `add` returns its own removal. */
class Listeners<A> {
  private readonly sets = new Map<string, Set<Listener<A>>>();
  constructor(private readonly report: (error: unknown) => void) {}
  add(name: string, listener: Listener<A>): () => void {
    let set = this.sets.get(name);
    if (!set) this.sets.set(name, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }
  emit(name: string, arg: A): void {
    for (const listener of [...(this.sets.get(name) ?? [])]) {
      try {
        listener(arg);
      } catch (error) {
        this.report(error);
      }
    }
  }
}

/**
 * One logical connection over as many WebSockets as it takes: ids, replies, timeouts,
 * retries with the same id, heartbeat, reconnect with backoff, the engine's clock. The agent
 * and supervisor clients add what their socket syncs after a reconnect.
 */
abstract class Core<Welcome extends { seq: number; now: string }, Event, Sync> {
  protected readonly options: Required<Pick<ClientOptions, "requestTimeoutMs">> & ClientOptions;
  private readonly WebSocketClass: WebSocketConstructor;
  private token: string;
  private ws: WebSocketLike | null = null;
  /** `ws` has sent its welcome: requests go out on it. */
  private welcomed = false;
  private everWelcomed = false;
  private stopped = true;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private renewTimer: ReturnType<typeof setTimeout> | undefined;
  /** A renewal is under way: a welcome meanwhile does not schedule another. */
  private renewing = false;
  private offsetMs = 0;
  // Ids are new for every request of the agent across its tabs and processes for the grace
  // period (a repeated id is a retry): a random prefix per client, and a counter.
  private readonly idPrefix = Math.random().toString(36).slice(2, 10);
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private status: Status = "stopped";
  private firstWelcome: { resolve: (w: Welcome) => void; reject: (e: Error) => void } | null = null;
  private readonly onlineListener = () => this.retryNow();

  /** The seq of the last push (or board event) delivered; null before the first sync. */
  protected lastSeq: number | null = null;
  /** Between a welcome (or `subscribe`) and its sync reply, events wait here. */
  private held: { seq: number; event: Event }[] | null = null;

  protected readonly hooks: Listeners<unknown>;
  private readonly byKind: Listeners<unknown>;
  private readonly report: (error: unknown) => void;

  /** `/v1` or `/v1/w/{workspace}`: where the socket and `POST …/token` are. */
  private readonly prefix: string;

  /** `socket`: the socket's path below the workspace's prefix (`/agent/ws`). */
  protected constructor(
    options: ClientOptions,
    private readonly socket: string,
  ) {
    this.prefix = workspacePrefix(options.workspace);
    this.options = { requestTimeoutMs: 10_000, ...options };
    const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WebSocketClass) {
      throw new TypeError("no global WebSocket here: pass one, e.g. `WebSocket` from the `ws` package");
    }
    this.WebSocketClass = WebSocketClass;
    this.token = options.token;
    this.report = options.onHandlerError ?? ((error: unknown) => console.error(error));
    this.hooks = new Listeners(this.report);
    this.byKind = new Listeners(this.report);
  }

  // ---- public -----------------------------------------------------------------------------

  /**
   * Opens the connection and keeps it open until `close()` or a fatal close. Resolves with
   * the first welcome once the client has synced; rejects when the first connection is
   * refused (a bad token, an unreachable engine: a browser cannot tell which). After a fatal
   * close, `connect(freshToken)` signs in again and resumes where the client stopped.
   */
  connect(token?: string): Promise<Welcome> {
    if (!this.stopped) return Promise.reject(new Error("already connected"));
    if (token !== undefined) this.token = token;
    this.stopped = false;
    this.everWelcomed = false;
    const first = new Promise<Welcome>((resolve, reject) => (this.firstWelcome = { resolve, reject }));
    if (typeof window !== "undefined") window.addEventListener("online", this.onlineListener);
    this.open();
    return first;
  }

  /** Closes the connection for good; pending requests reject with `DisconnectedError`. */
  close(): void {
    this.stop();
    this.failAll(new DisconnectedError("the client was closed"));
  }

  /**
   * Sends a request and resolves with the `ok` result, or rejects with a `SwitchboardError`
   * (the `error` frame), a `RequestTimeoutError`, or a `DisconnectedError` once stopped.
   * While offline the request waits (within its timeout) for the next connection; a request
   * whose reply was lost with its connection is sent again with the same id, which the engine
   * answers with the first reply.
   */
  request(type: string, fields: object = {}): Promise<unknown> {
    if (type === "refresh") return this.refresh((fields as { token: string }).token);
    return this.send(type, fields, true);
  }

  /** `status` changes: `connecting`, `online` (welcomed), `offline` (waiting to retry), `stopped`. */
  onStatus(listener: (status: Status) => void): () => void {
    return this.hooks.add("status", listener as Listener<unknown>);
  }
  /** Every welcome, before the client syncs. */
  onWelcome(listener: (welcome: Welcome) => void): () => void {
    return this.hooks.add("welcome", listener as Listener<unknown>);
  }
  /** The client stopped reconnecting: a fatal close code, or a first connection refused. */
  onFatal(listener: (fatal: Fatal) => void): () => void {
    return this.hooks.add("fatal", listener as Listener<unknown>);
  }
  /**
   * After each sync, before the events held meanwhile are delivered. Agent: a `snapshot`
   * (replace everything you hold) or `resumed`; supervisor: a `board` or `resumed`.
   */
  onSync(listener: (sync: Sync) => void): () => void {
    return this.hooks.add("sync", listener as Listener<unknown>);
  }
  /** The token changed (`refresh`, or a renewal): keep it for the next sign-in, if you like. */
  onToken(listener: (token: string) => void): () => void {
    return this.hooks.add("token", listener as Listener<unknown>);
  }
  /** Every frame that is neither a welcome, a reply to a request nor an event (for logs). */
  onOtherFrame(listener: (frame: unknown) => void): () => void {
    return this.hooks.add("other", listener);
  }

  /** The engine's clock now, in ms since the epoch: `welcome.now` plus the time since. */
  now(): number {
    return Date.now() + this.offsetMs;
  }
  /** The engine's clock minus this one's, as of the last welcome. */
  get clockOffsetMs(): number {
    return this.offsetMs;
  }
  get currentStatus(): Status {
    return this.status;
  }
  /** The seq of the last push (or board event) delivered; null before the first sync. */
  get seq(): number | null {
    return this.lastSeq;
  }

  /**
   * Replaces the token: sends `refresh` with it (a signed token of the same agent and role)
   * and uses it for every reconnect from then on.
   */
  async refresh(token: string): Promise<unknown> {
    const result = await this.send("refresh", { token }, true);
    this.useToken(token);
    return result;
  }

  // ---- for the two clients ------------------------------------------------------------------

  /** What to do after each welcome: resume or snapshot, subscribe again, watch again. */
  protected abstract afterWelcome(welcome: Welcome): Promise<void>;
  /** The events of one frame (a push, a `pushes` batch), or null for other frames. */
  protected abstract eventsOf(frame: { type: string }): { seq: number; event: Event }[] | null;
  /** Hands one event, in order and once, to its listeners. */
  protected abstract deliver(seq: number, event: Event): void;

  protected send(type: string, fields: object, retry: boolean, timeoutMs = this.options.requestTimeoutMs): Promise<unknown> {
    if (this.stopped) return Promise.reject(new DisconnectedError(`not connected: \`${type}\` not sent`));
    const id = `${this.idPrefix}-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestTimeoutError(type, id, timeoutMs));
      }, timeoutMs);
      const entry: Pending = { frame: { ...fields, id, type }, resolve, reject, timer, retry, sentOn: null };
      this.pending.set(id, entry);
      if (this.welcomed) this.transmit(entry);
    });
  }

  /** Listeners for events of one `kind`. */
  protected addKind(kind: string, listener: Listener<unknown>): () => void {
    return this.byKind.add(kind, listener);
  }
  protected emitKind(kind: string, event: unknown): void {
    this.byKind.emit(kind, event);
  }

  /**
   * Runs `sync` (a resume, snapshot or subscribe) with events held back meanwhile; `apply`
   * takes its result (a snapshot sets `lastSeq`); then the held events above `lastSeq` are
   * delivered in seq order: replayed pushes come before the reply, and live ones may repeat
   * them (R17, step 4). When the sync fails the held events are dropped: the next one
   * covers them.
   */
  protected async synced<R>(sync: () => Promise<R>, apply: (result: R) => void): Promise<R> {
    this.held = [];
    let result: R;
    try {
      result = await sync();
    } catch (error) {
      this.held = null;
      throw error;
    }
    const held = this.held.sort((a, b) => a.seq - b.seq);
    this.held = null;
    apply(result);
    for (const { seq, event } of held) this.accept(seq, event);
    return result;
  }

  /** The current socket has had its welcome: requests go out now. */
  protected get isOnline(): boolean {
    return this.welcomed;
  }

  /** Sends again, with the same id, every request not yet sent on the current socket. */
  protected flushPending(): void {
    for (const entry of this.pending.values()) if (entry.sentOn !== this.ws) this.transmit(entry);
  }

  // ---- the socket ---------------------------------------------------------------------------

  private socketUrl(): string {
    const base = typeof location !== "undefined" ? location.href : undefined;
    const url = new URL(this.prefix + this.socket, new URL(this.options.url, base));
    url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    return url.href;
  }

  private open(): void {
    clearTimeout(this.retryTimer);
    this.setStatus("connecting");
    let ws: WebSocketLike;
    try {
      ws = new this.WebSocketClass(this.socketUrl());
    } catch (error) {
      this.stop();
      this.fatal({ closeCode: null, message: `cannot open a WebSocket: ${String(error)}` });
      return;
    }
    this.ws = ws;
    this.welcomed = false;
    ws.onmessage = (event) => this.receive(ws, event.data);
    ws.onclose = (event) => this.closed(ws, event.code);
    ws.onerror = () => {}; // a close event follows
  }

  private receive(ws: WebSocketLike, data: unknown): void {
    if (ws !== this.ws) return;
    let frame: { type?: unknown; id?: unknown };
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data as Uint8Array));
    } catch {
      return;
    }
    if (frame.type === "welcome") return this.welcome(frame as unknown as Welcome);
    if ((frame.type === "ok" || frame.type === "error") && typeof frame.id === "string") {
      const entry = this.pending.get(frame.id);
      if (entry) {
        this.pending.delete(frame.id);
        clearTimeout(entry.timer);
        if (frame.type === "ok") entry.resolve((frame as { result: unknown }).result);
        else entry.reject(new SwitchboardError(frame as unknown as ErrorFrame));
        return;
      }
    }
    const events = this.eventsOf(frame as { type: string });
    if (!events) return this.hooks.emit("other", frame);
    for (const { seq, event } of events) {
      if (this.held) this.held.push({ seq, event });
      else this.accept(seq, event);
    }
  }

  private accept(seq: number, event: Event): void {
    if (this.lastSeq !== null && seq <= this.lastSeq) return; // seen already (replayed and live)
    this.lastSeq = seq;
    this.deliver(seq, event);
  }

  private welcome(welcome: Welcome): void {
    this.offsetMs = Date.parse(welcome.now) - Date.now();
    this.welcomed = true;
    this.everWelcomed = true;
    this.attempt = 0;
    this.startHeartbeat();
    this.scheduleRenewal();
    this.setStatus("online");
    this.hooks.emit("welcome", welcome);
    const ws = this.ws;
    this.afterWelcome(welcome).then(
      () => {
        const first = this.firstWelcome;
        this.firstWelcome = null;
        first?.resolve(welcome);
      },
      (error) => {
        // A dropped socket syncs again after the next welcome; anything else is reported.
        if (!(error instanceof DisconnectedError) && ws === this.ws) this.report(error);
      },
    );
  }

  private transmit(entry: Pending): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    entry.sentOn = ws;
    ws.send(JSON.stringify(entry.frame));
  }

  // Forget `ws` at once: its close event may come much later, or never (a dead network).
  private drop(ws: WebSocketLike, code: number): void {
    ws.onmessage = null;
    ws.onclose = null;
    try {
      if (ws.terminate) ws.terminate();
      else ws.close(code);
    } catch {
      // Already closing.
    }
    this.closed(ws, code);
  }

  private closed(ws: WebSocketLike, code: number): void {
    if (this.ws !== ws) return;
    this.ws = null;
    this.welcomed = false;
    clearInterval(this.pingTimer);
    // Reads that belong to this connection (a sync, a ping) end with it; the rest are sent
    // again after the next welcome.
    for (const [id, entry] of this.pending) {
      if (entry.retry) continue;
      this.pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(new DisconnectedError("the connection dropped before the reply", code));
    }
    if (this.stopped) return;
    const fatal = FATAL_CLOSES[code];
    if (fatal || !this.everWelcomed) {
      // A browser cannot read the HTTP status of a refused upgrade: a first socket that never
      // got its welcome most likely had a bad token, so report rather than retry for ever.
      this.stop();
      const message = fatal ?? "the connection was refused (a bad token?) or the engine is unreachable";
      this.failAll(new DisconnectedError(message, code));
      this.fatal({ closeCode: fatal ? code : null, message });
      return;
    }
    this.setStatus("offline");
    const { initialMs = 500, maxMs = 15_000 } = this.options.backoff ?? {};
    const ceiling = Math.min(maxMs, initialMs * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter, so that a restarted engine is not hit by every client in the same instant.
    this.retryTimer = setTimeout(() => this.open(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  /** Reconnects at once if waiting to (the browser says the network is back). */
  retryNow(): void {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.open();
  }

  /**
   * Drops the current socket as if the network had (for tests, and for a page that knows
   * better); the client reconnects, resumes and retries as usual.
   */
  dropConnection(): void {
    if (this.ws) this.drop(this.ws, DROPPED);
  }

  private useToken(token: string): void {
    if (token === this.token) return;
    this.token = token;
    this.hooks.emit("token", token);
  }

  /** Sets the renewal timer for the token held (once the engine's clock is known). */
  private scheduleRenewal(delayMs?: number): void {
    const renewToken = this.options.renewToken;
    if (!renewToken || this.renewing || this.stopped) return;
    clearTimeout(this.renewTimer);
    const claims = tokenClaims(this.token);
    if (!claims?.exp) return;
    const exp = claims.exp * 1000;
    const lifetime = claims.iat ? exp - claims.iat * 1000 : RENEW_MAX_MS * 4;
    const margin = Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, lifetime / 4), lifetime / 2);
    const wait = delayMs ?? Math.max(0, exp - margin - this.now());
    this.renewTimer = setTimeout(() => void this.renew(renewToken), wait);
  }

  private async renew(renewToken: true | ((token: string) => Promise<string>)): Promise<void> {
    const held = this.token;
    this.renewing = true;
    let failed = false;
    try {
      const fresh = renewToken === true ? await this.fetchToken(held) : await renewToken(held);
      // Stopped, or `refresh(token)` was called meanwhile: that token is the one to keep.
      if (!this.stopped && this.token === held) {
        // Reconnects use it at once; the live connection, which is closed when the old
        // token expires, is told with `refresh` (offline, the next one opens with it).
        this.useToken(fresh);
        if (this.welcomed) await this.send("refresh", { token: fresh }, true);
      }
    } catch {
      failed = true;
    } finally {
      this.renewing = false;
    }
    if (!failed) return this.scheduleRenewal();
    const exp = (tokenClaims(this.token)?.exp ?? 0) * 1000;
    // Past its expiry the engine refuses it: its 4001 close is fatal, as without renewal.
    if (this.now() < exp) this.scheduleRenewal(Math.min(RENEW_RETRY_MS, exp - this.now()));
  }

  /** `POST /v1/token` (or `/v1/w/{workspace}/token`) with the token held: a fresh one of the same caller. */
  private async fetchToken(held: string): Promise<string> {
    const url = new URL(`${this.prefix}/token`, this.socketUrl());
    url.protocol = url.protocol === "wss:" ? "https:" : "http:";
    url.search = "";
    const response = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${held}` },
      cache: "no-store",
    });
    if (!response.ok) throw new Error(`POST ${url.pathname} answered ${response.status}`);
    const { token } = (await response.json()) as { token: string };
    return token;
  }

  private startHeartbeat(): void {
    clearInterval(this.pingTimer);
    const { intervalMs = 20_000, timeoutMs = 10_000 } = this.options.heartbeat ?? {};
    if (intervalMs <= 0) return;
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || !this.welcomed) return;
      this.send("ping", {}, false, timeoutMs).catch((error) => {
        if (error instanceof RequestTimeoutError && this.ws === ws) this.drop(ws, DROPPED);
      });
    }, intervalMs);
  }

  private stop(): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    clearTimeout(this.renewTimer);
    if (typeof window !== "undefined") window.removeEventListener("online", this.onlineListener);
    if (this.ws) this.drop(this.ws, 1000);
    this.setStatus("stopped");
  }

  private failAll(error: DisconnectedError): void {
    for (const entry of this.pending.values()) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
    this.pending.clear();
    const first = this.firstWelcome;
    this.firstWelcome = null;
    first?.reject(error);
  }

  private fatal(fatal: Fatal): void {
    this.hooks.emit("fatal", fatal);
  }

  private setStatus(status: Status): void {
    if (this.status === status) return;
    this.status = status;
    this.hooks.emit("status", status);
  }
}

// ---- the agent socket -----------------------------------------------------------------------

/**
 * The agent socket (`/v1/agent/ws`, or `/v1/w/{workspace}/agent/ws`). After every welcome it syncs by itself: `snapshot` the
 * first time (and after an engine restart), `resume` from the last seq otherwise, falling
 * back to `snapshot` when the engine has no replay; then it watches the archive entries
 * again. Pushes reach `on(kind)` and `onPush` in seq order, each once.
 */
export class AgentClient extends Core<AgentWelcome, Push, AgentSync> {
  private watched: string[] = [];

  constructor(options: ClientOptions) {
    super(options, "/agent/ws");
  }

  override request<T extends AgentRequestType>(
    type: T,
    ...[fields]: FieldsArg<AgentFrame, T>
  ): Promise<Extract<ReplyResult, { kind: string }>>;
  override request(type: string, fields: object = {}): Promise<unknown> {
    if (type === "watch_archive") return this.watchArchive((fields as { chat_ids: string[] }).chat_ids);
    return super.request(type, fields);
  }

  /**
   * Watches these archive entries (`archive_entry_changed`), on this connection and, after a
   * reconnect, on the next one; `[]` stops.
   */
  watchArchive(chatIds: string[]): Promise<ReplyResult> {
    // Remembered at once: a reconnect before the reply watches these, not the last ones.
    this.watched = [...chatIds];
    return super.request("watch_archive", { chat_ids: chatIds }) as Promise<ReplyResult>;
  }

  /** Pushes of one kind, with their event. */
  on<K extends PushKind>(kind: K, listener: (event: Extract<Push, { kind: K }>, seq: number) => void): () => void {
    return this.addKind(kind, ((p: PushFrame) => listener(p.event as Extract<Push, { kind: K }>, p.seq)) as Listener<unknown>);
  }
  /** Every push, in seq order (also kinds this version does not know). */
  onPush(listener: (push: PushFrame) => void): () => void {
    return this.hooks.add("push", listener as Listener<unknown>);
  }

  protected override async afterWelcome(welcome: AgentWelcome): Promise<void> {
    // A welcome seq below ours means the engine restarted: its numbers are not ours.
    const fresh = this.lastSeq === null || welcome.seq < this.lastSeq;
    const after = this.lastSeq;
    await this.synced(
      async () => {
        const first = this.send(fresh ? "snapshot" : "resume", fresh ? {} : { after_seq: after }, false);
        this.flushPending();
        try {
          return (await first) as AgentSync;
        } catch (error) {
          // A resume the engine refused (say, a seq it never sent): start again from a snapshot.
          if (fresh || !(error instanceof SwitchboardError)) throw error;
          return (await this.send("snapshot", {}, false)) as AgentSync;
        }
      },
      (result) => {
        if (result.kind === "snapshot") this.lastSeq = result.seq;
        this.hooks.emit("sync", result);
      },
    );
    // Watches belong to a connection: watch again.
    if (this.watched.length > 0) await this.send("watch_archive", { chat_ids: this.watched }, false);
  }

  protected override eventsOf(frame: { type: string }): { seq: number; event: Push }[] | null {
    if (frame.type !== "push") return null;
    const push = frame as PushFrame;
    return [{ seq: push.seq, event: push.event }];
  }

  protected override deliver(seq: number, event: Push): void {
    const push: PushFrame = { type: "push", seq, event };
    this.emitKind(event.kind, push);
    this.hooks.emit("push", push);
  }
}

// ---- the supervisor socket ----------------------------------------------------------------

/**
 * The supervisor socket (`/v1/supervisor/ws`, or below its workspace). `subscribe()` returns the board; the client
 * remembers the subscription and after a reconnect subscribes again with `after_seq`, so
 * the missed events come first (or a fresh board, when they are gone).
 */
export class SupervisorClient extends Core<SupervisorWelcome, BoardEvent, SupervisorSync> {
  /** The last `subscribe`'s queues (undefined: all), or null before the first. */
  private subscription: { queues?: string[] } | null = null;

  constructor(options: ClientOptions) {
    super(options, "/supervisor/ws");
  }

  override request<T extends SupervisorRequestType>(
    type: T,
    ...[fields]: FieldsArg<SupervisorFrame, T>
  ): Promise<SupervisorResult>;
  override request(type: string, fields: object = {}): Promise<unknown> {
    if (type === "subscribe") return this.subscribe((fields as { queues?: string[] }).queues);
    return super.request(type, fields);
  }

  /** Watches these queues (all without), replacing the last subscription: the board. */
  subscribe(queues?: string[]): Promise<SupervisorSync> {
    this.subscription = queues ? { queues } : {};
    this.lastSeq = null;
    if (this.isOnline) return this.resubscribe(true);
    // Offline (or not yet welcomed): the next welcome subscribes; answer with its sync.
    return new Promise((resolve, reject) => {
      const offSync = this.onSync((sync) => {
        offSync();
        offStatus();
        resolve(sync);
      });
      const offStatus = this.onStatus((status) => {
        if (status !== "stopped") return;
        offSync();
        offStatus();
        reject(new DisconnectedError("the client stopped before it could subscribe"));
      });
    });
  }

  /** Board events of one kind. */
  on<K extends BoardEventKind>(kind: K, listener: (event: Extract<BoardEvent, { kind: K }>) => void): () => void {
    return this.addKind(kind, listener as Listener<unknown>);
  }
  /** Every board event, in seq order. */
  onEvent(listener: (event: BoardEvent) => void): () => void {
    return this.hooks.add("event", listener as Listener<unknown>);
  }

  protected override async afterWelcome(welcome: SupervisorWelcome): Promise<void> {
    if (!this.subscription) {
      this.flushPending();
      return;
    }
    // A welcome seq below ours means the engine restarted: take a fresh board.
    await this.resubscribe(this.lastSeq === null || welcome.seq < this.lastSeq);
  }

  private async resubscribe(fresh: boolean): Promise<SupervisorSync> {
    const fields = { ...this.subscription, ...(fresh ? {} : { after_seq: this.lastSeq }) };
    return this.synced(
      async () => {
        const pending = this.send("subscribe", fields, false);
        this.flushPending();
        return (await pending) as SupervisorSync;
      },
      (result) => {
        if (result.kind === "board") this.lastSeq = (result as Board).seq;
        this.hooks.emit("sync", result);
      },
    );
  }

  protected override eventsOf(frame: { type: string }): { seq: number; event: BoardEvent }[] | null {
    if (frame.type !== "pushes") return null;
    return (frame as Extract<SupervisorServerFrame, { type: "pushes" }>).events.map((event) => ({ seq: event.seq, event }));
  }

  protected override deliver(_seq: number, event: BoardEvent): void {
    this.emitKind(event.kind, event);
    this.hooks.emit("event", event);
  }
}
