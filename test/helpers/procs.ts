/** Looking at processes through /proc: groups, liveness, fds. */
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Parsed fields of /proc/PID/stat that tests use. */
export interface ProcStat {
  pid: number;
  state: string;
  ppid: number;
  pgrp: number;
}

/** /proc/PID/stat, or undefined if the process is gone. */
export function stat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { pid, state: rest[0], ppid: Number(rest[1]), pgrp: Number(rest[2]) };
  } catch {
    return undefined;
  }
}

/** Whether `pid` exists and is not a zombie. */
export function alive(pid: number): boolean {
  const s = stat(pid);
  return s !== undefined && s.state !== "Z" && s.state !== "X";
}

/** Live (non-zombie) processes in process group `pgid`. */
export function groupMembers(pgid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(Number(name));
    if (s && s.pgrp === pgid && s.state !== "Z" && s.state !== "X") out.push(s);
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
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readdirSync(`/proc/${name}/fd`).some((fd) => readlinkSafe(`/proc/${name}/fd/${fd}`) === path) && alive(Number(name))) {
        out.push(Number(name));
      }
    } catch {}
  }
  return out;
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
  return readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").includes(text) && alive(pid);
      } catch {
        return false;
      }
    });
}

/** SIGKILL to each of `pids` (test cleanup; they may be gone already). */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
}
