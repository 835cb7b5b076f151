/**
 * A program that closes every fd it does not know (close_range and a close() loop), moves its
 * listening socket with dup2 and dup2s /dev/null over the original, accepts from four threads at
 * once and forks and execs a helper per request (test/fixtures/servers/hostile.py): restarts
 * still hand the socket over, under load, in both modes, without a failed request.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, loadLoop, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";

for (const mode of ["fork", "exec"] as const) {
  test(`${mode} mode: a program hostile to the shim's fds restarts cleanly 3 times under load`, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-hostile-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "v1");
    const s = serve([`--${mode}`, "python3", join(SERVERS, "hostile.py"), String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
      const first = await request(port);
      expect(first.ok && first.body).toMatch(/^v1 \d+ helper-\d+\n$/);
      const load = loadLoop(port);
      let master = s.pid;
      for (let i = 2; i <= 4; i++) {
        writeFileSync(cookie, `v${i}`);
        const before = master;
        const served = load.stats.ok;
        await waitFor(() => load.stats.ok >= served + 20, "the load to reach this generation", 30_000);
        process.kill(master, "SIGHUP");
        await waitFor(async () => {
          const r = await request(port, "/", 2000);
          return r.ok && r.body.startsWith(`v${i} `);
        }, `v${i} to answer`);
        if (mode === "fork") {
          await waitFor(() => !alive(before), `pid ${before} to finish`);
          const r = await request(port);
          if (!r.ok) throw new Error(`no answer after the restart: ${r.error}`);
          master = Number(r.body.split(" ")[1]);
        }
      }
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      expect(stats.ok).toBeGreaterThan(20);
      if (mode === "exec") expect(master).toBe(s.pid);
      expect(s.output()).not.toMatch(/rollback|can't/);
      process.kill(master, "SIGTERM");
      await waitFor(() => groupMembers(s.pgid).length === 0, "exit after SIGTERM");
    } finally {
      s.killGroup();
    }
  }, 90_000);
}
