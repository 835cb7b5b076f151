/** `huptime --restart <command...>`: returns once the new generation serves; reports rollbacks. */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { freePort, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";
import { myservice } from "../helpers/service";

describe("huptime --restart", () => {
  for (const mode of ["fork", "exec"] as const) {
    test(`${mode} mode: a request right after it returns reaches the new code`, async () => {
      const svc = myservice();
      const port = await freePort();
      const cookie = join(svc.dir, "cookie");
      writeFileSync(cookie, "old");
      const s = serve([`--${mode}`, svc.path, String(port), cookie]);
      try {
        await waitFor(async () => (await request(port, "/", 1000)).ok, "the service to answer");
        for (const gen of ["new1", "new2"]) {
          writeFileSync(cookie, gen);
          const r = runCli(["--restart", svc.path]);
          expect(r.code, r.stderr).toBe(0);
          expect(r.stdout).toMatch(/restarted: pid \d+/);
          const reply = await request(port);
          expect(reply.ok && reply.body.split(" ")[0]).toBe(gen);
        }
      } finally {
        s.killGroup();
      }
    }, 30_000);
  }

  test("a new version that fails to start is rolled back: exit 1, old code keeps serving", async () => {
    const svc = myservice();
    const port = await freePort();
    const cookie = join(svc.dir, "cookie");
    writeFileSync(cookie, "stable");
    const s = serve([svc.path, String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the service to answer");
      rmSync(cookie); // the next start fails: its config file is gone
      const r = runCli(["--restart", svc.name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("rolled back");
      const reply = await request(port);
      expect(reply.ok && reply.body.split(" ")[0]).toBe("stable");
      expect(groupMembers(s.pgid).length).toBe(1);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("nothing running: a clear message and exit 1", () => {
    const r = runCli(["--restart", "no-such-service-xyz"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no running instance of 'no-such-service-xyz'");
  });
});
