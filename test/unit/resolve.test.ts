import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveCommand } from "../../src/resolve";
import { HuptimeError } from "../../src/errors";

function code(f: () => unknown): number | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof HuptimeError ? e.exitCode : -1;
  }
  return undefined;
}

describe("resolveCommand", () => {
  const dir = mkdtempSync(join(tmpdir(), "huptime-resolve-"));
  writeFileSync(join(dir, "runme"), "#!/bin/sh\n");
  chmodSync(join(dir, "runme"), 0o755);
  writeFileSync(join(dir, "noexec"), "x");
  chmodSync(join(dir, "noexec"), 0o644);

  test("finds a command on PATH", () => {
    expect(resolveCommand("runme", `/nonexistent:${dir}`)).toBe(join(dir, "runme"));
  });
  test("uses a path with a slash as is", () => {
    expect(resolveCommand(join(dir, "runme"), "")).toBe(join(dir, "runme"));
  });
  test("127 when missing, naming the command", () => {
    expect(code(() => resolveCommand("nope-xyz", dir))).toBe(127);
    expect(() => resolveCommand("nope-xyz", dir)).toThrow(/nope-xyz: command not found/);
    expect(code(() => resolveCommand(join(dir, "missing"), dir))).toBe(127);
  });
  test("126 when found but not executable", () => {
    expect(code(() => resolveCommand("noexec", dir))).toBe(126);
    expect(code(() => resolveCommand(join(dir, "noexec"), dir))).toBe(126);
  });
  test("a directory is not a command", () => {
    expect(code(() => resolveCommand(dir, ""))).toBe(127);
  });
});
