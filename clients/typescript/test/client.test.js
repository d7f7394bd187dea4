// The client against the real engine: each test starts its own engine (no database), so
// that routing starts from the same place. Every wait is bounded (engine.js `next`).

import { test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";

import {
  AgentClient,
  SupervisorClient,
  SwitchboardError,
  RequestTimeoutError,
  tokenClaims,
} from "../dist/client.js";
import { startEngine, signedToken, next } from "./engine.js";

/** A reconnect waits this long unless the test calls `retryNow()`: no race with the test. */
const MANUAL = { initialMs: 60_000, maxMs: 60_000 };

/** Starts an engine for `body(engine, open)`; `open(Client, token, options)` connects a client. */
async function withEngine(body) {
  const engine = await startEngine();
  const clients = [];
  const open = async (Client, token, options = {}) => {
    const client = new Client({ url: engine.url, token, WebSocket, backoff: MANUAL, ...options });
    clients.push(client);
    await client.connect();
    return client;
  };
  try {
    await body(engine, open);
  } finally {
    for (const client of clients) client.close();
    await engine.stop();
  }
}

/** A WebSocket class whose `send` does nothing while `mute.on`: requests that get no reply. */
function muting() {
  const mute = { on: false };
  mute.WebSocket = class extends WebSocket {
    send(data) {
      if (!mute.on) super.send(data);
    }
  };
  return mute;
}

/** Drops the client's socket, runs `meanwhile`, reconnects; resolves with the next sync. */
async function reconnect(client, meanwhile = async () => {}) {
  const offline = next((f) => client.onStatus(f), "offline", (s) => s === "offline");
  client.dropConnection();
  await offline;
  await meanwhile();
  const synced = next((f) => client.onSync(f), "the sync after the reconnect");
  client.retryNow();
  return synced;
}

test("an agent connects, syncs from a snapshot and gets its replies", () =>
  withEngine(async (engine, open) => {
    const syncs = [];
    const ana = new AgentClient({ url: engine.url, token: "ana-token", WebSocket });
    ana.onSync((s) => syncs.push(s));
    const welcome = await ana.connect();
    try {
      assert.equal(welcome.agent.id, "ana");
      assert.equal(welcome.protocol, 1);
      assert.deepEqual(syncs.map((s) => s.kind), ["snapshot"]);
      assert.equal(ana.seq, syncs[0].seq);
      assert.ok(Math.abs(ana.clockOffsetMs) < 5_000, `offset ${ana.clockOffsetMs} ms`);
      assert.deepEqual(await ana.request("ping"), { kind: "pong" });
      const presence = await ana.request("set_presence", { presence: "away" });
      assert.deepEqual(presence, { kind: "presence", presence: "away" });
    } finally {
      ana.close();
    }
  }));

test("without a WebSocket option the global one is used, as in a browser", () =>
  withEngine(async (engine) => {
    const saved = globalThis.WebSocket;
    globalThis.WebSocket = WebSocket;
    const ben = new AgentClient({ url: engine.url.replace("http:", "ws:"), token: "ben-token" });
    try {
      assert.equal((await ben.connect()).agent.id, "ben");
    } finally {
      ben.close();
      globalThis.WebSocket = saved;
    }
  }));

test("an error reply rejects with its typed code", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, "ana-token");
    const error = await ana.request("reopen", { chat_id: "ch-nothing" }).catch((e) => e);
    assert.ok(error instanceof SwitchboardError, String(error));
    assert.equal(error.code, "not_found");
    assert.equal(error.name, "SwitchboardError");
    assert.match(error.message, /./);
    assert.equal(error.details.live, undefined);
  }));

test("a push reaches the listeners of its kind", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, "ana-token");
    const offered = next((f) => ana.on("chat_offered", f), "chat_offered");
    const receipt = await engine.customerWrites("+4915100000001");
    const [event, seq] = await offered;
    assert.equal(event.kind, "chat_offered");
    assert.equal(event.chat.id, receipt.chat_id);
    assert.equal(seq, ana.seq);
    const accepted = await ana.request("accept", { chat_id: receipt.chat_id });
    assert.equal(accepted.kind, "chat");
    assert.equal(accepted.chat.state, "active");
  }));

test("R17: after a dropped socket the client resumes and gets each missed push once", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, "ana-token");
    const seqs = [];
    ana.onPush((push) => seqs.push(push.seq));
    const before = ana.seq;
    let receipts = [];
    const sync = await reconnect(ana, async () => {
      // Two customers write while Ana is away: two offers she has not seen.
      receipts = [await engine.customerWrites("+4915100000002"), await engine.customerWrites("+4915100000003")];
    });
    assert.equal(sync.kind, "resumed");
    assert.equal(sync.replayed, 2);
    assert.deepEqual(seqs, [before + 1, before + 2]);
    // Live pushes continue from there, once each.
    const offered = next((f) => ana.on("chat_offered", f), "a live offer");
    await ana.request("decline", { chat_id: receipts[0].chat_id });
    await engine.customerWrites("+4915100000004");
    await offered;
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b), `pushes in order, once: ${seqs}`);
    assert.equal(seqs.at(-1), ana.seq);
  }));

test("R17: after an engine restart (a welcome seq below ours) the client takes a snapshot", async () => {
  let engine = await startEngine();
  const ana = new AgentClient({ url: engine.url, token: "ana-token", WebSocket, backoff: MANUAL });
  try {
    await ana.connect();
    const offered = next((f) => ana.on("chat_offered", f), "chat_offered");
    await engine.customerWrites("+4915100000007");
    await offered;
    const before = ana.seq;
    const offline = next((f) => ana.onStatus(f), "offline", (s) => s === "offline");
    await engine.stop();
    await offline;
    // A new engine on the same address, with no memory of Ana's pushes.
    engine = await startEngine(new URL(engine.url).host);
    const sync = next((f) => ana.onSync(f), "the sync after the restart");
    ana.retryNow();
    const snapshot = await sync;
    assert.equal(snapshot.kind, "snapshot");
    assert.deepEqual(snapshot.offers, []);
    assert.ok(snapshot.seq < before, `${snapshot.seq} < ${before}`);
    assert.equal(ana.seq >= snapshot.seq, true);
  } finally {
    ana.close();
    await engine.stop();
  }
});

test("R17: a request whose reply was lost is sent again with its id and runs once", () =>
  withEngine(async (engine, open) => {
    const sent = [];
    class RecordingWebSocket extends WebSocket {
      send(data) {
        sent.push(JSON.parse(data));
        super.send(data);
      }
    }
    const ana = await open(AgentClient, "ana-token", { WebSocket: RecordingWebSocket });
    const offered = next((f) => ana.on("chat_offered", f), "chat_offered");
    const { chat_id } = await engine.customerWrites("+4915100000005");
    await offered;
    await ana.request("accept", { chat_id });
    const text = "Your parcel left the depot.";
    const reply = ana.request("send_message", { chat_id, text });
    // The socket goes before the reply can come back; whether the first sending ran or not,
    // the retry with the same id answers and the message is recorded once.
    await reconnect(ana);
    assert.deepEqual(await reply, { kind: "done" });
    const sendings = sent.filter((f) => f.type === "send_message");
    assert.equal(sendings.length, 2, "sent, then sent again after the reconnect");
    assert.deepEqual(sendings[1], sendings[0], "the same frame, id included");
    const history = await ana.request("get_chat", { chat_id });
    assert.equal(history.messages.filter((m) => m.text === text).length, 1);
  }));

test("a request with no reply rejects with a timeout", () =>
  withEngine(async (engine, open) => {
    const mute = muting();
    const ana = await open(AgentClient, "ana-token", { WebSocket: mute.WebSocket, requestTimeoutMs: 300 });
    mute.on = true;
    const error = await ana.request("ping").catch((e) => e);
    assert.ok(error instanceof RequestTimeoutError, String(error));
    assert.equal(error.code, "timeout");
  }));

test("an unanswered heartbeat counts as a dead socket: the client reconnects", () =>
  withEngine(async (engine, open) => {
    const mute = muting();
    const ana = await open(AgentClient, "ana-token", {
      WebSocket: mute.WebSocket,
      heartbeat: { intervalMs: 200, timeoutMs: 200 },
      backoff: { initialMs: 50, maxMs: 50 },
    });
    const offline = next((f) => ana.onStatus(f), "offline", (s) => s === "offline");
    mute.on = true;
    await offline;
    mute.on = false;
    const sync = await next((f) => ana.onSync(f), "the sync after the reconnect");
    assert.equal(sync.kind, "resumed");
  }));

test("archive watching is set up again on the new connection", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, "ana-token");
    const offered = next((f) => ana.on("chat_offered", f), "chat_offered");
    const { chat_id } = await engine.customerWrites("+4915100000006");
    await offered;
    await ana.request("accept", { chat_id });
    await ana.request("close", { chat_id });
    const ben = await open(AgentClient, "ben-token");
    await ben.watchArchive([chat_id]);
    await reconnect(ben);
    await ben.request("ping"); // after the watch the client sent on the new connection
    const changed = next((f) => ben.on("archive_entry_changed", f), "archive_entry_changed");
    await ana.request("reopen", { chat_id });
    const [event] = await changed;
    assert.equal(event.entry.chat_id, chat_id);
    assert.equal(event.entry.reopenable, false);
    // R03: Ben is too late, and the error says where the customer is live.
    const lost = await ben.request("reopen", { chat_id }).catch((e) => e);
    assert.ok(lost instanceof SwitchboardError, String(lost));
    assert.equal(lost.code, "active_elsewhere");
    assert.deepEqual(lost.live, { chat_id, state: "reopened", owner: "ana", owner_name: "Ana" });
    assert.deepEqual(lost.details.live, lost.live);
  }));

test("a removed agent's close (4003) is fatal: no reconnect", () =>
  withEngine(async (engine, open) => {
    const ben = await open(AgentClient, "ben-token");
    const fatal = next((f) => ben.onFatal(f), "the fatal close");
    await engine.post("/v1/admin/agents/ben", undefined, "DELETE");
    assert.equal((await fatal).closeCode, 4003);
    assert.equal(ben.currentStatus, "stopped");
    await assert.rejects(ben.request("ping"), { code: "disconnected" });
  }));

test("an expired token's close (4001) is fatal; connect(fresh token) resumes", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, await signedToken("ana", 2));
    const fatal = next((f) => ana.onFatal(f), "the 4001 close");
    assert.equal((await fatal).closeCode, 4001);
    assert.equal(ana.currentStatus, "stopped");
    const syncs = [];
    ana.onSync((s) => syncs.push(s.kind));
    await ana.connect(await signedToken("ana"));
    assert.deepEqual(syncs, ["resumed"]);
  }));

test("a refused token fails connect()", () =>
  withEngine(async (engine) => {
    const client = new AgentClient({ url: engine.url, token: "nobody", WebSocket });
    await assert.rejects(client.connect(), { code: "disconnected" });
    assert.equal(client.currentStatus, "stopped");
  }));

test("refresh replaces a signed token", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, await signedToken("ana"));
    const result = await ana.request("refresh", { token: await signedToken("ana", 1200) });
    assert.equal(result.kind, "refreshed");
    assert.ok(Date.parse(result.expires_at) > ana.now());
    await reconnect(ana); // the new connection signs in with the new token
  }));

test("renewToken renews a short-lived token before it expires: the connection outlives it and reconnects with the new one", () =>
  withEngine(async (engine, open) => {
    const first = await signedToken("ana", 4);
    const firstExp = tokenClaims(first).exp * 1000;
    const tokens = [];
    const ana = await open(AgentClient, first, { renewToken: true });
    ana.onToken((token) => tokens.push(token));
    const fatal = next((f) => ana.onFatal(f), "no fatal close", () => true, firstExp + 2_000 - Date.now());
    // Past the first token's expiry (the engine closes with 4001 then, unless refreshed).
    await assert.rejects(fatal, /timed out/);
    assert.equal(ana.currentStatus, "online");
    assert.ok(tokens.length >= 1, "a fresh token was taken");
    const latest = tokens.at(-1);
    assert.notEqual(latest, first);
    assert.ok(tokenClaims(latest).exp * 1000 > firstExp);
    // A new connection signs in with the renewed token: the first one is expired by now.
    await reconnect(ana);
    assert.deepEqual(await ana.request("ping"), { kind: "pong" });
  }));

test("R27: with `workspace` the client signs in, resumes and renews on that workspace's paths", () =>
  withEngine(async (engine, open) => {
    await engine.post("/v1/platform/workspaces", { id: "acme" });
    await engine.post("/v1/w/acme/admin/agents", { id: "zoe", name: "Zoe Acme" });
    const first = await signedToken("zoe", 4, "acme");
    const firstExp = tokenClaims(first).exp * 1000;
    // Unprefixed paths are `default`'s, where the token's claim does not open anything.
    const astray = new AgentClient({ url: engine.url, token: first, WebSocket });
    await assert.rejects(astray.connect(), { code: "disconnected" });
    const tokens = [];
    const zoe = await open(AgentClient, first, { workspace: "acme", renewToken: true });
    zoe.onToken((token) => tokens.push(token));
    const renewed = next((f) => zoe.onToken(f), "a renewed token", () => true, firstExp + 2_000 - Date.now());
    // Renewed at `POST /v1/w/acme/token`: `/v1/token` refuses a token of acme.
    assert.equal(tokenClaims(await renewed).ws, "acme");
    const sync = await reconnect(zoe);
    assert.equal(sync.kind, "resumed");
    assert.deepEqual(await zoe.request("ping"), { kind: "pong" });
    assert.ok(tokens.length >= 1);
  }));

test("R27: a workspace that is no workspace id is refused when the client is made", () => {
  for (const workspace of ["", "Acme", "-acme", "a/b", "a".repeat(64)]) {
    assert.throws(
      () => new AgentClient({ url: "http://127.0.0.1:1", token: "t", WebSocket, workspace }),
      (e) => e instanceof TypeError && e.message.includes(JSON.stringify(workspace)),
      workspace,
    );
  }
});

test("request(\"refresh\") replaces the token the client reconnects with, as refresh() does", () =>
  withEngine(async (engine, open) => {
    const ana = await open(AgentClient, await signedToken("ana"));
    const fresh = await signedToken("ana", 1200);
    const told = next((f) => ana.onToken(f), "onToken");
    await ana.request("refresh", { token: fresh });
    assert.equal(await told, fresh);
  }));

test("a supervisor subscribes, gets board events by kind, and resumes after a drop", () =>
  withEngine(async (engine, open) => {
    const sam = await open(SupervisorClient, "sam-token");
    const board = await sam.subscribe();
    assert.equal(board.kind, "board");
    assert.ok(board.agents.some((a) => a.id === "ana"));
    const anaOnline = next((f) => sam.on("agent_changed", f), "ana online", (e) => e.agent.id === "ana" && e.agent.presence === "online");
    await open(AgentClient, "ana-token");
    await anaOnline;
    const events = [];
    sam.onEvent((e) => events.push(e));
    const sync = await reconnect(sam, async () => {
      await engine.post("/v1/admin/agents/ana/limit", { limit: 5 }, "PUT");
    });
    assert.equal(sync.kind, "resumed");
    assert.ok(sync.replayed >= 1);
    const limit = events.find((e) => e.kind === "agent_changed" && e.agent.id === "ana" && e.agent.limit === 5);
    assert.ok(limit, `the missed change came: ${JSON.stringify(events)}`);
    const seqs = events.map((e) => e.seq);
    assert.deepEqual(seqs, [...new Set(seqs)].sort((a, b) => a - b));
    assert.deepEqual(await sam.request("set_limit", { agent: "ana", limit: 2 }), { kind: "done" });
  }));
