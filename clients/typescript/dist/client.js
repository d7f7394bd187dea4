// A client for Switchboard's agent and supervisor WebSockets (protocol/README.md), for
// browsers and Node. One file on purpose: its compiled form, dist/client.js, has no imports
// at run time (the generated types are erased), so the engine can serve it to the desk as
// one module, with no bundler.
// ---- errors -------------------------------------------------------------------------------
/** The engine answered a request with an `error` frame: nothing changed. */
export class SwitchboardError extends Error {
    name = "SwitchboardError";
    /** The stable code: program against it, not the message. */
    code;
    /** The request's id. */
    id;
    /** The fields some codes carry: `live` (`active_elsewhere`), `expired_at` (`window_closed`). */
    details;
    /** With `active_elsewhere`: where the customer is live (also in `details`). */
    live;
    /** With `window_closed`: when the window closed (also in `details`). */
    expired_at;
    constructor(frame) {
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
    type;
    id;
    timeoutMs;
    name = "RequestTimeoutError";
    code = "timeout";
    constructor(type, id, timeoutMs) {
        super(`no reply to \`${type}\` (${id}) within ${timeoutMs} ms`);
        this.type = type;
        this.id = id;
        this.timeoutMs = timeoutMs;
    }
}
/**
 * The request will get no reply: the client was stopped, the connection ended for good, or
 * (for reads the client does not retry) it dropped before the reply. `code` is
 * `disconnected`, as web/socket.js had it.
 */
export class DisconnectedError extends Error {
    closeCode;
    name = "DisconnectedError";
    code = "disconnected";
    constructor(message, closeCode = null) {
        super(message);
        this.closeCode = closeCode;
    }
}
// ---- the core both sockets share ----------------------------------------------------------
/** Close codes after which reconnecting with the same token cannot work. */
const FATAL_CLOSES = {
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
export function tokenClaims(token) {
    const parts = token.split(".");
    if (parts.length !== 3)
        return null;
    try {
        const claims = JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
        return typeof claims === "object" && claims !== null ? claims : null;
    }
    catch {
        return null;
    }
}
/** What the engine accepts as a workspace id (R27). */
const WORKSPACE_ID = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** The path below which a workspace's API lives: `/v1/w/{workspace}`, or `/v1` for none. */
export function workspacePrefix(workspace) {
    if (workspace === undefined)
        return "/v1";
    if (!WORKSPACE_ID.test(workspace)) {
        throw new TypeError(`workspace ${JSON.stringify(workspace)} is not a workspace id: lower-case letters, digits and '-', at most 63, not starting with '-'`);
    }
    return `/v1/w/${workspace}`;
}
/** The close code the client uses for a socket it gives up on (heartbeat, `close()`). */
const DROPPED = 4000;
const OPEN = 1;
/** Listeners by name; each `add` returns its own removal. */
class Listeners {
    report;
    sets = new Map();
    constructor(report) {
        this.report = report;
    }
    add(name, listener) {
        let set = this.sets.get(name);
        if (!set)
            this.sets.set(name, (set = new Set()));
        set.add(listener);
        return () => set.delete(listener);
    }
    emit(name, arg) {
        for (const listener of [...(this.sets.get(name) ?? [])]) {
            try {
                listener(arg);
            }
            catch (error) {
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
class Core {
    socket;
    options;
    WebSocketClass;
    token;
    ws = null;
    /** `ws` has sent its welcome: requests go out on it. */
    welcomed = false;
    everWelcomed = false;
    stopped = true;
    attempt = 0;
    retryTimer;
    pingTimer;
    renewTimer;
    /** A renewal is under way: a welcome meanwhile does not schedule another. */
    renewing = false;
    offsetMs = 0;
    // Ids are new for every request of the agent across its tabs and processes for the grace
    // period (a repeated id is a retry): a random prefix per client, and a counter.
    idPrefix = Math.random().toString(36).slice(2, 10);
    nextId = 1;
    pending = new Map();
    status = "stopped";
    firstWelcome = null;
    onlineListener = () => this.retryNow();
    /** The seq of the last push (or board event) delivered; null before the first sync. */
    lastSeq = null;
    /** Between a welcome (or `subscribe`) and its sync reply, events wait here. */
    held = null;
    hooks;
    byKind;
    report;
    /** `/v1` or `/v1/w/{workspace}`: where the socket and `POST …/token` are. */
    prefix;
    /** `socket`: the socket's path below the workspace's prefix (`/agent/ws`). */
    constructor(options, socket) {
        this.socket = socket;
        this.prefix = workspacePrefix(options.workspace);
        this.options = { requestTimeoutMs: 10_000, ...options };
        const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
        if (!WebSocketClass) {
            throw new TypeError("no global WebSocket here: pass one, e.g. `WebSocket` from the `ws` package");
        }
        this.WebSocketClass = WebSocketClass;
        this.token = options.token;
        this.report = options.onHandlerError ?? ((error) => console.error(error));
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
    connect(token) {
        if (!this.stopped)
            return Promise.reject(new Error("already connected"));
        if (token !== undefined)
            this.token = token;
        this.stopped = false;
        this.everWelcomed = false;
        const first = new Promise((resolve, reject) => (this.firstWelcome = { resolve, reject }));
        if (typeof window !== "undefined")
            window.addEventListener("online", this.onlineListener);
        this.open();
        return first;
    }
    /** Closes the connection for good; pending requests reject with `DisconnectedError`. */
    close() {
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
    request(type, fields = {}) {
        if (type === "refresh")
            return this.refresh(fields.token);
        return this.send(type, fields, true);
    }
    /** `status` changes: `connecting`, `online` (welcomed), `offline` (waiting to retry), `stopped`. */
    onStatus(listener) {
        return this.hooks.add("status", listener);
    }
    /** Every welcome, before the client syncs. */
    onWelcome(listener) {
        return this.hooks.add("welcome", listener);
    }
    /** The client stopped reconnecting: a fatal close code, or a first connection refused. */
    onFatal(listener) {
        return this.hooks.add("fatal", listener);
    }
    /**
     * After each sync, before the events held meanwhile are delivered. Agent: a `snapshot`
     * (replace everything you hold) or `resumed`; supervisor: a `board` or `resumed`.
     */
    onSync(listener) {
        return this.hooks.add("sync", listener);
    }
    /** The token changed (`refresh`, or a renewal): keep it for the next sign-in, if you like. */
    onToken(listener) {
        return this.hooks.add("token", listener);
    }
    /** Every frame that is neither a welcome, a reply to a request nor an event (for logs). */
    onOtherFrame(listener) {
        return this.hooks.add("other", listener);
    }
    /** The engine's clock now, in ms since the epoch: `welcome.now` plus the time since. */
    now() {
        return Date.now() + this.offsetMs;
    }
    /** The engine's clock minus this one's, as of the last welcome. */
    get clockOffsetMs() {
        return this.offsetMs;
    }
    get currentStatus() {
        return this.status;
    }
    /** The seq of the last push (or board event) delivered; null before the first sync. */
    get seq() {
        return this.lastSeq;
    }
    /**
     * Replaces the token: sends `refresh` with it (a signed token of the same agent and role)
     * and uses it for every reconnect from then on.
     */
    async refresh(token) {
        const result = await this.send("refresh", { token }, true);
        this.useToken(token);
        return result;
    }
    send(type, fields, retry, timeoutMs = this.options.requestTimeoutMs) {
        if (this.stopped)
            return Promise.reject(new DisconnectedError(`not connected: \`${type}\` not sent`));
        const id = `${this.idPrefix}-${this.nextId++}`;
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => {
                this.pending.delete(id);
                reject(new RequestTimeoutError(type, id, timeoutMs));
            }, timeoutMs);
            const entry = { frame: { ...fields, id, type }, resolve, reject, timer, retry, sentOn: null };
            this.pending.set(id, entry);
            if (this.welcomed)
                this.transmit(entry);
        });
    }
    /** Listeners for events of one `kind`. */
    addKind(kind, listener) {
        return this.byKind.add(kind, listener);
    }
    emitKind(kind, event) {
        this.byKind.emit(kind, event);
    }
    /**
     * Runs `sync` (a resume, snapshot or subscribe) with events held back meanwhile; `apply`
     * takes its result (a snapshot sets `lastSeq`); then the held events above `lastSeq` are
     * delivered in seq order: replayed pushes come before the reply, and live ones may repeat
     * them (R17, step 4). When the sync fails the held events are dropped: the next one
     * covers them.
     */
    async synced(sync, apply) {
        this.held = [];
        let result;
        try {
            result = await sync();
        }
        catch (error) {
            this.held = null;
            throw error;
        }
        const held = this.held.sort((a, b) => a.seq - b.seq);
        this.held = null;
        apply(result);
        for (const { seq, event } of held)
            this.accept(seq, event);
        return result;
    }
    /** The current socket has had its welcome: requests go out now. */
    get isOnline() {
        return this.welcomed;
    }
    /** Sends again, with the same id, every request not yet sent on the current socket. */
    flushPending() {
        for (const entry of this.pending.values())
            if (entry.sentOn !== this.ws)
                this.transmit(entry);
    }
    // ---- the socket ---------------------------------------------------------------------------
    socketUrl() {
        const base = typeof location !== "undefined" ? location.href : undefined;
        const url = new URL(this.prefix + this.socket, new URL(this.options.url, base));
        url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
        url.searchParams.set("token", this.token);
        return url.href;
    }
    open() {
        clearTimeout(this.retryTimer);
        this.setStatus("connecting");
        let ws;
        try {
            ws = new this.WebSocketClass(this.socketUrl());
        }
        catch (error) {
            this.stop();
            this.fatal({ closeCode: null, message: `cannot open a WebSocket: ${String(error)}` });
            return;
        }
        this.ws = ws;
        this.welcomed = false;
        ws.onmessage = (event) => this.receive(ws, event.data);
        ws.onclose = (event) => this.closed(ws, event.code);
        ws.onerror = () => { }; // a close event follows
    }
    receive(ws, data) {
        if (ws !== this.ws)
            return;
        let frame;
        try {
            frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
        }
        catch {
            return;
        }
        if (frame.type === "welcome")
            return this.welcome(frame);
        if ((frame.type === "ok" || frame.type === "error") && typeof frame.id === "string") {
            const entry = this.pending.get(frame.id);
            if (entry) {
                this.pending.delete(frame.id);
                clearTimeout(entry.timer);
                if (frame.type === "ok")
                    entry.resolve(frame.result);
                else
                    entry.reject(new SwitchboardError(frame));
                return;
            }
        }
        const events = this.eventsOf(frame);
        if (!events)
            return this.hooks.emit("other", frame);
        for (const { seq, event } of events) {
            if (this.held)
                this.held.push({ seq, event });
            else
                this.accept(seq, event);
        }
    }
    accept(seq, event) {
        if (this.lastSeq !== null && seq <= this.lastSeq)
            return; // seen already (replayed and live)
        this.lastSeq = seq;
        this.deliver(seq, event);
    }
    welcome(welcome) {
        this.offsetMs = Date.parse(welcome.now) - Date.now();
        this.welcomed = true;
        this.everWelcomed = true;
        this.attempt = 0;
        this.startHeartbeat();
        this.scheduleRenewal();
        this.setStatus("online");
        this.hooks.emit("welcome", welcome);
        const ws = this.ws;
        this.afterWelcome(welcome).then(() => {
            const first = this.firstWelcome;
            this.firstWelcome = null;
            first?.resolve(welcome);
        }, (error) => {
            // A dropped socket syncs again after the next welcome; anything else is reported.
            if (!(error instanceof DisconnectedError) && ws === this.ws)
                this.report(error);
        });
    }
    transmit(entry) {
        const ws = this.ws;
        if (!ws || ws.readyState !== OPEN)
            return;
        entry.sentOn = ws;
        ws.send(JSON.stringify(entry.frame));
    }
    // Forget `ws` at once: its close event may come much later, or never (a dead network).
    drop(ws, code) {
        ws.onmessage = null;
        ws.onclose = null;
        try {
            if (ws.terminate)
                ws.terminate();
            else
                ws.close(code);
        }
        catch {
            // Already closing.
        }
        this.closed(ws, code);
    }
    closed(ws, code) {
        if (this.ws !== ws)
            return;
        this.ws = null;
        this.welcomed = false;
        clearInterval(this.pingTimer);
        // Reads that belong to this connection (a sync, a ping) end with it; the rest are sent
        // again after the next welcome.
        for (const [id, entry] of this.pending) {
            if (entry.retry)
                continue;
            this.pending.delete(id);
            clearTimeout(entry.timer);
            entry.reject(new DisconnectedError("the connection dropped before the reply", code));
        }
        if (this.stopped)
            return;
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
    retryNow() {
        if (this.stopped || this.ws)
            return;
        this.attempt = 0;
        this.open();
    }
    /**
     * Drops the current socket as if the network had (for tests, and for a page that knows
     * better); the client reconnects, resumes and retries as usual.
     */
    dropConnection() {
        if (this.ws)
            this.drop(this.ws, DROPPED);
    }
    useToken(token) {
        if (token === this.token)
            return;
        this.token = token;
        this.hooks.emit("token", token);
    }
    /** Sets the renewal timer for the token held (once the engine's clock is known). */
    scheduleRenewal(delayMs) {
        const renewToken = this.options.renewToken;
        if (!renewToken || this.renewing || this.stopped)
            return;
        clearTimeout(this.renewTimer);
        const claims = tokenClaims(this.token);
        if (!claims?.exp)
            return;
        const exp = claims.exp * 1000;
        const lifetime = claims.iat ? exp - claims.iat * 1000 : RENEW_MAX_MS * 4;
        const margin = Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, lifetime / 4), lifetime / 2);
        const wait = delayMs ?? Math.max(0, exp - margin - this.now());
        this.renewTimer = setTimeout(() => void this.renew(renewToken), wait);
    }
    async renew(renewToken) {
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
                if (this.welcomed)
                    await this.send("refresh", { token: fresh }, true);
            }
        }
        catch {
            failed = true;
        }
        finally {
            this.renewing = false;
        }
        if (!failed)
            return this.scheduleRenewal();
        const exp = (tokenClaims(this.token)?.exp ?? 0) * 1000;
        // Past its expiry the engine refuses it: its 4001 close is fatal, as without renewal.
        if (this.now() < exp)
            this.scheduleRenewal(Math.min(RENEW_RETRY_MS, exp - this.now()));
    }
    /** `POST /v1/token` (or `/v1/w/{workspace}/token`) with the token held: a fresh one of the same caller. */
    async fetchToken(held) {
        const url = new URL(`${this.prefix}/token`, this.socketUrl());
        url.protocol = url.protocol === "wss:" ? "https:" : "http:";
        url.search = "";
        const response = await fetch(url, {
            method: "POST",
            headers: { authorization: `Bearer ${held}` },
            cache: "no-store",
        });
        if (!response.ok)
            throw new Error(`POST ${url.pathname} answered ${response.status}`);
        const { token } = (await response.json());
        return token;
    }
    startHeartbeat() {
        clearInterval(this.pingTimer);
        const { intervalMs = 20_000, timeoutMs = 10_000 } = this.options.heartbeat ?? {};
        if (intervalMs <= 0)
            return;
        this.pingTimer = setInterval(() => {
            const ws = this.ws;
            if (!ws || !this.welcomed)
                return;
            this.send("ping", {}, false, timeoutMs).catch((error) => {
                if (error instanceof RequestTimeoutError && this.ws === ws)
                    this.drop(ws, DROPPED);
            });
        }, intervalMs);
    }
    stop() {
        this.stopped = true;
        clearTimeout(this.retryTimer);
        clearInterval(this.pingTimer);
        clearTimeout(this.renewTimer);
        if (typeof window !== "undefined")
            window.removeEventListener("online", this.onlineListener);
        if (this.ws)
            this.drop(this.ws, 1000);
        this.setStatus("stopped");
    }
    failAll(error) {
        for (const entry of this.pending.values()) {
            clearTimeout(entry.timer);
            entry.reject(error);
        }
        this.pending.clear();
        const first = this.firstWelcome;
        this.firstWelcome = null;
        first?.reject(error);
    }
    fatal(fatal) {
        this.hooks.emit("fatal", fatal);
    }
    setStatus(status) {
        if (this.status === status)
            return;
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
export class AgentClient extends Core {
    watched = [];
    constructor(options) {
        super(options, "/agent/ws");
    }
    request(type, fields = {}) {
        if (type === "watch_archive")
            return this.watchArchive(fields.chat_ids);
        return super.request(type, fields);
    }
    /**
     * Watches these archive entries (`archive_entry_changed`), on this connection and, after a
     * reconnect, on the next one; `[]` stops.
     */
    watchArchive(chatIds) {
        // Remembered at once: a reconnect before the reply watches these, not the last ones.
        this.watched = [...chatIds];
        return super.request("watch_archive", { chat_ids: chatIds });
    }
    /** Pushes of one kind, with their event. */
    on(kind, listener) {
        return this.addKind(kind, ((p) => listener(p.event, p.seq)));
    }
    /** Every push, in seq order (also kinds this version does not know). */
    onPush(listener) {
        return this.hooks.add("push", listener);
    }
    async afterWelcome(welcome) {
        // A welcome seq below ours means the engine restarted: its numbers are not ours.
        const fresh = this.lastSeq === null || welcome.seq < this.lastSeq;
        const after = this.lastSeq;
        await this.synced(async () => {
            const first = this.send(fresh ? "snapshot" : "resume", fresh ? {} : { after_seq: after }, false);
            this.flushPending();
            try {
                return (await first);
            }
            catch (error) {
                // A resume the engine refused (say, a seq it never sent): start again from a snapshot.
                if (fresh || !(error instanceof SwitchboardError))
                    throw error;
                return (await this.send("snapshot", {}, false));
            }
        }, (result) => {
            if (result.kind === "snapshot")
                this.lastSeq = result.seq;
            this.hooks.emit("sync", result);
        });
        // Watches belong to a connection: watch again.
        if (this.watched.length > 0)
            await this.send("watch_archive", { chat_ids: this.watched }, false);
    }
    eventsOf(frame) {
        if (frame.type !== "push")
            return null;
        const push = frame;
        return [{ seq: push.seq, event: push.event }];
    }
    deliver(seq, event) {
        const push = { type: "push", seq, event };
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
export class SupervisorClient extends Core {
    /** The last `subscribe`'s queues (undefined: all), or null before the first. */
    subscription = null;
    constructor(options) {
        super(options, "/supervisor/ws");
    }
    request(type, fields = {}) {
        if (type === "subscribe")
            return this.subscribe(fields.queues);
        return super.request(type, fields);
    }
    /** Watches these queues (all without), replacing the last subscription: the board. */
    subscribe(queues) {
        this.subscription = queues ? { queues } : {};
        this.lastSeq = null;
        if (this.isOnline)
            return this.resubscribe(true);
        // Offline (or not yet welcomed): the next welcome subscribes; answer with its sync.
        return new Promise((resolve, reject) => {
            const offSync = this.onSync((sync) => {
                offSync();
                offStatus();
                resolve(sync);
            });
            const offStatus = this.onStatus((status) => {
                if (status !== "stopped")
                    return;
                offSync();
                offStatus();
                reject(new DisconnectedError("the client stopped before it could subscribe"));
            });
        });
    }
    /** Board events of one kind. */
    on(kind, listener) {
        return this.addKind(kind, listener);
    }
    /** Every board event, in seq order. */
    onEvent(listener) {
        return this.hooks.add("event", listener);
    }
    async afterWelcome(welcome) {
        if (!this.subscription) {
            this.flushPending();
            return;
        }
        // A welcome seq below ours means the engine restarted: take a fresh board.
        await this.resubscribe(this.lastSeq === null || welcome.seq < this.lastSeq);
    }
    async resubscribe(fresh) {
        const fields = { ...this.subscription, ...(fresh ? {} : { after_seq: this.lastSeq }) };
        return this.synced(async () => {
            const pending = this.send("subscribe", fields, false);
            this.flushPending();
            return (await pending);
        }, (result) => {
            if (result.kind === "board")
                this.lastSeq = result.seq;
            this.hooks.emit("sync", result);
        });
    }
    eventsOf(frame) {
        if (frame.type !== "pushes")
            return null;
        return frame.events.map((event) => ({ seq: event.seq, event }));
    }
    deliver(_seq, event) {
        this.emitKind(event.kind, event);
        this.hooks.emit("event", event);
    }
}
