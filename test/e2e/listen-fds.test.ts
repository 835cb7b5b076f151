/**
 * `--listen ADDR --listen-fds CMD`: huptime binds the sockets, stays the parent and hands them to
 * a static Go server (which LD_PRELOAD cannot reach) by socket activation; SIGHUP starts a new
 * generation, waits for its READY=1 (or --ready-delay), then SIGTERMs the old one. Rollback and
 * systemd notices as in the preload modes.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { goFixture } from "../helpers/go";
import { freePort, loadLoop, request } from "../helpers/net";
import { notifyListener } from "../helpers/notify";
import { alive, groupMembers, waitFor } from "../helpers/procs";
import type { Group } from "../helpers/spawn";

let server = "";
beforeAll(() => {
  server = goFixture("activated");
}, 300_000);

/** Starts the Go server under huptime --listen-fds with `version` in its config file. */
async function start(version: string, extra: string[] = [], env?: NodeJS.ProcessEnv) {
  const config = join(mkdtempSync(join(tmpdir(), "huptime-go-")), "version");
  writeFileSync(config, version);
  const port = await freePort();
  const s = serve(["--listen", `127.0.0.1:${port}`, ...extra, "--listen-fds", server, config], { env });
  await waitForVersion(port, version, s);
  return { s, port, setVersion: (v: string) => writeFileSync(config, v) };
}

async function waitForVersion(port: number, version: string, s: Group, timeoutMs = 15_000): Promise<string> {
  let body = "";
  await waitFor(async () => {
    const r = await request(port, "/", 1000);
    body = r.ok ? r.body : "";
    return body.startsWith(`${version} `);
  }, `${version} to answer; huptime said:\n${s.output()}`, timeoutMs);
  return body;
}

describe("--listen-fds", () => {
  test("static Go server: 3 restarts under load, zero failed requests, huptime stays the parent", async () => {
    const { s, port, setVersion } = await start("v1");
    try {
      const load = loadLoop(port, { concurrency: 4 });
      const pids = new Set<string>();
      for (const v of ["v2", "v3", "v4"]) {
        setVersion(v);
        process.kill(s.pid, "SIGHUP");
        pids.add((await waitForVersion(port, v, s)).trim().split(" ")[1]);
      }
      // a slow request in flight across a restart finishes on the old generation
      const slow = request(port, "/?sleep=800ms", 5000);
      await Bun.sleep(100);
      setVersion("v5");
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "v5", s);
      expect((await slow).ok).toBe(true);
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      expect(stats.ok).toBeGreaterThan(100);
      expect(pids.size).toBe(3);
      expect(alive(s.pid)).toBe(true);
      expect(s.output()).toMatch(/generation 5 \(pid \d+\) is ready after \d+ ms; SIGTERM to generation 4/);
      for (const l of s.output().split("\n").filter((x) => x.startsWith("huptime"))) expect(l).toMatch(/^huptime\[\d+\] gen=0: \S/);
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code).toBe(0);
      expect(groupMembers(s.pgid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("rollback: a version that exits 3, one that never gets ready; the old one keeps serving", async () => {
    const { s, port, setVersion } = await start("v1", ["--ready-timeout=2"]);
    try {
      const load = loadLoop(port, { concurrency: 4 });
      setVersion("exit3");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => s.output().includes("keeps serving"), "the first rollback");
      expect(s.output()).toMatch(/generation 2 \(pid \d+\) exited with status 3 before it was ready/);
      expect(s.output()).toContain("| config: unknown backend 'db2'");
      setVersion("hang");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => s.output().split("keeps serving").length === 3, "the second rollback", 10_000);
      expect(s.output()).toMatch(/generation 2 \(pid \d+\) was not ready within 2 s; killed its process group/);
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      await waitForVersion(port, "v1", s);
      // only huptime and generation 1 are left
      await waitFor(() => groupMembers(s.pgid).length === 1, "the failed generations to be gone", 5000);
    } finally {
      s.killGroup();
    }
  }, 40_000);

  test("a program that never says READY=1 is taken after --ready-delay; without it, it is rolled back", async () => {
    const { s, port, setVersion } = await start("silent", ["--ready-delay=0.3"]);
    try {
      setVersion("silent2");
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "silent2", s);
    } finally {
      s.killGroup();
    }
    const strict = await start("v1", ["--ready-timeout=1"]);
    try {
      strict.setVersion("silent");
      process.kill(strict.s.pid, "SIGHUP");
      await waitFor(() => strict.s.output().includes("keeps serving"), "the rollback");
      expect(strict.s.output()).toMatch(/was not ready within 1 s/);
      await waitForVersion(strict.port, "v1", strict.s);
    } finally {
      strict.s.killGroup();
    }
  }, 40_000);

  test("systemd: huptime is the main process: READY=1, RELOADING=1 then READY=1, STOPPING=1", async () => {
    const sd = await notifyListener();
    const { s, setVersion, port } = await start("v1", [], { ...process.env, NOTIFY_SOCKET: sd.path });
    try {
      await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
      const mark = sd.notices.length;
      setVersion("v2");
      process.kill(s.pid, "SIGHUP");
      await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      await sd.next((n) => n.fields.READY === "1", mark, "READY=1 after the restart");
      await waitForVersion(port, "v2", s);
      process.kill(s.pid, "SIGTERM");
      await sd.next((n) => n.fields.STOPPING === "1", mark, "STOPPING=1");
      expect(sd.notices.every((n) => n.pid === s.pid)).toBe(true);
    } finally {
      s.killGroup();
      sd.stop();
    }
  }, 30_000);

  test("bad use: clear one-line errors", async () => {
    const port = await freePort();
    const cases: [string[], number, string][] = [
      [["--listen", "127.0.0.1:8080", "true"], 2, "--listen and --ready-delay need --listen-fds"],
      [["--listen-fds", "true"], 2, "--listen-fds needs at least one --listen"],
      [["--listen", "example.com:80", "--listen-fds", "true"], 2, "is not an IPv4 address"],
      [["--exec", "--listen", "1", "--listen-fds", "true"], 2, "--exec cannot be used with --listen-fds"],
    ];
    for (const [args, code, msg] of cases) {
      const r = runCli(args);
      expect(r.code).toBe(code);
      expect(r.stderr + r.stdout).toContain(msg);
    }
    const busy = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    try {
      const r = runCli(["--listen", `127.0.0.1:${port}`, "--listen-fds", "true"]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`can't listen on 127.0.0.1:${port}: Address already in use`);
    } finally {
      busy.stop(true);
    }
  });
});
