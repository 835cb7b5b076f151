/**
 * Static programs when seccomp user notification fails them. Where it is unavailable (a
 * container's seccomp profile: seccomp() fails with EPERM; a kernel without seccomp: ENOSYS; a
 * user-notification filter already installed: huptime's fails with EBUSY), a static program is
 * refused with one line that says why, and nothing starts. When huptime dies while a
 * call of the program waits for its answer, the call fails with ENOSYS (the kernel fails pending
 * calls when the notification fd closes), so do the program's later bind(), listen() and accept()
 * calls, and the program gets SIGTERM (PR_SET_PDEATHSIG). (seccomp.test.ts has the Go server's
 * view of huptime's death: SIGTERM, and a later bind() failing.)
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { procStat } from "../../src/instances";
import { ROOT, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { freePort, request } from "../helpers/net";
import { alive, processesTitled, waitFor } from "../helpers/procs";
import type { Exit, Group } from "../helpers/spawn";

/** A C fixture of test/fixtures/seccomp, built static. */
function staticFixture(name: string): string {
  return compileC(join(ROOT, "test", "fixtures", "seccomp", `${name}.c`), { flags: ["-static"] });
}

/** How `s` ended, once it has (bounded: throws after 30 s). */
async function exitOf(s: Group): Promise<Exit> {
  let exit: Exit | undefined;
  void s.exited.then((e) => (exit = e));
  await waitFor(() => exit !== undefined, `huptime (pid ${s.pid}) to exit; it said:\n${s.output()}`, 30_000);
  return exit!;
}

/** Whether every thread of `pid` is stopped (state T): none of them can answer a notification. */
function allThreadsStopped(pid: number): boolean {
  return readdirSync(`/proc/${pid}/task`).every((tid) => {
    const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).startsWith("T");
  });
}

/** bind's system call number, as /proc/PID/syscall shows it. */
const SYS_BIND = ({ x64: 49, arm64: 200 } as Record<string, number>)[process.arch];

/** The number of the system call `pid` is blocked in (/proc/PID/syscall), or undefined when it runs or is gone. */
function blockedIn(pid: number): number | undefined {
  try {
    const first = readFileSync(`/proc/${pid}/syscall`, "utf8").split(" ")[0];
    return /^\d+$/.test(first) ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

describe("static programs when seccomp fails them", () => {
  /** What fails in each case (container_seccomp.c's modes), as the message says it. */
  const failure: Record<string, string> = {
    EPERM: "seccomp() fails here with EPERM (Operation not permitted), which means a seccomp profile forbids the call (as a container's may)",
    ENOSYS: "seccomp() fails here with ENOSYS (Function not implemented), which means the kernel has no seccomp, or a seccomp profile hides the call",
    LISTENER: "installing huptime's seccomp filter fails here with EBUSY (Device or resource busy), which means another seccomp filter here already uses user notification (there can be one only)",
  };
  for (const [mode, what] of [["EPERM", "seccomp() failing with EPERM"], ["ENOSYS", "seccomp() failing with ENOSYS"], ["LISTENER", "a user-notification filter already installed"]]) {
    test(`${what}: refused in one line naming the program, the call and errno, the kernel requirement and --listen-fds; nothing starts`, async () => {
      const container = staticFixture("container_seccomp");
      const server = compileC(join(ROOT, "test", "fixtures", "servers", "c_server.c"), { name: "c_server_seccomp_denied", flags: ["-static"] });
      const dir = mkdtempSync(join(tmpdir(), "huptime-seccomp-denied-"));
      const cookie = join(dir, "cookie");
      writeFileSync(cookie, "c1");
      const port = await freePort();
      const s = serve([server, String(port), cookie], { prefix: [container, mode] });
      try {
        const exit = await exitOf(s);
        expect([exit, s.stdout(), s.stderr()]).toEqual([
          { code: 1, signal: null },
          "",
          `huptime: can't run ${server}: it is statically linked (LD_PRELOAD works through the dynamic loader only), and huptime's way for static programs, seccomp user notification, is unavailable: ${failure[mode]}; it needs Linux 5.9 or later, the seccomp() system call allowed, and no seccomp user notification already in use; if the program supports socket activation, run it with --listen ADDR --listen-fds, which needs neither\n`,
        ]);
        expect(processesTitled(server)).toEqual([]);
        expect((await request(port, "/", 2000)).ok).toBe(false);
      } finally {
        s.killGroup();
      }
    }, 60_000);
  }

  test("huptime killed while a bind() waits for its answer: that bind() fails with ENOSYS, so do later listen() and bind() (accept4(), not sent to huptime, runs as usual), and the program gets SIGTERM", async () => {
    const program = staticFixture("orphaned_calls");
    const report = join(mkdtempSync(join(tmpdir(), "huptime-seccomp-orphan-")), "report");
    const s = serve([program, report]);
    let pid = 0;
    try {
      await waitFor(() => /generation 1 \(pid \d+\) is ready after/.test(s.output()), `the program to be ready; huptime said:\n${s.output()}`);
      pid = Number(/generation 1 \(pid (\d+)\)/.exec(s.output())![1]);
      const port = Number(/^listening (\d+)\n$/.exec(readFileSync(report, "utf8"))?.[1]);
      expect(port).toBeGreaterThan(0);
      // Every thread of huptime stopped: the program's next call is received by none of them.
      process.kill(s.pid, "SIGSTOP");
      await waitFor(() => allThreadsStopped(s.pid), `every thread of huptime (pid ${s.pid}) to stop`);
      process.kill(pid, "SIGUSR1");
      await waitFor(() => blockedIn(pid) === SYS_BIND, `the program (pid ${pid}) to wait in bind(); it is in system call ${blockedIn(pid)}`);
      expect(readFileSync(report, "utf8")).toBe(`listening ${port}\n`);
      process.kill(s.pid, "SIGKILL");
      await waitFor(() => !alive(pid), `the program (pid ${pid}) to end on SIGTERM; it reported:\n${readFileSync(report, "utf8")}`);
      expect(readFileSync(report, "utf8")).toBe(
        [
          `listening ${port}`,
          "bind() waiting for huptime: -1 ENOSYS",
          "listen() afterwards: -1 ENOSYS",
          "accept4() afterwards: -1 EAGAIN", // a non-blocking listener with nothing queued
          "bind() afterwards: -1 ENOSYS",
          "SIGTERM",
          "",
        ].join("\n"),
      );
    } finally {
      s.killGroup();
      if (pid && procStat(pid)?.pgrp === pid) process.kill(-pid, "SIGKILL");
    }
  }, 60_000);
});
