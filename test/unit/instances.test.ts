/** Reading processes from /proc (src/instances.ts): pids, command lines, stat fields, liveness. */
import { afterEach, expect, test } from "bun:test";
import { chmodSync, copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allPids, isRunning, procStat, readArgv } from "../../src/instances";
import { waitFor } from "../helpers/procs";
import { spawnGroup, type Group } from "../helpers/spawn";

const started: Group[] = [];
afterEach(() => started.splice(0).forEach((g) => g.killGroup()));

function start(argv: string[]): Group {
  const g = spawnGroup(argv);
  started.push(g);
  return g;
}

test("allPids lists this process and a child it started", () => {
  const g = start(["sleep", "30"]);
  expect(allPids()).toContain(process.pid);
  expect(allPids()).toContain(g.pid);
});

test("readArgv keeps empty arguments, the last one too; undefined once the process is gone", async () => {
  const argv = ["/bin/sh", "-c", "sleep 30; :", "sh", "", "x y", ""];
  const g = start(argv);
  await waitFor(() => readArgv(g.pid)?.[0] === "/bin/sh", "sh to exec");
  expect(readArgv(g.pid)).toEqual(argv);
  g.killGroup();
  await g.exited;
  expect(readArgv(g.pid)).toBeUndefined();
});

test("procStat reads past a command name holding ') ' and spaces; isRunning turns false at exit", async () => {
  const odd = join(mkdtempSync(join(tmpdir(), "huptime-instances-")), "a) b (c");
  copyFileSync("/bin/sleep", odd);
  chmodSync(odd, 0o755);
  const g = start([odd, "30"]);
  await waitFor(() => readArgv(g.pid)?.[0] === odd, "the copy to exec");
  expect(procStat(g.pid)).toMatchObject({ ppid: process.pid, pgrp: g.pid });
  expect(isRunning(g.pid)).toBe(true);
  g.killGroup();
  await g.exited;
  expect(isRunning(g.pid)).toBe(false);
  expect(procStat(g.pid)).toBeUndefined();
});
