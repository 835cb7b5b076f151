/**
 * Readiness of static programs that wait for connections with poll() or select() (issue 17): huptime
 * reads the pollfd array or the read set a blocked thread waits on from the program's memory
 * (crates/huptime/src/unotify/ready.rs). A static C server waiting either way is ready as soon as
 * it waits (long before a large --ready-timeout) and is restarted three times under load without a
 * failed request; one that polls on something else while it listens is never ready, and rolled back.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { freePort, loadLoop, request } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";
import { killSeccompRun, staticCServer } from "../helpers/seccomp";
import type { Group } from "../helpers/spawn";

/** Starts the static C server under huptime with `cookie` (`NAME HOW`) and huptime's `options`. */
async function start(cookie: string, options: string[]) {
  const file = join(mkdtempSync(join(tmpdir(), "huptime-seccomp-ready-")), "cookie");
  writeFileSync(file, cookie);
  const port = await freePort();
  const s = serve([...options, staticCServer(), String(port), file]);
  return { s, port, setCookie: (c: string) => writeFileSync(file, c) };
}

/**
 * Waits for huptime's line saying generation `n` is ready and returns its pid. With a --ready-timeout
 * far above `timeoutMs`, the line coming at all shows readiness was seen, not timed out.
 */
async function readyPid(s: Group, n: number, timeoutMs = 60_000): Promise<number> {
  const re = new RegExp(`generation ${n} \\(pid (\\d+)\\) is ready after`);
  await waitFor(() => re.test(s.output()), `generation ${n}'s ready line; huptime said:\n${s.output()}`, timeoutMs);
  return Number(re.exec(s.output())![1]);
}

/** Waits until the server on `port` answers `body`. */
async function answers(port: number, body: string, s: Group): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const r = await request(port, "/", 2000);
    last = r.ok ? r.body : r.error;
    return last === body;
  }, `${JSON.stringify(body)} (last: ${JSON.stringify(last)}); huptime said:\n${s.output()}`, 30_000);
}

describe("static programs that wait with poll() or select()", () => {
  for (const how of ["poll", "select"]) {
    test(`a static C server waiting with ${how}(): ready as it waits (--ready-timeout 600), then 3 restarts under a 4-client load: no failure, a new pid answering each time`, async () => {
      const { s, port, setCookie } = await start(`c1 ${how}`, ["--ready-timeout", "600"]);
      try {
        let pid = await readyPid(s, 1);
        await answers(port, `c1 ${pid}\n`, s);
        const load = loadLoop(port, { concurrency: 4 });
        /** Waits until the load's clients were answered by generation `n` (pid `p`). */
        const served = (n: number, p: number) =>
          waitFor(() => (load.stats.bodies.get(`c${n} ${p}\n`) ?? 0) > 0, `the load to reach generation ${n} (pid ${p})`);
        await served(1, pid);
        for (let i = 2; i <= 4; i++) {
          setCookie(`c${i} ${how}`);
          process.kill(s.pid, "SIGHUP");
          const next = await readyPid(s, i);
          expect(next).not.toBe(pid);
          await answers(port, `c${i} ${next}\n`, s);
          await served(i, next);
          await waitFor(() => !alive(pid), `generation ${i - 1} (pid ${pid}) to exit on SIGTERM`);
          pid = next;
        }
        const stats = await load.stop();
        expect(stats.failed, `${stats.errors.join(", ")}\n${s.output()}`).toBe(0);
        expect(s.output()).not.toContain("rollback");
        process.kill(s.pid, "SIGTERM");
        expect((await s.exited).code, s.output()).toBe(0);
      } finally {
        killSeccompRun(s);
      }
    }, 120_000);
  }

  test("a version that polls on something else while it listens (the listener for output only) is not ready: rolled back at --ready-timeout", async () => {
    const { s, port, setCookie } = await start("c1 poll", ["--ready-timeout", "3"]);
    try {
      const pid = await readyPid(s, 1);
      setCookie("c2 poll-other");
      const t0 = Date.now();
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => /rollback: generation 1/.test(s.output()), `a rollback; huptime said:\n${s.output()}`, 60_000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(3000);
      // It did listen (its bind() and listen() returned) and then waited in poll() until killed.
      expect(s.output().split(`listening ${port}\n`).length - 1).toBe(2);
      const hung = Number(/generation 2 \(pid (\d+)\) was not ready within 3 s; killed its process group/.exec(s.output())?.[1]);
      expect(hung, s.output()).toBeGreaterThan(0);
      await waitFor(() => !alive(hung), `the generation that was not ready (pid ${hung}) to be gone`);
      await answers(port, `c1 ${pid}\n`, s);
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);
});
