/**
 * scripts/package deb|rpm: packages with the right name, version, architecture and license; the
 * .deb installs with dpkg -i, runs, and uninstalls cleanly; the .rpm's metadata and file list.
 */
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../helpers/cli";

const sh = (cmd: string) => spawnSync("bash", ["-c", cmd], { encoding: "utf8", cwd: ROOT, timeout: 300_000 });
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
const FILES = ["/usr/bin/huptime", "/usr/share/bash-completion/completions/huptime", "/usr/share/doc/huptime/copyright", "/usr/share/man/man1/huptime.1.gz"];

test(".deb: metadata, dpkg -i, huptime --version, dpkg -r leaves nothing", () => {
  const built = sh("scripts/package deb");
  expect(built.status, built.stderr).toBe(0);
  const deb = join(ROOT, built.stdout.trim());
  const arch = sh("dpkg --print-architecture").stdout.trim();
  expect(deb).toEndWith(`huptime_${pkg.version}_${arch}.deb`);
  expect(sh(`dpkg-deb -f ${deb} Package Version Architecture`).stdout).toBe(`Package: huptime\nVersion: ${pkg.version}\nArchitecture: ${arch}\n`);
  const listed = sh(`dpkg-deb -c ${deb}`).stdout;
  for (const f of FILES) expect(listed).toContain(`.${f}`);
  try {
    const inst = sh(`dpkg -i ${deb}`);
    expect(inst.status, inst.stderr).toBe(0);
    expect(sh("/usr/bin/huptime --version").stdout.trim()).toBe(pkg.version);
    expect(sh("/usr/bin/huptime --exec true").status).toBe(0);
  } finally {
    const rm = sh("dpkg --purge huptime");
    expect(rm.status, rm.stderr).toBe(0);
  }
  for (const f of FILES) expect(existsSync(f)).toBe(false);
}, 300_000);

test(".rpm: rpm -qip metadata and file list", () => {
  const built = sh("scripts/package rpm");
  expect(built.status, built.stderr).toBe(0);
  const rpm = join(ROOT, built.stdout.trim());
  const arch = sh("uname -m").stdout.trim();
  expect(rpm).toEndWith(`huptime-${pkg.version}-1.${arch}.rpm`);
  const info = sh(`rpm -qip ${rpm}`).stdout;
  expect(info).toMatch(/^Name\s*: huptime$/m);
  expect(info).toMatch(new RegExp(`^Version\\s*: ${pkg.version.replace(/\./g, "\\.")}$`, "m"));
  expect(info).toMatch(new RegExp(`^License\\s*: ${pkg.license}$`, "m"));
  expect(info).toMatch(new RegExp(`^Architecture: ${arch}$`, "m"));
  expect(info).toContain(pkg.description);
  expect(sh(`rpm -qlp ${rpm}`).stdout.trim().split("\n").sort()).toEqual([...FILES].sort());
}, 300_000);
