/**
 * Rollback: a new generation that exits, crashes or never gets ready is killed (with every process
 * it started) and the old generation goes on serving, without a failed request. The failure is
 * logged with the exit status or signal and the new generation's last stderr lines.
 */
import { describe, expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { runCli } from "../helpers/cli";
import { loadLoop, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";

interface BadVersion {
  name: string;
  source: string;
  /** Expected in the rollback log (status line, stderr lines). */
  logged: RegExp[];
  args?: string[];
}

const BAD: BadVersion[] = [
  {
    name: "a syntax error",
    source: appSource("v2").replace("class H(", "class H((("),
    logged: [/generation 2 \(pid \d+\) exited with status 1 before it was ready/, /\| SyntaxError: /],
  },
  {
    name: "an exit with status 3",
    source: appSource("v2", { prelude: `print("config: no such upstream 'db'", file=sys.stderr)\nsys.exit(3)` }),
    logged: [/exited with status 3 before it was ready/, /\| config: no such upstream 'db'/],
  },
  {
    name: "a crash (SIGSEGV)",
    source: appSource("v2", { prelude: `import signal\nos.kill(os.getpid(), signal.SIGSEGV)` }),
    logged: [/was killed by signal 11 \(SIGSEGV\) before it was ready/],
  },
  {
    name: "one that never listens (and leaves a child behind)",
    source: appSource("v2", { prelude: `print("waiting for the database", file=sys.stderr, flush=True)\nif os.fork() == 0:\n    time.sleep(3600)\ntime.sleep(3600)` }),
    logged: [/was not ready within 2 s; killed \d+ process/, /\| waiting for the database/],
    args: ["--ready-timeout=2"],
  },
];

/** After a rollback, a good version is taken as usual. */
async function takesGoodVersion(app: { write(src: string): void }, pid: number, port: number): Promise<void> {
  app.write(appSource("v3"));
  process.kill(pid, "SIGHUP");
  await waitForVersion(port, "v3");
}

describe("rollback", () => {
  for (const bad of BAD) {
    test(`${bad.name}: zero failed requests, the old code answers, the failure is logged`, async () => {
      const { app, port, s } = await serveApp("v1", bad.args);
      try {
        const load = loadLoop(port, { concurrency: 4 });
        app.write(bad.source);
        process.kill(s.pid, "SIGHUP");
        await waitFor(() => s.output().includes("keeps serving"), "the rollback", 15_000);
        const served = load.stats.ok;
        await waitFor(() => load.stats.ok >= served + 10, "the old generation to serve on after the rollback", 30_000);
        const stats = await load.stop();
        expect(stats.failed, stats.errors.join(", ")).toBe(0);
        for (const re of bad.logged) expect(s.output()).toMatch(re);
        const reply = await request(port);
        expect(reply.ok && reply.body.trim().split(" ")).toEqual(["v1", String(s.pid)]);
        // Nothing of the failed generation is left.
        await waitFor(() => groupMembers(s.pgid).length === 1, "only the serving process left", 5_000);

        await takesGoodVersion(app, s.pid, port);
      } finally {
        s.killGroup();
      }
    }, 40_000);
  }

  test("--multi=2: each instance rolls back on its own; the pool keeps serving", async () => {
    const { app, port, s } = await serveApp("v1", ["--multi=2"]);
    try {
      await waitFor(() => {
        const r = runCli(["--status", "--json", "python3", app.file]);
        return JSON.parse(r.stdout || "{}").processes?.filter((p: { state: string }) => p.state === "serving").length === 2;
      }, "both instances to serve");
      const load = loadLoop(port, { concurrency: 4 });
      app.write(appSource("v2", { prelude: `print("missing certificate", file=sys.stderr)\nsys.exit(3)` }));
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => (s.output().match(/restart rolled back: generation 2 \(pid \d+\) exited with status 3 before it was ready: missing certificate/g) ?? []).length === 2, "both instances to roll back", 15_000).catch((e) => {
        throw new Error(`${e.message}; huptime said:\n${s.output()}`);
      });
      const stats = await load.stop();
      expect(stats.failed, stats.errors.join(", ")).toBe(0);
      expect([...stats.bodies.keys()].every((b) => b.startsWith("v1 "))).toBe(true);
      await takesGoodVersion(app, s.pid, port);
    } finally {
      s.killGroup();
    }
  }, 40_000);

  test("huptime --restart reports the rollback with the exit status and exits 1", async () => {
    const { app, port, s } = await serveApp("v1");
    try {
      app.write(appSource("v2", { prelude: `print("bad listen address in config", file=sys.stderr)\nsys.exit(3)` }));
      const r = runCli(["--restart", "python3", app.file, String(port)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/rolled back: generation 2 \(pid \d+\) exited with status 3 before it was ready: bad listen address in config/);
      expect((await request(port)).ok).toBe(true);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("SIGHUPs during a restart are coalesced into one follow-up restart", async () => {
    const { app, port, s } = await serveApp("v1");
    try {
      // The next version takes 1.5 s to start: more SIGHUPs arrive meanwhile.
      app.write(appSource("v2", { prelude: "time.sleep(1.5)" }));
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => s.output().includes("generation 2 is pid"), "generation 2 to start", 5_000);
      for (let i = 0; i < 5; i++) {
        process.kill(s.pid, "SIGHUP");
        await Bun.sleep(50);
      }
      await waitFor(() => s.output().includes("generation 3 is pid"), "the follow-up restart", 10_000).catch((e) => {
        throw new Error(`${e.message}; output:\n${s.output()}`);
      });
      await waitFor(async () => {
        const r = await request(port, "/", 1000);
        return r.ok && r.body.startsWith("v2") && r.body.trim().split(" ")[1] !== String(s.pid);
      }, "generation 3 to serve", 10_000);
      await Bun.sleep(2500);
      expect(s.output()).not.toContain("generation 4");
    } finally {
      s.killGroup();
    }
  }, 40_000);
});
