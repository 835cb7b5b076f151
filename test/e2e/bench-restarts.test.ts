/**
 * A short run of the benchmark's first scenario (scripts/bench): wrk with 16 connections and
 * `Connection: close` against a node server under huptime, SIGHUP every 0.3 s, 20 restarts in
 * fork mode and in exec mode: not one failed request. (The figures are the benchmark's business.)
 */
import { describe, expect, test } from "bun:test";
import { restartsUnderLoad } from "../../scripts/benchmarks/scenarios";

describe("scenario 1, short", () => {
  for (const mode of ["fork", "exec"] as const) {
    test(`node ${mode}: 20 restarts under wrk, zero failed requests`, async () => {
      const r = await restartsUnderLoad("node", mode, 20, 300, true);
      expect(r.load.failed, JSON.stringify(r.load.errors)).toBe(0);
      // As many restarts as fit in the run (fewer when the machine is busy); each one counts.
      expect(r.restartsCompleted).toBeGreaterThanOrEqual(8);
      expect(r.load.requests).toBeGreaterThan(1000);
      expect(r.baseline.failed).toBe(0);
    }, 60_000);
  }
});
