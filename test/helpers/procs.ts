/** Looking at processes through /proc: groups, liveness, fds. */
import { readdirSync, readlinkSync } from "node:fs";
import { allPids, isRunning, procStat, readArgv, type ProcStat } from "../../src/instances";

/** Whether `pid` exists and is not a zombie. */
export const alive = isRunning;

/** A live process of a group: its pid and /proc/PID/stat fields. */
export interface Member extends ProcStat {
  pid: number;
}

/** Live (non-zombie) processes in process group `pgid`. */
export function groupMembers(pgid: number): Member[] {
  const out: Member[] = [];
  for (const pid of allPids()) {
    const s = procStat(pid);
    if (s && s.pgrp === pgid && s.state !== "Z" && s.state !== "X") out.push({ pid, ...s });
  }
  return out;
}

/** Number of open fds of `pid`. */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** What each fd of `pid` points to (for diagnostics). */
export function fdTargets(pid: number): string[] {
  return readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return `${fd} -> ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
    } catch {
      return `${fd} -> ?`;
    }
  });
}

/** Waits until `pred()` is true, polling every `stepMs`; throws `what` after `timeoutMs`. */
export async function waitFor(pred: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000, stepMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await pred()) return;
    await Bun.sleep(stepMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Pids of running processes that have `path` open. */
export function processesWithOpen(path: string): number[] {
  return allPids().filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => readlinkSafe(`/proc/${pid}/fd/${fd}`) === path) && alive(pid);
    } catch {
      return false;
    }
  });
}

function readlinkSafe(p: string): string {
  try {
    return readlinkSync(p);
  } catch {
    return "";
  }
}

/** Pids of running processes whose command line (or process title) contains `text`. */
export function processesTitled(text: string): number[] {
  return allPids().filter((pid) => (readArgv(pid)?.join(" ").includes(text) ?? false) && alive(pid));
}

/** SIGKILL to each of `pids` (test cleanup; they may be gone already). */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}
