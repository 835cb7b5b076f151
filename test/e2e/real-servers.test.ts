/**
 * Real servers under huptime, restarted five times under a client loop: zero failed requests, the
 * new configuration answering afterwards, nothing of the old generations left behind.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir } from "../../src/cachedir";
import { STATUS_STATES } from "../../src/generated/protocol";
import { readPublished } from "../../src/statusfile";
import { runCli } from "../helpers/cli";
import { writeNginxConf } from "../helpers/nginx";
import { freePort, loadLoop, request } from "../helpers/net";
import { alive, killAll, processesWithOpen, waitFor } from "../helpers/procs";

const RESTARTS = 5;

describe("real servers", () => {
  // Exec mode too: the master execs in place and daemonizes again (its workers' channels signal
  // SIGIO and its itimers survive the exec: the new image must outlive both).
  for (const [mode, restarts] of [["fork", RESTARTS], ["exec", 20]] as const) {
  test(`nginx ${mode} mode (daemon, master + 2 workers, pidfile, --unlink): ${restarts} restarts, zero failures`, async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-nginx-"));
    const port = await freePort();
    const pidfile = join(dir, "nginx.pid");
    const conf = writeNginxConf(dir, port, "v1");
    const argv = ["nginx", "-c", conf, "-p", dir, "-e", join(dir, "error.log")];
    const t0 = Date.now();
    const started = runCli([`--${mode}`, "--unlink", pidfile, ...argv]);
    expect(started.code, started.stderr).toBe(0); // nginx daemonizes: the foreground process exits
    // ...and once it has, whoever started it sees its output pipes close (the daemon let go of them).
    expect(Date.now() - t0).toBeLessThan(5000);
    // This test's nginx processes, old generations included: those holding its error log open.
    const ours = () => processesWithOpen(join(dir, "error.log"));
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "nginx to answer");
      const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
      for (let gen = 2; gen <= restarts + 1; gen++) {
        const served = load.stats.ok;
        await waitFor(() => load.stats.ok >= served + 30, "the client loop to be served");
        writeNginxConf(dir, port, `v${gen}`);
        const master = Number(readFileSync(pidfile, "utf8"));
        process.kill(master, "SIGHUP");
        await waitFor(async () => {
          const r = await request(port, "/", 2000);
          return r.ok && r.body.startsWith(`v${gen} `);
        }, `generation ${gen} to answer`);
        await waitFor(() => !alive(master), `the old master ${master} to exit`);
        await waitFor(() => existsSync(pidfile), "the new pidfile");
        // The new master is published as serving (its workers told the old one it is ready; a
        // daemon's master cannot know it, the old generation marks it).
        const next = Number(readFileSync(pidfile, "utf8"));
        await waitFor(() => readPublished(join(cacheDir(), "status"), next)?.state === STATUS_STATES.serving, `the new master ${next} to be published as serving`);
      }
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      // Old generations, workers included, are gone: one master and two workers remain.
      await waitFor(() => ours().length === 3, "one master and two workers", 20_000);
      // huptime --status/--stop find nginx although it rewrites its process title.
      const status = runCli(["--status", ...argv]);
      expect(status.stdout.trim()).toBe(readFileSync(pidfile, "utf8").trim());
      expect(runCli(["--stop", ...argv]).code).toBe(0);
      expect(ours()).toEqual([]);
    } finally {
      killAll(ours());
    }
  }, 120_000);
  }
});
