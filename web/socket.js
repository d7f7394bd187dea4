// Shared by the desk and the wall: the sign-in form and a few DOM helpers. The connection
// (reconnects, resume, requests, the engine's clock, token renewal) is the client package's
// (/assets/client.js).

// What the sign-in form says when the client stops for good (protocol/README.md's closes).
const FATAL_TEXT = {
  4001: "Your session expired. Sign in again.",
  4003: "This agent was removed by an admin.",
};

/** The sign-in form's message for the client's `onFatal`. */
export function fatalText(fatal) {
  return FATAL_TEXT[fatal.closeCode]
    ?? (fatal.closeCode === null
      ? "Could not sign in: the token was refused or the engine is unreachable."
      : fatal.message);
}

/**
 * The workspace (R27) this page is for: `acme` on `/w/acme/` and `/w/acme/wall`; undefined on
 * the unprefixed pages, which are `default`'s. The client then uses that workspace's paths.
 */
export const workspace = /^\/w\/([^/]+)\//.exec(location.pathname)?.[1];

const tokenKey = () => `switchboard-token:${location.pathname}`;

/** Keeps `token` for this tab, so that a reload signs in with it. */
function rememberToken(token) {
  sessionStorage.setItem(tokenKey(), token);
}

/**
 * The sign-in form: takes the token from `?token=` or the form, shows the app, and starts
 * `connect(token)`, which returns the client (AgentClient or SupervisorClient); the tokens it
 * renews are remembered for a reload. Returns a function that shows the form again
 * with a message (for fatal socket errors).
 */
export function signIn(connect) {
  const view = document.getElementById("signin-view");
  const form = document.getElementById("signin");
  const input = document.getElementById("token");
  const error = document.getElementById("signin-error");
  const app = document.getElementById("app");
  let socket = null;
  // Which contact centre this is, when not the default one: on the form and in the top bar.
  for (const el of document.querySelectorAll(".workspace")) {
    el.textContent = workspace ?? "";
    el.hidden = workspace === undefined;
  }

  const start = (token) => {
    rememberToken(token);
    view.hidden = true;
    app.hidden = false;
    error.textContent = "";
    socket = connect(token);
    socket.onToken(rememberToken);
  };
  const signOut = (message = "") => {
    socket?.close();
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

/**
 * A chat's required skills with their least levels (R19), `{billing: 3, "language:es": 1}` →
 * "billing ≥3 · language:es ≥1"; "" when it requires none. Desk and wall write them alike.
 */
export function requirementsText(requires) {
  return Object.entries(requires ?? {})
    .map(([skill, level]) => `${skill} ≥${level}`)
    .join(" · ");
}
