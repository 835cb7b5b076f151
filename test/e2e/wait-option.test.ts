/** `--wait`: a generation that forked children waits for them before it ends. */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";

for (const wait of [true, false]) {
  test(`fork-per-connection master ${wait ? "waits" : "does not wait"} for its busy child ${wait ? "with" : "without"} --wait`, async () => {
    const port = await freePort();
    const cookie = join(mkdtempSync(join(tmpdir(), "huptime-wait-")), "cookie");
    writeFileSync(cookie, "x");
    const s = serve([...(wait ? ["--wait"] : []), "python3", join(SERVERS, "fork_per_conn.py"), String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
      const slow = request(port, "/slow", 10_000); // handled by a child for 1 s
      await Bun.sleep(200);
      const t0 = Date.now();
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => !alive(s.pid), "the old master to exit", 10_000, 10);
      const took = Date.now() - t0;
      expect((await slow).ok).toBe(true);
      if (wait) expect(took).toBeGreaterThanOrEqual(600);
      else expect(took).toBeLessThan(600);
    } finally {
      s.killGroup();
    }
  }, 30_000);
}
