/**
 * Static programs (which LD_PRELOAD cannot reach) run under seccomp user notification: huptime
 * stays the parent, holds the sockets the program listens on and answers the next generation's
 * bind() with them. A plain Go net/http server (ListenAndServe, Shutdown on SIGTERM) and a static
 * C server with a blocking accept loop are restarted without a failed request; versions that
 * exit or never listen are rolled back; a program that ignores SIGTERM takes no new connection
 * once replaced and is cut at --drain-timeout; --status, --restart and --stop see the program; a cgo build of the same
 * server goes through the preload; when huptime dies the program is told (SIGTERM), and its
 * later bind() fails with ENOSYS.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { count, runCli, serve } from "../helpers/cli";
import { goFixture } from "../helpers/go";
import { freePort, loadLoop, request } from "../helpers/net";
import { notifyListener } from "../helpers/notify";
import { limitForks } from "../helpers/pids-limit";
import { childPids } from "../../src/instances";
import { alive, waitFor } from "../helpers/procs";
import { killSeccompRun, staticCServer } from "../helpers/seccomp";
import type { Group } from "../helpers/spawn";

let builds: Record<"a" | "b", string> = { a: "", b: "" };
beforeAll(() => {
  builds = { a: goFixture("plain", { build: "a" }), b: goFixture("plain", { build: "b" }) };
}, 300_000);

/** A private directory with the program under a fixed path (replaced to change its code). */
function workdir(): string {
  return mkdtempSync(join(tmpdir(), "huptime-seccomp-"));
}

/** Puts `program` at `path` the way a deployment does: a new file renamed over the old one. */
function install(program: string, path: string): void {
  copyFileSync(program, `${path}.new`);
  renameSync(`${path}.new`, path);
}

/** Starts the Go server (build a) under huptime with `version` in its config file. */
async function startGo(version: string, extra: string[] = [], env?: NodeJS.ProcessEnv) {
  const dir = workdir();
  const server = join(dir, "server");
  install(builds.a, server);
  const config = join(dir, "version");
  writeFileSync(config, version);
  const port = await freePort();
  const s = serve([...extra, server, config, `127.0.0.1:${port}`], { env });
  const first = await answer(port, version, s);
  return { s, port, server, config, pid: first.pid, setVersion: (v: string) => writeFileSync(config, v) };
}

/** What the Go server answered: version, build, pid. */
interface Answer {
  version: string;
  build: string;
  pid: number;
}

/** Waits until the server on `port` answers with `version`. */
async function answer(port: number, version: string, s: Group, timeoutMs = 30_000): Promise<Answer> {
  let got: Answer | undefined;
  await waitFor(async () => {
    const r = await request(port, "/", 2000);
    const [v, build, pid] = r.ok ? r.body.trim().split(" ") : [];
    got = { version: v, build, pid: Number(pid) };
    return v === version;
  }, `${version} to answer; huptime said:\n${s.output()}`, timeoutMs);
  return got!;
}

/** The TCP ports `pid` has listening sockets on (its fds against /proc/net/tcp and tcp6). */
function listeningPorts(pid: number): number[] {
  const inodes = new Set(
    readdirSync(`/proc/${pid}/fd`).map((fd) => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1]).filter(Boolean),
  );
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === "0A" && inodes.has(f[9])) ports.push(parseInt(f[1].split(":")[1], 16)); // 0A: LISTEN
    }
  }
  return ports.sort();
}

describe("static programs under seccomp", () => {
  test("a static Go server: 5 restarts under a 4-client load with a 1 s request in flight across each: no failure, new code and a new pid each time", async () => {
    const { s, port, server, setVersion, pid: firstPid } = await startGo("v1");
    try {
      // huptime writes its ready line once it has seen the program wait on the socket, which can
      // come after the program's first answer.
      await waitFor(() => s.output().includes(`generation 1 (pid ${firstPid}) is ready after`), `the ready line; huptime said:\n${s.output()}`);
      expect(s.output()).toContain(`listening on tcp:127.0.0.1:${port}`);
      const load = loadLoop(port, { concurrency: 4 });
      let old: Answer = { version: "v1", build: "a", pid: firstPid };
      for (let i = 2; i <= 6; i++) {
        const slow = request(port, "/?sleep=1s", 30_000);
        await waitFor(() => count(s.output(), "sleeping 1s in") === i - 1, `the slow request to reach the server; huptime said:\n${s.output()}`);
        const build = i % 2 === 0 ? "b" : "a";
        install(builds[build], server);
        setVersion(`v${i}`);
        process.kill(s.pid, "SIGHUP");
        const now = await answer(port, `v${i}`, s);
        expect(now.build).toBe(build);
        expect(now.pid).not.toBe(old.pid);
        const r = await slow;
        expect(r.ok && r.body, s.output()).toBe(`${old.version} ${old.build} ${old.pid}\n`);
        await waitFor(() => !alive(old.pid), `generation ${i - 1} (pid ${old.pid}) to exit`);
        old = now;
      }
      const stats = await load.stop();
      expect(stats.failed, `${stats.errors.join(", ")}\n${s.output()}`).toBe(0);
      expect(stats.ok).toBeGreaterThan(20);
      expect(count(s.output(), "1 address joined beside the old socket; SIGTERM to generation")).toBe(5);
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code, s.output()).toBe(0);
    } finally {
      killSeccompRun(s);
    }
  }, 180_000);

  test("a burst of 20 SIGHUPs under load: no failure, never more than two generations, fewer restarts than signals", async () => {
    const { s, port, setVersion } = await startGo("v1");
    try {
      const load = loadLoop(port, { concurrency: 4 });
      setVersion("v2");
      let most = 0;
      const generations = () => childPids(s.pid).filter((p) => alive(p)).length;
      for (let i = 0; i < 20; i++) {
        process.kill(s.pid, "SIGHUP");
        most = Math.max(most, generations());
        await Bun.sleep(5);
      }
      await answer(port, "v2", s);
      // Settled: every restart begun has its new generation ready, and one generation is left.
      const settled = () => count(s.output(), "restarting: generation") === count(s.output(), "is ready after") - 1 && generations() === 1;
      await waitFor(settled, `the restarts to settle; huptime said:\n${s.output()}`);
      const stats = await load.stop();
      expect(stats.failed, `${stats.errors.join(", ")}\n${s.output()}`).toBe(0);
      expect(most).toBeLessThanOrEqual(2);
      const restarts = count(s.output(), "restarting: generation");
      expect(restarts).toBeGreaterThanOrEqual(1);
      expect(restarts).toBeLessThan(20);
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("a version that exits 3 at start-up, and one that never listens, are rolled back (the second at --ready-timeout); the old one keeps serving", async () => {
    const { s, port, setVersion, pid } = await startGo("v1", ["--ready-timeout", "3"]);
    try {
      setVersion("exit3");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => /rollback: generation 1/.test(s.output()), `a rollback; huptime said:\n${s.output()}`);
      expect(s.output()).toMatch(/generation 2 \(pid \d+\) exited with status 3 before it was ready/);
      expect(s.output()).toMatch(/gen=0:\s+\| config: unknown backend 'db2'/);
      expect(await answer(port, "v1", s)).toEqual({ version: "v1", build: "a", pid });

      setVersion("nolisten");
      const t0 = Date.now();
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => count(s.output(), "rollback: generation 1") === 2, `a second rollback; huptime said:\n${s.output()}`, 60_000);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(3000);
      const hung = Number(/generation 2 \(pid (\d+)\) was not ready within 3 s; killed its process group/.exec(s.output())?.[1]);
      expect(hung).toBeGreaterThan(0);
      expect(s.output()).toMatch(/gen=0:\s+\| waiting for the database/);
      await waitFor(() => !alive(hung), `the hung generation (pid ${hung}) to be gone`);
      expect(await answer(port, "v1", s)).toEqual({ version: "v1", build: "a", pid });
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("a restart that cannot fork (a process limit reached) is rolled back with the reason; the old generation keeps serving, and the next SIGHUP restarts", async () => {
    const { s, port, pid, server } = await startGo("v1");
    const limit = limitForks(s.pid);
    try {
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => /rollback: generation 1/.test(s.output()), `a rollback; huptime said:\n${s.output()}`);
      expect(s.output()).toMatch(/gen=0: generation 2: can't start \S+\/server: can't fork: Resource temporarily unavailable \(os error 11\)\n.*rollback: generation 1 \(pid \d+\) keeps serving/);
      expect(s.output()).not.toMatch(/internal error/);
      expect(await answer(port, "v1", s)).toEqual({ version: "v1", build: "a", pid });

      limit.lift();
      install(builds.b, server);
      process.kill(s.pid, "SIGHUP");
      await waitFor(async () => { const r = await request(port, "/", 2000); return r.ok && r.body.startsWith("v1 b "); }, `build b to answer; huptime said:\n${s.output()}`);
      expect(alive(s.pid)).toBe(true);
    } finally {
      try {
        killSeccompRun(s);
      } finally {
        limit.remove();
      }
    }
  }, 120_000);

  test("a socket the program listened on and closed is neither waited for nor kept", async () => {
    const { s, port, setVersion } = await startGo("probe");
    try {
      await waitFor(() => /probed 127\.0\.0\.1:\d+/.test(s.output()), `the probe line; huptime said:\n${s.output()}`);
      // huptime lets go of the probe once the generation is ready (it can answer a moment before).
      await waitFor(() => /generation 1 \(pid \d+\) is ready after/.test(s.output()), `the ready line; huptime said:\n${s.output()}`);
      expect(listeningPorts(s.pid)).toEqual([port]);
      setVersion("v2");
      process.kill(s.pid, "SIGHUP");
      await answer(port, "v2", s);
      expect(listeningPorts(s.pid)).toEqual([port]);
    } finally {
      killSeccompRun(s);
    }
  }, 60_000);

  test("a static C server with a blocking accept loop: 3 restarts, each new pid answers (its bind() returns 0)", async () => {
    const c = staticCServer();
    const dir = workdir();
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "c1");
    const port = await freePort();
    const s = serve([c, String(port), cookie]);
    try {
      let last = "";
      for (let i = 1; i <= 4; i++) {
        if (i > 1) {
          writeFileSync(cookie, `c${i}`);
          process.kill(s.pid, "SIGHUP");
        }
        await waitFor(async () => {
          const r = await request(port, "/", 2000);
          last = r.ok ? r.body : "";
          return last.startsWith(`c${i} `);
        }, `c${i} to answer; huptime said:\n${s.output()}`, 30_000);
      }
      expect(count(s.output(), "1 address joined beside the old socket")).toBe(3);
      expect(count(s.output(), `listening ${port}\n`)).toBe(4);
      expect(s.output()).not.toContain("bind/listen");
      process.kill(s.pid, "SIGTERM");
      await s.exited;
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("a program that ignores SIGTERM: no new connection reaches it once replaced; a request that ends within --drain-timeout is finished, one still running then is cut with the process", async () => {
    const { s, port, setVersion, pid } = await startGo("ignoreterm", ["--drain-timeout", "3"]);
    try {
      const short = request(port, "/?sleep=1s", 30_000);
      const long = request(port, "/?sleep=60s", 30_000);
      await waitFor(() => count(s.output(), "sleeping") === 2, `both requests to reach the server; huptime said:\n${s.output()}`);
      setVersion("v2");
      process.kill(s.pid, "SIGHUP");
      await answer(port, "v2", s);
      // The old one still listens (it ignores SIGTERM) until it is killed, yet every new
      // connection goes to the new one: huptime steered them to its socket. (Counted: the replies
      // that came while the old one still ran, however fast this machine makes them.)
      const during: string[] = [];
      let whileOldRuns = 0;
      for (let i = 0; i < 20; i++) {
        const r = await request(port, "/", 5000);
        during.push(r.ok ? r.body.trim() : `failed: ${r.error}`);
        if (alive(pid)) whileOldRuns++;
      }
      expect(whileOldRuns, "replies while the old generation still ran").toBeGreaterThan(0);
      expect(during.filter((b) => !b.startsWith("v2 ")), s.output()).toEqual([]);
      expect(await short).toEqual({ ok: true, body: `ignoreterm a ${pid}\n` });
      const cut = await long;
      expect(cut.ok).toBe(false);
      await waitFor(() => !alive(pid), `the old generation (pid ${pid}) to be killed`);
      expect(s.output()).toContain(`generation 1 (pid ${pid}) still running 3 s after SIGTERM; killing its process group`);
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("--status, --restart and --stop act on it through huptime", async () => {
    const { s, port, server, setVersion, pid } = await startGo("v1");
    try {
      const status = runCli(["--status", server]);
      expect([status.code, status.stdout], status.stderr).toEqual([0, `${pid}\n`]);
      setVersion("v2");
      const r = runCli(["--restart", server], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      const next = Number(new RegExp(`restarted: pid ${pid} -> (\\d+), generation 2 serving`).exec(r.stdout)?.[1]);
      expect(next, r.stdout).toBeGreaterThan(0);
      expect(await answer(port, "v2", s)).toEqual({ version: "v2", build: "a", pid: next });
      const json = JSON.parse(runCli(["--status", "--json", server]).stdout);
      expect(json.processes).toHaveLength(1);
      expect(json.processes[0]).toMatchObject({ pid: next, ppid: s.pid, generation: 2, mode: "fork", state: "serving", listening: [`tcp 127.0.0.1:${port}`] });
      const stop = runCli(["--stop", server], { timeoutMs: 60_000 });
      expect([stop.code, stop.stdout], stop.stderr).toEqual([0, `stopped ${next}\n`]);
      expect((await s.exited).code, s.output()).toBe(0);
      expect(s.output()).toContain(`SIGTERM: stopping generation 2 (pid ${next}) with SIGTERM`);
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("--stop-signal picks what tells the old generation to stop", async () => {
    const { s, port, setVersion, pid } = await startGo("ignoreterm", ["--stop-signal", "INT", "--drain-timeout", "0"]);
    try {
      setVersion("v2");
      process.kill(s.pid, "SIGHUP");
      await answer(port, "v2", s);
      await waitFor(() => !alive(pid), `generation 1 (pid ${pid}) to end on SIGINT`);
      expect(s.output()).toContain(`SIGINT to generation 1 (pid ${pid})`);
      const bad = runCli(["--stop-signal", "KILL", builds.a, "version", "127.0.0.1:1"]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("--stop-signal: KILL is not a signal a program can handle");
    } finally {
      killSeccompRun(s);
    }
  }, 120_000);

  test("when huptime dies, the program gets SIGTERM, and a bind() it makes afterwards fails with ENOSYS", async () => {
    const plain = await startGo("v1");
    const late = await startGo("late");
    try {
      for (const s of [plain.s, late.s]) {
        s.child.kill("SIGKILL");
        await waitFor(() => !alive(s.pid), `huptime (pid ${s.pid}) to die`); // not s.exited: the program holds its stdout
      }
      await waitFor(() => !alive(plain.pid), `the plain server (pid ${plain.pid}) to stop on SIGTERM`);
      expect(alive(late.pid)).toBe(true); // it ignores SIGTERM
      process.kill(late.pid, "SIGUSR1");
      await waitFor(() => existsSync(`${late.config}.late`), "the program to try listening again");
      expect(readFileSync(`${late.config}.late`, "utf8")).toBe("listen tcp 127.0.0.1:0: bind: function not implemented\n");
    } finally {
      killSeccompRun(plain.s);
      killSeccompRun(late.s);
    }
  }, 120_000);

  test("systemd: huptime is the main process: READY=1, RELOADING=1 then READY=1, STOPPING=1; the program gets no NOTIFY_SOCKET", async () => {
    const sd = await notifyListener();
    const { s, setVersion, port, pid } = await startGo("v1", [], { ...process.env, NOTIFY_SOCKET: sd.path });
    try {
      await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
      expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").some((e) => e.startsWith("NOTIFY_SOCKET="))).toBe(false);
      const mark = sd.notices.length;
      setVersion("v2");
      process.kill(s.pid, "SIGHUP");
      await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      await sd.next((n) => n.fields.READY === "1", mark, "READY=1 after the restart");
      await answer(port, "v2", s);
      process.kill(s.pid, "SIGTERM");
      await sd.next((n) => n.fields.STOPPING === "1", mark, "STOPPING=1");
      expect(sd.notices.every((n) => n.pid === s.pid)).toBe(true);
    } finally {
      killSeccompRun(s);
      sd.stop();
    }
  }, 60_000);

  test("the same Go server built with cgo is dynamic and goes through the preload (same pid as huptime)", async () => {
    const cgo = goFixture("plain", { cgo: true });
    const dir = workdir();
    const config = join(dir, "version");
    writeFileSync(config, "v1");
    const port = await freePort();
    const s = serve([cgo, config, `127.0.0.1:${port}`]);
    try {
      const a = await answer(port, "v1", s);
      expect(a.pid).toBe(s.pid);
      expect(readFileSync(`/proc/${a.pid}/maps`, "utf8")).toMatch(/\/huptime-[0-9a-f]{32}\.so/);
      expect(s.output()).not.toContain("seccomp");
    } finally {
      killSeccompRun(s);
    }
  }, 300_000);
});
