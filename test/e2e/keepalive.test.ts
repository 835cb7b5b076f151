/**
 * Persistent connections of a draining generation (crates/huptime/src/keepalive.rs): one that is
 * idle (answered, nothing unread or unacknowledged, no data moved for --drain-idle) is closed with
 * a FIN, never a reset, and not before the grace; one with a request in progress is answered
 * whole first. The old generation then ends without waiting for --drain-timeout. A SIGHUP to the
 * next generation while the old one still drains is passed on to it: it closes its idle
 * connections at once, ends, and the restart follows (never more than two generations).
 */
import { describe, expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { canConnect, freePort, keepAliveLoad, persistent, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";
import { statusRows } from "../helpers/status";

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

  test("--status shows how many idle connections a draining generation has closed", async () => {
    const { app, port, s } = await serveApp("v1", ["--drain-idle=0.2"]);
    try {
      const idle = await persistent(port);
      const busy = await persistent(port);
      await idle.ask();
      await busy.ask();
      app.write(appSource("v2"));
      // The slow request keeps the old generation draining after the idle connection is closed.
      const slow = busy.ask("/sleep=5");
      process.kill(s.pid, "SIGHUP");
      expect((await idle.ended).how).toBe("end");
      await waitFor(() => statusRows().find((r) => r.pid === s.pid)?.closed?.idle === 1, "--status to count the idle connection closed", 10_000);
      const row = statusRows().find((r) => r.pid === s.pid);
      expect(row?.state).toBe("draining");
      expect(row?.closed).toEqual({ idle: 1, atBoundary: 0, reset: 0 });
      expect((await slow).body).toBe(`v1 ${s.pid}\n`);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a SIGHUP while the old generation drains keep-alive connections is not held back by them", async () => {
    // A grace far longer than the test: without the hurry the old generation would keep the
    // connection (and hold the next restart back) for a minute.
    const { app, port, s } = await serveApp("v1", ["--drain-idle=60"]);
    try {
      const c = await persistent(port);
      await c.ask();
      app.write(appSource("v2"));
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "v2", 30_000);
      await waitFor(() => s.output().includes("draining"), "the old generation to drain", 30_000, 10);
      const r = await request(port);
      const second = Number(r.ok && r.body.split(" ")[1]);
      expect(second).toBeGreaterThan(0);
      expect(alive(s.pid)).toBe(true);
      app.write(appSource("v3"));
      process.kill(second, "SIGHUP");
      const end = await c.ended;
      expect(end.how).toBe("end");
      await waitForVersion(port, "v3", 30_000);
      // The old generation had ended before the third started.
      expect(s.output()).toMatch(/SIGHUP: generation 1 \(pid \d+\) is draining 1 keep-alive connection\(s\); closing the idle ones/);
      const out = s.output();
      expect(out.indexOf("the previous generation has ended; restarting as SIGHUP asked")).toBeGreaterThan(-1);
      expect(out.indexOf("restarting: generation 3")).toBeGreaterThan(out.indexOf("the previous generation has ended"));
      expect(alive(s.pid)).toBe(false);
    } finally {
      s.killGroup();
    }
  }, 90_000);

  test("SIGHUPs to every generation right after each restart, under keep-alive load: none held back, never more than two generations, no failed request", async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-ka-storm-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "v1");
    const port = await freePort();
    // Idle connections are never closed by the grace here: only the rewrite and the hurry count.
    const s = serve(["--drain-idle=600", "node", join(SERVERS, "node_keepalive.js"), String(port), cookie]);
    try {
      await waitFor(() => canConnect(port), "node to listen");
      const load = keepAliveLoad(port, 16);
      // A client that holds its connection idle between two requests.
      const idle = await persistent(port);
      await idle.ask();
      await waitFor(() => load.answers.length >= 100, "the clients to be served");
      let most = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          most = Math.max(most, groupMembers(s.pgid).length);
          await Bun.sleep(2);
        }
      })();
      for (let gen = 2; gen <= 5; gen++) {
        writeFileSync(cookie, `v${gen}`);
        process.kill(-s.pgid, "SIGHUP");
        await waitFor(() => new RegExp(`generation ${gen} \\(pid \\d+\\) is ready after`).test(s.output()), `generation ${gen} to be ready`, 30_000, 5);
      }
      await waitFor(() => load.answers.at(-1)?.body.startsWith("v5 ") ?? false, "the last generation to answer", 30_000);
      await waitFor(() => groupMembers(s.pgid).length === 1, "the old generations to end", 30_000);
      sampling = false;
      await sampler;
      await load.stop();
      expect(load.failures).toEqual([]);
      expect(most).toBeLessThanOrEqual(2);
      expect((await idle.ended).how).toBe("end");
      expect(s.output()).toMatch(/is draining \d+ keep-alive connection\(s\); closing the idle ones/);
    } finally {
      s.killGroup();
    }
  }, 120_000);

  test("bad --drain-idle values are usage errors", async () => {
    const { runCli } = await import("../helpers/cli");
    for (const v of ["-1", "soon"]) {
      const r = runCli([`--drain-idle=${v}`, "true"]);
      expect(r.code).toBe(2);
      expect(r.stdout + r.stderr).toContain("--drain-idle");
    }
  });
});
