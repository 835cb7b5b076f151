/**
 * scripts/install and scripts/uninstall, and what they install: the executable, the man page and
 * the bash completion, both generated from the CLI's option definitions (they cannot drift).
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, runCli } from "../helpers/cli";

const sh = (cmd: string) => spawnSync("bash", ["-c", cmd], { encoding: "utf8", cwd: ROOT, timeout: 120_000 });

/** The long options --help lists. */
function helpOptions(): string[] {
  return [...new Set([...runCli(["--help"]).stdout.matchAll(/^\s+(--[a-z-]+)/gm)].map((m) => m[1]))];
}

test("install to a prefix, run from there, uninstall without leftovers", () => {
  const prefix = mkdtempSync(join(tmpdir(), "huptime-prefix-"));
  const inst = sh(`scripts/install --prefix ${prefix}`);
  expect(inst.status, inst.stderr).toBe(0);
  const files = ["bin/huptime", "share/man/man1/huptime.1", "share/bash-completion/completions/huptime"].map((f) => join(prefix, f));
  for (const f of files) expect(existsSync(f)).toBe(true);
  expect(statSync(files[0]).mode & 0o777).toBe(0o755);
  const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
  expect(sh(`${files[0]} --version`).stdout.trim()).toBe(version);
  const un = sh(`scripts/uninstall --prefix ${prefix}`);
  expect(un.status, un.stderr).toBe(0);
  for (const f of files) expect(existsSync(f)).toBe(false);
  expect(sh(`scripts/install --bogus`).status).toBe(2);
});

test("the man page covers every option and renders without warnings", () => {
  const page = readFileSync(join(ROOT, "dist", "huptime.1"), "utf8");
  const opts = helpOptions();
  expect(opts.length).toBeGreaterThan(15);
  for (const o of opts) expect(page, o).toContain(o.replace(/-/g, "\\-"));
  for (const section of ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "SIGNALS", "ENVIRONMENT", "EXIT STATUS", "EXAMPLES", "LIMITATIONS"]) {
    expect(page).toContain(`.SH ${section}`);
  }
  const r = sh(`groff -man -ww -z ${join(ROOT, "dist", "huptime.1")}`);
  expect(r.status).toBe(0);
  expect(r.stderr).toBe("");
  const shown = sh(`MANWIDTH=100 man -l ${join(ROOT, "dist", "huptime.1")}`);
  expect(shown.status, shown.stderr).toBe(0);
  expect(shown.stdout).toContain("zero");
  expect(shown.stdout).toContain("drain");
});

test("bash completion: options after huptime, commands for the program, files after it", () => {
  const complete = (words: string[]) =>
    sh(`source dist/huptime.bash; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _huptime; printf '%s\\n' "\${COMPREPLY[@]}"`).stdout.trim().split("\n");
  expect(complete(["huptime", "--dra"])).toEqual(["--drain-timeout", "--drain-idle"]);
  expect(complete(["huptime", "--ex"])).toEqual(["--exec"]);
  expect(complete(["huptime", "--multi", "2", "pytho"])).toContain("python3");
  expect(complete(["huptime", "--exec", "bash", "scripts/bui"])).toEqual(["scripts/build"]);
  for (const o of helpOptions()) expect(complete(["huptime", o])).toContain(o);
});
