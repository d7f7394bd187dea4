// The supervisor wall: live queues, agents, reopened chats and today's KPIs, from the
// supervisor socket (protocol/README.md, "The supervisor socket").

import { SupervisorClient } from "/assets/client.js";
import {
  signIn, fatalText, setOffline, h, reconcile, duration, remaining, clockTime, customerLabel,
  requirementsText, workspace,
} from "/assets/socket.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_SAMPLES = 240;
const LIVE_CHATS_LIMIT = 200;

const $ = (selector) => document.querySelector(selector);

const wall = {
  queues: new Map(), // queue id → waiting chats, next first
  // queue id → {priority, sla_secs, open}: only the board carries them, so a queue first seen
  // in an event has none until the next board.
  queueSettings: new Map(),
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
  socket = new SupervisorClient({ url: location.origin, workspace, token, renewToken: true });
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
  wall.queueSettings = new Map(board.queues.map((q) => [q.id, {
    priority: q.priority ?? 0,
    sla_secs: q.sla_secs ?? null,
    open: q.open !== false,
  }]));
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
    // A stepped chat's view replaces the one shown, at the position it gives: the step may
    // have changed its priority and so its place.
    case "chat_queued":
    case "chat_stepped": {
      const waiting = leaveQueue(event.queue, event.chat.chat_id);
      const at = Math.min(Math.max(event.chat.position - 1, 0), waiting.length);
      waiting.splice(at, 0, event.chat);
      break;
    }
    case "chat_left_queue":
      leaveQueue(event.queue, event.chat_id);
      break;
    // Opening hours began or ended (R21): the queue's "closed" badge follows.
    case "queue_hours": {
      const settings = wall.queueSettings.get(event.queue);
      if (settings) settings.open = event.open;
      break;
    }
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

/**
 * "billing:3, language:es:5" → `{billing: 3, "language:es": 5}`, or `{error}` saying what is
 * wrong with it. A skill's name may itself hold colons (`language:es`): the level is after the
 * last. Whether a level is in range is the engine's to say, so that the wall never disagrees
 * with it.
 */
function parseSkills(text) {
  const skills = {};
  for (const part of text.split(/[,\n]/).map((p) => p.trim()).filter(Boolean)) {
    const match = part.match(/^(.+?)\s*:\s*(\d+)$/);
    if (!match) return { error: `Write each skill as name:level, such as billing:3 (not "${part}").` };
    const [, name, level] = match;
    if (name in skills) return { error: `${name} is listed twice.` };
    skills[name] = Number(level);
  }
  return { skills };
}

function skillsInputText(skills) {
  return Object.entries(skills ?? {}).map(([name, level]) => `${name}:${level}`).join(", ");
}

async function setSkills(agentId, input, error) {
  const refuse = (message) => {
    error.textContent = message;
    input.setAttribute("aria-invalid", "true");
  };
  const parsed = parseSkills(input.value);
  if (parsed.error) {
    refuse(parsed.error);
    input.focus();
    return;
  }
  try {
    await socket.request("set_skills", { agent: agentId, skills: parsed.skills });
    delete input.dataset.dirty;
    input.removeAttribute("aria-invalid");
    error.textContent = "";
    input.closest("details").open = false;
    const now = skillsInputText(parsed.skills);
    $("#agents-status").textContent = `${agentName(agentId)}'s skills are now ${now || "none"}.`;
  } catch (e) {
    refuse(`Skills not changed: ${e.message}`);
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

// "SLA due 09:05 · in 45s", or "SLA overdue by 12s" once it has passed (R20).
function dueText(due) {
  const left = Date.parse(due) - socket.now();
  return left > 0 ? `SLA due ${clockTime(due)} · in ${remaining(left)}` : `SLA overdue by ${duration(-left)}`;
}

function showDue(el, due) {
  if (due) el.dataset.due = due;
  else delete el.dataset.due;
  el.hidden = !due;
  el.textContent = due ? dueText(due) : "";
  el.closest("li").classList.toggle("overdue", !!due && Date.parse(due) <= socket.now());
}

function fillQueueHeading(section, id, waiting) {
  section.querySelector(".queue-count").textContent = `${waiting.length} waiting`;
  section.classList.toggle("idle", waiting.length === 0);
  const settings = wall.queueSettings.get(id);
  const closed = settings?.open === false;
  section.classList.toggle("closed", closed);
  section.querySelector(".closed-badge").hidden = !closed;
  const line = section.querySelector(".queue-settings");
  line.hidden = !settings;
  if (settings) {
    line.querySelector(".queue-priority").textContent = `priority ${settings.priority}`;
    line.querySelector(".queue-sla").textContent =
      settings.sla_secs == null ? "no SLA" : `SLA ${duration(settings.sla_secs * 1000)}`;
  }
}

function waitingItem() {
  return h("li", { class: "item compact waiting-chat" },
    h("span", { class: "position" }),
    h("div", { class: "item-main" },
      h("span", { class: "who" }),
      h("span", { class: "routing meta muted" },
        h("span", { class: "step" }),
        h("span", { class: "requires" }),
        h("span", { class: "priority", title: "Effective priority: the queue's and its rules', raised as the chat waits and its SLA nears" }))),
    h("div", { class: "item-side" },
      h("span", { class: "waiting-time" }),
      h("span", { class: "due" }),
      h("span", { class: "estimate muted" })));
}

function fillWaitingItem(li, w, position) {
  li.querySelector(".position").textContent = `#${position}`;
  const who = li.querySelector(".who");
  who.textContent = w.customer ? customerLabel(w.customer) : w.customer_id;
  who.title = w.chat_id;
  // Steps count from 0 on the wire; a queue without a workflow (one step or none) has none to
  // show.
  const step = li.querySelector(".step");
  step.hidden = !(w.steps > 1);
  step.textContent = step.hidden ? "" : `step ${w.step + 1} of ${w.steps}`;
  const requires = requirementsText(w.requires);
  li.querySelector(".requires").textContent = requires ? `requires ${requires}` : "any agent";
  li.querySelector(".priority").textContent = `priority ${w.priority ?? 0}`;
  const time = li.querySelector(".waiting-time");
  time.dataset.since = w.since;
  time.textContent = waitingFor(w.since);
  showDue(li.querySelector(".due"), w.due_at);
  li.querySelector(".estimate").textContent = w.estimated_wait_secs == null
    ? "no wait estimate yet"
    : `est. wait ${duration(w.estimated_wait_secs * 1000)}`;
}

function renderQueues() {
  const queues = [...wall.queues.entries()].sort(([a], [b]) => a.localeCompare(b));
  reconcile($("#queues"), queues, "data-queue", ([id]) => id, ([id]) => {
    const headingId = `queue-${id}`;
    return h("section", { class: "queue", "aria-labelledby": headingId },
      h("h3", { id: headingId },
        h("span", { class: "queue-name", text: id }), " ",
        h("span", { class: "badge queue-count" }), " ",
        h("span", { class: "badge danger closed-badge", text: "closed", hidden: true })),
      h("p", { class: "queue-settings meta muted" },
        h("span", { class: "queue-priority" }), " · ",
        h("span", { class: "queue-sla" })),
      h("ol", { class: "list waiting" }));
  }, (section, [id, waiting]) => {
    fillQueueHeading(section, id, waiting);
    reconcile(section.querySelector("ol"), waiting, "data-chat-id", (w) => w.chat_id, waitingItem,
      (li, w) => fillWaitingItem(li, w, waiting.indexOf(w) + 1));
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
  const skillsId = `skills-${id}`;
  const skillsError = h("p", { class: "error skills-error", role: "alert" });
  const skillsInput = h("input", {
    id: skillsId, class: "skills-input", type: "text", spellcheck: "false", autocomplete: "off",
    placeholder: "billing:3, language:es:5",
    oninput: () => { skillsInput.dataset.dirty = "1"; },
  });
  return h("tr", {},
    h("th", { scope: "row", class: "agent" },
      h("span", { class: "agent-name" }), " ",
      h("span", { class: "agent-id muted" }), " ",
      h("span", { class: "badge danger over-limit-badge", text: "over limit" })),
    h("td", { class: "presence" }, h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "presence-text" })),
    // The load per channel sits under the total it is part of, not in a column of its own:
    // the table already holds more columns than the wall's width.
    h("td", { class: "num" }, h("span", { class: "load" }), h("div", { class: "channels chips" })),
    h("td", { class: "limit num" }),
    h("td", { class: "offered num" }),
    h("td", { class: "overrides num" }),
    h("td", { class: "skills-cell" },
      h("div", { class: "skills chips" }),
      // Folded until wanted, for the same reason.
      h("details", { class: "skills-edit" },
        h("summary", { class: "edit-skills" }, "Edit"),
        h("form", {
          class: "skills-form",
          onsubmit: (event) => { event.preventDefault(); setSkills(id, skillsInput, skillsError); },
        },
        h("label", { for: skillsId, class: "sr-only" }),
        skillsInput,
        h("button", { type: "submit", class: "save-skills" }, "Save")),
        skillsError)),
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
  fillChannels(tr.querySelector(".channels"), agent);
  fillSkills(tr, agent);
  const [skillsLabel, limitLabel, presenceLabel] = tr.querySelectorAll("label.sr-only");
  skillsLabel.textContent = `Skills of ${agent.name}, as name:level separated by commas`;
  limitLabel.textContent = `New limit for ${agent.name}`;
  presenceLabel.textContent = `Presence of ${agent.name}`;
  const input = tr.querySelector(".limit-input");
  if (!input.dataset.dirty && document.activeElement !== input) input.value = agent.limit;
  const select = tr.querySelector(".presence-select");
  if (document.activeElement !== select) select.value = agent.presence;
  tr.querySelector(".set-limit").setAttribute("aria-label", `Set limit for ${agent.name}`);
}

// Load per channel against the channel's limit where it has one (R22): "whatsapp 2/3".
function fillChannels(cell, agent) {
  const limits = agent.channel_limits ?? {};
  const load = agent.channel_load ?? {};
  const channels = [...new Set([...Object.keys(limits), ...Object.keys(load)])].sort();
  cell.replaceChildren(...channels.map((channel) => {
    const held = load[channel] ?? 0;
    const limit = limits[channel];
    return h("span", {
      class: `chip channel${limit != null && held > limit ? " danger" : ""}`,
      "data-channel": channel,
      text: limit == null ? `${channel} ${held}` : `${channel} ${held}/${limit}`,
    });
  }));
  if (!channels.length) cell.append(h("span", { class: "muted", text: "—" }));
}

function fillSkills(tr, agent) {
  const skills = Object.entries(agent.skills ?? {});
  tr.querySelector(".skills").replaceChildren(...(skills.length
    ? skills.map(([name, level]) => h("span", { class: "chip skill", "data-skill": name, text: `${name}:${level}` }))
    : [h("span", { class: "muted", text: "no skills" })]));
  const input = tr.querySelector(".skills-input");
  if (!input.dataset.dirty && document.activeElement !== input) input.value = skillsInputText(agent.skills);
  tr.querySelector(".save-skills").setAttribute("aria-label", `Save skills of ${agent.name}`);
  tr.querySelector(".edit-skills").setAttribute("aria-label", `Edit skills of ${agent.name}`);
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
    sla: attainmentText(f.sla),
  };
  for (const el of document.querySelectorAll("#kpis [data-kpi]")) {
    el.textContent = values[el.dataset.kpi] ?? "—";
  }
  renderSlaByQueue(f.sla_by_queue ?? []);
  $("#kpis-since").textContent = `since ${new Date(wall.kpis.since).toISOString().slice(0, 10)} (UTC)`;
}

// SLA attainment (R20): "3/4 · 75%" of the chats answered in queues with an SLA.
function attainmentText(attainment) {
  if (!attainment?.answered) return "—";
  const percent = Math.floor((100 * attainment.within) / attainment.answered);
  return `${attainment.within}/${attainment.answered} · ${percent}%`;
}

function renderSlaByQueue(rows) {
  reconcile($("#sla-by-queue"), rows, "data-sla", (r) => `${r.queue}/${r.channel}`, () =>
    h("li", {}, h("span", { class: "sla-where" }), " ", h("span", { class: "sla-figure" })),
  (li, row) => {
    li.querySelector(".sla-where").textContent = `${row.queue} · ${row.channel}`;
    li.querySelector(".sla-figure").textContent = attainmentText(row);
    li.classList.toggle("missed", row.within < row.answered);
  });
  $("#sla-by-queue-empty").hidden = rows.length > 0;
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
  for (const el of document.querySelectorAll("#queues .due[data-due]")) showDue(el, el.dataset.due);
}, 1000);
