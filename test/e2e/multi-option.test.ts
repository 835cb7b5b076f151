/** `--multi=N`: N instances share the port; rolling zero-downtime restarts; they live and die with huptime. */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUPTIME, ROOT, serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, loadLoop, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";
import { spawnGroup } from "../helpers/spawn";

/** Distinct pids answering for `cookie` over `n` requests. */
async function servingPids(port: number, cookie: string, n = 80): Promise<Set<string>> {
  const pids = new Set<string>();
  for (let i = 0; i < n; i++) {
    const r = await request(port);
    if (r.ok && r.body.startsWith(`${cookie} `)) pids.add(r.body.trim().split(" ")[1]);
  }
  return pids;
}

function cookieFile(v: string): string {
  const f = join(mkdtempSync(join(tmpdir(), "huptime-multi-")), "cookie");
  writeFileSync(f, v);
  return f;
}

describe("--multi", () => {
  test("--multi=4 node: all four serve; SIGHUP under load: zero failures, four new pids; SIGTERM: all gone, exit 0", async () => {
    const port = await freePort();
    const cookie = cookieFile("a");
    const s = serve(["--multi=4", "node", join(SERVERS, "node_http.js"), String(port), cookie]);
    try {
      await waitFor(async () => (await servingPids(port, "a", 20)).size > 0, "the pool to answer");
      await waitFor(async () => (await servingPids(port, "a")).size === 4, "four instances to serve");
      const first = await servingPids(port, "a");
      const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
      await waitFor(() => load.stats.ok > 50, "load to flow");
      writeFileSync(cookie, "b");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => s.output().includes("gen=0: restarted"), "the rolling restart to finish", 30_000);
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      const second = await servingPids(port, "b");
      expect(second.size).toBe(4);
      for (const p of second) expect(first.has(p)).toBe(false);
      expect((await servingPids(port, "a", 20)).size).toBe(0);
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code).toBe(0);
      expect(groupMembers(s.pid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("huptime exits with the first failing instance status once all have exited", async () => {
    const s = serve(["--multi=2", "sh", "-c", "sleep 0.2; exit 3"]);
    expect((await s.exited).code).toBe(3);
  }, 20_000);

  test("instances die with huptime even when it is killed", async () => {
    const port = await freePort();
    const s = serve(["--multi=2", "python3", join(SERVERS, "blocking.py"), String(port), cookieFile("k")]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the pool to answer");
      await waitFor(() => groupMembers(s.pid).length === 3, "huptime and two instances");
      process.kill(s.pid, "SIGKILL");
      await waitFor(() => groupMembers(s.pid).length === 0, "the instances to follow it", 10_000);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("examples/pool.sh (the --multi=1 shell pool): HUP restarts every copy, TERM stops them all", async () => {
    const port = await freePort();
    const cookie = cookieFile("p1");
    const s = spawnGroup([join(ROOT, "examples", "pool.sh"), "node", join(SERVERS, "node_http.js"), String(port), cookie], {
      env: { ...process.env, HUPTIME, N: "3" },
    });
    try {
      await waitFor(async () => (await servingPids(port, "p1")).size === 3, "three copies to serve");
      const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
      writeFileSync(cookie, "p2");
      process.kill(s.pid, "SIGHUP");
      await waitFor(async () => (await servingPids(port, "p2", 60)).size === 3 && (await servingPids(port, "p1", 30)).size === 0, "every copy restarted", 30_000);
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code).toBe(0);
      expect(groupMembers(s.pid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 60_000);
});
