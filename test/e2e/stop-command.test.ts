/** `huptime --stop <command...>`: SIGTERM, SIGKILL after --timeout, returns when all are gone. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { canConnect, freePort, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";

describe("huptime --stop", () => {
  test("stops a prefork pool, workers included", async () => {
    const port = await freePort();
    const cookie = join(mkdtempSync(join(tmpdir(), "huptime-stop-")), "cookie");
    writeFileSync(cookie, "x");
    const s = serve(["python3", join(SERVERS, "prefork.py"), String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the pool to answer");
      await waitFor(() => groupMembers(s.pgid).length === 4, "master and 3 workers");
      const r = runCli(["--stop", join(SERVERS, "prefork.py"), String(port)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe(`stopped ${s.pid}\n`);
      expect(groupMembers(s.pgid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("a program that ignores SIGTERM is killed after --timeout", async () => {
    const port = await freePort();
    const script = `import signal,socket,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ns=socket.socket(); s.bind(("127.0.0.1", ${port})); s.listen(8)\nwhile True: time.sleep(1)\n`;
    const s = serve(["python3", "-c", script]);
    try {
      await waitFor(() => canConnect(port), "the program to listen");
      const t0 = Date.now();
      const r = runCli(["--stop", "--timeout=1", "python3", "-c", script]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`killed ${s.pid} after 1 s`);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
      expect(groupMembers(s.pgid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("nothing running: a clear message and exit 1", () => {
    const r = runCli(["--stop", "no-such-service-xyz"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no running instance of 'no-such-service-xyz'");
  });
});
