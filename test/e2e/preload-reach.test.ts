/**
 * Programs LD_PRELOAD cannot reach are refused with the reason, not started without huptime's
 * hooks: those the kernel runs in
 * secure-execution mode for the invoking user (setuid or setgid to other ids, file capabilities
 * for a user other than root). Each case is first checked by experiment: the probe run directly
 * with LD_PRELOAD says whether the kernel set AT_SECURE and whether the library got mapped. What
 * the kernel ignores (a nosuid mount, a setuid bit to one's own uid, capabilities for root) is
 * not refused, and the program then has the library. A static program is run under seccomp
 * instead (test/e2e/seccomp.test.ts), and --listen-fds needs no preload either.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HUPTIME, ROOT, runCli, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { freePort } from "../helpers/net";
import { waitFor } from "../helpers/procs";
import { asUser, secondUser, sharedHuptime, userEnv } from "../helpers/users";

const source = join(ROOT, "test", "fixtures", "reach", "probe.c");
const user = secondUser();
let dir = "";
let shared = { dir: "", huptime: "" };
/** A world-readable copy of the preload library, for the direct experiments. */
let library = "";
let dynamic = "";
let static_ = "";

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "huptime-reach-"));
  chmodSync(dir, 0o755);
  shared = sharedHuptime();
  library = join(dir, "huptime-probe.so");
  copyFileSync(join(ROOT, "dist", "huptime.node"), library);
  chmodSync(library, 0o755);
  dynamic = compileC(source);
  static_ = compileC(source, { name: "probe-static", flags: ["-static"] });
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(shared.dir, { recursive: true, force: true });
});

/** A copy of `program` in the test directory with this owner, group and mode (set-id bits too). */
function copy(program: string, name: string, uid: number, gid: number, mode: number, where = dir): string {
  const path = join(where, name);
  copyFileSync(program, path);
  chownSync(path, uid, gid);
  chmodSync(path, mode); // after chown, which clears set-id bits
  return path;
}

/** What the probe says about itself: `secure=S preloaded=P listen_fds=N`. */
interface Probe {
  secure: string;
  preloaded: string;
}

function parse(stdout: string): Probe | undefined {
  const m = /secure=(\d) preloaded=(\d)/.exec(stdout);
  return m ? { secure: m[1], preloaded: m[2] } : undefined;
}

/** `argv` as root, or as the second user; `extra` setpriv options (e.g. supplementary groups). */
function run(argv: string[], as: "root" | "user", extra: string[] = []) {
  const setpriv = as === "user" ? asUser(user).slice(0, -1) : extra.length ? ["setpriv"] : [];
  const cmd = setpriv.length ? [...setpriv, ...extra, "--", ...argv] : argv;
  const env = as === "user" ? userEnv(user) : process.env;
  const r = spawnSync(cmd[0], cmd.slice(1), { env, encoding: "utf8", timeout: 20_000, cwd: dir });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** The probe run directly with LD_PRELOAD: the experiment that says what the kernel does. */
function direct(program: string, as: "root" | "user", extra: string[] = []): Probe | undefined {
  return parse(run(["env", `LD_PRELOAD=${library}`, program], as, extra).stdout);
}

/** The probe run under huptime (the shared copy, so the second user can run it too). */
function underHuptime(program: string, as: "root" | "user", extra: string[] = []) {
  return run([as === "root" ? HUPTIME : shared.huptime, program], as, extra);
}

/** Asserts a refusal: one line naming the file and the reason, status 1, the program not run. */
function expectRefused(r: ReturnType<typeof run>, program: string, reason: RegExp) {
  expect(r.code, r.stderr).toBe(1);
  expect(r.stdout).toBe("");
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith(`huptime: can't preload huptime into ${program}: `);
  expect(lines[0]).toMatch(reason);
}

/** Asserts the program ran under huptime with the library mapped. */
function expectPreloaded(r: ReturnType<typeof run>) {
  expect(r.code, r.stderr).toBe(0);
  expect(parse(r.stdout)).toEqual({ secure: "0", preloaded: "1" });
}

describe("programs LD_PRELOAD cannot reach", () => {
  test("a dynamic program is run with the library, as the experiment says", () => {
    expect(direct(dynamic, "root")).toEqual({ secure: "0", preloaded: "1" });
    expectPreloaded(underHuptime(dynamic, "root"));
    const mine = copy(dynamic, "probe-setuid-self", 0, 0, 0o6755);
    expect(direct(mine, "root")).toEqual({ secure: "0", preloaded: "1" });
    expectPreloaded(underHuptime(mine, "root"));
  });

  test("setuid to another user, run by root: refused", () => {
    const p = copy(dynamic, "probe-setuid-user", user.uid, 0, 0o4755);
    expect(direct(p, "root")).toEqual({ secure: "1", preloaded: "0" });
    expectRefused(underHuptime(p, "root"), p, new RegExp(`it is setuid to uid ${user.uid} and you are uid 0, so the kernel runs it in secure-execution mode, which ignores LD_PRELOAD; run huptime as uid ${user.uid}, drop the bit \\(chmod u-s .*\\), or use --listen-fds`));
  });

  test("setuid root, run by another user: refused, also when it can only be executed, not read", () => {
    for (const mode of [0o4755, 0o4711]) {
      const p = copy(dynamic, `probe-setuid-root-${mode.toString(8)}`, 0, 0, mode);
      expect(direct(p, "user")).toEqual({ secure: "1", preloaded: "0" });
      expectRefused(underHuptime(p, "user"), p, new RegExp(`it is setuid to uid 0 and you are uid ${user.uid}, so the kernel runs it in secure-execution mode`));
    }
  });

  test("setgid to another group: refused, even with that group as a supplementary one; to one's own group: run", () => {
    const p = copy(dynamic, "probe-setgid", 0, user.gid, 0o2755);
    expect(direct(p, "root")).toEqual({ secure: "1", preloaded: "0" });
    expectRefused(underHuptime(p, "root"), p, new RegExp(`it is setgid to gid ${user.gid} and your group is gid 0, .*chmod g-s`));
    // The kernel compares with the real gid only: a supplementary group does not help.
    const supplementary = [`--groups=${user.gid}`];
    expect(direct(p, "root", supplementary)).toEqual({ secure: "1", preloaded: "0" });
    expectRefused(underHuptime(p, "root", supplementary), p, /it is setgid to gid/);
    expect(direct(p, "user")).toEqual({ secure: "0", preloaded: "1" });
    expectPreloaded(underHuptime(p, "user"));
    // Setgid without group execute is not set-id at all (mandatory locking).
    const locking = copy(dynamic, "probe-setgid-locking", 0, user.gid, 0o2705);
    expect(direct(locking, "root")).toEqual({ secure: "0", preloaded: "1" });
    expectPreloaded(underHuptime(locking, "root"));
  });

  test("file capabilities: refused for another user, run for root", () => {
    const p = copy(dynamic, "probe-caps", 0, 0, 0o755);
    const set = spawnSync("setcap", ["cap_net_bind_service+ep", p], { encoding: "utf8" });
    expect(set.status, `setcap (package libcap2-bin): ${set.stderr}${set.error ?? ""}`).toBe(0);
    expect(direct(p, "user")).toEqual({ secure: "1", preloaded: "0" });
    expectRefused(underHuptime(p, "user"), p, /it has file capabilities \(getcap .*\) and you are not root, .*setcap -r/);
    expect(direct(p, "root")).toEqual({ secure: "0", preloaded: "1" });
    expectPreloaded(underHuptime(p, "root"));
  });

  test("on a nosuid mount the set-id bits and capabilities are ignored: nothing refused", () => {
    const mnt = join(dir, "nosuid");
    mkdirSync(mnt);
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "nosuid,mode=755", "tmpfs", mnt], { encoding: "utf8" });
    expect(m.status, `mount: ${m.stderr}`).toBe(0);
    try {
      const setuid = copy(dynamic, "probe-setuid-user", user.uid, 0, 0o4755, mnt);
      expect(direct(setuid, "root")).toEqual({ secure: "0", preloaded: "1" });
      expectPreloaded(underHuptime(setuid, "root"));
      const caps = copy(dynamic, "probe-caps", 0, 0, 0o755, mnt);
      expect(spawnSync("setcap", ["cap_net_bind_service+ep", caps]).status).toBe(0);
      expect(direct(caps, "user")).toEqual({ secure: "0", preloaded: "1" });
      expectPreloaded(underHuptime(caps, "user"));
    } finally {
      spawnSync("umount", [mnt]);
    }
  });

  test("a static program (or a script it interprets) runs under seccomp, without the library; --multi and --exec are refused; --listen-fds runs it", async () => {
    const p = copy(static_, "probe-static", 0, 0, 0o755);
    expect(direct(p, "root")).toEqual({ secure: "0", preloaded: "0" });
    // The probe exits at once (status 0): never ready, its own exit status passes through.
    const bySeccomp = underHuptime(p, "root");
    expect(bySeccomp.code, bySeccomp.stderr).toBe(0);
    expect(bySeccomp.stdout).toBe("secure=0 preloaded=0 listen_fds=-\n");
    expect(bySeccomp.stderr).toContain("(a static program: its bind() and listen() go through huptime by seccomp)");
    const script = join(dir, "script");
    writeFileSync(script, `#!${p}\n`, { mode: 0o755 });
    expect(run([HUPTIME, script], "root").stdout).toBe("secure=0 preloaded=0 listen_fds=-\n");
    const multi = run([HUPTIME, "--multi=2", p], "root");
    expect([multi.code, multi.stdout, multi.stderr]).toEqual([1, "", `huptime: --multi cannot be used with ${p}: it is statically linked, and huptime runs static programs in fork mode only\n`]);
    const exec = run([HUPTIME, "--exec", p], "root");
    expect(exec.code).toBe(1);
    expect(exec.stderr).toStartWith(`huptime: --exec cannot restart ${p}: it is statically linked, and a restart in place (same pid) needs huptime's code inside the program`);
    const port = await freePort();
    const s = serve(["--listen", `127.0.0.1:${port}`, "--listen-fds", p]);
    try {
      await waitFor(() => /is ready after/.test(s.output()), `the static probe to be ready; huptime said:\n${s.output()}`);
      expect(s.output()).toContain("secure=0 preloaded=0 listen_fds=1");
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code).toBe(0);
    } finally {
      s.killGroup();
    }
  }, 20_000);

  test("a file that is no program is left to the exec, which says why (status 126)", () => {
    const text = join(dir, "not-a-program");
    writeFileSync(text, "hello\n", { mode: 0o755 });
    const r = runCli([text]);
    expect(r.code).toBe(126);
    expect(r.stderr).toBe(`huptime: can't execute ${text}: Exec format error (os error 8)\n`);
  });
});
