/**
 * The accept hook costs no system call: a C server doing blocking accept() in a loop (the c_server
 * fixture), traced with strace, makes as many system calls per request under huptime as bare.
 * Counted in the accepting thread over the same whole request cycles of 200 requests sent one
 * after another; only a constant difference (bookkeeping on the first connection) is allowed, so
 * one extra call per request (fcntl, getsockopt, poll, a mask change, gettid, getpid) fails.
 */
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUPTIME } from "../helpers/cli";
import { compiledCServer } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { waitFor } from "../helpers/procs";
import { spawnGroup, type Group } from "../helpers/spawn";

const REQUESTS = 200;
/** Calls the two runs may differ by in all: start-up work on the first connection, not per request. */
const CONSTANT_SLACK = 10;

let running: Group | undefined;

afterEach(() => {
  running?.killGroup();
  running = undefined;
});

/** System calls of the accepting thread from its first accept() to its (REQUESTS - 1)th, by name:
 * REQUESTS - 2 whole request cycles in every run, whether or not the accept() still waiting when
 * the server ends made it into the trace. */
interface Window {
  accepts: number;
  calls: number;
  byName: Map<string, number>;
}

/** Reads an `strace -f -o` trace: the window of the thread that called accept(). */
function acceptWindow(trace: string): Window {
  const lines = trace.split("\n");
  const call = /^(\d+)\s+([a-z_0-9]+)\(/;
  const tid = lines.map((l) => call.exec(l)).find((m) => m && /^accept4?$/.test(m[2]))?.[1];
  if (!tid) throw new Error("the trace has no accept() call");
  const mine = lines.map((l) => call.exec(l)).filter((m): m is RegExpExecArray => m !== null && m[1] === tid).map((m) => m[2]);
  const accepts = mine.flatMap((n, i) => (/^accept4?$/.test(n) ? [i] : []));
  if (accepts.length < REQUESTS - 1) throw new Error(`the trace has ${accepts.length} accept() calls for ${REQUESTS} requests`);
  const window = mine.slice(accepts[0], accepts[REQUESTS - 2]);
  const byName = new Map<string, number>();
  for (const n of window) byName.set(n, (byName.get(n) ?? 0) + 1);
  return { accepts: window.filter((n) => /^accept4?$/.test(n)).length, calls: window.length, byName };
}

/** Runs the server under strace (through huptime when `viaHuptime`), sends the requests, ends it. */
async function traced(viaHuptime: boolean): Promise<Window> {
  const dir = mkdtempSync(join(tmpdir(), "huptime-accept-syscalls-"));
  const cookie = join(dir, "cookie");
  writeFileSync(cookie, "syscalls\n");
  const port = await freePort();
  const out = join(dir, "trace");
  const server = [compiledCServer(), String(port), cookie];
  const s = spawnGroup(["strace", "-f", "-qq", "-o", out, ...(viaHuptime ? [HUPTIME, ...server] : server)]);
  running = s;
  await waitFor(() => s.stdout().includes(`listening ${port}`), "the server to listen", 60_000);
  let pid = 0;
  for (let i = 0; i < REQUESTS; i++) {
    const r = await request(port);
    if (!r.ok) throw new Error(`request ${i}: ${r.error}`);
    pid = Number(r.body.trim().split(" ")[1]);
  }
  // End the server itself: strace then exits and has written the whole trace.
  process.kill(pid, "SIGTERM");
  await s.exited;
  running = undefined;
  return acceptWindow(readFileSync(out, "utf8"));
}

/** The calls counted more often in `a` than in `b`, for the failure message. */
function excess(a: Window, b: Window): string {
  return [...a.byName].map(([n, c]) => [n, c - (b.byName.get(n) ?? 0)] as const).filter(([, d]) => d > 0).map(([n, d]) => `${n} +${d}`).join(", ");
}

test(`blocking accept(): no more system calls per request under huptime than bare (${REQUESTS} requests)`, async () => {
  const bare = await traced(false);
  const under = await traced(true);
  expect(bare.accepts).toBe(REQUESTS - 2);
  expect(under.accepts).toBe(REQUESTS - 2);
  const extra = under.calls - bare.calls;
  expect(extra, `under huptime: ${under.calls} calls, bare: ${bare.calls}; more: ${excess(under, bare)}`).toBeLessThanOrEqual(CONSTANT_SLACK);
}, 180_000);
