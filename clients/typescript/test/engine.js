// The real engine for the client's tests: the `switchboard` binary cargo built, on a free
// port, with the demo agents (ana, ben: agents; sam: supervisor) and no database.

import { spawn, execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createInterface } from "node:readline";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const here = dirname(fileURLToPath(import.meta.url));
/** How long the engine may take to start listening. */
const START_MS = 10_000;

/** `SWITCHBOARD_BIN`, else the debug binary of the workspace's target dir. */
export function engineBinary() {
  const bin =
    process.env.SWITCHBOARD_BIN ??
    resolve(process.env.CARGO_TARGET_DIR ?? resolve(here, "../../../target"), "debug/switchboard");
  if (!existsSync(bin)) {
    throw new Error(`no engine binary at ${bin}: run \`cargo build\` first, or set SWITCHBOARD_BIN`);
  }
  return bin;
}

/**
 * Starts an engine on `listen` (a free port by default); `await engine.stop()` ends it.
 * `engine.url` is `http://127.0.0.1:PORT`.
 */
export async function startEngine(listen = "127.0.0.1:0") {
  const env = { ...process.env, RUST_LOG: "info", NO_COLOR: "1" };
  for (const key of ["SWITCHBOARD_CONFIG", "SWITCHBOARD_LISTEN", "SWITCHBOARD_WEBHOOK_URL", "SWITCHBOARD_DATA", "SWITCHBOARD_DURABILITY"]) {
    delete env[key];
  }
  const child = spawn(engineBinary(), ["--listen", listen, "--durability", "memory"], {
    env,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const log = [];
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`the engine did not start listening:\n${log.join("\n")}`)), START_MS);
    child.once("exit", (code) => reject(new Error(`the engine exited (${code}):\n${log.join("\n")}`)));
    // Drains the log for as long as the engine runs, so that it never blocks on it.
    createInterface({ input: child.stdout }).on("line", (line) => {
      log.push(line);
      if (log.length > 200) log.shift();
      const addr = line.includes("switchboard listening") && /addr=(\S+)/.exec(line);
      if (addr) {
        clearTimeout(timer);
        resolveUrl(`http://${addr[1]}`);
      }
    });
  });
  return {
    url,
    log,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((done) => child.once("exit", done));
      child.kill("SIGKILL");
      await exited;
    },
    /** `POST path` with a JSON body; the parsed answer (throws on a non-2xx status). */
    async post(path, body, method = "POST") {
      const response = await fetch(url + path, {
        method,
        headers: { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
      return text ? JSON.parse(text) : null;
    },
    /** A customer writes on WhatsApp; the ingress receipt. */
    customerWrites(from, text = "Where is my order?") {
      return this.post("/v1/channels/whatsapp/messages", { from, text });
    },
  };
}

/**
 * A signed development token (`switchboard token AGENT`), valid for `ttl` seconds, for the
 * agent of `workspace` (R27; the `default` one when absent).
 */
export async function signedToken(agent, ttl = 600, workspace = "default") {
  const args = ["token", agent, "--ttl-secs", String(ttl), "--workspace", workspace];
  const { stdout } = await promisify(execFile)(engineBinary(), args);
  return stdout.trim();
}

/**
 * Resolves with the next value `subscribe(callback)` reports for which `accept` holds;
 * rejects after `ms` naming `what`. `subscribe` returns its unsubscribe function.
 */
export function next(subscribe, what, accept = () => true, ms = 5_000) {
  return new Promise((resolveValue, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const off = subscribe((...args) => {
      if (!accept(...args)) return;
      clearTimeout(timer);
      off();
      resolveValue(args.length > 1 ? args : args[0]);
    });
  });
}
