// The agent desk: offers, active and reopened chats, the archive with its reopen countdowns,
// and a chat view. Everything shown comes from the agent socket (protocol/README.md).

import { AgentClient } from "/assets/client.js";
import {
  signIn, fatalText, setOffline, h, reconcile, remaining, clockTime, customerLabel, requirementsText,
  workspace,
} from "/assets/socket.js";

// Until the engine's `welcome` says how it is configured: the shortest default length.
const FALLBACK_MAX_LEN = 1024;
const HISTORY_PAGE = 50;
const LIVE = new Set(["active", "reopened", "snoozed"]);
const ARCHIVE_LIMIT = 100;
const TEMPLATE = "follow_up";

const $ = (selector) => document.querySelector(selector);
const list = (section) => $(`section#${section} ul.list`);

const desk = {
  me: null,
  presence: "offline",
  load: 0,
  limit: 0,
  chats: new Map(), // live chats by id (ChatView)
  offers: new Map(), // pending offers by chat id (OfferView)
  archive: [], // ArchiveEntry, newest first
  reasons: new Map(), // chat id → why its last reopen or template failed
  busy: new Set(), // chat ids with a reopen, template, accept or decline in flight
  open: null, // the chat view: {id, chat, messages, nextBefore, error, gone, status}
  maxLen: new Map(), // channel → longest message, as the engine is configured
  agents: [], // every agent's row (list_agents), for the transfer picker
  retrying: new Map(), // "chat id#seq" → "" while a retry is in flight, or why it was refused
};
let socket = null;

// ---- connection and sync (R17) ------------------------------------------------------------

// The client resumes after every reconnect by itself (or takes a snapshot) and hands each
// push over once, in order; the desk applies what it is given.
const signOut = signIn((token) => {
  Object.assign(desk, { open: null, archive: [] });
  desk.reasons.clear();
  socket = new AgentClient({ url: location.origin, workspace, token, renewToken: true });
  socket.onWelcome(welcome);
  socket.onSync((sync) => {
    if (sync.kind === "snapshot") applySnapshot(sync);
    render();
    loadArchive(); // list again: what changed while offline was not pushed
    if (desk.open) openChat(desk.open.id, { keepFocus: true });
  });
  socket.onPush((push) => {
    applyPush(push);
    render();
  });
  socket.onStatus((status) => {
    if (status === "online" || status === "offline") setOffline(status === "offline");
  });
  socket.onFatal((fatal) => signOut(fatalText(fatal)));
  socket.connect().catch(() => {}); // a refused first connection is reported by onFatal
  return socket;
});

function welcome(w) {
  desk.me = w.agent;
  desk.presence = w.presence;
  desk.maxLen = new Map((w.channels ?? []).map((c) => [c.channel, c.max_message_length]));
  $("#me").textContent = `${w.agent.name} (${w.agent.id})`;
}

function applySnapshot(s) {
  desk.presence = s.presence;
  desk.load = s.load;
  desk.limit = s.limit;
  desk.chats = new Map(s.chats.map((c) => [c.id, c]));
  desk.offers = new Map(s.offers.map((o) => [o.chat.id, o]));
}

function applyPush({ event }) {
  const chat = event.chat;
  switch (event.kind) {
    case "chat_offered":
      desk.offers.set(chat.id, event);
      break;
    case "offer_withdrawn":
      desk.offers.delete(event.chat_id);
      break;
    case "chat_reopened":
    case "chat_updated":
      desk.chats.set(chat.id, chat);
      updateOpenChat(chat);
      break;
    case "chat_activated":
      desk.chats.set(chat.id, chat);
      desk.offers.delete(chat.id);
      desk.load = event.load;
      desk.limit = event.limit;
      updateOpenChat(chat);
      if (event.by === "snooze_ended" && desk.open?.id === chat.id) {
        desk.open.status = "The snooze is over: the chat is active again.";
      }
      break;
    case "customer_message":
    case "message_sent":
      addMessage(event.chat_id, event.message);
      break;
    case "message_status":
      applyStatus(event.chat_id, event.seq, event.delivery);
      break;
    case "chat_closed":
    case "chat_transferred":
      dropChat(event.chat_id, event.kind === "chat_closed" ? "closed" : null);
      scheduleArchiveReload();
      break;
    case "archive_entry_changed":
      replaceEntry(event.entry);
      break;
    case "presence_changed":
      desk.presence = event.presence;
      break;
    case "limit_changed":
      desk.limit = event.limit;
      desk.load = event.load;
      break;
    default: // a push kind this client does not know: ignore (protocol versioning)
  }
}

// A chat left the desk: closed, or transferred away. Active and snoozed chats counted.
function dropChat(id, newState) {
  const chat = desk.chats.get(id);
  if (chat && (chat.state === "active" || chat.state === "snoozed")) {
    desk.load = Math.max(0, desk.load - 1);
  }
  desk.chats.delete(id);
  if (desk.open?.id === id && desk.open.chat) {
    desk.open.chat = { ...desk.open.chat, state: newState ?? desk.open.chat.state };
    desk.open.gone = true;
  }
}

function addMessage(id, message) {
  const chat = desk.chats.get(id);
  if (chat) chat.last_message = message;
  if (desk.open?.id === id) {
    desk.open.messages.push(message);
    renderChat();
  }
}

// A message to the customer moved on (R24, R25). Pushed messages carry no `seq`: a status for
// one the open chat does not know by its seq loads the newest page again, which has it.
function applyStatus(chatId, seq, delivery) {
  const open = desk.open;
  if (open?.id !== chatId) return;
  const message = open.messages.find((m) => m.seq === seq);
  if (message) {
    message.delivery = delivery;
    if (delivery.status !== "failed") desk.retrying.delete(`${chatId}#${seq}`);
  } else {
    reloadNewest(open);
  }
}

// The newest page again, replacing what was shown from its first seq on (pushed messages
// without a seq included); older pages already loaded are kept.
let reloading = null;
function reloadNewest(open) {
  if (reloading?.open === open) {
    reloading.again = true;
    return;
  }
  reloading = { open, again: false };
  (async () => {
    try {
      do {
        reloading.again = false;
        const result = await socket.request("get_chat", { chat_id: open.id, limit: HISTORY_PAGE });
        if (desk.open !== open) return;
        const first = result.messages[0]?.seq ?? Infinity;
        const older = open.messages.filter((m) => m.seq != null && m.seq < first);
        open.messages = [...older, ...result.messages];
        open.chat = result.chat;
        if (!older.length) open.nextBefore = result.next_before_seq;
        renderChat();
      } while (reloading.again);
    } catch {
      // Offline: the sync after reconnecting loads the chat again.
    } finally {
      reloading = null;
    }
  })();
}

function updateOpenChat(chat) {
  if (desk.open?.id === chat.id) {
    desk.open.chat = chat;
    desk.open.gone = false;
  }
}

// ---- actions ------------------------------------------------------------------------------

async function act(chatId, type, fields = {}) {
  desk.busy.add(chatId);
  render();
  try {
    return await socket.request(type, { chat_id: chatId, ...fields });
  } finally {
    desk.busy.delete(chatId);
    render();
  }
}

/** What a refused reopen (or template) tells the agent. */
function reasonText(error) {
  switch (error.code) {
    case "active_elsewhere": {
      const live = error.live ?? {};
      if (live.owner) return `active elsewhere — with ${live.owner_name ?? live.owner}`;
      if (live.state === "bot") return "active elsewhere — in a bot journey";
      if (live.state === "queued") return "active elsewhere — waiting in the queue";
      return "active elsewhere";
    }
    case "window_closed":
      return "window closed — send a template";
    case "opted_out":
      return "customer opted out";
    case "push_already_sent":
      return "a template was already sent since the customer last wrote";
    case "disconnected":
    case "timeout":
      return "offline — try again when reconnected";
    default:
      return error.message ?? String(error);
  }
}

/** Reopens a chat as its Reopen button does; resolves to `{ok, code?, reason?}`. */
async function reopen(chatId) {
  desk.reasons.delete(chatId);
  try {
    const result = await act(chatId, "reopen");
    const entry = findEntry(chatId);
    if (entry) Object.assign(entry, { reopenable: false, state: "reopened" });
    desk.chats.set(result.chat.id, result.chat);
    render();
    return { ok: true };
  } catch (error) {
    const reason = reasonText(error);
    desk.reasons.set(chatId, reason);
    const entry = findEntry(chatId);
    if (entry && ["active_elsewhere", "window_closed", "opted_out"].includes(error.code)) {
      entry.reopenable = false;
    }
    render();
    return { ok: false, code: error.code, reason };
  }
}

async function sendTemplate(chatId) {
  desk.reasons.delete(chatId);
  try {
    await act(chatId, "send_template", { template: TEMPLATE, params: [] });
    const entry = findEntry(chatId);
    if (entry) entry.template_allowed = false; // once: the button goes
    if (desk.open?.id === chatId) openChat(chatId, { keepFocus: true }); // it is in the history
  } catch (error) {
    desk.reasons.set(chatId, reasonText(error));
    if (error.code === "push_already_sent") {
      const entry = findEntry(chatId);
      if (entry) entry.template_allowed = false;
    }
  }
  render();
}

async function answerOffer(chatId, type) {
  try {
    const result = await act(chatId, type);
    desk.offers.delete(chatId);
    if (result.kind === "chat") desk.chats.set(result.chat.id, result.chat);
    desk.reasons.delete(chatId);
  } catch (error) {
    desk.reasons.set(chatId, error.code === "not_found" ? "the offer is gone" : reasonText(error));
    if (error.code === "not_found") desk.offers.delete(chatId);
  }
  render();
}

$("#presence").addEventListener("change", async (event) => {
  const wanted = event.target.value;
  try {
    const result = await socket.request("set_presence", { presence: wanted });
    desk.presence = result.presence;
  } catch {
    // Refused or offline: show what the engine says we are.
  }
  renderHeader();
});

// ---- the archive (R16) --------------------------------------------------------------------

let archiveGeneration = 0;
let archiveReload = null;
let searchTimer = null;

function archiveQuery() {
  const query = { scope: $("#archive-scope").value, limit: ARCHIVE_LIMIT };
  const state = $("#archive-state").value;
  if (state !== "any") query.state = state;
  const text = $("#archive-search").value.trim();
  if (text) query.query = text;
  return query;
}

// List, watch what is listed, then list again: a change between the first listing and the
// watch would otherwise be missed (nothing is pushed for it), and the second listing shows it.
async function loadArchive() {
  const generation = ++archiveGeneration;
  const status = $("#archive-status");
  try {
    const query = archiveQuery();
    const first = await socket.request("list_archive", query);
    if (generation !== archiveGeneration) return;
    const watched = new Set(first.entries.map((e) => e.chat_id));
    await socket.request("watch_archive", { chat_ids: [...watched] });
    const second = await socket.request("list_archive", query);
    if (generation !== archiveGeneration) return;
    desk.archive = second.entries;
    if (second.entries.some((e) => !watched.has(e.chat_id))) {
      await socket.request("watch_archive", { chat_ids: second.entries.map((e) => e.chat_id) });
    }
    const n = desk.archive.length;
    status.textContent = n ? `${n} chat${n === 1 ? "" : "s"}` : "No chats match.";
    renderArchive();
  } catch (error) {
    if (generation === archiveGeneration && error.code !== "disconnected") {
      status.textContent = `Could not load the archive: ${error.message}`;
    }
  }
}

function scheduleArchiveReload() {
  clearTimeout(archiveReload);
  archiveReload = setTimeout(loadArchive, 300);
}

$("#archive-scope").addEventListener("change", loadArchive);
$("#archive-state").addEventListener("change", loadArchive);
$("#archive-search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadArchive, 250);
});

function findEntry(chatId) {
  return desk.archive.find((e) => e.chat_id === chatId);
}

function replaceEntry(entry) {
  const i = desk.archive.findIndex((e) => e.chat_id === entry.chat_id);
  if (i >= 0) desk.archive[i] = entry;
}

function windowOpen(entry, now) {
  return entry.window_expires_at === null || Date.parse(entry.window_expires_at) > now;
}

// ---- rendering ----------------------------------------------------------------------------

function render() {
  renderHeader();
  renderOffers();
  renderActive();
  renderReopened();
  renderArchive();
  renderChat();
}

function renderHeader() {
  $("#presence").value = desk.presence;
}

function showEmpty(section, empty) {
  $(`section#${section} .empty`).hidden = !empty;
}

/** The countdown element's text for `until` (RFC 3339 or null) at the engine's `now`. */
function countdownText(el, now) {
  const until = el.dataset.until;
  if (!until) return "no window";
  const left = Date.parse(until) - now;
  if (el.dataset.style === "offer") return left > 0 ? `${remaining(left)} to answer` : "expiring…";
  return left > 0 ? `${remaining(left)} left` : "window closed";
}

function countdown(until, style) {
  const el = h("span", { class: "countdown", "data-style": style });
  setUntil(el, until);
  return el;
}

function setUntil(el, until) {
  if (until) el.dataset.until = until;
  else delete el.dataset.until;
  el.textContent = countdownText(el, socket.now());
}

// Cards open the chat view on click or Enter (but not when a button inside is used).
function openable(li, id) {
  li.tabIndex = 0;
  li.classList.add("openable");
  li.addEventListener("click", (event) => {
    if (!event.target.closest("button, a, input, select, textarea")) openChat(id);
  });
  li.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target === li) openChat(id);
  });
}

function chatCard(chat) {
  const li = h("li", { class: "item" });
  openable(li, chat.id);
  li.append(
    h("div", { class: "item-main" },
      h("strong", { class: "name" }),
      h("span", { class: "meta muted" }),
      h("p", { class: "preview" })),
    h("div", { class: "item-side" }));
  return li;
}

function fillChatCard(li, chat) {
  li.querySelector(".name").textContent = customerLabel(chat.customer);
  const meta = [chat.channel, chat.state === "snoozed" ? snoozeText(chat) : null].filter(Boolean);
  li.querySelector(".meta").textContent = meta.join(" · ");
  const m = chat.last_message;
  li.querySelector(".preview").textContent = m ? `${author(m)}: ${m.text}` : "";
  li.setAttribute("aria-label", `${customerLabel(chat.customer)}, ${meta.join(", ")}`);
  li.classList.toggle("selected", desk.open?.id === chat.id);
}

function renderActive() {
  const chats = [...desk.chats.values()].filter((c) => c.state === "active" || c.state === "snoozed");
  reconcile(list("active"), chats, "data-chat-id", (c) => c.id, chatCard, fillChatCard);
  $("#load").textContent = `${desk.load}/${desk.limit}`;
  $("section#active").classList.toggle("over-limit", desk.load > desk.limit);
  showEmpty("active", chats.length === 0);
}

function renderReopened() {
  const chats = [...desk.chats.values()].filter((c) => c.state === "reopened");
  reconcile(list("reopened"), chats, "data-chat-id", (c) => c.id, chatCard, (li, chat) => {
    fillChatCard(li, chat);
    const side = li.querySelector(".item-side");
    if (!side.firstChild) side.append(countdown(chat.window_expires_at, "window"));
    else setUntil(side.firstChild, chat.window_expires_at);
  });
  showEmpty("reopened", chats.length === 0);
}

function renderOffers() {
  const offers = [...desk.offers.values()];
  reconcile(list("offers"), offers, "data-chat-id", (o) => o.chat.id, (offer) => {
    const id = offer.chat.id;
    return h("li", { class: "item offer" },
      h("div", { class: "item-main" },
        h("strong", { class: "name" }),
        h("span", { class: "meta muted" }),
        h("p", { class: "offer-routing" },
          h("span", { class: "requires" }), " ",
          h("span", { class: "step muted" })),
        h("p", { class: "preview" }),
        h("p", { class: "reason", "aria-live": "polite" })),
      h("div", { class: "item-side" },
        countdown(offer.expires_at, "offer"),
        h("div", { class: "actions" },
          h("button", { type: "button", class: "accept primary", onclick: () => answerOffer(id, "accept") }, "Accept"),
          h("button", { type: "button", class: "decline", onclick: () => answerOffer(id, "decline") }, "Decline"))));
  }, (li, offer) => {
    const chat = offer.chat;
    li.querySelector(".name").textContent = customerLabel(chat.customer);
    li.querySelector(".meta").textContent = `${chat.channel} · queue ${offer.queue}`;
    fillOfferRouting(li.querySelector(".offer-routing"), offer);
    li.querySelector(".preview").textContent = chat.last_message?.text ?? "";
    li.querySelector(".reason").textContent = desk.reasons.get(chat.id) ?? "";
    setUntil(li.querySelector(".countdown"), offer.expires_at);
    const busy = desk.busy.has(chat.id);
    li.querySelector(".accept").disabled = busy;
    li.querySelector(".decline").disabled = busy;
    li.querySelector(".accept").setAttribute("aria-label", `Accept chat with ${customerLabel(chat.customer)}`);
    li.querySelector(".decline").setAttribute("aria-label", `Decline chat with ${customerLabel(chat.customer)}`);
  });
  showEmpty("offers", offers.length === 0);
  $("section#offers").classList.toggle("has-offers", offers.length > 0);
}

// What the offer asks of whoever takes it (R19), so that the agent sees why it came to them.
// An offer from a queue with no workflow and no requirements (step 0, none) shows nothing.
function fillOfferRouting(line, offer) {
  const requires = requirementsText(offer.requires);
  const step = offer.step ?? 0;
  line.hidden = !requires && step === 0;
  line.querySelector(".requires").textContent = requires ? `Requires ${requires}` : "No skills required";
  line.querySelector(".step").textContent = `· step ${step + 1}`;
}

function archiveItem(entry) {
  const id = entry.chat_id;
  const li = h("li", { class: "item entry" },
    h("div", { class: "item-main" },
      h("strong", { class: "name" }),
      h("span", { class: "meta muted" }),
      h("p", { class: "reason", "aria-live": "polite" })),
    h("div", { class: "item-side" },
      countdown(entry.window_expires_at, "window"),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "reopen primary", onclick: () => reopen(id) }, "Reopen"),
        h("button", { type: "button", class: "template", onclick: () => sendTemplate(id), hidden: true },
          "Send template"))));
  openable(li, id);
  return li;
}

function fillArchiveItem(li, entry) {
  const now = socket.now();
  const who = customerLabel(entry.customer);
  const contact = [entry.customer.phone, entry.customer.email].filter((x) => x && x !== who);
  li.querySelector(".name").textContent = who;
  const meta = [entry.channel, entry.state, entry.owner ? `owner ${entry.owner}` : null,
    entry.closed_at ? `closed ${clockTime(entry.closed_at)}` : null, ...contact];
  li.querySelector(".meta").textContent = meta.filter(Boolean).join(" · ");
  li.querySelector(".reason").textContent = desk.reasons.get(entry.chat_id) ?? "";
  setUntil(li.querySelector(".countdown"), entry.window_expires_at);
  updateArchiveButtons(li, entry, now);
  li.classList.toggle("selected", desk.open?.id === entry.chat_id);
}

// The Reopen button is on only while the engine says the chat can be reopened and the window
// is open; once the window has closed, "Send template" takes its place, once.
function updateArchiveButtons(li, entry, now) {
  const open = windowOpen(entry, now);
  const busy = desk.busy.has(entry.chat_id);
  const reopenButton = li.querySelector(".reopen");
  const templateButton = li.querySelector(".template");
  const templateOffered = entry.template_allowed && !open;
  reopenButton.disabled = !entry.reopenable || !open || busy;
  reopenButton.hidden = templateOffered;
  templateButton.hidden = !templateOffered;
  templateButton.disabled = busy;
  const who = customerLabel(entry.customer);
  reopenButton.setAttribute("aria-label", `Reopen chat with ${who}`);
  templateButton.setAttribute("aria-label", `Send template to ${who}`);
  li.dataset.windowOpen = String(open);
}

function renderArchive() {
  reconcile(list("archive"), desk.archive, "data-chat-id", (e) => e.chat_id, archiveItem, fillArchiveItem);
}

function snoozeText(chat) {
  return chat.snooze?.until === "time"
    ? `snoozed until ${clockTime(chat.snooze.at)}`
    : "snoozed until the customer replies";
}

function author(message) {
  switch (message.author.by) {
    case "agent": return message.author.agent === desk.me?.id ? "You" : message.author.agent;
    case "customer": return "Customer";
    default: return "System";
  }
}

// ---- the chat view ------------------------------------------------------------------------

async function openChat(id, { keepFocus = false } = {}) {
  const known = desk.chats.get(id) ?? desk.offers.get(id)?.chat ?? entryAsChat(findEntry(id));
  if (desk.open?.id !== id) {
    desk.open = { id, chat: known, messages: [], nextBefore: null, error: null, gone: false, status: "" };
    $("#composer").value = "";
  }
  render();
  if (!keepFocus) $("#chat-title").focus();
  try {
    const result = await socket.request("get_chat", { chat_id: id, limit: HISTORY_PAGE });
    if (desk.open?.id !== id) return;
    Object.assign(desk.open, {
      chat: result.chat, messages: result.messages, nextBefore: result.next_before_seq, error: null,
    });
    if (canWrite(result.chat)) loadAgents();
  } catch (error) {
    if (desk.open?.id !== id) return;
    desk.open.error = error.code === "not_owner"
      ? "Only the chat's owner can read its history."
      : `Could not load the history: ${error.message}`;
  }
  renderChat();
}

// The page before the oldest message shown, above it, keeping what was on screen in place.
async function loadOlder() {
  const open = desk.open;
  if (!open || open.nextBefore == null) return;
  const button = $("#older");
  button.disabled = true;
  try {
    const result = await socket.request("get_chat", {
      chat_id: open.id, before_seq: open.nextBefore, limit: HISTORY_PAGE,
    });
    if (desk.open !== open) return;
    const history = $("#history");
    const fromBottom = history.scrollHeight - history.scrollTop;
    open.messages = [...result.messages, ...open.messages];
    open.nextBefore = result.next_before_seq;
    renderChat();
    history.scrollTop = history.scrollHeight - fromBottom;
  } catch (error) {
    if (desk.open === open) open.status = `Could not load older messages: ${error.message}`;
    renderChat();
  } finally {
    button.disabled = false;
  }
}
$("#older").addEventListener("click", loadOlder);

function entryAsChat(entry) {
  return entry && {
    id: entry.chat_id, customer: entry.customer, channel: entry.channel, state: entry.state,
    owner: entry.owner, window_expires_at: entry.window_expires_at,
  };
}

function canWrite(chat) {
  return chat && LIVE.has(chat.state) && chat.owner === desk.me?.id;
}

function renderChat() {
  const open = desk.open;
  $("#chat").hidden = !open;
  $("#chat-empty").hidden = Boolean(open);
  if (!open) return;
  const chat = open.chat;
  $("#chat-title").textContent = chat ? customerLabel(chat.customer) : open.id;
  $("#chat-meta").textContent = chat
    ? [chat.channel, chat.state === "snoozed" ? snoozeText(chat) : chat.state,
      chat.owner ? `owner ${chat.owner}` : null].filter(Boolean).join(" · ")
    : "";
  $("#chat-status").textContent = open.status ?? "";
  $("#older").hidden = open.nextBefore == null || Boolean(open.error);

  const history = $("#history");
  const atBottom = history.scrollHeight - history.scrollTop - history.clientHeight < 40;
  history.replaceChildren(
    ...(open.error ? [h("li", { class: "msg system", text: open.error })] : []),
    ...open.messages.map((m) => messageItem(open, m)));
  if (atBottom || open.messages.length < 2) history.scrollTop = history.scrollHeight;

  const composer = $("#composer");
  const writable = canWrite(chat) && !open.gone;
  const max = desk.maxLen.get(chat?.channel) ?? FALLBACK_MAX_LEN;
  composer.maxLength = max;
  composer.disabled = !writable;
  // maxlength stops typing and pasting; a longer text set any other way is not sent either.
  const over = composer.value.length > max;
  $("#send").disabled = !writable || composer.value.trim() === "" || over;
  $("#close-chat").hidden = !writable;
  renderChatActions(open, writable);
  $("#counter").textContent = `${composer.value.length}/${max}`;
  $("#counter").classList.toggle("over", over);
  if (!writable && !$("#compose-note").dataset.sticky) {
    $("#compose-note").textContent = chat?.state === "closed"
      ? "This chat is closed: reopen it from the archive to write."
      : "Only the owner of a live chat can write here.";
  } else if (writable && !$("#compose-note").dataset.sticky) {
    $("#compose-note").textContent = "";
  }
}

function messageItem(open, m) {
  const text = m.kind === "template" ? `Template: ${m.text}` : m.text;
  return h("li", {
    class: `msg ${m.author.by} ${m.kind}`,
    "data-seq": m.seq == null ? null : String(m.seq),
    "data-delivery": m.delivery?.status ?? null,
  },
  h("span", { class: "msg-head" }, `${author(m)} · ${clockTime(m.at)}`),
  m.attachment ? attachmentView(m.attachment, m.text) : null,
  ["reply", "location"].includes(m.attachment?.type) || (m.attachment && !text) ? null : h("p", { class: "msg-text", text }),
  m.delivery ? deliveryView(open, m) : null);
}

// ---- delivery ticks (R24, R25) and attachments (R23) -----------------------------------------

const TICKS = {
  pending: { mark: "◷", label: "Sending" },
  sent: { mark: "✓", label: "Sent" },
  delivered: { mark: "✓✓", label: "Delivered" },
  read: { mark: "✓✓", label: "Read" },
};

function deliveryView(open, m) {
  const { status, reason } = m.delivery;
  if (status === "failed") {
    const key = `${open.id}#${m.seq}`;
    const retry = desk.retrying.get(key);
    const owner = canWrite(open.chat) && !open.gone;
    return h("div", { class: "delivery failed", "data-status": "failed", role: "status" },
      h("span", { class: "failed-text", text: `Not delivered: ${reason ?? "no reason given"}` }),
      owner && m.seq != null
        ? h("button", {
          type: "button", class: "retry link", disabled: retry === "",
          "aria-label": `Retry sending: ${m.text}`, onclick: () => retryMessage(open, m.seq),
        }, retry === "" ? "Retrying…" : "Retry")
        : null,
      retry ? h("span", { class: "retry-error", role: "alert", text: `Retry refused: ${retry}` }) : null);
  }
  const tick = TICKS[status] ?? { mark: "?", label: status };
  return h("div", { class: `delivery ${status}`, "data-status": status },
    h("span", { class: "tick", "aria-hidden": "true", text: tick.mark }),
    h("span", { class: "tick-label", text: tick.label }));
}

async function retryMessage(open, seq) {
  const key = `${open.id}#${seq}`;
  desk.retrying.set(key, "");
  renderChat();
  try {
    await socket.request("retry_message", { chat_id: open.id, seq });
    desk.retrying.delete(key);
  } catch (error) {
    desk.retrying.set(key, error.code === "bad_request"
      ? "the message has not failed (it may already be on its way)"
      : error.code === "not_owner" ? "only the chat's owner can retry it" : reasonText(error));
  }
  renderChat();
}

function mapUrl(lat, lon) {
  return `https://www.openstreetmap.org/?mlat=${lat}&mlon=${lon}#map=16/${lat}/${lon}`;
}

function safeUrl(url) {
  try {
    const parsed = new URL(url);
    return ["http:", "https:"].includes(parsed.protocol) ? parsed.href : null;
  } catch {
    return null;
  }
}

function attachmentView(a, text) {
  switch (a.type) {
    case "media": {
      const label = `${a.kind ?? "media"}: ${a.filename || a.mime || "attachment"}`;
      const url = a.url ? safeUrl(a.url) : null;
      return h("p", { class: "attachment media", "data-attachment": "media" },
        h("span", { class: "chip", "aria-hidden": "true", text: "📎" }), " ",
        url
          ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer", text: label,
            "aria-label": `Attachment, ${label}` })
          : h("span", { text: label, "aria-label": `Attachment, ${label}` }));
    }
    case "location": {
      const where = [a.name, a.address].filter(Boolean).join(", ") || "Location";
      const label = `${where} (${a.latitude}, ${a.longitude})`;
      return h("p", { class: "attachment location", "data-attachment": "location" },
        h("span", { "aria-hidden": "true", text: "📍" }), " ",
        h("a", { href: mapUrl(a.latitude, a.longitude), target: "_blank", rel: "noopener noreferrer",
          text: label, "aria-label": `Location: ${label}` }));
    }
    case "reply":
      return h("p", { class: "attachment reply", "data-attachment": "reply" },
        h("span", { class: "msg-text", text }), " ",
        h("span", { class: "tag", text: "button reply" }));
    case "unsupported":
      return h("p", { class: "attachment unsupported", "data-attachment": "unsupported",
        text: `Unsupported message (${a.kind})` });
    default:
      return null;
  }
}

// Transfer (R12) an active chat; snooze (R13) an active or snoozed one. Owners only.
function renderChatActions(open, writable) {
  const state = open.chat?.state;
  const busy = desk.busy.has(open.id);
  $("#transfer-form").hidden = !writable || state !== "active";
  $("#snooze-form").hidden = !writable || !["active", "snoozed"].includes(state);
  $("#chat-actions").hidden = $("#transfer-form").hidden && $("#snooze-form").hidden;
  renderTransferTargets();
  $("#transfer").disabled = busy || !$("#transfer-to").value;
  $("#snooze").disabled = busy;
}

// Colleagues, those who can take the chat now (online, below their limit) first; the others
// are listed but cannot be picked, saying why.
function renderTransferTargets() {
  const select = $("#transfer-to");
  const why = (a) => (a.presence !== "online" ? a.presence : a.load >= a.limit ? "full" : null);
  const others = desk.agents
    .filter((a) => a.id !== desk.me?.id)
    .sort((a, b) => Number(Boolean(why(a))) - Number(Boolean(why(b))) || a.name.localeCompare(b.name));
  const options = others.map((a) => h("option", {
    value: a.id,
    disabled: Boolean(why(a)),
    text: `${a.name} (${a.load}/${a.limit})${why(a) ? ` — ${why(a)}` : ""}`,
  }));
  const same = select.options.length === options.length && options.every((o, i) =>
    select.options[i].value === o.value && select.options[i].text === o.text
    && select.options[i].disabled === o.disabled);
  if (same) return;
  const chosen = select.value;
  select.replaceChildren(...options);
  const keep = others.find((a) => a.id === chosen && !why(a));
  select.value = keep ? keep.id : (others.find((a) => !why(a))?.id ?? "");
}

async function loadAgents() {
  try {
    desk.agents = (await socket.request("list_agents")).agents;
  } catch {
    return; // offline: the picker keeps what it had
  }
  renderChat();
}

// Picked from a list that may have aged: ask again as the agent goes to choose.
$("#transfer-to").addEventListener("focus", loadAgents);

function agentName(id) {
  return desk.agents.find((a) => a.id === id)?.name ?? id;
}

function transferRefused(error, to) {
  switch (error.code) {
    case "agent_unavailable": return `${to} is not online`;
    case "over_limit": return `${to} has no room (at their limit)`;
    case "not_found": return `there is no agent ${to}`;
    default: return reasonText(error);
  }
}

$("#transfer-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const open = desk.open;
  const to = $("#transfer-to").value.trim();
  if (!open || !to) return;
  try {
    const result = await act(open.id, "transfer", { to });
    open.chat = result.chat;
    open.status = `Transferred to ${agentName(to)}.`;
  } catch (error) {
    open.status = `Not transferred: ${transferRefused(error, agentName(to))}`;
    loadAgents();
  }
  renderChat();
});

$("#snooze-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const open = desk.open;
  if (!open) return;
  const minutes = $("#snooze-for").value;
  const fields = minutes === "reply"
    ? {}
    : { until: new Date(socket.now() + Number(minutes) * 60_000).toISOString() };
  try {
    const result = await act(open.id, "snooze", fields);
    desk.chats.set(result.chat.id, result.chat);
    open.chat = result.chat;
    open.status = `${snoozeText(result.chat).replace(/^s/, "S")}.`;
  } catch (error) {
    open.status = `Not snoozed: ${reasonText(error)}`;
  }
  render();
});

$("#composer").addEventListener("input", () => {
  delete $("#compose-note").dataset.sticky;
  renderChat();
});
$("#composer").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("#compose").requestSubmit();
});
$("#compose").addEventListener("submit", async (event) => {
  event.preventDefault();
  const open = desk.open;
  const composer = $("#composer");
  const text = composer.value;
  if (!open || !text.trim() || text.length > composer.maxLength) return;
  const note = $("#compose-note");
  $("#send").disabled = true;
  try {
    await socket.request("send_message", { chat_id: open.id, text });
    if (composer.value === text) composer.value = "";
    note.textContent = "";
    delete note.dataset.sticky;
  } catch (error) {
    note.textContent = error.code === "window_closed"
      ? "The messaging window has closed: close the chat and send a template."
      : `Not sent: ${error.message}`;
    note.dataset.sticky = "1";
  }
  renderChat();
  composer.focus();
});
$("#close-chat").addEventListener("click", async () => {
  const open = desk.open;
  if (!open) return;
  try {
    await socket.request("close", { chat_id: open.id });
  } catch (error) {
    $("#compose-note").textContent = `Not closed: ${error.message}`;
    $("#compose-note").dataset.sticky = "1";
  }
});

// ---- the clock ----------------------------------------------------------------------------

// Countdowns run on the engine's clock. The engine does not push when a window runs out by
// time alone, so the buttons are re-checked here and the archive is listed again for the
// `template_allowed` that now applies.
setInterval(() => {
  if (!socket) return;
  const now = socket.now();
  for (const el of document.querySelectorAll(".countdown")) el.textContent = countdownText(el, now);
  let crossed = false;
  for (const li of list("archive").children) {
    const entry = findEntry(li.dataset.chatId);
    if (!entry) continue;
    const wasOpen = li.dataset.windowOpen === "true";
    updateArchiveButtons(li, entry, now);
    if (wasOpen && li.dataset.windowOpen === "false") crossed = true;
  }
  if (crossed) scheduleArchiveReload();
}, 1000);

// For tests and the console: a reopen exactly as the button sends it, even while the button
// is off (a click that raced the button turning off).
// `push` applies an event as if the engine had pushed it (for the rendering of statuses the
// test engine cannot produce, such as delivered and read).
window.desk = {
  reopen,
  push(event) {
    applyPush({ event });
    render();
  },
};
