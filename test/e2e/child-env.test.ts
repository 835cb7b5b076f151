/**
 * Only the served program carries huptime (crates/huptime/src/childenv.rs): what it starts once it
 * serves runs as it would without huptime (nothing of huptime mapped, none of its variables, its
 * signals its own, never listed by --status), while launchers before the first bind, the
 * program's own re-exec, its forked workers and daemons keep the shim. The program itself sees
 * the environment it was started with.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { procStat, shimLibrary } from "../../src/instances";
import { ROOT, runCli, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { SERVERS } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { alive, groupMembers, killAll, waitFor } from "../helpers/procs";
import type { Group } from "../helpers/spawn";
import { statusRows } from "../helpers/status";

const FIXTURES = join(ROOT, "test", "fixtures", "childenv");
const BLOCKING = join(SERVERS, "blocking.py");

/** A cookie file for the fixture servers (they answer "<cookie> <pid>"). */
function cookie(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "huptime-childenv-")), "cookie");
  writeFileSync(file, `${text}\n`);
  return file;
}

/** The pid answering on `port` with a body "<word> <pid>", once one does. */
async function answeringPid(port: number, s: Group): Promise<number> {
  let pid = 0;
  await waitFor(async () => {
    const r = await request(port, "/", 1000);
    pid = r.ok ? Number(r.body.trim().split(" ")[1]) : 0;
    return pid > 0;
  }, `an answer on port ${port} (output: ${s.output()})`);
  return pid;
}

/** huptime's variables and LD_PRELOAD in the environment `pid` was started with. */
function startedWith(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, "latin1")
    .split("\0")
    .filter((e) => e.startsWith("HUPTIME_") || e.startsWith("LD_PRELOAD="));
}

/**
 * The program started through `launcher` runs under huptime: its pid (the one answering) has the
 * library mapped, --status lists it as serving, and SIGHUP to it starts a new generation that
 * answers in its place.
 */
async function keepsTheShim(argv: string[], port: number, opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<void> {
  const s = serve(argv, opts);
  // The servers that answered: a daemonizing launcher (setsid -f) puts them out of the test's
  // process group, so they are ended by pid too.
  const answered = new Set<number>();
  try {
    const first = await answeringPid(port, s);
    answered.add(first);
    expect(shimLibrary(first), s.output()).toBeDefined();
    await waitFor(() => statusRows().some((r) => r.pid === first && r.state === "serving"), `--status to list ${first} as serving`);
    process.kill(first, "SIGHUP");
    await waitFor(async () => {
      const r = await request(port, "/", 1000);
      const pid = r.ok ? Number(r.body.trim().split(" ")[1]) : 0;
      if (pid > 0) answered.add(pid);
      return pid > 0 && pid !== first;
    }, `a new generation to answer (output: ${s.output()})`);
    expect(s.output()).toMatch(/restarting: generation 2 is pid \d+/);
  } finally {
    s.killGroup();
    killAll([...answered]);
  }
}

describe("what the program starts once it serves runs without huptime", () => {
  test("a helper server started after the bind (Popen of http.server): nothing mapped, no variables, SIGHUP ends it, --status never lists it", async () => {
    const [port, helperPort] = [await freePort(), await freePort()];
    const s = serve(["python3", join(FIXTURES, "popen_server.py"), String(port), String(helperPort)]);
    try {
      const parent = await answeringPid(port, s);
      await waitFor(() => /child \d+/.test(s.stdout()), "the helper's pid");
      const helper = Number(/child (\d+)/.exec(s.stdout())![1]);
      await waitFor(async () => (await request(helperPort, "/", 1000)).ok, "the helper server to answer");
      expect(shimLibrary(parent)).toBeDefined();
      expect(shimLibrary(helper)).toBeUndefined();
      expect(startedWith(helper)).toEqual([]);
      expect(statusRows().map((r) => r.pid)).toContain(parent);
      expect(statusRows().map((r) => r.pid)).not.toContain(helper);
      // Its own command line (other tests may run an http.server of their own under huptime).
      const itself = ["python3", "-m", "http.server", "--bind", "127.0.0.1", String(helperPort)];
      for (const command of ["--status", "--restart", "--stop"]) {
        const r = runCli([command, ...itself]);
        const none = `huptime: no running instance of '${itself.join(" ")}' under huptime\n`;
        expect({ command, code: r.code, stderr: r.stderr }).toEqual({ command, code: 1, stderr: none });
      }
      process.kill(helper, "SIGHUP");
      await waitFor(() => s.stdout().includes("child ended"), "the helper to end");
      expect(s.stdout()).toContain("child ended -1"); // killed by SIGHUP, as without huptime
      expect(s.stderr()).not.toContain("restarting");
      expect(alive(parent)).toBe(true);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a helper started by a program that ignores SIGHUP ignores it too, as without huptime", async () => {
    const [port, helperPort] = [await freePort(), await freePort()];
    const s = serve(["python3", join(FIXTURES, "popen_server.py"), String(port), String(helperPort), "ignore-hup"]);
    try {
      await waitFor(() => /child \d+/.test(s.stdout()), `the helper's pid (output: ${s.output()})`);
      const helper = Number(/child (\d+)/.exec(s.stdout())![1]);
      await waitFor(async () => (await request(helperPort, "/", 1000)).ok, "the helper server to answer");
      expect(shimLibrary(helper)).toBeUndefined();
      process.kill(helper, "SIGHUP");
      // Its answer comes after the signal was delivered (on its way back to user mode).
      expect((await request(helperPort, "/", 5000)).ok).toBe(true);
      expect(alive(helper)).toBe(true);
      expect(s.stdout()).not.toContain("child ended");
    } finally {
      s.killGroup();
    }
  }, 60_000);

  describe("every way of starting a program", () => {
    let spawner = "";
    let nothing = "";
    const reporter = join(FIXTURES, "report.sh");
    beforeAll(() => {
      spawner = compileC(join(ROOT, "test", "fixtures", "signals", "spawn_report.c"), { flags: ["-pthread"] });
      nothing = compileC(join(FIXTURES, "nothing.c"), { name: "libnothing.so", flags: ["-shared", "-fPIC"] });
    });

    /** The reporter's lines: "HOW mapped=yes|no env=...". */
    function lines(out: string): string[] {
      return out.split("\n").filter((l) => / mapped=/.test(l));
    }

    for (const mode of ["--fork", "--exec"]) {
      test(`huptime ${mode}: fork/vfork/clone+exec, posix_spawn, system, popen after the bind run as bare, with the user's own LD_PRELOAD; the program's exec of itself keeps the shim`, () => {
        const env = { ...process.env, LD_PRELOAD: nothing };
        const bare = spawnSync(spawner, [reporter], { encoding: "utf8", timeout: 30_000, env });
        expect(bare.status).toBe(0);
        expect(lines(bare.stdout).length).toBe(21);
        expect(lines(bare.stdout).every((l) => l.endsWith(` mapped=no env=LD_PRELOAD=${nothing} `))).toBe(true);
        const under = runCli([mode, spawner, reporter], { timeoutMs: 30_000, env });
        expect(under.code, under.stderr).toBe(0);
        const inPlace = (l: string) => l.startsWith("exec-in-place ");
        expect(lines(under.stdout).filter((l) => !inPlace(l))).toEqual(lines(bare.stdout).filter((l) => !inPlace(l)));
        // Its own exec (same pid, sockets held) keeps the shim, which hides its variables again.
        expect(lines(under.stdout).filter(inPlace)).toEqual(["exec-in-place mapped=yes env="]);
      }, 40_000);
    }
  });
});

describe("the program sees the environment it was started with", () => {
  test("a program printing its environment, and a program it starts, print the same under huptime and without (a user's LD_PRELOAD kept)", () => {
    const nothing = compileC(join(FIXTURES, "nothing.c"), { name: "libnothing.so", flags: ["-shared", "-fPIC"] });
    const env = { ...process.env, LD_PRELOAD: nothing, CHILDENV_TEST: "a value" };
    const script = join(FIXTURES, "print_env.py");
    const bare = spawnSync("python3", [script], { encoding: "utf8", timeout: 30_000, env });
    expect(bare.status, bare.stderr).toBe(0);
    const under = runCli(["python3", script], { env });
    expect(under.code, under.stderr).toBe(0);
    const [program, child] = under.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const [bareProgram, bareChild] = bare.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(program.LD_PRELOAD).toBe(nothing);
    expect(program.CHILDENV_TEST).toBe("a value");
    expect(program).toEqual(bareProgram);
    expect(child).toEqual(bareChild);
  }, 40_000);
});

describe("what keeps the shim", () => {
  test("the program exec'ing itself (same pid) after it bound: the new image runs under huptime", async () => {
    const port = await freePort();
    const s = serve(["python3", join(FIXTURES, "reexec.py"), String(port)]);
    try {
      const pid = await answeringPid(port, s);
      expect(s.stdout()).toContain(`first image ${pid}`);
      expect(shimLibrary(pid)).toBeDefined();
      process.kill(pid, "SIGHUP");
      await waitFor(async () => {
        const r = await request(port, "/", 1000);
        return r.ok && r.body.trim() !== `again ${pid}`;
      }, `a new generation to answer (output: ${s.output()})`);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a script ending in `exec python3 server.py`", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-launcher-"));
    const script = join(dir, "run.sh");
    writeFileSync(script, `#!/bin/sh\nset -e\ncd "$(dirname "$0")"\nexec python3 ${BLOCKING} "$@"\n`);
    chmodSync(script, 0o755);
    await keepsTheShim([script, String(port), cookie("script")], port);
  }, 60_000);

  test("a pyenv-style shim (a bash script that execs a helper that execs the real python3)", async () => {
    const port = await freePort();
    const root = mkdtempSync(join(tmpdir(), "huptime-pyenv-"));
    mkdirSync(join(root, "shims"));
    mkdirSync(join(root, "libexec"));
    const shim = join(root, "shims", "python3");
    writeFileSync(shim, `#!/usr/bin/env bash\nset -e\nprogram="\${0##*/}"\nexec "${root}/libexec/pyenv" exec "$program" "$@"\n`);
    // "pyenv exec PROGRAM ARGS": the real PROGRAM, found with the shims left out of PATH.
    writeFileSync(join(root, "libexec", "pyenv"), `#!/usr/bin/env bash\nset -e\nshift\nprogram=$1\nshift\nexport PATH="\${PATH#*:}"\nexec "$program" "$@"\n`);
    chmodSync(shim, 0o755);
    chmodSync(join(root, "libexec", "pyenv"), 0o755);
    const env = { ...process.env, PATH: `${join(root, "shims")}:${process.env.PATH}` };
    await keepsTheShim(["python3", BLOCKING, String(port), cookie("pyenv")], port, { env });
  }, 60_000);

  /** Launchers that start the server before it binds, and their command line for a port and cookie. */
  const launchers: [string, (port: number, cookie: string) => string[]][] = [
    ["sh -c 'cd app && python3 server.py; true' (the shell forks the server)", (p, c) => ["sh", "-c", `cd ${SERVERS} && python3 blocking.py ${p} ${c}; true`]],
    ["env VAR=x python3 server.py", (p, c) => ["env", "FIXTURE_VAR=x", "python3", BLOCKING, String(p), c]],
    ["nice python3 server.py", (p, c) => ["nice", "-n", "1", "python3", BLOCKING, String(p), c]],
    ["setpriv python3 server.py", (p, c) => ["setpriv", "--no-new-privs", "python3", BLOCKING, String(p), c]],
    ["a daemonizing launcher (setsid -f: fork, setsid, exec) before the server binds", (p, c) => ["setsid", "-f", "python3", BLOCKING, String(p), c]],
    ["a launcher that runs the server with system() (Python's os.system)", (p, c) => ["python3", "-c", `import os; os.system("exec python3 ${BLOCKING} ${p} ${c}")`]],
  ];
  for (const [name, argv] of launchers) {
    test(name, async () => {
      const port = await freePort();
      await keepsTheShim(argv(port, cookie("launched")), port);
    }, 60_000);
  }

  test("fork-only workers (a prefork pool): each has the shim and --status lists them as workers", async () => {
    const port = await freePort();
    const s = serve(["python3", join(SERVERS, "prefork.py"), String(port), cookie("prefork")]);
    try {
      await answeringPid(port, s);
      const workers = () => groupMembers(s.pgid).filter((m) => m.ppid === s.pid);
      await waitFor(() => workers().length === 3, `the 3 workers (output: ${s.output()})`);
      for (const w of workers()) expect(shimLibrary(w.pid)).toBeDefined();
      await waitFor(() => {
        const rows = statusRows();
        return workers().every((w) => rows.some((r) => r.pid === w.pid && r.state === "worker"));
      }, "--status to list the workers");
      expect(procStat(s.pid)?.state).not.toBe("Z");
    } finally {
      s.killGroup();
    }
  }, 60_000);
});
