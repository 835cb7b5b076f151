/** Many restarts in a row leave the serving process's fd count flat. */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { freePort, request } from "../helpers/net";
import { alive, fdCount, fdTargets, groupMembers, waitFor } from "../helpers/procs";

const RESTARTS = 50;

for (const mode of ["exec", "fork"] as const) {
  test(`${RESTARTS} ${mode}-mode restarts keep the fd count flat`, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-soak-"));
    writeFileSync(join(dir, "gen"), "0");
    const s = serve([`--${mode}`, "python3", "-m", "http.server", String(port), "--bind", "127.0.0.1"], { cwd: dir });
    try {
      await waitFor(async () => (await request(port, "/gen", 1000)).ok, "server to answer");
      let master = s.pid;
      const counts: number[] = [];
      for (let i = 1; i <= RESTARTS; i++) {
        const before = master;
        process.kill(master, "SIGHUP");
        if (mode === "fork") {
          await waitFor(() => !alive(before), `generation ${i} to replace pid ${before}`);
          master = groupMembers(s.pgid).find((p) => p.ppid === process.pid)!.pid;
        } else {
          // exec mode: wait for the image to change generation (log line), then for it to serve.
          await waitFor(() => s.output().includes(`exec'ing generation ${i + 1}\n`), `generation ${i + 1} to start`);
        }
        await waitFor(async () => (await request(port, "/gen", 1000)).ok, `generation ${i + 1} to answer`);
        // The lowest of a few samples: a request still closing is not a leak; a leak shows in all.
        const samples: number[] = [];
        for (let k = 0; k < 5; k++, await Bun.sleep(10)) samples.push(fdCount(master));
        counts.push(Math.min(...samples));
      }
      const first = counts[4];
      const last = counts[counts.length - 1];
      expect(last, `fd counts ${counts.join(",")}\n${fdTargets(master).join("\n")}`).toBeLessThanOrEqual(first);
      process.kill(master, "SIGTERM");
      await waitFor(() => groupMembers(s.pgid).length === 0, "exit after SIGTERM");
    } finally {
      s.killGroup();
    }
  }, 180_000);
}
