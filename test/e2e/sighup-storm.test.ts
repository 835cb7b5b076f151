/**
 * 100 SIGHUPs in one second, sent to the whole process group (every generation gets each one), to
 * a server that takes STARTUP_MS to start: restarts are coalesced (a generation restarts only once
 * it is ready, so no more restarts than start-ups fit in the storm, on a machine of any speed), a
 * generation never starts a successor while its own predecessor still drains (so at most two
 * generations run at any moment), and no request fails.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { compiledCServer } from "../helpers/matrix";
import { freePort, loadLoop, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";

const REAPER = join(ROOT, "test", "fixtures", "reaper.py");
/** How long each generation takes before it binds: ten times the 10 ms between two SIGHUPs. */
const STARTUP_MS = 100;

test("100 SIGHUPs in one second: coalesced, never more than two generations, no failed request", async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "huptime-storm-"));
  const cookie = join(dir, "cookie");
  writeFileSync(cookie, "v1");
  // The reaper stands for the service manager: it is the parent of every generation.
  const env = { ...process.env, FIXTURE_STARTUP_MS: String(STARTUP_MS) };
  const s = serve(["--fork", compiledCServer(), String(port), cookie], { prefix: ["python3", REAPER], env });
  const generations = () => groupMembers(s.pgid).filter((p) => p.pid !== s.pid);
  try {
    await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
    const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
    let most = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        most = Math.max(most, generations().length);
        await Bun.sleep(2);
      }
    })();
    writeFileSync(cookie, "v2");
    const t0 = Date.now();
    for (let i = 0; i < 100; i++) {
      process.kill(-s.pgid, "SIGHUP");
      await Bun.sleep(Math.max(0, t0 + (i + 1) * 10 - Date.now()));
    }
    const took = Date.now() - t0;
    const restarts = () => s.output().match(/restarting: generation \d+ is pid/g)?.length ?? 0;
    let seen = -1;
    await waitFor(async () => {
      const now = restarts();
      const settled = now === seen && generations().length === 1;
      seen = now;
      return settled;
    }, "the restarts to settle", 30_000, 700);
    sampling = false;
    await sampler;
    const stats = await load.stop();
    const started = restarts();
    console.log(`100 SIGHUPs in ${took} ms: ${started} restarts, at most ${most} generations at once, ${stats.ok} requests, ${stats.failed} failed`);
    expect(took).toBeLessThan(1500);
    expect(stats.failed, stats.errors.join(", ")).toBe(0);
    expect(most).toBeLessThanOrEqual(2);
    expect(started).toBeGreaterThanOrEqual(1);
    expect(started).toBeLessThan(100);
    // Each generation restarts only once it is ready, at least STARTUP_MS after it started: one
    // restart per start-up during the storm, and one more for a SIGHUP that came during the last.
    expect(started).toBeLessThanOrEqual(Math.floor(took / STARTUP_MS) + 2);
    const r = await request(port);
    expect(r.ok && r.body.startsWith("v2 ")).toBe(true);
  } finally {
    s.killGroup();
  }
}, 90_000);
