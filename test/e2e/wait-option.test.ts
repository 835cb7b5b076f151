/** `--wait`: a generation that forked children waits for them before it ends. */
import { expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, hold, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";

/** How long the master must stay with --wait while its child is busy (it would be gone at once without). */
const STAYS_MS = 1000;

for (const wait of [true, false]) {
  test(`fork-per-connection master ${wait ? "waits" : "does not wait"} for its busy child ${wait ? "with" : "without"} --wait`, async () => {
    const port = await freePort();
    const cookie = join(mkdtempSync(join(tmpdir(), "huptime-wait-")), "cookie");
    writeFileSync(cookie, "x");
    // --drain-idle: the held connection below carries no data and must not be closed as idle.
    const s = serve([...(wait ? ["--wait"] : []), "--drain-idle=600", "python3", join(SERVERS, "fork_per_conn.py"), String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
      await waitFor(() => groupMembers(s.pgid).length === 1, "the children of the first request to exit");
      // A connection whose request the test sends later: the child handling it stays busy until then.
      const held = await hold(port, 60_000);
      await waitFor(() => groupMembers(s.pgid).length === 2, "the master to fork a child for the held connection");
      const child = groupMembers(s.pgid).find((p) => p.pid !== s.pid)!.pid;
      process.kill(s.pid, "SIGHUP");
      if (wait) {
        await waitFor(() => /generation 2 \(pid \d+\) is ready/.test(s.output()), "generation 2 to be ready", 30_000);
        // Nothing announces "still waiting": the master is watched for a while after it had every
        // reason to leave but its busy child.
        await Bun.sleep(STAYS_MS);
        expect(alive(s.pid)).toBe(true);
        expect((await held.send()).ok).toBe(true);
        await waitFor(() => !alive(s.pid), "the old master to exit once its child is done", 30_000);
      } else {
        await waitFor(() => !alive(s.pid), "the old master to exit", 30_000);
        expect(alive(child)).toBe(true);
        expect((await held.send()).ok).toBe(true); // the child outlives its master and still serves
      }
    } finally {
      s.killGroup();
    }
  }, 60_000);
}
