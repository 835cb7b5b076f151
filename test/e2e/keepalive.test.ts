/**
 * Persistent connections of a draining generation (crates/huptime/src/keepalive.rs): one that is
 * idle (answered, nothing unread or unacknowledged, no data moved for --drain-idle) is closed with
 * a FIN, never a reset, and not before the grace; one with a request in progress is answered
 * whole first. The old generation then ends without waiting for --drain-timeout.
 */
import { describe, expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { persistent } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";

describe("idle persistent connections while draining", () => {
  test("an idle keep-alive connection gets a FIN once it has been quiet for --drain-idle", async () => {
    const { app, port, s } = await serveApp("v1", ["--drain-idle=1.5"]);
    try {
      const c = await persistent(port);
      const first = await c.ask();
      expect(first.body).toBe(`v1 ${s.pid}\n`);
      const quietSince = c.lastDataAt();
      app.write(appSource("v2"));
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "v2", 30_000);
      const end = await c.ended;
      expect(end.how).toBe("end");
      expect(end.at - quietSince).toBeGreaterThanOrEqual(1500);
      await waitFor(() => !alive(s.pid), "the old generation to end", 10_000);
      expect(s.output()).toMatch(/closed 1 idle connection\(s\) while draining/);
      expect(s.output()).not.toContain("drain deadline");
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a request in progress when the drain begins is answered whole, then the connection ends with a FIN", async () => {
    const { app, port, s } = await serveApp("v1", ["--drain-idle=0.2"]);
    try {
      const c = await persistent(port);
      await c.ask();
      app.write(appSource("v2"));
      const slow = c.ask("/sleep=3");
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "v2", 30_000);
      await waitFor(() => s.output().includes("draining"), "the old generation to drain", 30_000, 10);
      const r = await slow;
      expect(r.body).toBe(`v1 ${s.pid}\n`);
      const end = await c.ended;
      expect(end.how).toBe("end");
      await waitFor(() => !alive(s.pid), "the old generation to end", 10_000);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("bad --drain-idle values are usage errors", async () => {
    const { runCli } = await import("../helpers/cli");
    for (const v of ["-1", "soon"]) {
      const r = runCli([`--drain-idle=${v}`, "true"]);
      expect(r.code).toBe(2);
      expect(r.stdout + r.stderr).toContain("--drain-idle");
    }
  });
});
