#!/usr/bin/env node
// End-to-end: two agent desks and one supervisor wall in Debian's headless Chromium against a
// real engine, driven by playwright-core (no downloaded browser).
//
//   node web/e2e/desk-and-wall.mjs http://127.0.0.1:8080
//
// The engine must run with the demo agents (no [[agents]] in its config): ana and ben (agents),
// sam (supervisor), tokens ana-token, ben-token, sam-token. `cargo test --test browser` starts
// one and runs this script; by hand, start `cargo run` and pass its URL (on a fresh engine:
// the scenario counts on ana and ben having no chats).
//
// The scenario (R03, R04, R05, R15): ana's limit is set to 1; ana serves customer Mia; ben
// serves customer Tom and closes the chat; both look at everyone's archive; ana reopens Tom's
// chat, ben's Reopen button for it turns off live and ben's own attempt says "active
// elsewhere — with Ana"; Tom answers and the chat lands in ana's Active section over her limit
// (2/1); the wall shows ana's row over the limit and the override counted.
// Then the everyday actions (R12, R13, R15): ana's composer takes WhatsApp's length from the
// engine; ana snoozes Mia's chat from her desk and Mia's reply brings it back; ana transfers it
// to ben, picked from her colleagues, and his desk shows it; on the wall sam picks Tom's chat from the active chats and
// transfers it to ben by clicking; ben pages back through Tom's long history; with nobody free
// a waiting customer shows on the wall by name; ben's socket is cut (the test passes it through
// playwright's WebSocket routing) while Tom writes, and back online his desk resumes and shows
// the missed message once; and the wall, signed in with a short-lived token, renews it and
// stays connected past that token's expiry.
// Routing like a contact centre (R19–R21), when the engine is configured for it (BILLING_QUEUE
// set): the wall shows the billing queue's priority and SLA and a queue outside its hours as
// closed; customer Lea writes in Spanish about billing and waits, as nobody holds both skills,
// at step 1 of 2 with her requirements, priority and SLA due time on the wall; sam's skills
// edit with a level out of range is refused with the engine's reason; sam gives ana Spanish on
// the wall, Lea's chat is offered to ana, whose desk shows what it requires and its step, and
// once she accepts the wall counts it answered within the SLA.
// Delivery (R23–R25), when the engine's outbound webhook refuses a text holding FAIL_ONCE the
// first time (FAIL_ONCE set): in Mia's chat ana's message shows its tick and reaches sent; a
// FAIL_ONCE message shows "Not delivered" with the platform's reason (REFUSAL) and a Retry,
// which sends it again until it reaches sent; the platform then reports the message delivered
// and read through the engine's status ingress, and the desk shows the ticks. Customers'
// attachments, which the test's generic channel cannot carry, are fed to the page as pushes
// through window.desk.push, checking only how the desk shows them.
//
// Environment: CHROMIUM (default /usr/bin/chromium), SCREENSHOTS (default target/screenshots),
// E2E_WAIT_MS (every wait's bound, default 10000), WALL_TOKEN (the wall's token; default the
// static sam-token, and then the renewal step is skipped), WHATSAPP_MAX_LEN (the engine's
// configured WhatsApp length, default 1024), BILLING_QUEUE, BILLING_CHANNEL, BILLING_PRIORITY,
// BILLING_SLA_SECS (a queue whose first of two steps requires billing ≥3, long enough not to
// time out during the run, and the channel that feeds it; unset: the routing steps are
// skipped), CLOSED_QUEUE (a queue never open), FAIL_ONCE and REFUSAL (see above; unset: the
// delivery steps are skipped). With WORKSPACE set, the script runs another scenario instead,
// one workspace's pages (R27): it creates WORKSPACE over the platform API with agent
// WORKSPACE_AGENT and supervisor WORKSPACE_SUPERVISOR, opens the desk at /w/WORKSPACE/ with
// WORKSPACE_AGENT_TOKEN and the wall at /w/WORKSPACE/wall with WALL_TOKEN (both signed for that
// workspace), and checks that they work and that nothing of `default` shows on them (see
// deskAndWallOfAWorkspace). Exits 0 on success, 1 with a message naming
// the failed step otherwise, 2 on bad usage; the screenshots are saved either way.

import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const WAIT = Number(process.env.E2E_WAIT_MS || 10_000);
/** The whole run's bound: a stuck step can never hold CI. */
const OVERALL = 20 * WAIT;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.SCREENSHOTS || path.join("target", "screenshots");
const WALL_TOKEN = process.env.WALL_TOKEN || "sam-token";
const WHATSAPP_MAX_LEN = Number(process.env.WHATSAPP_MAX_LEN || 1024);
/** Text that the test's platform refuses the first time (unset: the delivery steps are skipped), and its reason. */
const FAIL_ONCE = process.env.FAIL_ONCE;
const REFUSAL = process.env.REFUSAL;
/** The workspace whose pages to test instead (R27; see deskAndWallOfAWorkspace), and its people. */
const WORKSPACE = process.env.WORKSPACE;
const WORKSPACE_PEOPLE = {
  agent: process.env.WORKSPACE_AGENT,
  agentToken: process.env.WORKSPACE_AGENT_TOKEN,
  supervisor: process.env.WORKSPACE_SUPERVISOR,
};
const BILLING = process.env.BILLING_QUEUE
  ? {
    queue: process.env.BILLING_QUEUE,
    channel: process.env.BILLING_CHANNEL,
    priority: Number(process.env.BILLING_PRIORITY),
    slaSecs: Number(process.env.BILLING_SLA_SECS),
    closedQueue: process.env.CLOSED_QUEUE,
  }
  : null;

const base = (process.argv[2] || "").replace(/\/+$/, "");
if (!/^https?:\/\/[^/]+$/.test(base)) {
  console.error("usage: node desk-and-wall.mjs http://HOST:PORT   (the engine's URL)");
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(
    `no Chromium at ${CHROMIUM}: install Debian's with \`sudo apt-get install -y chromium\`, ` +
      "or set CHROMIUM to its path",
  );
  process.exit(1);
}

const watchdog = setTimeout(() => {
  console.error(`e2e: FAILED: the whole run took over ${OVERALL / 1000} s`);
  process.exit(1);
}, OVERALL);
watchdog.unref();

// ---------------------------------------------------------------------------------------------
// Steps, failures and diagnostics

class Failure extends Error {}

let current = "start";
async function step(name, body) {
  current = name;
  const started = Date.now();
  await body();
  console.log(`ok   ${name} (${Date.now() - started} ms)`);
}

function fail(message) {
  throw new Failure(message);
}

/** `fn` in the page, polled until it returns something truthy, within `within` ms; else `why`. */
async function until(page, why, fn, arg, within = WAIT) {
  try {
    const handle = await page.waitForFunction(fn, arg, { timeout: within, polling: 50 });
    return await handle.jsonValue();
  } catch (e) {
    if (e instanceof Failure) throw e;
    const detail = /Timeout/i.test(String(e?.message)) ? `not within ${within} ms` : String(e?.message);
    fail(`${page.__name}: ${why}: ${detail}`);
  }
}

/** One line of what a selector shows in a page now, for failure messages. */
async function show(page, selector) {
  try {
    const html = await page.evaluate(
      (s) => document.querySelector(s)?.outerHTML ?? "(absent)",
      selector,
    );
    return `${page.__name} ${selector}: ${html.replace(/\s+/g, " ").slice(0, 1500)}`;
  } catch (e) {
    return `${page.__name} ${selector}: (could not read: ${e.message})`;
  }
}

// ---------------------------------------------------------------------------------------------
// The engine's HTTP side: customers and the admin API

async function http(method, pathname, body) {
  const response = await fetch(base + pathname, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(WAIT),
  });
  const text = await response.text();
  if (!response.ok) fail(`${method} ${pathname}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A customer writes on WhatsApp: the ingress receipt. */
function customerWrites(from, name, text) {
  return http("POST", "/v1/channels/whatsapp/messages", { from, name, text });
}

// ---------------------------------------------------------------------------------------------
// Pages

const sel = {
  active: (id) => `section#active li[data-chat-id="${id}"]`,
  reopened: (id) => `section#reopened li[data-chat-id="${id}"]`,
  offer: (id) => `section#offers li[data-chat-id="${id}"]`,
  archive: (id) => `section#archive li[data-chat-id="${id}"]`,
  live: (id) => `#live-chats li[data-chat-id="${id}"]`,
  waiting: (id) => `#queues li[data-chat-id="${id}"]`,
  queue: (id) => `#queues section[data-queue="${id}"]`,
  agentRow: (id) => `table#agents tr[data-agent-id="${id}"]`,
};

/** `page`'s text at `selector` includes `text` (within WAIT). */
function shows(page, selector, text) {
  return until(
    page,
    `${selector} does not show "${text}"`,
    ([s, t]) => (document.querySelector(s)?.textContent ?? "").includes(t),
    [selector, text],
  );
}

/** `page` has (or, with `present` false, has not) an element at `selector` (within WAIT). */
function has(page, selector, present = true) {
  return until(
    page,
    present ? `no ${selector}` : `${selector} is still there`,
    ([s, want]) => !!document.querySelector(s) === want,
    [selector, present],
  );
}

/** `page`'s #load reads `load` (within WAIT). */
function loadIs(page, load) {
  return until(
    page,
    `#load does not read "${load}"`,
    (want) => document.querySelector("#load")?.textContent.trim() === want,
    load,
  );
}

async function open(browser, name, file, url, ready, network = null) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.__name = name;
  page.__file = file;
  pages.push(page);
  page.__problems = [];
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => page.__problems.push(`uncaught: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") page.__problems.push(`console.error: ${m.text()} (${m.location()?.url ?? "?"})`);
  });
  if (network) await network.route(page);
  const response = await page.goto(base + url, { waitUntil: "load", timeout: WAIT });
  if (!response || !response.ok()) fail(`${name}: GET ${url} answered ${response?.status()}`);
  // #offline starts hidden, so it proves nothing before the first connection: `ready` waits
  // for what only the engine's answer fills in.
  await until(page, ready.why, ready.fn, ready.arg);
  await until(
    page,
    "the #offline banner is shown (or missing)",
    () => document.querySelector("#offline")?.hasAttribute("hidden") === true,
  );
  return page;
}

/** A desk is signed in when its load/limit comes from the engine: `0/2` for a fresh demo agent. */
const deskReady = {
  why: '#load does not read "0/2" (the desk did not sign in: a fresh engine\'s demo agent has load 0, limit 2)',
  fn: () => document.querySelector("#load")?.textContent.trim() === "0/2",
};
/** The wall is subscribed when the board's agent rows are there. */
const wallReady = {
  why: 'no row tr[data-agent-id="ana"] in table#agents (the wall did not get the board)',
  fn: () => !!document.querySelector('table#agents tr[data-agent-id="ana"]'),
};

/** Waits until the engine counts `id` online with a connection (the admin API). */
async function engineSeesOnline(id) {
  const deadline = Date.now() + WAIT;
  let seen;
  while (Date.now() < deadline) {
    const agents = await http("GET", "/v1/admin/agents");
    seen = agents.find((a) => a.id === id);
    if (seen?.presence === "online" && seen.connections >= 1) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`the engine does not count ${id} online and connected within ${WAIT} ms: ${JSON.stringify(seen)}`);
}

/** The chat `id` is offered in `page`'s desk; it clicks Accept and the chat becomes active. */
async function accepts(page, id, load) {
  await until(page, `no offer of ${id} in section#offers`, (s) => !!document.querySelector(s), sel.offer(id));
  await page.click(`${sel.offer(id)} button.accept`);
  await until(page, `${id} is not in section#active after Accept`, (s) => !!document.querySelector(s), sel.active(id));
  await until(
    page,
    `#load does not read "${load}"`,
    (want) => document.querySelector("#load")?.textContent.trim() === want,
    load,
  );
}

/** Whose desk, if any, shows an offer of chat `id` (within WAIT). */
async function offeredTo(pages, id) {
  const deadline = Date.now() + WAIT;
  while (Date.now() < deadline) {
    for (const page of pages) {
      if (await page.$(sel.offer(id))) return page;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

/**
 * A page's agent socket, passed through the test (playwright's WebSocket routing) so that the
 * test can cut it as a dropped network would: `cut()` closes the page's socket (and the
 * engine's end), and while `down` every new one is closed at once; `restore()` lets them through.
 */
function cuttableNetwork() {
  const sockets = new Set();
  let down = false;
  return {
    async route(page) {
      await page.routeWebSocket(/\/v1\/agent\/ws/, (ws) => {
        if (down) return ws.close({ code: 4000, reason: "the network is down" });
        ws.connectToServer();
        sockets.add(ws);
      });
    },
    async cut() {
      down = true;
      for (const ws of sockets) await ws.close({ code: 4000, reason: "the network dropped" });
      sockets.clear();
    },
    restore() {
      down = false;
    },
  };
}
const benNetwork = cuttableNetwork();

// ---------------------------------------------------------------------------------------------
// The run

mkdirSync(SHOTS, { recursive: true });
// No screenshot of an earlier run may pass for one of this run.
const SHOT_FILES = ["desk-ana.png", "desk-ben.png", "wall.png", "desk-ana-delivery.png"];
if (WORKSPACE) SHOT_FILES.push(`desk-${WORKSPACE}.png`, `wall-${WORKSPACE}.png`);
for (const file of SHOT_FILES) rmSync(path.join(SHOTS, file), { force: true });
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  timeout: WAIT * 3,
  // Root needs --no-sandbox; the rest keep Chromium off the network (a closed network refuses
  // its background connections, many at a time) and quick to start.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
  ],
});
const pages = [];
let desk = {};
let wall;
let failed = null;

try {
  if (WORKSPACE) await deskAndWallOfAWorkspace(WORKSPACE);
  else await theContactCentre();
} catch (e) {
  failed = e;
}

// Screenshots of every page, whatever happened (on a failure they show where it stopped).
const shots = [];
for (const page of pages) {
  const where = path.join(SHOTS, page.__file);
  try {
    await page.screenshot({ path: where, fullPage: true, timeout: WAIT });
    shots.push(where);
  } catch (e) {
    console.error(`could not save ${where}: ${e.message}`);
  }
}
if (shots.length) console.log(`screenshots: ${shots.join(", ")}`);

if (failed) {
  console.error(`\ne2e: FAILED at step "${current}":\n  ${failed.message}`);
  if (!(failed instanceof Failure)) console.error(failed.stack);
  for (const page of pages) {
    for (const s of ["section#active", "section#reopened", "section#offers", "section#archive", "#load", "table#agents", "#reopened", "#kpis", "#queues", "#sla-by-queue"]) {
      if (await page.$(s).catch(() => null)) console.error("  " + (await show(page, s)));
    }
    for (const problem of page.__problems) console.error(`  ${page.__name}: ${problem}`);
  }
}
await Promise.race([browser.close(), new Promise((r) => setTimeout(r, WAIT))]);
if (failed) process.exit(1);
console.log("e2e: passed");
process.exit(0);

// ---------------------------------------------------------------------------------------------

/**
 * R19–R21 on the wall and the desks. Counts on ana online with room and no skill `language:es`
 * (the demo agents: ana billing:3, language:en:5) and ben full or without billing.
 */
async function routingLikeAContactCentre() {
  const { queue, channel, priority, slaSecs, closedQueue } = BILLING;
  let lea;

  await step(`the wall shows ${queue}'s priority and SLA as configured, and ${closedQueue} closed`, async () => {
    await shows(wall, `${sel.queue(queue)} .queue-priority`, `priority ${priority}`);
    await shows(wall, `${sel.queue(queue)} .queue-sla`, `SLA ${minutesAndSeconds(slaSecs)}`);
    await has(wall, `${sel.queue(queue)} .closed-badge[hidden]`);
    await until(
      wall,
      `${sel.queue(closedQueue)} shows no "closed" badge`,
      (s) => {
        const badge = document.querySelector(`${s} .closed-badge`);
        return !!badge && badge.checkVisibility() && badge.textContent.trim() === "closed";
      },
      sel.queue(closedQueue),
    );
  });

  await step(`Lea writes on ${channel} in Spanish about billing; nobody holds both skills, so she waits at step 1 of 2`, async () => {
    lea = await http("POST", `/v1/channels/${channel}/messages`, {
      from: "100200300",
      name: "Lea Ruiz",
      text: "Me cobraron dos veces",
      language: "es",
      // Below the first step's billing ≥3: the higher of the two must win.
      skills: { billing: 2 },
    });
    if (lea.state !== "queued" || lea.queue !== queue) {
      fail(`Lea's chat: expected queued in ${queue}, the engine answered ${JSON.stringify(lea)}`);
    }
    const item = sel.waiting(lea.chat_id);
    await shows(wall, `${sel.queue(queue)} li[data-chat-id="${lea.chat_id}"] .who`, "Lea Ruiz");
    await shows(wall, `${item} .step`, "step 1 of 2");
    await until(
      wall,
      `${item} .requires does not read "requires billing ≥3 · language:es ≥1"`,
      (s) => document.querySelector(s)?.textContent.trim() === "requires billing ≥3 · language:es ≥1",
      `${item} .requires`,
    );
    await shows(wall, `${item} .priority`, `priority ${priority}`);
    await shows(wall, `${item} .due`, "SLA due");
    if (await wall.$(`${item}.overdue`)) fail(`wall: ${item} is marked overdue within its ${slaSecs} s SLA`);
    if (!(await wall.textContent(`${item} .estimate`)).trim()) fail(`wall: ${item} shows no wait estimate (nor that there is none yet)`);
    for (const page of [desk.ana, desk.ben]) {
      if (await page.$(sel.offer(lea.chat_id))) fail(`${page.__name}: offered Lea's chat, though it lacks a skill it requires`);
    }
  });

  await step("sam saves ana's skills with a level out of range on the wall: the engine's refusal shows, nothing changes", async () => {
    const row = sel.agentRow("ana");
    await shows(wall, `${row} .skills`, "billing:3");
    await wall.click(`${row} summary.edit-skills`);
    await wall.fill(`${row} .skills-input`, "billing:3, language:en:5, language:es:9");
    await wall.click(`${row} button.save-skills`);
    await shows(wall, `${row} .skills-error`, "levels go from 1 to 5");
    await has(wall, `${row} .chip[data-skill="language:es"]`, false);
    await has(wall, sel.waiting(lea.chat_id));
  });

  await step("sam gives ana Spanish on the wall: Lea's chat is offered to her, and her desk shows what it requires and its step", async () => {
    const row = sel.agentRow("ana");
    await wall.fill(`${row} .skills-input`, "billing:3, language:en:5, language:es:2");
    await wall.click(`${row} button.save-skills`);
    await until(
      wall,
      `${row} has no chip reading "language:es:2"`,
      (s) => document.querySelector(s)?.textContent.trim() === "language:es:2",
      `${row} .chip[data-skill="language:es"]`,
    );
    await until(wall, `${row} .skills-error still shows`, (s) => document.querySelector(s)?.textContent === "", `${row} .skills-error`);
    await shows(wall, "#agents-status", "Ana's skills are now billing:3, language:en:5, language:es:2");
    const to = await offeredTo([desk.ana, desk.ben], lea.chat_id);
    if (to !== desk.ana) fail(`Lea's chat ${lea.chat_id} was offered to ${to ? to.__name : "nobody"}, not ana`);
    await shows(desk.ana, `${sel.offer(lea.chat_id)} .requires`, "Requires billing ≥3 · language:es ≥1");
    await shows(desk.ana, `${sel.offer(lea.chat_id)} .step`, "step 1");
    await has(wall, sel.waiting(lea.chat_id), false);
    await accepts(desk.ana, lea.chat_id, "1/1");
  });

  await step(`the wall counts Lea's chat answered within the SLA, in total and for ${queue} on ${channel}`, async () => {
    await until(
      wall,
      '[data-kpi="sla"] does not read "1/1 · 100%"',
      () => document.querySelector('[data-kpi="sla"]')?.textContent.trim() === "1/1 · 100%",
    );
    await shows(wall, `#sla-by-queue li[data-sla="${queue}/${channel}"]`, `${queue} · ${channel} 1/1 · 100%`);
    await shows(wall, `${sel.agentRow("ana")} .chip[data-channel="${channel}"]`, `${channel} 1`);
  });
}

/** 75 → "1m 15s", as the wall writes durations of a minute or more. */
function minutesAndSeconds(secs) {
  return `${Math.floor(secs / 60)}m ${String(secs % 60).padStart(2, "0")}s`;
}

/**
 * Closes chat `id` in `page`'s desk the way an agent would: opens it from its card in the Active
 * section and clicks the chat view's `button#close-chat`. `name` is the customer's, shown as the
 * chat view's title.
 */
async function closeInDesk(page, id, name) {
  await openInDesk(page, id, name);
  const close = page.locator("#chat button#close-chat");
  if (!(await close.isVisible())) fail(`${page.__name}: no visible button#close-chat in the chat view of ${id}`);
  await close.click();
}

/** Sends `text` from `page`'s composer in the open chat, and waits for it in the history. */
async function sends(page, text) {
  await page.fill("#composer", text);
  await page.click("#send");
  await until(
    page,
    `"${text}" is not in #history after Send`,
    (t) => [...document.querySelectorAll("#history li.msg .msg-text")].some((p) => p.textContent === t),
    text,
  );
}

/** The history's message reading `text` in `page`'s open chat (a locator). */
function messageIn(page, text) {
  return page.locator("#history li.msg").filter({ has: page.locator(".msg-text", { hasText: text }) });
}

/** The message reading `text` shows delivery `status` and its text includes `label` (within WAIT). */
async function deliveryIs(page, text, status, label) {
  try {
    await until(
      page,
      `the message "${text}" does not show delivery ${status} ("${label}")`,
      ([t, s, l]) => {
        const li = [...document.querySelectorAll("#history li.msg")]
          .find((m) => m.querySelector(".msg-text")?.textContent === t);
        const d = li?.querySelector(".delivery");
        return d?.dataset.status === s && d.textContent.replace(/\s+/g, "").includes(l.replace(/\s+/g, ""));
      },
      [text, status, label],
    );
  } catch (e) {
    if (e instanceof Failure) fail(`${e.message}\n${await show(page, "#history")}`);
    throw e;
  }
}

/** Opens chat `id` in `page`'s desk from its card in the Active section; `name` is its title. */
async function openInDesk(page, id, name) {
  // Near the card's corner: its text, not a button inside it.
  await page.click(sel.active(id), { position: { x: 8, y: 8 } });
  await until(
    page,
    `the chat view (#chat) did not open on ${id} (title naming ${name})`,
    (who) => !document.querySelector("#chat")?.hidden && (document.querySelector("#chat-title")?.textContent ?? "").includes(who),
    name,
  );
}

// ---------------------------------------------------------------------------------------------

/** The contact centre of the `default` workspace, on the unprefixed pages: the scenario above. */
async function theContactCentre() {
  let mia, tom;

  await step("open desk A (ana), then desk B (ben) — ana online first, so idle longest — and the wall (sam)", async () => {
    desk.ana = await open(browser, "desk A (ana)", "desk-ana.png", "/?token=ana-token", deskReady);
    await engineSeesOnline("ana");
    desk.ben = await open(browser, "desk B (ben)", "desk-ben.png", "/?token=ben-token", deskReady, benNetwork);
    await engineSeesOnline("ben");
    wall = await open(browser, "wall (sam)", "wall.png", `/wall?token=${encodeURIComponent(WALL_TOKEN)}`, wallReady);
    for (const page of [desk.ana, desk.ben]) {
      for (const s of ["select#presence", "section#active", "section#reopened", "section#offers", "section#archive", "select#archive-scope"]) {
        if (!(await page.$(s))) fail(`${page.__name}: no ${s}`);
      }
    }
    for (const s of ["#queues", "table#agents", "#reopened", "#kpis", '[data-kpi="overrides"]']) {
      if (!(await wall.$(s))) fail(`wall: no ${s}`);
    }
  });

  await step("the admin API sets ana's limit to 1; her desk and the wall show it live", async () => {
    const response = await fetch(`${base}/v1/admin/agents/ana/limit`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ limit: 1 }),
      signal: AbortSignal.timeout(WAIT),
    });
    if (response.status !== 204) fail(`PUT /v1/admin/agents/ana/limit: ${response.status} ${await response.text()}`);
    await until(desk.ana, '#load does not read "0/1"', () => document.querySelector("#load")?.textContent.trim() === "0/1");
    await until(
      wall,
      'ana\'s row: .limit does not read "1"',
      () => document.querySelector('tr[data-agent-id="ana"] .limit')?.textContent.trim() === "1",
    );
  });

  await step("customer Mia writes over HTTP; the chat is offered to ana, who accepts it in her desk (1/1)", async () => {
    mia = await customerWrites("+4915100000001", "Mia Berg", "My order is late");
    const to = await offeredTo([desk.ana, desk.ben], mia.chat_id);
    if (to !== desk.ana) fail(`Mia's chat ${mia.chat_id} was offered to ${to ? to.__name : "nobody"}, not ana (receipt ${JSON.stringify(mia)})`);
    await accepts(desk.ana, mia.chat_id, "1/1");
  });

  await step("customer Tom writes; ana is full, so ben gets it, accepts and closes it in his desk", async () => {
    tom = await customerWrites("+4915100000002", "Tom Lind", "Where is my parcel?");
    const to = await offeredTo([desk.ana, desk.ben], tom.chat_id);
    if (to !== desk.ben) fail(`Tom's chat ${tom.chat_id} was offered to ${to ? to.__name : "nobody"}, not ben (receipt ${JSON.stringify(tom)})`);
    await accepts(desk.ben, tom.chat_id, "1/2");
    await closeInDesk(desk.ben, tom.chat_id, "Tom Lind");
    await until(desk.ben, `${tom.chat_id} is still in section#active after closing`, (s) => !document.querySelector(s), sel.active(tom.chat_id));
    await until(desk.ben, '#load does not read "0/2" after closing', () => document.querySelector("#load")?.textContent.trim() === "0/2");
  });

  await step("both desks switch the archive to everyone's; Tom's closed chat is reopenable in both", async () => {
    for (const page of [desk.ana, desk.ben]) {
      await page.selectOption("select#archive-scope", "all");
      await until(
        page,
        `archive (all): no entry ${tom.chat_id} with an enabled button.reopen`,
        (s) => {
          const button = document.querySelector(`${s} button.reopen`);
          return !!button && !button.disabled;
        },
        sel.archive(tom.chat_id),
      );
      for (const part of [".countdown", "button.template", ".reason"]) {
        if (!(await page.$(`${sel.archive(tom.chat_id)} ${part}`))) fail(`${page.__name}: archive entry ${tom.chat_id} has no ${part}`);
      }
    }
  });

  await step("ana clicks Reopen: the chat is in her Reopened section and on the wall, reopened by ana", async () => {
    // A mark that a reload would wipe: ben's desk must change live.
    await desk.ben.evaluate(() => (window.__e2eNoReload = true));
    await desk.ana.click(`${sel.archive(tom.chat_id)} button.reopen`);
    await until(desk.ana, `${tom.chat_id} is not in section#reopened`, (s) => !!document.querySelector(s), sel.reopened(tom.chat_id));
    await until(
      wall,
      `#reopened has no ${tom.chat_id} with .reopened-by naming ana`,
      (id) => /ana/i.test(document.querySelector(`#reopened li[data-chat-id="${id}"] .reopened-by`)?.textContent ?? ""),
      tom.chat_id,
    );
  });

  await step("ben's Reopen button for it turns off live", async () => {
    await until(
      desk.ben,
      `the archive entry ${tom.chat_id}'s button.reopen is not disabled`,
      (s) => document.querySelector(`${s} button.reopen`)?.disabled === true,
      sel.archive(tom.chat_id),
    );
    if (!(await desk.ben.evaluate(() => window.__e2eNoReload === true))) fail("desk B reloaded instead of changing live");
  });

  await step('ben\'s attempt (window.desk.reopen) shows "active elsewhere — with Ana" (her name)', async () => {
    const hasApi = await desk.ben.evaluate(() => typeof window.desk?.reopen === "function");
    if (!hasApi) fail("desk B: window.desk.reopen is not a function");
    // Its promise (if any) may reject with the engine's refusal: the .reason is what counts.
    await desk.ben.evaluate(async (id) => {
      try {
        await window.desk.reopen(id);
      } catch {}
    }, tom.chat_id);
    await until(
      desk.ben,
      'the entry\'s .reason does not read "active elsewhere — with Ana"',
      (s) => {
        const text = document.querySelector(`${s} .reason`)?.textContent ?? "";
        return text.includes("active elsewhere — with Ana");
      },
      sel.archive(tom.chat_id),
    );
  });

  await step("Tom answers over HTTP: the chat is in ana's Active section, over her limit (2/1)", async () => {
    const receipt = await customerWrites("+4915100000002", "Tom Lind", "Yes, still waiting!");
    if (receipt.chat_id !== tom.chat_id || receipt.state !== "active" || receipt.owner !== "ana") {
      fail(`Tom's reply: expected ${tom.chat_id} active with ana, the engine answered ${JSON.stringify(receipt)}`);
    }
    await until(desk.ana, `${tom.chat_id} is not in section#active`, (s) => !!document.querySelector(s), sel.active(tom.chat_id));
    await until(desk.ana, `${tom.chat_id} is still in section#reopened`, (s) => !document.querySelector(s), sel.reopened(tom.chat_id));
    await until(desk.ana, "section#active has no class over-limit", () => !!document.querySelector("section#active.over-limit"));
    await until(desk.ana, '#load does not read "2/1"', () => document.querySelector("#load")?.textContent.trim() === "2/1");
  });

  await step("the wall shows ana over her limit and the override counted", async () => {
    await until(wall, 'tr[data-agent-id="ana"] has no class over-limit', () => !!document.querySelector('tr[data-agent-id="ana"].over-limit'));
    await until(
      wall,
      'ana\'s row: .load does not read "2"',
      () => document.querySelector('tr[data-agent-id="ana"] .load')?.textContent.trim() === "2",
    );
    await until(wall, `${tom.chat_id} is still in #reopened after the reply`, (id) => !document.querySelector(`#reopened li[data-chat-id="${id}"]`), tom.chat_id);
    await until(wall, '[data-kpi="overrides"] does not show a number ≥ 1', () => {
      const match = (document.querySelector('[data-kpi="overrides"]')?.textContent ?? "").match(/\d+/);
      return !!match && Number(match[0]) >= 1;
    });
  });

  await step(`ana opens Mia's chat: the composer's limit is the engine's (WhatsApp: ${WHATSAPP_MAX_LEN})`, async () => {
    await openInDesk(desk.ana, mia.chat_id, "Mia Berg");
    await shows(desk.ana, "#counter", `0/${WHATSAPP_MAX_LEN}`);
    const max = await desk.ana.evaluate(() => document.querySelector("#composer").maxLength);
    if (max !== WHATSAPP_MAX_LEN) fail(`desk A: #composer maxlength is ${max}, not ${WHATSAPP_MAX_LEN}`);
  });

  if (FAIL_ONCE) {
    const plain = "Your parcel left the depot this morning.";
    const refused = `${FAIL_ONCE} Your refund is on its way.`;

    await step("ana writes to Mia: her message shows its tick, and it reaches sent (✓ Sent) once the platform takes it", async () => {
      await sends(desk.ana, plain);
      await deliveryIs(desk.ana, plain, "sent", "✓Sent");
    });

    await step(`ana writes "${refused}": the platform refuses it, and her desk shows it not delivered with the platform's reason and a Retry button`, async () => {
      await sends(desk.ana, refused);
      await deliveryIs(desk.ana, refused, "failed", `Not delivered: webhook answered 400: ${REFUSAL}`);
      const retry = messageIn(desk.ana, refused).locator("button.retry");
      if (!(await retry.isVisible())) fail(`desk A: no visible Retry on the failed message: ${await show(desk.ana, "#history")}`);
      const label = await retry.getAttribute("aria-label");
      if (!label?.includes(refused)) fail(`desk A: the Retry button's aria-label "${label}" does not name the message`);
    });

    await step("ana clicks Retry: the message is sent again and reaches sent (✓), the failure gone", async () => {
      await messageIn(desk.ana, refused).locator("button.retry").click();
      await deliveryIs(desk.ana, refused, "sent", "✓Sent");
      if (await messageIn(desk.ana, refused).locator("button.retry").count()) fail("desk A: Retry still shown after the message was sent");
    });

    await step("the platform reports the message delivered, then read (POST /v1/channels/whatsapp/statuses with the id it gave it): her desk shows ✓✓ Delivered, then ✓✓ Read", async () => {
      // The test's platform answers every message it takes with the id "fake-<its text in hex>".
      const provider_id = `fake-${Buffer.from(plain, "utf8").toString("hex")}`;
      await http("POST", "/v1/channels/whatsapp/statuses", { provider_id, status: "delivered" });
      await deliveryIs(desk.ana, plain, "delivered", "✓✓Delivered");
      await http("POST", "/v1/channels/whatsapp/statuses", { provider_id, status: "read" });
      await deliveryIs(desk.ana, plain, "read", "✓✓Read");
    });

    await step("a customer's media, location, button reply and unsupported message (customer_message pushes fed to the page) show as attachments", async () => {
      const at = new Date().toISOString();
      const customer = (text, attachment) => ({
        kind: "customer_message", chat_id: mia.chat_id,
        message: { at, author: { by: "customer" }, kind: "text", text, attachment },
      });
      for (const event of [
        customer("The label", { type: "media", kind: "image", id: null, url: "https://example.com/label.jpg", mime: "image/jpeg", filename: "label.jpg" }),
        customer("Depot", { type: "location", latitude: 52.52, longitude: 13.405, name: "Depot", address: "Berlin" }),
        customer("Yes, please", { type: "reply", id: "yes" }),
        customer("", { type: "unsupported", kind: "poll" }),
      ]) await desk.ana.evaluate((e) => window.desk.push(e), event);
      await shows(desk.ana, '#history [data-attachment="media"] a[href="https://example.com/label.jpg"]', "image: label.jpg");
      await shows(desk.ana, '#history [data-attachment="location"] a', "Depot, Berlin (52.52, 13.405)");
      await shows(desk.ana, '#history [data-attachment="reply"]', "Yes, please button reply");
      await shows(desk.ana, '#history [data-attachment="unsupported"]', "Unsupported message (poll)");
      // How the ticks, the retried failure and the attachments look (not compared with anything).
      await desk.ana.locator("#chat").screenshot({ path: path.join(SHOTS, "desk-ana-delivery.png"), timeout: WAIT });
    });
  }

  await step("ana snoozes Mia's chat until she replies (Snooze in the chat view); Mia's reply brings it back", async () => {
    await desk.ana.selectOption("#snooze-for", "reply");
    await desk.ana.click("#snooze-form button#snooze");
    await shows(desk.ana, `${sel.active(mia.chat_id)} .meta`, "snoozed until the customer replies");
    await shows(desk.ana, "#chat-meta", "snoozed until the customer replies");
    await shows(desk.ana, "#chat-status", "Snoozed until the customer replies");
    if (!(await desk.ana.locator("#transfer-form").isHidden())) fail("desk A: a snoozed chat offers Transfer");
    const receipt = await customerWrites("+4915100000001", "Mia Berg", "Any news?");
    if (receipt.chat_id !== mia.chat_id || receipt.state !== "active" || receipt.owner !== "ana") {
      fail(`Mia's reply: expected ${mia.chat_id} active with ana, the engine answered ${JSON.stringify(receipt)}`);
    }
    await shows(desk.ana, "#chat-status", "The snooze is over");
    await until(
      desk.ana,
      `${mia.chat_id}'s card still reads snoozed`,
      (s) => !(document.querySelector(s)?.textContent ?? "snoozed").includes("snoozed"),
      `${sel.active(mia.chat_id)} .meta`,
    );
    await shows(desk.ana, "#history", "Any news?");
  });

  await step("ana transfers Mia's chat to ben (Transfer in the chat view); it leaves her desk and lands in ben's", async () => {
    // The picker lists the colleagues: ben online with room; sam (a supervisor, offline) not pickable.
    await until(
      desk.ana,
      "select#transfer-to has no enabled option ben and a disabled option sam",
      () => {
        const option = (id) => document.querySelector(`#transfer-to option[value="${id}"]`);
        return option("ben")?.disabled === false && option("sam")?.disabled === true;
      },
    );
    await desk.ana.selectOption("#transfer-to", "ben");
    await desk.ana.click("#transfer-form button#transfer");
    await shows(desk.ana, "#chat-status", "Transferred to Ben");
    await has(desk.ana, sel.active(mia.chat_id), false);
    await loadIs(desk.ana, "1/1");
    await has(desk.ana, "section#active.over-limit", false);
    await shows(desk.ana, "#chat-meta", "owner ben");
    if (!(await desk.ana.locator("#composer").isDisabled())) fail("desk A: the composer is still on after the transfer");
    await has(desk.ben, sel.active(mia.chat_id));
    await loadIs(desk.ben, "1/2");
  });

  await step("on the wall sam picks Tom's chat from the active chats and transfers it to ben by clicking", async () => {
    await shows(wall, `${sel.live(tom.chat_id)} .meta`, "with Ana");
    await shows(wall, `${sel.live(mia.chat_id)} .meta`, "with Ben");
    await wall.selectOption(`${sel.live(tom.chat_id)} select`, "ben");
    await wall.click(`${sel.live(tom.chat_id)} button`);
    await shows(wall, "#transfer-status", "Tom Lind's chat is now with Ben");
    await shows(wall, `${sel.live(tom.chat_id)} .meta`, "with Ben");
    await has(desk.ana, sel.active(tom.chat_id), false);
    await loadIs(desk.ana, "0/1");
    await has(desk.ben, sel.active(tom.chat_id));
    await loadIs(desk.ben, "2/2");
    await until(wall, 'ben\'s row: .load does not read "2"', () => document.querySelector('tr[data-agent-id="ben"] .load')?.textContent.trim() === "2");
  });

  await step("Tom writes 50 more times; ben opens the chat and pages back to its first message", async () => {
    for (let i = 1; i <= 50; i++) await customerWrites("+4915100000002", "Tom Lind", `Update ${i}`);
    await shows(desk.ben, `${sel.active(tom.chat_id)} .preview`, "Update 50");
    await openInDesk(desk.ben, tom.chat_id, "Tom Lind");
    await shows(desk.ben, "#history li:last-child", "Update 50");
    await has(desk.ben, "button#older:not([hidden])");
    if ((await desk.ben.textContent("#history")).includes("Where is my parcel?")) {
      fail("desk B: the first page already holds Tom's first message: nothing to page back to");
    }
    await desk.ben.click("button#older");
    await shows(desk.ben, "#history li:first-child", "Where is my parcel?");
    await has(desk.ben, "button#older[hidden]");
    await shows(desk.ben, "#history li:last-child", "Update 50");
  });

  if (BILLING) await routingLikeAContactCentre();
  else console.log("skip the routing steps (R19–R21): BILLING_QUEUE is not set");

  await step("ana goes away and ben is full: Eva waits, and the wall shows her by name", async () => {
    await desk.ana.selectOption("select#presence", "away");
    await until(wall, "ana's row does not read away", () => document.querySelector('tr[data-agent-id="ana"]')?.dataset.presence === "away");
    const eva = await customerWrites("+4915100000003", "Eva Holm", "Hello?");
    if (eva.state !== "queued") fail(`Eva's chat: expected queued, the engine answered ${JSON.stringify(eva)}`);
    await until(
      wall,
      `${sel.waiting(eva.chat_id)} .who does not read "Eva Holm"`,
      (s) => document.querySelector(s)?.textContent.trim() === "Eva Holm",
      `${sel.waiting(eva.chat_id)} .who`,
    );
  });

  await step("ben's desk loses its network while Tom writes; back online, it resumes and shows the missed message once", async () => {
    const text = "Are you still there?";
    // A mark that a reload would wipe: the desk must resume, not start again.
    await desk.ben.evaluate(() => (window.__e2eNoReload = true));
    await benNetwork.cut();
    await until(desk.ben, "the #offline banner is not shown with the network gone", () => document.querySelector("#offline")?.hidden === false);
    const receipt = await customerWrites("+4915100000002", "Tom Lind", text);
    if (receipt.chat_id !== tom.chat_id || receipt.owner !== "ben") {
      fail(`Tom's message: expected ${tom.chat_id} with ben, the engine answered ${JSON.stringify(receipt)}`);
    }
    if ((await desk.ben.textContent("#history")).includes(text)) fail("desk B: the message arrived with the network down");
    benNetwork.restore();
    // As a browser does when the network comes back: the client reconnects at once.
    await desk.ben.evaluate(() => window.dispatchEvent(new Event("online")));
    await until(desk.ben, "the #offline banner is still shown with the network back", () => document.querySelector("#offline")?.hidden === true);
    await shows(desk.ben, "#history li:last-child", text);
    await shows(desk.ben, `${sel.active(tom.chat_id)} .preview`, text);
    const copies = await desk.ben.evaluate(
      (t) => [...document.querySelectorAll("#history li")].filter((li) => li.textContent.includes(t)).length,
      text,
    );
    if (copies !== 1) fail(`desk B: the missed message is in #history ${copies} times, not once`);
    if (!(await desk.ben.evaluate(() => window.__e2eNoReload === true))) fail("desk B reloaded instead of resuming");
  });

  if (WALL_TOKEN.split(".").length === 3) {
    await step("the wall renewed its short-lived token and is still connected past its expiry", async () => {
      const exp = JSON.parse(Buffer.from(WALL_TOKEN.split(".")[1], "base64url").toString()).exp;
      const left = Math.max(0, exp * 1000 - Date.now());
      await until(
        wall,
        "the wall did not stay signed in and online with a renewed token past the first one's expiry",
        ([first, expMs]) => Date.now() > expMs + 1000
          && sessionStorage.getItem("switchboard-token:/wall") !== first
          && document.querySelector("#app")?.hidden === false
          && document.querySelector("#offline")?.hidden === true,
        [WALL_TOKEN, exp * 1000],
        left + WAIT,
      );
      await shows(wall, "#me", "sam");
    });
  }

  await noPageLostItsConnection();
}

function noPageLostItsConnection() {
  return step("no page lost its connection or threw an uncaught error on the way", async () => {
    for (const page of pages) {
      await until(page, "the #offline banner is shown", () => document.querySelector("#offline")?.hidden === true);
      const uncaught = page.__problems.filter((p) => p.startsWith("uncaught"));
      if (uncaught.length) fail(`${page.__name}: ${uncaught.join("; ")}`);
    }
  });
}

/**
 * R27: workspace `ws`, created over the platform API with one agent and one supervisor, has
 * its own desk at /w/{ws}/ and wall at /w/{ws}/wall, which talk to its paths only: the agent
 * is offered and accepts its workspace's customer, the wall shows them and renews its token at
 * /v1/w/{ws}/token, and nothing of `default` — ana online with a chat of her own, a customer
 * waiting there — shows on either page.
 */
async function deskAndWallOfAWorkspace(ws) {
  const { agent, agentToken, supervisor } = WORKSPACE_PEOPLE;
  let dan, ada;

  await step(`the platform API creates workspace ${ws}; its admin API, agent ${agent} and supervisor ${supervisor}`, async () => {
    const created = await http("POST", "/v1/platform/workspaces", { id: ws, name: `Workspace ${ws}` });
    if (created?.id !== ws || created.state !== "active") fail(`POST /v1/platform/workspaces answered ${JSON.stringify(created)}`);
    await http("POST", `/v1/w/${ws}/admin/agents`, { id: agent, name: `${agent} of ${ws}`, limit: 2 });
    await http("POST", `/v1/w/${ws}/admin/agents`, { id: supervisor, name: `${supervisor} of ${ws}`, role: "supervisor" });
  });

  await step("in default, ana's desk accepts customer Dan, and with ana full (ben is offline) customer Eve waits", async () => {
    desk.ana = await open(browser, "default desk (ana)", "desk-ana.png", "/?token=ana-token", deskReady);
    dan = await customerWrites("+4915100000011", "Dan Default", "A default workspace's chat");
    await accepts(desk.ana, dan.chat_id, "1/2");
    await http("PUT", "/v1/admin/agents/ana/limit", { limit: 1 });
    const eve = await customerWrites("+4915100000012", "Eve Default", "Waiting in default");
    if (eve.state !== "queued") fail(`Eve's chat is not waiting in default: ${JSON.stringify(eve)}`);
  });

  await step(`open ${ws}'s desk (${agent}) at /w/${ws}/ and its wall (${supervisor}) at /w/${ws}/wall`, async () => {
    desk[agent] = await open(browser, `desk of ${ws} (${agent})`, `desk-${ws}.png`, `/w/${ws}/?token=${encodeURIComponent(agentToken)}`, {
      why: `#load does not read "0/2" (the desk of ${ws} did not sign in as ${agent}, load 0, limit 2)`,
      fn: () => document.querySelector("#load")?.textContent.trim() === "0/2",
    });
    wall = await open(browser, `wall of ${ws} (${supervisor})`, `wall-${ws}.png`, `/w/${ws}/wall?token=${encodeURIComponent(WALL_TOKEN)}`, {
      why: `no row tr[data-agent-id="${agent}"] in table#agents (the wall of ${ws} did not get its board)`,
      fn: (id) => !!document.querySelector(`table#agents tr[data-agent-id="${id}"]`),
      arg: agent,
    });
    for (const page of [desk[agent], wall]) await shows(page, "#workspace", ws);
    await shows(desk[agent], "#me", agent);
    await shows(wall, "#me", supervisor);
  });

  await step(`customer Ada writes to ${ws}; its desk is offered the chat and accepts it, and its wall shows it live`, async () => {
    ada = await http("POST", `/v1/w/${ws}/channels/whatsapp/messages`, { from: "+4915100000013", name: "Ada Acme", text: `An order at ${ws}` });
    await accepts(desk[agent], ada.chat_id, "1/2");
    await until(wall, `${agent}'s row: .load does not read "1"`, (id) => document.querySelector(`tr[data-agent-id="${id}"] .load`)?.textContent.trim() === "1", agent);
    await has(wall, sel.live(ada.chat_id));
  });

  await step(`nothing of default shows on ${ws}'s pages: not its agents, chats, waiting customer or archive`, async () => {
    const rows = await wall.$$eval("table#agents tr[data-agent-id]", (trs) => trs.map((tr) => tr.dataset.agentId).sort());
    const own = [agent, supervisor].sort();
    if (JSON.stringify(rows) !== JSON.stringify(own)) fail(`wall of ${ws}: agent rows ${JSON.stringify(rows)}, not ${JSON.stringify(own)}`);
    const live = await wall.$$eval("#live-chats li[data-chat-id]", (lis) => lis.map((li) => li.dataset.chatId));
    if (JSON.stringify(live) !== JSON.stringify([ada.chat_id])) fail(`wall of ${ws}: live chats ${JSON.stringify(live)}, not just Ada's ${ada.chat_id}`);
    await desk[agent].selectOption("select#archive-scope", "all");
    await has(desk[agent], sel.archive(ada.chat_id));
    for (const page of [desk[agent], wall]) {
      const text = await page.evaluate(() => document.body.innerText);
      for (const foreign of ["Dan Default", "Eve Default", dan.chat_id, "ana", "ben", "sam"]) {
        if (new RegExp(`\\b${foreign}\\b`, "i").test(text)) fail(`${page.__name} shows "${foreign}" of default:\n${text.slice(0, 1500)}`);
      }
    }
  });

  if (WALL_TOKEN.split(".").length === 3) {
    await step(`${ws}'s wall renews its short-lived token at /v1/w/${ws}/token and stays connected`, async () => {
      const claims = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
      const renewed = await until(
        wall,
        `the wall of ${ws} did not take a renewed token`,
        ([key, first]) => {
          const held = sessionStorage.getItem(key);
          return held && held !== first && document.querySelector("#offline")?.hidden === true ? held : null;
        },
        [`switchboard-token:/w/${ws}/wall`, WALL_TOKEN],
        claims(WALL_TOKEN).exp * 1000 - Date.now() + WAIT,
      );
      if (claims(renewed).ws !== ws) fail(`the renewed token claims workspace ${claims(renewed).ws}, not ${ws}`);
      await shows(wall, "#me", supervisor);
    });
  }

  await noPageLostItsConnection();
}
