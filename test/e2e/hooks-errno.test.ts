/**
 * The hooks do not change what a program sees (libeatmydata style): one C program calls every
 * interposed function the ways that fail (EBADF, EINVAL, ENOTSOCK, EAGAIN, EINTR, ...) and a few
 * that succeed, with errno set to a sentinel before each call, and prints one line per case. Its
 * output under huptime (fork and exec mode) must equal its output run bare.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, runCli } from "../helpers/cli";
import { compileC } from "../helpers/gcc";

const source = join(ROOT, "test", "fixtures", "errno", "errno_cases.c");

/** The functions the preload library interposes (its exported names, napi's aside). */
function hookedFunctions(): string[] {
  const r = spawnSync("nm", ["-D", "--defined-only", join(ROOT, "dist", "huptime.node")], { encoding: "utf8" });
  return r.stdout.trim().split("\n").map((l) => l.split(" ").pop()!).filter((n) => n !== "napi_register_module_v1");
}

describe("errno and return values under the preload", () => {
  let program = "";
  let bare: { status: number | null; stdout: string };
  beforeAll(() => {
    program = compileC(source, { flags: ["-pthread"] });
    bare = spawnSync(program, [], { encoding: "utf8", timeout: 30_000 });
  });

  test("the program runs bare and covers every hooked function", () => {
    expect(bare.status).toBe(0);
    const lines = bare.stdout.trim().split("\n");
    expect(lines.at(-1)).toBe("done");
    const hooks = hookedFunctions();
    expect(hooks.length).toBeGreaterThan(20);
    for (const h of hooks) {
      const covered = lines.some((l) => l.startsWith(`${h}(`) || l.startsWith(`${h}:`) || l.startsWith(`${h} `) || l.startsWith(`syscall(${h},`));
      expect(covered, `no case calls ${h}`).toBe(true);
    }
  });

  for (const mode of ["--fork", "--exec"]) {
    test(`huptime ${mode}: the same output, line for line`, () => {
      const under = runCli([mode, program], { timeoutMs: 30_000 });
      expect(under.code).toBe(0);
      expect(under.stdout.split("\n")).toEqual(bare.stdout.split("\n"));
    }, 40_000);
  }
});
