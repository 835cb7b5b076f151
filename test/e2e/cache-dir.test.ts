/**
 * The private library directory (HUPTIME_CACHE_DIR, its `status` subdirectory and the preload
 * library in it): huptime refuses, on one line naming the path and saying what to do, and without
 * starting the program, a directory or library that is a symbolic link, not what it should be, or
 * another user's; it replaces a library of ours whose content is wrong, and makes a directory of
 * ours private again. A restart refuses to exec without the library it was loaded from.
 */
import { describe, expect, test } from "bun:test";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { runCli } from "../helpers/cli";
import { libraryFile } from "../helpers/preload";
import { waitFor } from "../helpers/procs";

const STRANGER = 12345;

/** A fresh place for a library directory (`dir` does not exist yet) and an attacker's file. */
function place(): { root: string; dir: string; attacker: string } {
  const root = mkdtempSync(join(tmpdir(), "huptime-cachedir-"));
  const attacker = join(root, "attacker.so");
  writeFileSync(attacker, "not a library\n");
  return { root, dir: join(root, "huptime"), attacker };
}

function runWith(dir: string) {
  return runCli(["sh", "-c", "echo RAN"], { env: { ...process.env, HUPTIME_CACHE_DIR: dir } });
}

/** The run was refused: status 1, the program did not run, one line naming `path` and a remedy. */
function expectRefused(r: ReturnType<typeof runWith>, path: string, why: RegExp) {
  expect(r.code).toBe(1);
  expect(r.stdout).not.toContain("RAN");
  const lines = r.stderr.trimEnd().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toStartWith(`huptime: refusing the `);
  expect(lines[0]).toContain(path);
  expect(lines[0]).toMatch(why);
  expect(lines[0]).toMatch(/\((remove it|set HUPTIME_CACHE_DIR)[^)]*\)$/);
}

describe("the library directory", () => {
  test("a symbolic link to a directory is refused, naming the directory", () => {
    const p = place();
    mkdirSync(join(p.root, "real"), { mode: 0o700 });
    symlinkSync(join(p.root, "real"), p.dir);
    expectRefused(runWith(p.dir), p.dir, /library directory .*: it is a symbolic link/);
  });

  test("a dangling symbolic link is refused, and nothing is created behind it", () => {
    const p = place();
    symlinkSync(join(p.root, "elsewhere"), p.dir);
    expectRefused(runWith(p.dir), p.dir, /it is a symbolic link/);
    expect(existsSync(join(p.root, "elsewhere"))).toBe(false);
  });

  test("a file where the directory should be is refused", () => {
    const p = place();
    writeFileSync(p.dir, "");
    expectRefused(runWith(p.dir), p.dir, /it is not a directory/);
  });

  test("another user's directory is refused", () => {
    const p = place();
    mkdirSync(p.dir, { mode: 0o700 });
    chownSync(p.dir, STRANGER, STRANGER);
    expectRefused(runWith(p.dir), p.dir, new RegExp(`owned by uid ${STRANGER}, not by you`));
  });

  test("a directory of ours that others can enter is made private (0700) and used", () => {
    const p = place();
    mkdirSync(p.dir);
    chmodSync(p.dir, 0o777);
    const r = runWith(p.dir);
    expect(r.stdout).toBe("RAN\n");
    expect(statSync(p.dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(p.dir, "status")).mode & 0o777).toBe(0o700);
  });

  test("a path LD_PRELOAD cannot carry (a space) is refused", () => {
    const p = place();
    const dir = join(p.root, "with space");
    const r = runWith(dir);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("RAN");
    expect(r.stderr.trimEnd().split("\n")).toEqual([`huptime: can't use the library directory ${dir}: LD_PRELOAD cannot carry a path with spaces or colons (set HUPTIME_CACHE_DIR to a private directory of yours)`]);
  });

  test("a relative HUPTIME_CACHE_DIR is made absolute (every exec reads LD_PRELOAD again)", () => {
    const p = place();
    // The shell changes directory, then execs a program that prints the library it mapped (the
    // launcher's exec carries the shim): found only through an absolute path.
    const script = 'cd / && exec grep -m1 -o "/[^ ]*/huptime-[0-9a-f]*[.]so" /proc/self/maps';
    const r = runCli(["sh", "-c", script], { env: { ...process.env, HUPTIME_CACHE_DIR: "huptime" }, cwd: p.root });
    expect(r.stdout.trim()).toBe(join(p.dir, libraryFile().name));
  });
});

describe("the state directory", () => {
  test("a symbolic link is refused, naming it", () => {
    const p = place();
    mkdirSync(p.dir, { mode: 0o700 });
    mkdirSync(join(p.root, "real"), { mode: 0o700 });
    symlinkSync(join(p.root, "real"), join(p.dir, "status"));
    expectRefused(runWith(p.dir), join(p.dir, "status"), /state directory .*: it is a symbolic link/);
  });

  test("another user's is refused", () => {
    const p = place();
    mkdirSync(join(p.dir, "status"), { recursive: true, mode: 0o700 });
    chownSync(join(p.dir, "status"), STRANGER, STRANGER);
    expectRefused(runWith(p.dir), join(p.dir, "status"), new RegExp(`owned by uid ${STRANGER}`));
  });
});

describe("the preload library", () => {
  test("a symbolic link to someone's file is refused and that file is untouched", () => {
    const p = place();
    mkdirSync(p.dir, { mode: 0o700 });
    const lib = join(p.dir, libraryFile().name);
    symlinkSync(p.attacker, lib);
    const before = statSync(p.attacker);
    expectRefused(runWith(p.dir), lib, /preload library .*: it is a symbolic link/);
    expect(readFileSync(p.attacker, "utf8")).toBe("not a library\n");
    expect(statSync(p.attacker).mtimeMs).toBe(before.mtimeMs);
    expect(lstatSync(lib).isSymbolicLink()).toBe(true);
  });

  test("another user's file is refused and left as it is", () => {
    const p = place();
    mkdirSync(p.dir, { mode: 0o700 });
    const lib = join(p.dir, libraryFile().name);
    writeFileSync(lib, "planted\n");
    chownSync(lib, STRANGER, STRANGER);
    expectRefused(runWith(p.dir), lib, new RegExp(`preload library .*: it is owned by uid ${STRANGER}`));
    expect(readFileSync(lib, "utf8")).toBe("planted\n");
  });

  test("a directory at its path is refused", () => {
    const p = place();
    mkdirSync(join(p.dir, libraryFile().name), { recursive: true });
    chmodSync(p.dir, 0o700);
    expectRefused(runWith(p.dir), join(p.dir, libraryFile().name), /it is not a regular file/);
  });

  test("a file of ours with other content is replaced (said once) and the program runs", () => {
    const p = place();
    mkdirSync(p.dir, { mode: 0o700 });
    const { name, content } = libraryFile();
    const lib = join(p.dir, name);
    writeFileSync(lib, content.subarray(0, 1000), { mode: 0o500 });
    const r = runWith(p.dir);
    expect(r.stdout).toBe("RAN\n");
    expect(r.stderr).toMatch(new RegExp(`^huptime\\[\\d+\\] gen=0: replacing the preload library ${lib}: its content is not what this huptime wrote`));
    expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(readFileSync(lib).equals(content)).toBe(true);
    expect(statSync(lib).mode & 0o777).toBe(0o500);
    // Intact now: nothing more to say.
    expect(runWith(p.dir).stderr).toBe("");
  });
});

describe("a restart needs the library it was loaded from", () => {
  for (const mode of ["fork", "exec"]) {
    test(`${mode} mode: library gone, the restart is refused and the old code serves; written again, the next restart works`, async () => {
      const p = place();
      const env = { ...process.env, HUPTIME_CACHE_DIR: p.dir };
      const { app, port, s } = await serveApp("v1", mode === "exec" ? ["--exec"] : [], env);
      try {
        const lib = join(p.dir, libraryFile().name);
        rmSync(lib);
        app.write(appSource("v2"));
        process.kill(s.pid, "SIGHUP");
        await waitFor(() => s.output().includes("can't restart"), "the refusal");
        expect(s.output()).toContain(`can't restart: the preload library ${lib} was removed (HUPTIME_CACHE_DIR must last as long as the program)`);
        expect(s.output()).toContain("this generation keeps serving");
        await waitForVersion(port, "v1");
        symlinkSync(p.attacker, lib);
        process.kill(s.pid, "SIGHUP");
        await waitFor(() => s.output().includes("is now a symbolic link"), "the second refusal");
        await waitForVersion(port, "v1");
        rmSync(lib);
        // huptime still finds it (the library it maps is deleted now), and writes the library again.
        expect(runCli(["--status"], { env }).stdout.split("\n")).toContain(String(s.pid));
        expect(existsSync(lib)).toBe(true);
        process.kill(s.pid, "SIGHUP");
        await waitForVersion(port, "v2");
      } finally {
        s.killGroup();
      }
    }, 40_000);
  }
});
