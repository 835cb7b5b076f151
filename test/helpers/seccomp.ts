/** Helpers for tests of static programs run under seccomp (src/commands/seccomp.ts). */
import { join } from "node:path";
import { procStat } from "../../src/instances";
import { ROOT } from "./cli";
import { compileC } from "./gcc";
import type { Group } from "./spawn";

/**
 * test/fixtures/servers/c_server.c linked statically (so run under seccomp); its cookie file's
 * second word says how it waits for connections (accept, poll, select, poll-other).
 */
export function staticCServer(): string {
  return compileC(join(ROOT, "test", "fixtures", "servers", "c_server.c"), { name: "c_server_static", flags: ["-static"] });
}

/**
 * Kills huptime's process group and each generation's (a generation is the leader of its own
 * group, and one that ignores SIGTERM outlives huptime).
 */
export function killSeccompRun(s: Group): void {
  s.killGroup();
  for (const m of s.output().matchAll(/generation \d+ is pid (\d+)/g)) {
    const pid = Number(m[1]);
    if (procStat(pid)?.pgrp === pid) process.kill(-pid, "SIGKILL");
  }
}
