/**
 * systemd integration (sd_notify) with a fake notify socket: READY=1 when the first generation
 * serves, RELOADING=1 + MONOTONIC_USEC at SIGHUP, MAINPID= + READY=1 when the new generation is
 * ready, READY=1 + STATUS after a rollback, STOPPING=1 on SIGTERM. The program never sees
 * NOTIFY_SOCKET.
 */
import { describe, expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { runCli, serve } from "../helpers/cli";
import { notifyListener } from "../helpers/notify";
import { alive, waitFor } from "../helpers/procs";
import { SERVERS } from "../helpers/matrix";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, request } from "../helpers/net";

describe("sd_notify", () => {
  test("fork mode: ready, reloading, new main pid, rollback, stopping", async () => {
    const sd = await notifyListener();
    const env = { ...process.env, NOTIFY_SOCKET: sd.path };
    const { app, port, s } = await serveApp("v1", ["--notify"], env);
    try {
      const ready = await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
      expect(ready.pid).toBe(s.pid);
      expect(ready.fields.MAINPID).toBe(String(s.pid));

      app.write(appSource("v2", { prelude: "print(os.environ.get('NOTIFY_SOCKET'), file=sys.stderr)" }));
      const mark = sd.notices.length;
      process.kill(s.pid, "SIGHUP");
      const reloading = await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      expect(reloading.pid).toBe(s.pid);
      expect(Number(reloading.fields.MONOTONIC_USEC)).toBeGreaterThan(0);
      const handed = await sd.next((n) => n.fields.READY === "1", mark, "READY=1 after the restart");
      expect(handed.pid).toBe(s.pid); // sent by the old main process, which systemd still trusts
      const newPid = Number(handed.fields.MAINPID);
      expect(newPid).not.toBe(s.pid);
      await waitForVersion(port, "v2");
      // Once drained, the old process tells the restart's receipt in short.
      const receipt = await sd.next((n) => (n.fields.STATUS ?? "").includes("last restart"), mark, "STATUS= with the receipt");
      expect(receipt.pid).toBe(s.pid);
      expect(receipt.fields.STATUS).toMatch(new RegExp(`^serving \\(generation 2, pid ${newPid}\\); last restart ready in [\\d.]+ ms, 0 drained, 0 cut, \\d+ dropped$`));
      await waitFor(() => s.output().includes("None"), "the new program's report"); // it did not get NOTIFY_SOCKET
      // Only the main process reports: the new generation never sends READY=1 itself.
      await Bun.sleep(200);
      expect(sd.notices.slice(mark).filter((n) => n.fields.READY === "1").map((n) => n.pid)).toEqual([s.pid]);

      // A failed restart: RELOADING=1, then READY=1 with the reason, from the serving process.
      app.write(appSource("v3", { prelude: "sys.exit(3)" }));
      const mark2 = sd.notices.length;
      process.kill(newPid, "SIGHUP");
      await sd.next((n) => n.fields.RELOADING === "1" && n.pid === newPid, mark2, "RELOADING=1 from the new main pid");
      const back = await sd.next((n) => n.fields.READY === "1", mark2, "READY=1 after the rollback");
      expect(back.pid).toBe(newPid);
      expect(back.fields.STATUS).toMatch(/rolled back: generation 3 \(pid \d+\) exited with status 3/);

      const mark3 = sd.notices.length;
      process.kill(newPid, "SIGTERM");
      const stopping = await sd.next((n) => n.fields.STOPPING === "1", mark3, "STOPPING=1");
      expect(stopping.pid).toBe(newPid);
      await waitFor(() => !alive(newPid), "the service to stop");
    } finally {
      s.killGroup();
      sd.stop();
    }
  }, 40_000);

  test("exec mode: RELOADING=1, then READY=1 from the same pid", async () => {
    const sd = await notifyListener();
    const { app, port, s } = await serveApp("v1", ["--exec"], { ...process.env, NOTIFY_SOCKET: sd.path });
    try {
      await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
      app.write(appSource("v2"));
      const mark = sd.notices.length;
      process.kill(s.pid, "SIGHUP");
      await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      const again = await sd.next((n) => n.fields.READY === "1", mark, "READY=1 again");
      expect(again.pid).toBe(s.pid);
      expect(again.fields.MAINPID).toBe(String(s.pid));
      await waitForVersion(port, "v2");
    } finally {
      s.killGroup();
      sd.stop();
    }
  }, 30_000);

  test("--multi: huptime itself is the main process: READY=1 once all serve, RELOADING/READY around a restart, STOPPING=1", async () => {
    const sd = await notifyListener();
    const port = await freePort();
    const cookie = join(mkdtempSync(join(tmpdir(), "huptime-notify-")), "cookie");
    writeFileSync(cookie, "pool");
    const s = serve(["--multi=2", "node", join(SERVERS, "node_http.js"), String(port), cookie], { env: { ...process.env, NOTIFY_SOCKET: sd.path } });
    try {
      const ready = await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
      expect(ready.pid).toBe(s.pid);
      expect((await request(port)).ok).toBe(true);
      const mark = sd.notices.length;
      process.kill(s.pid, "SIGHUP");
      await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      await sd.next((n) => n.fields.READY === "1", mark, "READY=1 after the rolling restart", 30_000);
      const mark2 = sd.notices.length;
      process.kill(s.pid, "SIGTERM");
      await sd.next((n) => n.fields.STOPPING === "1", mark2, "STOPPING=1");
      expect(sd.notices.every((n) => n.pid === s.pid)).toBe(true);
    } finally {
      s.killGroup();
      sd.stop();
    }
  }, 40_000);

  test("--notify without NOTIFY_SOCKET is a clear error", () => {
    const env = { ...process.env };
    delete env.NOTIFY_SOCKET;
    const r = runCli(["--notify", "true"], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("NOTIFY_SOCKET is not set");
  });
});
