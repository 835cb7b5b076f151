/** The one wait for a next generation (--restart, --multi): its time limit and how it ends. */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { procStat } from "../../src/instances";
import { awaitNextGeneration, DEFAULT_READY_TIMEOUT_MS, RESTART_MARGIN_MS, restartLimitMs } from "../../src/next-generation";
import { readPublished, type Published } from "../../src/statusfile";

const published = (over: Partial<Published> = {}): Published => ({
  pid: process.pid, generation: 1, mode: "fork", state: "serving", previous: 0, rollbacks: 0, lastError: "", ...over,
});

test("the limit is the process's own --ready-timeout and --drain-timeout plus the margin, and in fork mode --ready-timeout once more (the wait for a draining predecessor)", () => {
  const exec = (o: Partial<Published>) => published({ mode: "exec", ...o });
  expect(restartLimitMs(exec({ readyTimeoutMs: 2_000, drainTimeoutMs: 500 }))).toBe(2_500 + RESTART_MARGIN_MS);
  expect(restartLimitMs(exec({ readyTimeoutMs: 300_000, drainTimeoutMs: 30_000 }))).toBe(330_000 + RESTART_MARGIN_MS);
  expect(restartLimitMs(published({ readyTimeoutMs: 2_000, drainTimeoutMs: 500 }))).toBe(4_500 + RESTART_MARGIN_MS);
  // No drain limit adds nothing; a file that does not say (an older shim) means the default.
  expect(restartLimitMs(exec({ readyTimeoutMs: 2_000, drainTimeoutMs: 0 }))).toBe(2_000 + RESTART_MARGIN_MS);
  expect(restartLimitMs(published({ readyTimeoutMs: 2_000, drainTimeoutMs: 0 }))).toBe(4_000 + RESTART_MARGIN_MS);
  expect(restartLimitMs(exec({}))).toBe(DEFAULT_READY_TIMEOUT_MS + RESTART_MARGIN_MS);
  expect(restartLimitMs(published())).toBe(2 * DEFAULT_READY_TIMEOUT_MS + RESTART_MARGIN_MS);
});

/** A private state directory holding this process's own state file with `fields`. */
function stateDir(fields: Record<string, string | number>): string {
  const dir = mkdtempSync(join(tmpdir(), "huptime-state-"));
  const all = { pid: process.pid, start: procStat(process.pid)!.start, ...fields };
  writeFileSync(join(dir, `${process.pid}.status`), Object.entries(all).map(([k, v]) => `${k}=${v}\n`).join(""), { mode: 0o600 });
  return dir;
}

test("the timeouts are read from the state file", () => {
  const dir = stateDir({ generation: 1, mode: "fork", state: "serving", previous: 0, rollbacks: 0, ready_timeout_ms: 7000, drain_timeout_ms: 3000, last_error: "" });
  expect(readPublished(dir, process.pid)).toMatchObject({ readyTimeoutMs: 7000, drainTimeoutMs: 3000 });
});

test("ends when the next generation serves (exec mode: the same pid)", async () => {
  const dir = stateDir({ generation: 2, mode: "exec", state: "serving", previous: process.pid, rollbacks: 0 });
  const r = await awaitNextGeneration(dir, process.pid, published({ mode: "exec" }));
  expect(r.outcome).toBe("serving");
});

test("ends when the restart was rolled back, with the reason", async () => {
  const dir = stateDir({ generation: 1, mode: "fork", state: "serving", previous: 0, rollbacks: 1, last_error: "exited with status 3" });
  expect(await awaitNextGeneration(dir, process.pid, published())).toEqual({ outcome: "rolled back", error: "exited with status 3" });
});

test("ends when the process is gone with no successor, or when the caller gives up", async () => {
  const gone = Bun.spawnSync(["true"]).pid;
  const empty = mkdtempSync(join(tmpdir(), "huptime-state-"));
  expect((await awaitNextGeneration(empty, gone, published({ pid: gone }))).outcome).toBe("exited");
  const dir = stateDir({ generation: 1, mode: "fork", state: "restarting", previous: 0, rollbacks: 0 });
  expect((await awaitNextGeneration(dir, process.pid, published(), { abandon: () => true })).outcome).toBe("abandoned");
});
