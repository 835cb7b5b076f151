/**
 * Every restart leaves a receipt (crates/huptime/src/receipt.rs), written by the generation that
 * ran it and shown as `last_restart` by `huptime --status --json`, in the table, in the log:
 * a successful one with figures that fit the connections the test held and cut, a rolled-back
 * one, and refused ones (the preload library is gone; the previous generation still drains at
 * --ready-timeout) with their reason.
 */
import { describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appSource, pythonApp, serveApp, waitForVersion } from "../helpers/app";
import { runCli, serve } from "../helpers/cli";
import { freePort, hold, persistent, request } from "../helpers/net";
import { watchGenerations } from "../helpers/generations";
import { alive, waitFor } from "../helpers/procs";
import { statusRows } from "../helpers/status";
import type { StatusRow } from "../../src/inventory";

// Long enough that the held connections, which send only once the old generation drains, do so
// before its deadline however slow the machine (the busy one is cut there).
const DRAIN_TIMEOUT_S = 15;

// Short, so that a restart held back by a draining generation is refused soon; long enough for
// a new python generation to be ready on a slow, loaded machine.
const READY_TIMEOUT_S = 4;

/** Python (after the server is made, see appSource): `GET /hold` creates `holding`, then is
 * answered only once the file `release` exists. */
function holdUntil(holding: string, release: string): string {
  return `
class Held(H):
    def do_GET(self):
        if self.path == "/hold":
            open(${JSON.stringify(holding)}, "w").close()
            while not os.path.exists(${JSON.stringify(release)}):
                time.sleep(0.01)
        H.do_GET(self)
srv.RequestHandlerClass = Held
`;
}

/** The row of `pid` in `huptime --status --json` (env: a private cache directory's). */
function rowOf(pid: number, env?: NodeJS.ProcessEnv): StatusRow | undefined {
  return statusRows([], { env }).find((r) => r.pid === pid);
}

describe("restart receipts", () => {
  test("a fork restart: every figure is there, in order, and counts the connections drained and cut", async () => {
    // --drain-idle: the held connections carry no data until they send, and must not be closed as idle.
    const { app, port, s } = await serveApp("v1", [`--drain-timeout=${DRAIN_TIMEOUT_S}`, "--drain-idle=600"]);
    try {
      expect(rowOf(s.pid)?.last_restart).toBeNull();
      const held = [await hold(port), await hold(port)];
      const busy = await persistent(port);
      void busy.ask("/sleep=60"); // still busy at the deadline: reset
      await waitFor(() => (rowOf(s.pid)?.connections ?? 0) === 3, "3 connections open");
      app.write(appSource("v2"));
      process.kill(s.pid, "SIGHUP");
      // No request until the old generation stops accepting: its drain would count the connection.
      await waitFor(() => rowOf(s.pid)?.state === "draining", "the old generation to drain", 30_000);
      await waitForVersion(port, "v2", 30_000);
      for (const h of held) expect((await h.send()).ok).toBe(true); // finished normally
      await waitFor(() => rowOf(s.pid) === undefined, "the old generation to end", 30_000);
      expect((await busy.ended).how).toBe("ECONNRESET");

      const next = statusRows(["python3", app.file]);
      expect(next).toHaveLength(1);
      const r = next[0].last_restart!;
      expect(r).not.toBeNull();
      expect(r).toMatchObject({ generation: 2, outcome: "ready", previous: s.pid, reason: null, connections_drained: 2, connections_cut: 1 });
      for (const f of ["sighup_to_ready_ms", "handover_ms", "drained_ms", "listen_drops"] as const) {
        expect(typeof r[f], f).toBe("number");
        expect(r[f]!, f).toBeGreaterThanOrEqual(0);
      }
      // Ready before the handover ended, the handover before the drain; the drain lasted until
      // the deadline (a connection was cut there).
      expect(r.handover_ms!).toBeLessThanOrEqual(r.drained_ms!);
      expect(r.drained_ms!).toBeGreaterThanOrEqual(DRAIN_TIMEOUT_S * 1000);
      expect(r.sighup_to_ready_ms!).toBeGreaterThan(0);
      expect(Math.abs(Date.now() - r.at)).toBeLessThan(5 * 60_000);
      const line = `pid ${s.pid} -> ${next[0].pid}, ready in [\\d.]+ ms, handover [\\d.]+ ms, 2 connections drained in [\\d.]+ ms, 1 cut, \\d+ dropped by the kernel`;
      expect(r.summary).toMatch(new RegExp(`^${line}$`));
      await waitFor(() => new RegExp(`restarted: ${line}\\n`).test(s.output()), "the receipt in the log");
      // The table: the outcome and its age.
      const table = runCli(["--status", "--table", "python3", app.file]);
      expect(table.stdout).toMatch(new RegExp(`\\n${next[0].pid} +\\d+ +2 +fork +serving +\\d+ +\\d+s +ready \\d+s ago +tcp `));
    } finally {
      s.killGroup();
    }
  }, 90_000);

  test("a rolled-back restart: the old generation's receipt says why", async () => {
    const { app, port, s } = await serveApp("v1");
    try {
      app.write(appSource("v2", { prelude: `print("config: no such upstream 'db'", file=sys.stderr)\nsys.exit(3)` }));
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => rowOf(s.pid)?.last_restart?.outcome === "rolled_back", "the rollback's receipt", 30_000);
      const r = rowOf(s.pid)!.last_restart!;
      expect(r).toMatchObject({ generation: 2, previous: s.pid, sighup_to_ready_ms: null, handover_ms: null, drained_ms: null, connections_drained: null, connections_cut: null });
      expect(r.reason).toMatch(/^generation 2 \(pid \d+\) exited with status 3 before it was ready: config: no such upstream 'db'$/);
      expect(typeof r.listen_drops).toBe("number");
      expect(r.summary).toContain(`pid ${s.pid}, generation 2 rolled back: generation 2`);
      await waitFor(() => s.output().includes(`not restarted: pid ${s.pid}, generation 2 rolled back: generation 2`), "the receipt in the log");
      await waitForVersion(port, "v1");
      const table = runCli(["--status", "--table", "python3", app.file]);
      expect(table.stdout).toMatch(new RegExp(`\\n${s.pid} +\\d+ +1 +fork +serving +\\d+ +\\d+s +rolled_back \\d+s ago +tcp `));
      // huptime --restart says so, with the receipt's reason.
      const again = runCli(["--restart", "python3", app.file]);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/restart of \d+ failed and was rolled back: generation 2 \(pid \d+\) exited with status 3/);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a refused restart (the preload library is gone): refused, with the reason, and it serves on", async () => {
    const cache = mkdtempSync(join(tmpdir(), "huptime-receipt-cache-"));
    const env = { ...process.env, HUPTIME_CACHE_DIR: cache };
    const { app, port, s } = await serveApp("v1", [], env);
    try {
      const library = readdirSync(cache).find((n) => n.endsWith(".so"));
      expect(library).toBeDefined();
      rmSync(join(cache, library!));
      app.write(appSource("v2"));
      const r = runCli(["--restart", "python3", app.file], { env });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`restart of ${s.pid} was refused: .*${library!.replace(/[.]/g, "\\.")}`));
      const receipt = rowOf(s.pid, env)!.last_restart!;
      expect(receipt).toMatchObject({ generation: 2, outcome: "refused", previous: s.pid, sighup_to_ready_ms: null, connections_cut: null });
      expect(receipt.reason).toContain(library!);
      await waitFor(() => s.output().includes(`not restarted: pid ${s.pid}, restart refused: the preload library`), "the receipt in the log");
      await waitForVersion(port, "v1");
    } finally {
      s.killGroup();
      rmSync(cache, { recursive: true, force: true });
    }
  }, 60_000);

  test("a restart refused because the previous generation still drains at --ready-timeout: the reason, never three generations, and once it has ended a SIGHUP restarts", async () => {
    const app = pythonApp("v1");
    const holding = join(app.dir, "holding");
    const release = join(app.dir, "release");
    const source = (version: string) => appSource(version, { beforeServe: holdUntil(holding, release) });
    app.write(source("v1"));
    const port = await freePort();
    // The drain deadline is far away: only the slow request's end lets generation 1 go.
    const s = serve([`--ready-timeout=${READY_TIMEOUT_S}`, "--drain-timeout=300", "python3", app.file, String(port)], { cwd: app.dir });
    const generations = watchGenerations(s);
    try {
      await waitForVersion(port, "v1");
      const slow = await persistent(port);
      const answer = slow.ask("/hold");
      await waitFor(() => existsSync(holding), "the slow request to be in progress");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => rowOf(s.pid)?.state === "draining", "generation 2 to be ready and generation 1 to drain", 30_000);
      let second: StatusRow | undefined;
      await waitFor(() => (second = statusRows(["python3", app.file]).find((r) => r.generation === 2))?.state === "serving", "generation 2 to serve");
      const next = second!.pid;

      // SIGHUP to generation 2 while generation 1 still drains the slow request: held back, then
      // refused at --ready-timeout, by generation 2, on its own row.
      const t0 = Date.now();
      process.kill(next, "SIGHUP");
      await waitFor(() => rowOf(next)?.last_restart?.outcome === "refused", "the refusal's receipt", 30_000);
      const r = rowOf(next)!.last_restart!;
      expect(r).toMatchObject({ generation: 3, outcome: "refused", previous: next, sighup_to_ready_ms: null, handover_ms: null, connections_drained: null, connections_cut: null });
      expect(r.at - t0).toBeGreaterThanOrEqual(READY_TIMEOUT_S * 1000);
      const reason = `generation 1 \\(pid ${s.pid}\\) is still draining ${READY_TIMEOUT_S} s after the SIGHUP \\(1 connection in progress\\); SIGHUP again once it has ended`;
      expect(r.reason).toMatch(new RegExp(`^${reason}$`));
      expect(r.summary).toMatch(new RegExp(`^pid ${next}, restart refused: ${reason}`));
      await waitFor(() => new RegExp(`not restarted: pid ${next}, restart refused: ${reason}`).test(s.output()), "the refusal in the log");

      // huptime --restart restarts generation 2 (not the draining one) and says it was refused.
      const again = runCli(["--restart", "python3", app.file]);
      expect(again.code, again.stderr).toBe(1);
      expect(again.stderr).toMatch(new RegExp(`restart of ${next} was refused: ${reason}\\n`));
      expect(again.stdout).toBe("");

      // Generation 1 still drains the slow request; generation 2 serves.
      expect(rowOf(s.pid)?.state).toBe("draining");
      const now = await request(port);
      expect(now.ok && now.body).toBe(`v1 ${next}\n`);

      // Once the slow request is answered generation 1 ends, and a SIGHUP restarts as usual.
      writeFileSync(release, "");
      expect((await answer).body).toBe(`v1 ${s.pid}\n`);
      await waitFor(() => !alive(s.pid), "generation 1 to end", 30_000);
      app.write(source("v2"));
      const last = runCli(["--restart", "python3", app.file]);
      expect(last.code, last.stderr).toBe(0);
      expect(last.stdout).toMatch(new RegExp(`^huptime: restarted: pid ${next} -> \\d+, ready in `));
      await waitForVersion(port, "v2");
      await generations.stop();
      expect(generations.maxAlive()).toBe(2); // generations 1 and 2 side by side, never a third
    } finally {
      await generations.stop();
      s.killGroup();
    }
  }, 120_000);

  test("exec mode: a refusal's receipt, then the exec restart's own (carried across the exec)", async () => {
    const cache = mkdtempSync(join(tmpdir(), "huptime-receipt-cache-"));
    const env = { ...process.env, HUPTIME_CACHE_DIR: cache };
    const { app, port, s } = await serveApp("v1", ["--exec"], env);
    try {
      const library = join(cache, readdirSync(cache).find((n) => n.endsWith(".so"))!);
      const saved = join(cache, "saved-library"); // not a name --status takes for the library
      copyFileSync(library, saved);
      rmSync(library);
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => rowOf(s.pid, env)?.last_restart?.outcome === "refused", "the refusal's receipt", 30_000);
      copyFileSync(saved, library);
      app.write(appSource("v2"));
      process.kill(s.pid, "SIGHUP");
      // No request before the receipt: the drain would count its connection.
      await waitFor(() => rowOf(s.pid, env)?.last_restart?.outcome === "ready", "the exec restart's receipt", 30_000);
      await waitForVersion(port, "v2", 30_000);
      const r = rowOf(s.pid, env)!.last_restart!;
      expect(r).toMatchObject({ generation: 2, previous: s.pid, handover_ms: null, connections_drained: 0, connections_cut: 0, reason: null });
      for (const f of ["sighup_to_ready_ms", "drained_ms", "listen_drops"] as const) expect(r[f]!, f).toBeGreaterThanOrEqual(0);
      // The old image drained before the new one was ready.
      expect(r.drained_ms!).toBeLessThanOrEqual(r.sighup_to_ready_ms!);
      expect(r.summary).toMatch(new RegExp(`^pid ${s.pid} \\(exec\\), ready in [\\d.]+ ms, 0 connections drained in [\\d.]+ ms, 0 cut, \\d+ dropped by the kernel$`));
    } finally {
      s.killGroup();
      rmSync(cache, { recursive: true, force: true });
    }
  }, 60_000);
});
