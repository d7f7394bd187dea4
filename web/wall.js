// The supervisor wall: live queues, agents, reopened chats and today's KPIs, from the
// supervisor socket (protocol/README.md, "The supervisor socket").

import { SupervisorClient } from "/assets/client.js";
import {
  signIn, fatalText, setOffline, h, reconcile, duration, remaining, clockTime, customerLabel,
} from "/assets/socket.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_SAMPLES = 240;
const LIVE_CHATS_LIMIT = 200;

const $ = (selector) => document.querySelector(selector);

const wall = {
  queues: new Map(), // queue id → waiting chats, next first
  agents: new Map(), // agent id → AgentRow
  reopened: new Map(), // chat id → ReopenedChat
  kpis: null,
  live: [], // active chats (archive entries), newest first, to transfer
  busy: new Set(), // chat ids with a transfer in flight
  samples: [], // {t, reopens, overrides}, one per KPI change
};
let socket = null;

// ---- connection and sync (R17) ------------------------------------------------------------

// The client subscribes again after every reconnect by itself (from the last event seen, or
// for a fresh board) and hands each board event over once, in order.
const signOut = signIn((token) => {
  Object.assign(wall, { kpis: null, samples: [] });
  socket = new SupervisorClient({ url: location.origin, token, renewToken: true });
  socket.onWelcome((w) => {
    $("#me").textContent = `${w.supervisor.name} (${w.supervisor.id})`;
  });
  socket.onSync((sync) => {
    if (sync.kind === "board") applyBoard(sync);
    render();
    loadLiveChats(); // list again: the archive is not pushed
  });
  socket.onEvent(eventArrived);
  socket.onStatus((status) => {
    if (status === "online" || status === "offline") setOffline(status === "offline");
  });
  socket.onFatal((fatal) => signOut(fatalText(fatal)));
  socket.connect()
    .then(() => socket.subscribe())
    .catch((error) => {
      // Refused or closed: onFatal has said so. Anything else: the next reconnect subscribes.
      if (error.code !== "disconnected") console.error("subscribe failed", error);
    });
  return socket;
});

// A `pushes` frame carries many events: the wall is drawn once for all of them.
let renderQueued = false;
let liveChatsStale = false;

function eventArrived(event) {
  applyEvent(event);
  // An agent's load changes whenever a chat becomes active or stops being so.
  if (event.kind === "agent_changed" || event.kind === "agent_removed") liveChatsStale = true;
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    render();
    if (liveChatsStale) scheduleLiveChats();
    liveChatsStale = false;
  });
}

function applyBoard(board) {
  wall.queues = new Map(board.queues.map((q) => [q.id, [...q.waiting].sort((a, b) => a.position - b.position)]));
  wall.agents = new Map(board.agents.map((a) => [a.id, a]));
  wall.reopened = new Map(board.reopened.map((r) => [r.chat_id, r]));
  setKpis(board.kpis);
}

// Every event is an upsert or a removal by id, so one the board already covers is harmless.
function applyEvent(event) {
  switch (event.kind) {
    case "agent_changed":
      wall.agents.set(event.agent.id, event.agent);
      break;
    case "agent_removed":
      wall.agents.delete(event.agent_id);
      break;
    case "chat_queued": {
      const waiting = leaveQueue(event.queue, event.chat.chat_id);
      const at = Math.min(Math.max(event.chat.position - 1, 0), waiting.length);
      waiting.splice(at, 0, event.chat);
      break;
    }
    case "chat_left_queue":
      leaveQueue(event.queue, event.chat_id);
      break;
    case "chat_reopened":
      wall.reopened.set(event.chat.chat_id, event.chat);
      break;
    case "reopen_ended":
      wall.reopened.delete(event.chat_id);
      break;
    case "kpis_changed":
      setKpis(event.kpis);
      break;
    default: // an event kind this client does not know: ignore (protocol versioning)
  }
}

function leaveQueue(queue, chatId) {
  const waiting = (wall.queues.get(queue) ?? []).filter((w) => w.chat_id !== chatId);
  wall.queues.set(queue, waiting);
  return waiting;
}

function setKpis(kpis) {
  if (wall.kpis && wall.kpis.since !== kpis.since) wall.samples = []; // a new day
  wall.kpis = kpis;
  const { reopens, overrides } = kpis.figures;
  wall.samples.push({ t: socket.now(), reopens, overrides });
  if (wall.samples.length > MAX_SAMPLES) wall.samples.shift();
}

// ---- actions ------------------------------------------------------------------------------

function agentName(id) {
  return wall.agents.get(id)?.name ?? id;
}

// "Ana (ana)": the name people know and the id the other tools show.
function agentLabel(id) {
  const name = agentName(id);
  return name === id ? id : `${name} (${id})`;
}

async function setLimit(agentId, input) {
  const status = $("#agents-status");
  const limit = Number(input.value);
  if (!Number.isInteger(limit) || limit < 0) {
    status.textContent = `Enter a whole number of chats for ${agentName(agentId)}.`;
    input.focus();
    return;
  }
  try {
    await socket.request("set_limit", { agent: agentId, limit });
    delete input.dataset.dirty;
    status.textContent = `${agentName(agentId)}'s limit is now ${limit}.`;
  } catch (error) {
    status.textContent = `Limit not changed: ${error.message}`;
  }
}

async function setPresence(agentId, select) {
  const status = $("#agents-status");
  try {
    await socket.request("set_presence", { agent: agentId, presence: select.value });
    status.textContent = `${agentName(agentId)} is now ${select.value}.`;
  } catch (error) {
    status.textContent = `Presence not changed: ${error.message}`;
    select.value = wall.agents.get(agentId)?.presence ?? select.value;
  }
}

// ---- forced transfers (R06, R12) ----------------------------------------------------------

let liveGeneration = 0;
let liveReload = null;

// Every active chat, from the archive (supervisors list everyone's), to pick one to move.
async function loadLiveChats() {
  const generation = ++liveGeneration;
  try {
    const result = await socket.request("list_archive", { state: "active", limit: LIVE_CHATS_LIMIT });
    if (generation !== liveGeneration) return;
    wall.live = result.entries;
    renderLiveChats();
  } catch (error) {
    if (generation === liveGeneration && error.code !== "disconnected") {
      $("#transfer-status").textContent = `Could not list the active chats: ${error.message}`;
    }
  }
}

function scheduleLiveChats() {
  clearTimeout(liveReload);
  liveReload = setTimeout(loadLiveChats, 200);
}

async function transfer(entry, select) {
  const status = $("#transfer-status");
  const to = select.value;
  const who = customerLabel(entry.customer);
  if (!to) return;
  wall.busy.add(entry.chat_id);
  renderLiveChats();
  status.textContent = `Transferring ${who} to ${agentName(to)}…`;
  try {
    const result = await socket.request("transfer", { chat_id: entry.chat_id, to });
    status.textContent = `${who}'s chat is now with ${agentName(result.chat.owner ?? to)}.`;
  } catch (error) {
    status.textContent = `Not transferred: ${error.code === "agent_unavailable"
      ? `${agentName(to)} is not online` : error.message}`;
  } finally {
    wall.busy.delete(entry.chat_id);
  }
  await loadLiveChats();
}

// ---- rendering ----------------------------------------------------------------------------

function render() {
  renderQueues();
  renderLiveChats();
  renderAgents();
  renderReopened();
  renderKpis();
  renderChart();
}

function waitingFor(since) {
  return `waiting ${duration(socket.now() - Date.parse(since))}`;
}

function renderQueues() {
  const queues = [...wall.queues.entries()].sort(([a], [b]) => a.localeCompare(b));
  reconcile($("#queues"), queues, "data-queue", ([id]) => id, ([id]) => {
    const headingId = `queue-${id}`;
    return h("section", { class: "queue", "aria-labelledby": headingId },
      h("h3", { id: headingId },
        h("span", { class: "queue-name", text: id }), " ",
        h("span", { class: "badge queue-count" })),
      h("ol", { class: "list waiting" }));
  }, (section, [, waiting]) => {
    section.querySelector(".queue-count").textContent = `${waiting.length} waiting`;
    section.classList.toggle("idle", waiting.length === 0);
    reconcile(section.querySelector("ol"), waiting, "data-chat-id", (w) => w.chat_id, () =>
      h("li", { class: "item compact" },
        h("span", { class: "position" }),
        h("span", { class: "who" }),
        h("span", { class: "waiting-time" })),
    (li, w) => {
      const position = waiting.indexOf(w) + 1;
      li.querySelector(".position").textContent = `#${position}`;
      const who = li.querySelector(".who");
      who.textContent = w.customer ? customerLabel(w.customer) : w.customer_id;
      who.title = w.chat_id;
      const time = li.querySelector(".waiting-time");
      time.dataset.since = w.since;
      time.textContent = waitingFor(w.since);
    });
  });
  $("#queues-empty").hidden = queues.length > 0;
}

function agentRow(agent) {
  const id = agent.id;
  const limitId = `limit-${id}`;
  const presenceId = `presence-${id}`;
  const input = h("input", {
    id: limitId, class: "limit-input", type: "number", min: "0", step: "1", inputmode: "numeric",
    oninput: () => { input.dataset.dirty = "1"; },
  });
  const select = h("select", { id: presenceId, class: "presence-select", onchange: () => setPresence(id, select) },
    ...["online", "away", "offline"].map((p) => h("option", { value: p, text: p })));
  return h("tr", {},
    h("th", { scope: "row", class: "agent" },
      h("span", { class: "agent-name" }), " ",
      h("span", { class: "agent-id muted" }), " ",
      h("span", { class: "badge danger over-limit-badge", text: "over limit" })),
    h("td", { class: "presence" }, h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "presence-text" })),
    h("td", { class: "load num" }),
    h("td", { class: "limit num" }),
    h("td", { class: "offered num" }),
    h("td", { class: "overrides num" }),
    h("td", {},
      h("form", { class: "limit-form", onsubmit: (event) => { event.preventDefault(); setLimit(id, input); } },
        h("label", { for: limitId, class: "sr-only" }),
        input,
        h("button", { type: "submit", class: "set-limit" }, "Set"))),
    h("td", {},
      h("label", { for: presenceId, class: "sr-only" }),
      select));
}

function fillAgentRow(tr, agent) {
  tr.classList.toggle("over-limit", agent.over_limit);
  tr.dataset.presence = agent.presence;
  tr.querySelector(".agent-name").textContent = agent.name;
  tr.querySelector(".agent-id").textContent = agent.name === agent.id ? "" : agent.id;
  tr.querySelector(".presence-text").textContent = agent.presence;
  tr.querySelector(".load").textContent = agent.load;
  tr.querySelector(".limit").textContent = agent.limit;
  tr.querySelector(".offered").textContent = agent.offered;
  tr.querySelector(".overrides").textContent = agent.overrides;
  const [limitLabel, presenceLabel] = tr.querySelectorAll("label.sr-only");
  limitLabel.textContent = `New limit for ${agent.name}`;
  presenceLabel.textContent = `Presence of ${agent.name}`;
  const input = tr.querySelector(".limit-input");
  if (!input.dataset.dirty && document.activeElement !== input) input.value = agent.limit;
  const select = tr.querySelector(".presence-select");
  if (document.activeElement !== select) select.value = agent.presence;
  tr.querySelector(".set-limit").setAttribute("aria-label", `Set limit for ${agent.name}`);
}

function renderAgents() {
  const agents = [...wall.agents.values()].sort((a, b) => a.id.localeCompare(b.id));
  reconcile($("#agents tbody"), agents, "data-agent-id", (a) => a.id, agentRow, fillAgentRow);
}

function liveChatItem(entry) {
  const id = entry.chat_id;
  const selectId = `transfer-to-${id}`;
  const select = h("select", { id: selectId, class: "transfer-to" });
  return h("li", { class: "item" },
    h("div", { class: "item-main" },
      h("strong", { class: "name" }),
      h("span", { class: "meta muted" })),
    h("form", {
      class: "transfer",
      onsubmit: (event) => {
        event.preventDefault();
        const current = wall.live.find((e) => e.chat_id === id);
        if (current) transfer(current, select);
      },
    },
    h("label", { for: selectId, class: "sr-only" }),
    select,
    h("button", { type: "submit", class: "transfer-button" }, "Transfer")));
}

function fillLiveChat(li, entry) {
  const who = customerLabel(entry.customer);
  li.querySelector(".name").textContent = who;
  li.querySelector(".meta").textContent = `${entry.channel} · with ${agentLabel(entry.owner)}`;
  li.querySelector("label").textContent = `Transfer the chat with ${who} to`;
  // Online agents other than the owner; the one chosen stays chosen while it is listed.
  const select = li.querySelector("select");
  const targets = [...wall.agents.values()]
    .filter((a) => a.presence === "online" && a.id !== entry.owner)
    .sort((a, b) => a.id.localeCompare(b.id));
  const chosen = select.value;
  const options = targets.length
    ? targets.map((a) => h("option", { value: a.id, text: `${a.name} (${a.load}/${a.limit})` }))
    : [h("option", { value: "", text: "nobody online" })];
  if (select.options.length !== options.length
    || options.some((o, i) => select.options[i].value !== o.value || select.options[i].text !== o.text)) {
    select.replaceChildren(...options);
    if (targets.some((a) => a.id === chosen)) select.value = chosen;
  }
  const button = li.querySelector("button");
  button.disabled = targets.length === 0 || wall.busy.has(entry.chat_id);
  button.setAttribute("aria-label", `Transfer the chat with ${who}`);
}

function renderLiveChats() {
  reconcile($("#live-chats"), wall.live, "data-chat-id", (e) => e.chat_id, liveChatItem, fillLiveChat);
  $("#live-chats-empty").hidden = wall.live.length > 0;
  $("#live-count").textContent = String(wall.live.length);
}

function renderReopened() {
  const chats = [...wall.reopened.values()].sort((a, b) => a.reopened_at.localeCompare(b.reopened_at));
  reconcile($("#reopened"), chats, "data-chat-id", (c) => c.chat_id, () =>
    h("li", { class: "item" },
      h("div", { class: "item-main" },
        h("strong", { class: "name" }),
        h("span", { class: "meta muted" })),
      h("div", { class: "item-side" },
        h("span", {}, "by ", h("span", { class: "reopened-by" })),
        h("span", { class: "countdown" }))),
  (li, chat) => {
    li.querySelector(".name").textContent = customerLabel(chat.customer);
    li.querySelector(".meta").textContent =
      `${chat.channel} · ${chat.chat_id} · reopened ${clockTime(chat.reopened_at)}`;
    li.querySelector(".reopened-by").textContent = agentLabel(chat.reopened_by);
    const countdown = li.querySelector(".countdown");
    if (chat.window_expires_at) countdown.dataset.until = chat.window_expires_at;
    else delete countdown.dataset.until;
    countdown.textContent = windowText(countdown.dataset.until);
  });
  $("#reopened-empty").hidden = chats.length > 0;
}

function windowText(until) {
  if (!until) return "no window";
  const left = Date.parse(until) - socket.now();
  return left > 0 ? `${remaining(left)} left` : "window closed";
}

function renderKpis() {
  if (!wall.kpis) return;
  const f = wall.kpis.figures;
  const values = {
    reopens: f.reopens,
    replied: f.replied,
    declined: f.declined,
    overrides: f.overrides,
    templates: f.templates,
    active_elsewhere: f.rejected.active_elsewhere,
    window_closed: f.rejected.window_closed,
    opted_out: f.rejected.opted_out,
    time_to_accept: f.time_to_accept.count ? `${(f.time_to_accept.p50_ms / 1000).toFixed(1)} s` : "—",
    queue_wait: f.queue_wait.count ? `${(f.queue_wait.p50_ms / 1000).toFixed(1)} s` : "—",
  };
  for (const el of document.querySelectorAll("#kpis [data-kpi]")) {
    el.textContent = values[el.dataset.kpi] ?? "—";
  }
  $("#kpis-since").textContent = `since ${new Date(wall.kpis.since).toISOString().slice(0, 10)} (UTC)`;
}

function svg(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, value);
  return el;
}

// Reopens and overrides, one point per KPI change, as steps over time.
function renderChart() {
  const chart = $("#kpi-chart");
  const samples = wall.samples;
  const [width, height, pad] = [320, 120, 8];
  const top = Math.max(1, ...samples.map((s) => Math.max(s.reopens, s.overrides)));
  const t0 = samples[0]?.t ?? 0;
  const span = Math.max(1, (samples.at(-1)?.t ?? 0) - t0);
  const x = (t) => pad + ((t - t0) / span) * (width - 2 * pad);
  const y = (v) => height - pad - (v / top) * (height - 2 * pad);
  const point = (t, v) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`;
  // Steps: a figure holds its value until the next sample; the last one runs to the edge.
  const line = (key) => samples
    .map((s, i) => (i ? `${point(s.t, samples[i - 1][key])} ` : "") + point(s.t, s[key]))
    .concat(samples.length ? [`${width - pad},${y(samples.at(-1)[key]).toFixed(1)}`] : [])
    .join(" ");
  chart.replaceChildren(
    svg("line", { class: "axis", x1: pad, y1: height - pad, x2: width - pad, y2: height - pad }),
    svg("text", { class: "axis-label", x: pad, y: pad + 4 }),
    svg("polyline", { class: "series reopens", points: line("reopens") }),
    svg("polyline", { class: "series overrides", points: line("overrides") }));
  chart.querySelector("text").textContent = `max ${top}`;
  const last = samples.at(-1);
  chart.setAttribute("aria-label", last
    ? `Chart: reopens ${last.reopens}, overrides ${last.overrides} now, over ${samples.length} changes`
    : "Chart: no data yet");
  chart.removeAttribute("aria-labelledby");
}

// Waiting times and window countdowns run on the engine's clock.
setInterval(() => {
  if (!socket) return;
  for (const el of document.querySelectorAll("[data-since]")) el.textContent = waitingFor(el.dataset.since);
  for (const el of document.querySelectorAll("#reopened .countdown")) el.textContent = windowText(el.dataset.until);
}, 1000);
