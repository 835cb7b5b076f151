/**
 * 1,000 restarts in a row of a small C server, in fork and in exec mode: the serving process's fd
 * count, resident memory and environment stay flat, no zombie is left, and it answers after each.
 * The figures are printed (scripts/test's output keeps them).
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { compiledCServer } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { allPids, procStat } from "../../src/instances";
import { alive, fdCount, fdTargets, groupMembers, waitFor } from "../helpers/procs";
import type { Group } from "../helpers/spawn";

const RESTARTS = 1000;
const REAPER = join(ROOT, "test", "fixtures", "reaper.py");

/** What is measured of the serving process. */
interface Sample {
  fds: number;
  rssKiB: number;
  environBytes: number;
}

function sample(pid: number): Sample {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return {
    fds: fdCount(pid),
    rssKiB: Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? NaN),
    environBytes: readFileSync(`/proc/${pid}/environ`).length,
  };
}

/** Waits until the log, from `from` on, contains `text`; returns the offset after it. */
async function waitLog(s: Group, from: number, text: RegExp): Promise<{ end: number; match: RegExpExecArray }> {
  let found: RegExpExecArray | null = null;
  await waitFor(() => (found = text.exec(s.output().slice(from))) !== null, `${text} in the log`, 15_000, 1);
  const m = found as unknown as RegExpExecArray;
  return { end: from + m.index + m[0].length, match: m };
}

for (const mode of ["fork", "exec"] as const) {
  test(`${RESTARTS} ${mode}-mode restarts in a row: fds, memory and environment flat, no zombies`, async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-long-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "v1");
    const s = serve([`--${mode}`, compiledCServer(), String(port), cookie], { prefix: ["python3", REAPER] });
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
      let master = groupMembers(s.pgid).find((p) => p.pid !== s.pid)!.pid;
      let offset = 0;
      let early: Sample | undefined;
      const t0 = Date.now();
      for (let i = 1; i <= RESTARTS; i++) {
        const before = master;
        process.kill(master, "SIGHUP");
        if (mode === "fork") {
          const { end, match } = await waitLog(s, offset, /restarting: generation \d+ is pid (\d+)/);
          offset = end;
          master = Number(match[1]);
          await waitFor(() => !alive(before), `generation ${i} (pid ${before}) to end`, 15_000, 1);
        } else {
          offset = (await waitLog(s, offset, /exec'ing generation \d+/)).end;
        }
        const r = await request(port, "/", 5000);
        expect(r.ok, `restart ${i}: ${r.ok ? "" : r.error}`).toBe(true);
        if (i === 10) early = sample(master);
      }
      const took = Date.now() - t0;
      // The program answers before the shim has quite finished its restart (it may still be
      // writing its receipt): a file it has open for a moment is not a leak, and a leaked fd stays
      // however long one waits. So the last sample waits (at most 5 s) for the count to settle.
      const settle = Date.now() + 5000;
      while (fdCount(master) > early!.fds && Date.now() < settle) await Bun.sleep(10);
      const late = sample(master);
      console.log(
        `${mode}: ${RESTARTS} restarts in ${(took / 1000).toFixed(1)} s; after 10 / ${RESTARTS}: ` +
          `fds ${early!.fds} / ${late.fds}, RSS ${early!.rssKiB} / ${late.rssKiB} KiB, environment ${early!.environBytes} / ${late.environBytes} bytes`,
      );
      expect(late.fds, fdTargets(master).join("\n")).toBeLessThanOrEqual(early!.fds);
      expect(late.rssKiB).toBeLessThanOrEqual(early!.rssKiB + 512);
      expect(late.environBytes).toBe(early!.environBytes);
      // Nothing left but the reaper and the serving process; no zombie anywhere in the group.
      await waitFor(() => groupMembers(s.pgid).length === 2, "only the serving process to remain");
      const zombies = allPids().filter((pid) => {
        const st = procStat(pid);
        return st !== undefined && st.pgrp === s.pgid && st.state === "Z";
      });
      expect(zombies).toEqual([]);
      expect(s.output()).not.toMatch(/rollback|can't/);
    } finally {
      s.killGroup();
    }
  }, 300_000);
}
