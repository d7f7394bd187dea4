// Shared by the desk and the wall: a WebSocket that reconnects by itself, requests that
// resolve with their reply, the engine's clock, the sign-in form and a few DOM helpers.

const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
// A socket can die without a close event (a sleeping laptop, a dropped Wi-Fi): a ping that
// gets no answer in time counts as a disconnect.
const PING_EVERY_MS = 20_000;
const PING_TIMEOUT_MS = 10_000;
// A signed token is renewed (POST /v1/token, then `refresh`) this long before it expires:
// a quarter of its lifetime, at least 10 s and at most 5 min; a failed try is repeated.
const RENEW_MIN_MS = 10_000;
const RENEW_MAX_MS = 300_000;
const RENEW_RETRY_MS = 10_000;

// Close codes after which reconnecting with the same token cannot work (protocol/README.md).
const FATAL_CLOSES = {
  4001: "Your session expired. Sign in again.",
  4003: "This agent was removed by an admin.",
};

/**
 * One logical connection to the engine over as many WebSockets as it takes.
 *
 * handlers.onWelcome(welcome) runs on every (re)connect: resume from there.
 * handlers.onFrame(frame) gets every frame that is not a welcome or a reply to request().
 * handlers.onStatus(online) runs when the connection comes up or goes down.
 * handlers.onFatal(message) runs when reconnecting is pointless (bad token, removed agent).
 */
export class Socket {
  constructor(path, token, handlers) {
    this.path = path;
    this.token = token;
    this.handlers = handlers;
    this.ws = null;
    // Request ids are unique per agent for the engine's grace period: a repeated id is
    // taken for a retry and answered with the first reply. Another tab, or this page
    // reloaded, counts from 1 again, so each page has a prefix of its own.
    this.idPrefix = Math.random().toString(36).slice(2, 10);
    this.nextId = 1;
    this.pending = new Map();
    this.offsetMs = 0;
    this.attempt = 0;
    this.everWelcomed = false;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.renewTimer = null;
    window.addEventListener("online", () => this.retryNow());
  }

  /** The engine's clock now, in ms since the epoch: `welcome.now` plus the time since. */
  now() {
    return Date.now() + this.offsetMs;
  }

  start() {
    this.stopped = false;
    this.open();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.renewTimer);
    if (this.ws) this.drop(this.ws, 1000);
  }

  /** Sends `{id, type, ...fields}`; resolves with the `ok` result, rejects with the `error` frame. */
  request(type, fields = {}) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      return Promise.reject({ code: "disconnected", message: "offline: not sent" });
    }
    const id = `${this.idPrefix}-${this.nextId++}`;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      ws.send(JSON.stringify({ id, type, ...fields }));
    });
  }

  url() {
    const url = new URL(this.path, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("token", this.token);
    return url.href;
  }

  open() {
    clearTimeout(this.retryTimer);
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => this.closed(ws, event.code);
  }

  receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame.type === "welcome") {
      this.offsetMs = Date.parse(frame.now) - Date.now();
      this.everWelcomed = true;
      this.attempt = 0;
      this.startPinging();
      this.scheduleRenewal();
      this.handlers.onStatus?.(true);
      this.handlers.onWelcome?.(frame);
      return;
    }
    const waiting = frame.id != null && this.pending.get(frame.id);
    if ((frame.type === "ok" || frame.type === "error") && waiting) {
      this.pending.delete(frame.id);
      if (frame.type === "ok") waiting.resolve(frame.result);
      else waiting.reject(frame);
      return;
    }
    this.handlers.onFrame?.(frame);
  }

  // Forget `ws` at once (its close event may come much later, or never).
  drop(ws, code) {
    ws.onmessage = null;
    ws.onclose = null;
    try {
      ws.close(code);
    } catch {
      // Already closing.
    }
    this.closed(ws, code);
  }

  closed(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearInterval(this.pingTimer);
    for (const { reject } of this.pending.values()) {
      reject({ code: "disconnected", message: "the connection dropped before the reply" });
    }
    this.pending.clear();
    if (this.stopped) return;
    if (FATAL_CLOSES[code] || !this.everWelcomed) {
      // A browser cannot read the HTTP status of a refused upgrade: a socket that never got
      // its welcome most likely had a bad token, so ask for one rather than retry for ever.
      this.stopped = true;
      this.handlers.onFatal?.(
        FATAL_CLOSES[code] ?? "Could not sign in: the token was refused or the engine is unreachable.",
      );
      return;
    }
    this.handlers.onStatus?.(false);
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    this.attempt += 1;
    // Jitter, so that a restarted engine is not hit by every desk in the same instant.
    this.retryTimer = setTimeout(() => this.open(), ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  retryNow() {
    if (this.stopped || this.ws) return;
    this.attempt = 0;
    this.open();
  }

  /**
   * A signed token expires (the engine then closes with 4001): a fresh one is fetched from
   * the engine with the one we hold, before that, and handed to the live connection with
   * `refresh`; reconnects use it too. Static tokens (no `exp`) are never renewed.
   */
  scheduleRenewal(delayMs) {
    clearTimeout(this.renewTimer);
    const claims = tokenClaims(this.token);
    if (!claims?.exp || this.stopped) return;
    const exp = claims.exp * 1000;
    const lifetime = claims.iat ? exp - claims.iat * 1000 : RENEW_MAX_MS * 4;
    const margin = Math.min(RENEW_MAX_MS, Math.max(RENEW_MIN_MS, lifetime / 4));
    const wait = delayMs ?? Math.max(0, exp - margin - this.now());
    this.renewTimer = setTimeout(() => this.renew(), wait);
  }

  async renew() {
    const held = this.token;
    try {
      const response = await fetch("/v1/token", {
        method: "POST",
        headers: { authorization: `Bearer ${held}` },
        cache: "no-store",
      });
      if (!response.ok) throw new Error(`POST /v1/token answered ${response.status}`);
      const { token } = await response.json();
      if (this.stopped || this.token !== held) return;
      this.token = token;
      rememberToken(token);
      // Offline: the next connection opens with the new token; nothing to refresh.
      if (this.ws?.readyState === WebSocket.OPEN) await this.request("refresh", { token });
      this.scheduleRenewal();
    } catch (error) {
      if (this.stopped) return;
      const exp = (tokenClaims(this.token)?.exp ?? 0) * 1000;
      // Past its expiry the engine refuses it: the 4001 close asks to sign in again.
      if (this.now() < exp) this.scheduleRenewal(Math.min(RENEW_RETRY_MS, exp - this.now()));
    }
  }

  startPinging() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      const deadline = setTimeout(() => this.ws === ws && this.drop(ws, 4000), PING_TIMEOUT_MS);
      this.request("ping")
        .catch(() => {})
        .finally(() => clearTimeout(deadline));
    }, PING_EVERY_MS);
  }
}

/** The claims of a signed token (JWT), or null for anything else (a static token). */
export function tokenClaims(token) {
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  try {
    return JSON.parse(atob(parts[1].replace(/-/g, "+").replace(/_/g, "/")));
  } catch {
    return null;
  }
}

const tokenKey = () => `switchboard-token:${location.pathname}`;

/** Keeps `token` for this tab, so that a reload signs in with it. */
function rememberToken(token) {
  sessionStorage.setItem(tokenKey(), token);
}

/**
 * The sign-in form: takes the token from `?token=` or the form, shows the app, and starts
 * `connect(token)`, which returns the Socket. Returns a function that shows the form again
 * with a message (for fatal socket errors).
 */
export function signIn(connect) {
  const view = document.getElementById("signin-view");
  const form = document.getElementById("signin");
  const input = document.getElementById("token");
  const error = document.getElementById("signin-error");
  const app = document.getElementById("app");
  let socket = null;

  const start = (token) => {
    rememberToken(token);
    view.hidden = true;
    app.hidden = false;
    error.textContent = "";
    socket = connect(token);
  };
  const signOut = (message = "") => {
    socket?.stop();
    socket = null;
    sessionStorage.removeItem(tokenKey());
    setOffline(false);
    app.hidden = true;
    view.hidden = false;
    error.textContent = message;
    input.focus();
  };

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (token) start(token);
  });
  document.getElementById("signout")?.addEventListener("click", () => signOut());

  const params = new URLSearchParams(location.search);
  const token = params.get("token") ?? sessionStorage.getItem(tokenKey());
  if (params.has("token")) {
    // Keep the token out of the address bar and the history; the tab remembers it.
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
  if (token) start(token);
  else input.focus();
  return signOut;
}

/** Shows or hides the `#offline` banner. */
export function setOffline(offline) {
  const banner = document.getElementById("offline");
  if (banner) banner.hidden = !offline;
}

/** `h("li", {class: "x", "data-chat-id": id, onclick: f}, child, …)` */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child != null && child !== false) el.append(child);
  }
  return el;
}

/**
 * Makes `list`'s children match `items`, in order, keyed by the attribute `attr`: existing
 * elements are updated in place (so focus and typed input survive), new ones created, the
 * rest removed.
 */
export function reconcile(list, items, attr, keyOf, create, update) {
  const existing = new Map();
  for (const el of list.children) existing.set(el.getAttribute(attr), el);
  const keep = new Set();
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    let el = existing.get(key);
    if (!el) {
      el = create(item);
      el.setAttribute(attr, key);
    }
    update(el, item);
    keep.add(el);
    const slot = previous ? previous.nextElementSibling : list.firstElementChild;
    if (slot !== el) list.insertBefore(el, slot);
    previous = el;
  }
  for (const el of [...list.children]) if (!keep.has(el)) el.remove();
}

const pad = (n) => String(n).padStart(2, "0");

/** 3725000 → "1h 02m 05s". */
export function duration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(total / 86_400);
  const hours = Math.floor((total % 86_400) / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  if (days) return `${days}d ${hours}h ${pad(minutes)}m`;
  if (hours) return `${hours}h ${pad(minutes)}m ${pad(seconds)}s`;
  if (minutes) return `${minutes}m ${pad(seconds)}s`;
  return `${seconds}s`;
}

/** Time left for a countdown with `ms` > 0 still to go; never "0s" while time is left. */
export function remaining(ms) {
  return duration(Math.max(1000, Math.round(ms / 1000) * 1000));
}

/** Local clock time of an RFC 3339 string, "09:05". */
export function clockTime(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

/** How to show a customer: name, else phone, else email, else id. */
export function customerLabel(customer) {
  return customer.name || customer.phone || customer.email || customer.id;
}
