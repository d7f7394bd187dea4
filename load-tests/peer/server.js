// The peer: the floor's traffic shape served the way many teams would build a support-chat
// relay, with Socket.IO on Node. `switchboard-load --with-peer` starts it beside the floor
// and the engine (`node server.js --listen 127.0.0.1:PORT`) and measures it the same way.
//
// It does the floor's work (load-tests/src/relay.rs) and nothing less: per request it parses
// the frame (Socket.IO's parser), looks up the target and forwards. A `reopen` makes the
// sender the chat's owner and is pushed to every connection of the sender's agent; an
// ingress message is pushed (`chat_activated`, `customer_message`) to the owner of the chat
// its `from` names; `close` pushes `chat_closed`; every request is answered `ok`. Pushes carry
// a per-agent sequence number and go to the agent's room, which Socket.IO encodes once for
// all its connections. Nothing else: no customer files, router, timers or outbound queue.
//
// Frames are the floor's JSON objects carried as Socket.IO events named "frame", both ways:
// `42["frame",{"id":"r:1","type":"reopen","chat_id":"c1"}]` in,
// `42["frame",{"type":"ok","id":"r:1","result":{"kind":"done"}}]` out. The agent's token is
// the handshake's `token` query parameter, as on the engine's socket.
//
// Socket.IO's defaults are kept (25 s pings, 1 MB payloads, no compression), except that the
// client bundle is not served. Unlike the floor and the engine it has no bounded outbox: a
// slow reader's frames queue in memory, as they do in a default Socket.IO server.

import http from "node:http";
import { Server } from "socket.io";

/** The floor's listen backlog (relay.rs): a burst of connecting agents must not overflow it. */
const BACKLOG = 4096;

function listenAddress(argv) {
  const at = argv.indexOf("--listen");
  const value = at >= 0 ? argv[at + 1] : undefined;
  const match = /^(.+):(\d+)$/.exec(value ?? "");
  if (!match) {
    console.error("usage: node server.js --listen HOST:PORT");
    process.exit(2);
  }
  return { host: match[1], port: Number(match[2]) };
}

/** chat id → the agent that reopened it last. */
const owners = new Map();
/** agent → the sequence number of its last push. */
const seqs = new Map();

/** Pushes one event to every connection of `agent`, numbered. */
function push(agent, event) {
  const seq = (seqs.get(agent) ?? 0) + 1;
  seqs.set(agent, seq);
  io.to(agent).emit("frame", { type: "push", seq, event });
}

/** Answers one request and forwards its push, as the floor's `handle` does. */
function request(socket, agent, frame) {
  if (typeof frame !== "object" || frame === null || typeof frame.id !== "string") {
    socket.emit("frame", { type: "error", id: null, code: "bad_request", message: "malformed" });
    return;
  }
  socket.emit("frame", { type: "ok", id: frame.id, result: { kind: "done" } });
  const chat = frame.chat_id;
  if (typeof chat !== "string") {
    return;
  }
  if (frame.type === "reopen") {
    owners.set(chat, agent);
    push(agent, { kind: "chat_reopened", chat: { id: chat } });
  } else if (frame.type === "close") {
    push(agent, { kind: "chat_closed", chat_id: chat, reason: "agent" });
  }
}

/** `POST /v1/channels/{channel}/messages`: the customer's message goes to its chat's owner. */
function ingress(req, res) {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    let message;
    try {
      message = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      message = undefined;
    }
    if (typeof message?.from !== "string") {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "bad_request", message: "no from" }));
      return;
    }
    const chat = message.from;
    const owner = owners.get(chat);
    if (owner !== undefined) {
      push(owner, { kind: "chat_activated", chat: { id: chat }, by: "customer_replied" });
      push(owner, { kind: "customer_message", chat_id: chat });
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ chat_id: chat }));
  });
}

const INGRESS = /^\/v1\/channels\/[^/]+\/messages$/;

// Socket.IO takes the requests under /socket.io/; everything else comes here.
const server = http.createServer({ noDelay: true }, (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  } else if (req.method === "POST" && INGRESS.test(req.url)) {
    ingress(req, res);
  } else {
    res.writeHead(404);
    res.end();
  }
});

const io = new Server(server, { serveClient: false });

io.on("connection", (socket) => {
  const agent = String(socket.handshake.query.token ?? "");
  socket.join(agent);
  socket.emit("frame", { type: "welcome", protocol: 1, seq: seqs.get(agent) ?? 0 });
  socket.on("frame", (frame) => request(socket, agent, frame));
});

const { host, port } = listenAddress(process.argv);
server.listen({ host, port, backlog: BACKLOG }, () => {
  console.log(`peer: socket.io on http://${host}:${port}`);
});
