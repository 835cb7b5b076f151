/**
 * The restart matrix: every server style, in fork and exec mode, restarted three times under a
 * client loop that opens a new connection every few ms. Zero failed requests; connections opened
 * before SIGHUP are served; the new code answers; the old generation (workers included) goes away;
 * fork mode changes the pid, exec mode keeps it; SIGTERM at the end leaves no process behind.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { STYLES } from "../helpers/matrix";
import { freePort, hold, loadLoop, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";

const RESTARTS = 3;

for (const mode of ["fork", "exec"] as const) {
  describe(`${mode} mode`, () => {
    for (const style of STYLES) {
      test(`${style.name}: ${RESTARTS} restarts under load, zero failures`, async () => {
        const port = await freePort();
        const cookie = join(mkdtempSync(join(tmpdir(), "huptime-matrix-")), "cookie");
        writeFileSync(cookie, "gen1");
        // --drain-idle: the held connection below carries no data and must not be closed as idle.
        const s = serve([`--${mode}`, "--drain-idle=600", ...style.argv(port, cookie)]);
        try {
          await waitFor(async () => (await request(port, "/", 1000)).ok, `${style.name} to answer`);
          const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
          let master = s.pid;
          for (let gen = 2; gen <= RESTARTS + 1; gen++) {
            // The load must really be flowing through every restart.
            const served = load.stats.ok;
            await waitFor(() => load.stats.ok >= served + 30, "the client loop to be served");
            writeFileSync(cookie, `gen${gen}`);
            const before = groupMembers(s.pgid).map((p) => p.pid);
            const held = await hold(port);
            process.kill(master, "SIGHUP");
            // Exec mode: the old generation finishes the held connection before it execs, so the
            // request goes out during the drain. Fork mode: after the new generation serves.
            const early = mode === "exec" ? held.send() : undefined;
            await waitFor(async () => {
              const r = await request(port, "/", 2000);
              return r.ok && r.body.startsWith(`gen${gen} `);
            }, `generation ${gen} to answer`);
            const reply = await (early ?? held.send());
            expect(reply.ok ? "served" : reply.error).toBe("served");
            // The previous generation, workers included, goes away.
            const old = before.filter((p) => mode === "fork" || p !== s.pid);
            await waitFor(() => old.every((p) => !alive(p)), `old generation ${JSON.stringify(old)} to exit`, 20_000);
            if (mode === "fork") {
              const next = groupMembers(s.pgid).find((p) => p.ppid === process.pid && !before.includes(p.pid));
              expect(next).toBeDefined();
              expect(next!.pid).not.toBe(master);
              master = next!.pid;
            } else {
              expect(alive(s.pid)).toBe(true);
            }
            await waitFor(() => groupMembers(s.pgid).length >= style.procs, `${style.procs} processes serving`);
          }
          const stats = await load.stop();
          expect(stats.failed, `errors: ${stats.errors.join(", ")}\n${s.output().slice(-3000)}`).toBe(0);
          for (let i = 0; i < 8; i++) {
            const r = await request(port);
            expect(r.ok && r.body.startsWith(`gen${RESTARTS + 1} `)).toBe(true);
          }
          process.kill(master, "SIGTERM");
          await waitFor(() => groupMembers(s.pgid).length === 0, "every process to exit after SIGTERM", 10_000);
        } finally {
          s.killGroup();
        }
      }, 120_000);
    }
  });
}
