/**
 * Generations killed at the worst moment (SIGKILL: no handler, no clean-up):
 * - the old generation while it drains: the new one serves on, no new request fails, and the
 *   next SIGHUP is not held back waiting for the dead one;
 * - the new generation right after it became ready, while the old one still drains a request:
 *   the old one takes its sockets back and serves again (no new request fails), and the next
 *   SIGHUP restarts it;
 * - the new generation when the old one had nothing left to drain: nobody holds the sockets, so
 *   the port refuses connections (documented); nothing hangs and the CLI says nothing runs.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveApp, appSource, waitForVersion } from "../helpers/app";
import { runCli, serve } from "../helpers/cli";
import { STYLES } from "../helpers/matrix";
import { canConnect, freePort, hold, loadLoop, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";
import { connectionsOf, statusRows } from "../helpers/status";

/** The pid the old generation logged for generation `gen`. */
function newPid(output: string, gen: number): number {
  const m = output.match(new RegExp(`generation ${gen} is pid (\\d+)`));
  if (!m) throw new Error(`no "generation ${gen} is pid" in the log:\n${output}`);
  return Number(m[1]);
}

test("the old generation SIGKILLed while draining: the new one serves on", async () => {
  // --drain-idle: the held connection below carries no data and must not be closed as idle.
  const { app, port, s } = await serveApp("v1", ["--drain-idle=600"]);
  try {
    // A connection generation 1 has accepted and whose request never comes: it keeps it draining.
    const held = await hold(port, 60_000);
    await waitFor(() => connectionsOf(s.pid) === 1, "generation 1 to accept the held connection");
    const load = loadLoop(port);
    app.write(appSource("v2"));
    process.kill(s.pid, "SIGHUP");
    await waitForVersion(port, "v2");
    await waitFor(() => s.output().includes("draining"), "generation 1 to drain");
    const v2 = newPid(s.output(), 2);
    process.kill(s.pid, "SIGKILL");
    await waitFor(() => !alive(s.pid), "generation 1 to die");
    const served = load.stats.ok;
    await waitFor(() => load.stats.ok >= served + 30, "30 more requests to be served after the kill", 30_000);
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join(", ")).toBe(0);
    expect((await request(port)).ok && (await request(port)).ok).toBe(true);
    expect((await held.send()).ok).toBe(false); // it was in the killed process
    // The next restart is not held back waiting for the dead generation.
    app.write(appSource("v3"));
    process.kill(v2, "SIGHUP");
    await waitForVersion(port, "v3", 10_000);
    expect(s.output()).not.toContain("still draining");
  } finally {
    s.killGroup();
  }
}, 60_000);

// Styles whose accepting process is the one huptime restarts (in prefork and fork-per-connection
// servers the old master has nothing of its own to drain, or its workers are gone: see README).
const TAKE_BACK = STYLES.filter((st) => !["prefork", "fork_per_conn"].includes(st.name));

describe("the new generation SIGKILLed right after it is ready: the draining one takes its sockets back", () => {
  for (const style of TAKE_BACK) {
    test(style.name, async () => {
      const port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "huptime-faults-"));
      const cookie = join(dir, "cookie");
      writeFileSync(cookie, "v1");
      // --drain-idle: the held connection below carries no data and must not be closed as idle.
      const s = serve(["--drain-idle=600", ...style.argv(port, cookie)], { cwd: dir });
      try {
        await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
        // A connection generation 1 has accepted, whose request the test sends only once generation
        // 2 is dead: generation 1 drains it all along, however fast or slow the restart is.
        const held = await hold(port, 60_000);
        await waitFor(() => connectionsOf(s.pid) === 1, "generation 1 to accept the held connection");
        writeFileSync(cookie, "v2");
        process.kill(s.pid, "SIGHUP");
        await waitFor(() => /generation 2 \(pid \d+\) is ready/.test(s.output()), "generation 2 to be ready", 30_000, 2);
        const v2 = newPid(s.output(), 2);
        process.kill(v2, "SIGKILL");
        await waitFor(() => s.output().includes("takes its sockets back"), "generation 1 to take its sockets back", 30_000).catch((e) => {
          throw new Error(`${e.message}; huptime said:\n${s.output()}`);
        });
        expect(s.output()).toContain(`generation 2 (pid ${v2}) was killed by signal 9 (SIGKILL) after it was ready`);
        // The request it was draining is served (single-threaded styles serve nothing else until then).
        const drained = await held.send();
        expect(drained.ok && drained.body).toBe(`v1 ${s.pid}\n`);
        // Generation 1 serves again: every new request is answered, by pid s.pid.
        const load = loadLoop(port);
        await waitFor(() => load.stats.ok + load.stats.failed >= 30, "30 requests to be answered after the take-back", 30_000);
        const stats = await load.stop();
        expect(stats.failed, stats.errors.join(", ")).toBe(0);
        expect([...stats.bodies.keys()]).toEqual([`v1 ${s.pid}\n`]);
        expect(statusRows().find((r) => r.pid === s.pid)?.state).toBe("serving");
        // The next SIGHUP restarts it (the cookie on disk is still v2).
        const load2 = loadLoop(port);
        process.kill(s.pid, "SIGHUP");
        await waitFor(async () => {
          const r = await request(port, "/", 2000);
          return r.ok && r.body.startsWith("v2 ");
        }, "v2 to answer");
        const stats2 = await load2.stop();
        expect(stats2.failed, stats2.errors.join(", ")).toBe(0);
      } finally {
        s.killGroup();
      }
    }, 60_000);
  }
});

test("the new generation SIGKILLed once the old one has left: the port closes, nothing hangs", async () => {
  const { app, port, s } = await serveApp("v1");
  try {
    app.write(appSource("v2"));
    process.kill(s.pid, "SIGHUP");
    await waitForVersion(port, "v2");
    await waitFor(() => !alive(s.pid), "generation 1 to finish draining");
    const v2 = newPid(s.output(), 2);
    process.kill(v2, "SIGKILL");
    await waitFor(() => groupMembers(s.pgid).length === 0, "every process to be gone");
    // The last thread of a killed process may release the socket a moment after /proc shows it dead.
    await waitFor(async () => !(await canConnect(port)), "the port to refuse connections", 5000);
    const t0 = Date.now();
    // This test's program only: "python3" alone would match (and restart) any python3 under huptime.
    const r = runCli(["--restart", "python3", app.file], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(Date.now() - t0).toBeLessThan(5000);
  } finally {
    s.killGroup();
  }
}, 60_000);
