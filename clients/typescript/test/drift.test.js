// The checked-in files that are made from others must be what making them gives now:
// src/generated/ from protocol/schema/ (npm run generate), and dist/ from src/ (npm run
// build). Each is made again into a temporary directory and compared, file by file.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const run = promisify(execFile);

/** Every file under `dir`, as paths relative to it, sorted. */
async function files(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)))
    .sort();
}

/** Fails naming the first file of `checkedIn` that differs from, or is missing in, `fresh`. */
async function assertSame(checkedIn, fresh, remedy) {
  const want = await files(fresh);
  assert.deepEqual(await files(checkedIn), want, `the files of ${relative(root, checkedIn)} differ: ${remedy}`);
  for (const file of want) {
    const [a, b] = await Promise.all([readFile(join(checkedIn, file), "utf8"), readFile(join(fresh, file), "utf8")]);
    assert.ok(a === b, `${relative(root, join(checkedIn, file))} is stale: ${remedy}`);
  }
}

async function withTemp(body) {
  const dir = await mkdtemp(join(tmpdir(), "switchboard-client-"));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test("src/generated/ matches protocol/schema/", () =>
  withTemp(async (dir) => {
    await run(process.execPath, [join(root, "scripts/generate.mjs"), dir]);
    await assertSame(join(root, "src/generated"), dir, "run `npm run generate` (then `npm run build`)");
  }));

test("dist/ matches src/", () =>
  withTemp(async (dir) => {
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    await run(process.execPath, [tsc, "-p", join(root, "tsconfig.json"), "--outDir", dir]);
    await assertSame(join(root, "dist"), dir, "run `npm run build`");
  }));
