/** `huptime --restart <command...>`: returns once the new generation serves; reports rollbacks. */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { appSource, serveApp } from "../helpers/app";
import { HUPTIME, runCli, serve } from "../helpers/cli";
import { freePort, hold, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";
import { connectionsOf } from "../helpers/status";
import { myservice } from "../helpers/service";

describe("huptime --restart", () => {
  for (const mode of ["fork", "exec"] as const) {
    test(`${mode} mode: a request right after it returns reaches the new code`, async () => {
      const svc = myservice();
      const port = await freePort();
      const cookie = join(svc.dir, "cookie");
      writeFileSync(cookie, "old");
      const s = serve([`--${mode}`, svc.path, String(port), cookie]);
      try {
        await waitFor(async () => (await request(port, "/", 1000)).ok, "the service to answer");
        for (const gen of ["new1", "new2"]) {
          writeFileSync(cookie, gen);
          const r = runCli(["--restart", svc.path]);
          expect(r.code, r.stderr).toBe(0);
          // The restart's receipt (exec mode: the same pid, no handover between two processes).
          const change = mode === "fork" ? "pid \\d+ -> \\d+, ready in [\\d.]+ ms, handover [\\d.]+ ms" : `pid ${s.pid} \\(exec\\), ready in [\\d.]+ ms`;
          expect(r.stdout).toMatch(new RegExp(`^huptime: restarted: ${change}, \\d+ connections? drained in [\\d.]+ ms, 0 cut, \\d+ dropped by the kernel\\n$`));
          const reply = await request(port);
          expect(reply.ok && reply.body.split(" ")[0]).toBe(gen);
        }
      } finally {
        s.killGroup();
      }
    }, 30_000);
  }

  test("a new version that fails to start is rolled back: exit 1, old code keeps serving", async () => {
    const svc = myservice();
    const port = await freePort();
    const cookie = join(svc.dir, "cookie");
    writeFileSync(cookie, "stable");
    const s = serve([svc.path, String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the service to answer");
      rmSync(cookie); // the next start fails: its config file is gone
      const r = runCli(["--restart", svc.name]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("rolled back");
      const reply = await request(port);
      expect(reply.ok && reply.body.split(" ")[0]).toBe("stable");
      expect(groupMembers(s.pgid).length).toBe(1);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("nothing running: a clear message and exit 1", () => {
    const r = runCli(["--restart", "no-such-service-xyz"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no running instance of 'no-such-service-xyz'");
  });
});

describe("huptime --restart progress", () => {
  /** Runs `huptime --restart ...` in the background: its progress so far, and its outcome. */
  const restartAsync = (argv: string[]) => {
    const p = Bun.spawn([HUPTIME, "--restart", ...argv], { stdout: "pipe", stderr: "pipe" });
    let stderr = "";
    const collected = (async () => {
      const text = new TextDecoder();
      for await (const chunk of p.stderr) stderr += text.decode(chunk, { stream: true });
    })();
    const result = (async () => {
      const stdout = await new Response(p.stdout).text();
      await collected;
      return { code: await p.exited, stdout, stderr };
    })();
    return { progress: () => stderr, result };
  };

  test("fork mode, plain lines: signal, new pid, ready, old generation draining its connection, done; the receipt", async () => {
    // --drain-idle: the held connection below carries no data and must not be closed as idle.
    const { app, port, s } = await serveApp("v1", ["--drain-idle=600"]);
    try {
      const held = await hold(port);
      await waitFor(() => connectionsOf(s.pid) === 1, "the held connection");
      app.write(appSource("v2"));
      const pending = restartAsync(["python3", app.file]);
      // huptime --restart waits for the drain (its receipt counts the connection): the held request
      // goes out once it has reported the drain.
      await waitFor(() => pending.progress().includes("old generation 1 draining 1 connection"), "huptime --restart to report the drain", 30_000).catch((e) => {
        throw new Error(`${e.message}; it said:\n${pending.progress()}`);
      });
      expect((await held.send()).ok).toBe(true);
      const r = await pending.result;
      expect(r.code, r.stderr).toBe(0);
      const lines = r.stderr.trim().split("\n");
      expect(lines).toEqual([
        `huptime: ${s.pid}: SIGHUP sent`,
        expect.stringMatching(new RegExp(`^huptime: ${s.pid}: generation 2 is pid \\d+, starting$`)),
        expect.stringMatching(new RegExp(`^huptime: ${s.pid}: ready in \\d+ ms$`)),
        `huptime: ${s.pid}: old generation 1 draining 1 connection`,
        `huptime: ${s.pid}: old generation 1 done`,
      ]);
      const receipt = `pid ${s.pid} -> \\d+, ready in [\\d.]+ ms, handover [\\d.]+ ms, 1 connection drained in [\\d.]+ ms, 0 cut, \\d+ dropped by the kernel`;
      expect(r.stdout).toMatch(new RegExp(`^huptime: restarted: ${receipt}\\n$`));
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("exec mode: the drain comes first, then the new generation in the same pid", async () => {
    // --drain-idle: the held connection below carries no data and must not be closed as idle.
    const { app, port, s } = await serveApp("v1", ["--exec", "--drain-idle=600"]);
    try {
      const held = await hold(port);
      await waitFor(() => connectionsOf(s.pid) === 1, "the held connection");
      app.write(appSource("v2"));
      const pending = restartAsync(["python3", app.file]);
      // The held request goes out once huptime --restart has reported the drain it holds up.
      await waitFor(() => pending.progress().includes("generation 1 draining 1 connection"), "huptime --restart to report the drain", 30_000).catch((e) => {
        throw new Error(`${e.message}; it said:\n${pending.progress()}`);
      });
      expect((await held.send()).ok).toBe(true);
      const r = await pending.result;
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(new RegExp(`: SIGHUP sent\\n.*: generation 1 draining 1 connection\\n.*: generation 2 is pid ${s.pid}, starting\\n.*: ready in \\d+ ms\\n$`));
      expect(r.stdout).toMatch(new RegExp(`^huptime: restarted: pid ${s.pid} \\(exec\\), ready in [\\d.]+ ms, 1 connection drained in [\\d.]+ ms, 0 cut, \\d+ dropped by the kernel\\n$`));
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("on a terminal: one line rewritten in place", async () => {
    const { app, s } = await serveApp("v1");
    try {
      app.write(appSource("v2"));
      const cmd = [HUPTIME, "--restart", "python3", app.file].map((a) => `'${a}'`).join(" ");
      const r = spawnSync("script", ["-qfec", cmd, "/dev/null"], { encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`\\r\\x1b\\[Khuptime: ${s.pid}: SIGHUP sent → generation 2 is pid \\d+, starting`));
      expect(r.stdout).toMatch(/→ ready in \d+ ms/);
      expect(r.stdout).toMatch(/\r\x1b\[Khuptime: restarted: pid \d+ -> \d+, ready in [\d.]+ ms, handover /);
      expect(r.stdout).not.toContain(`${s.pid}: SIGHUP sent\n`);
    } finally {
      s.killGroup();
    }
  }, 30_000);
});
