/**
 * Static programs when seccomp user notification fails them. Where the seccomp() system call is
 * unavailable (a container's seccomp profile: EPERM; a kernel without seccomp: ENOSYS), a static
 * program is refused with one line that says why, and nothing starts.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { freePort, request } from "../helpers/net";
import { processesTitled, waitFor } from "../helpers/procs";
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

describe("static programs when seccomp fails them", () => {
  const meaning: Record<string, string> = {
    EPERM: "EPERM (Operation not permitted), which means a seccomp profile forbids the call (as a container's may)",
    ENOSYS: "ENOSYS (Function not implemented), which means the kernel has no seccomp, or a seccomp profile hides the call",
  };
  for (const errno of ["EPERM", "ENOSYS"]) {
    test(`seccomp() failing with ${errno}: refused in one line naming the program, the errno, the kernel requirement and --listen-fds; nothing starts`, async () => {
      const deny = staticFixture("deny_seccomp");
      const server = compileC(join(ROOT, "test", "fixtures", "servers", "c_server.c"), { name: "c_server_seccomp_denied", flags: ["-static"] });
      const dir = mkdtempSync(join(tmpdir(), "huptime-seccomp-denied-"));
      const cookie = join(dir, "cookie");
      writeFileSync(cookie, "c1");
      const port = await freePort();
      const s = serve([server, String(port), cookie], { prefix: [deny, errno] });
      try {
        const exit = await exitOf(s);
        expect([exit, s.stdout(), s.stderr()]).toEqual([
          { code: 1, signal: null },
          "",
          `huptime: can't run ${server}: it is statically linked (LD_PRELOAD works through the dynamic loader only), and huptime's way for static programs, seccomp user notification, is unavailable: seccomp() fails here with ${meaning[errno]}; it needs Linux 5.9 or later with the seccomp() system call allowed; if the program supports socket activation, run it with --listen ADDR --listen-fds, which needs neither\n`,
        ]);
        expect(processesTitled(server)).toEqual([]);
        expect((await request(port, "/", 2000)).ok).toBe(false);
      } finally {
        s.killGroup();
      }
    }, 60_000);
  }
});
