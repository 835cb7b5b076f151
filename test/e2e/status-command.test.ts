/** `huptime --status <command...>`: pids of the running instances (masters, not their workers). */
import { describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";

describe("huptime --status", () => {
  test("prints the master's pid, by full command line or by script name", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-status-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "x");
    // A private copy, so that matching by script path alone finds only this test's pool.
    const script = join(dir, "prefork.py");
    copyFileSync(join(SERVERS, "prefork.py"), script);
    copyFileSync(join(SERVERS, "common.py"), join(dir, "common.py"));
    const s = serve(["python3", script, String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the pool to answer");
      await waitFor(() => groupMembers(s.pgid).length === 4, "master and 3 workers");
      for (const argv of [["python3", script], [script], [script, String(port)]]) {
        const r = runCli(["--status", ...argv]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(`${s.pid}\n`);
      }
      const other = runCli(["--status", script, "9"]);
      expect(other.code).toBe(1);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("nothing running: a clear message and exit 1", () => {
    const r = runCli(["--status", "no-such-service-xyz"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("no running instance of 'no-such-service-xyz'");
  });
});
