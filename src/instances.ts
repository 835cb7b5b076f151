/**
 * Finding the running programs a command line refers to: processes of this user that run under
 * huptime (its library is mapped), whose command line matches, excluding huptime's own processes. Read from /proc only: the served programs are never disturbed.
 */
import { readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { basename } from "node:path";
import { resolveCommand } from "./resolve";

/** A managed process. */
export interface Instance {
  pid: number;
  ppid: number;
  argv: string[];
  /** For a static program run under seccomp: the huptime process that supervises it, which is
   * the one to signal (SIGHUP restarts, SIGTERM stops); undefined for a preloaded program. */
  supervisor?: number;
}

/** Children of `pid` (of this process by default), from every task's children list in /proc. */
export function childPids(pid: number | "self" = "self"): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/** Every process under `pid` (this process by default), each one's children after it. */
export function descendantPids(pid: number | "self" = "self"): number[] {
  const out: number[] = [];
  for (const todo = childPids(pid); todo.length > 0; ) {
    const p = todo.shift()!;
    out.push(p);
    todo.push(...childPids(p));
  }
  return out;
}

/** Every pid in /proc (processes of any user and state, zombies included). */
export function allPids(): number[] {
  return readdirSync("/proc")
    .filter((name) => /^\d+$/.test(name))
    .map(Number);
}

/** The command line of `pid` (/proc/PID/cmdline split at NULs), or undefined if it is gone. */
export function readArgv(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").filter((_, i, a) => i < a.length - 1 || a[i] !== "");
  } catch {
    return undefined;
  }
}

/** A line of /proc/PID/maps mapping huptime's library (its path has no spaces: see privatedir.ts). */
const SHIM_MAPPING = /\s(\/\S*\/huptime-[0-9a-f]{32}\.so)( \(deleted\))?$/m;

/** The path of huptime's library in the text of a /proc/PID/maps file, if it is mapped there. */
export function shimLibraryIn(maps: string): string | undefined {
  return SHIM_MAPPING.exec(maps)?.[1];
}

/**
 * The path of huptime's library mapped by `pid`, if it runs with it loaded. Read from
 * /proc/PID/maps, not from the environment: the shim takes its variables out of the program's
 * environment, and programs such as nginx overwrite theirs with a process title. A library file
 * removed since (its directory cleaned) still counts: the process still runs it.
 */
export function shimLibrary(pid: number): string | undefined {
  try {
    return shimLibraryIn(readFileSync(`/proc/${pid}/maps`, "latin1"));
  } catch {
    return undefined; // gone, or another user's
  }
}

/** Whether `pid` runs with huptime's library loaded (see [`shimLibrary`]). */
function isManaged(pid: number): boolean {
  return shimLibrary(pid) !== undefined;
}

/** Fields of /proc/PID/stat: state (R, S, Z...), parent pid, process group, start time (clock ticks after boot). */
export interface ProcStat {
  state: string;
  ppid: number;
  pgrp: number;
  start: string;
}

/** Parent pid, process group, state and start time of `pid`, or undefined if it is gone. */
export function procStat(pid: number): ProcStat | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: f[0], ppid: Number(f[1]), pgrp: Number(f[2]), start: f[19] };
  } catch {
    return undefined;
  }
}

/** Real and effective uid of `pid` (/proc/PID/status), or undefined if it is gone. */
export function procUids(pid: number): { real: number; effective: number } | undefined {
  try {
    const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? { real: Number(m[1]), effective: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Whether `pid` is running (not a zombie). */
export function isRunning(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== "Z" && s.state !== "X";
}

/** The number of seccomp filters `pid` runs under (/proc/PID/status), 0 if unknown. */
function seccompFilters(pid: number): number {
  try {
    return Number(/^Seccomp_filters:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Whether `pid` is a static program that its parent, a huptime process, supervises by seccomp
 * (src/commands/seccomp.ts): it runs under one filter more than that parent, the one huptime
 * installed before exec (a --listen-fds child has as many as its parent).
 */
function isSeccompSupervised(pid: number, ppid: number): boolean {
  return isHuptime(ppid) && seccompFilters(pid) > seccompFilters(ppid);
}

/** Whether `pid` runs the huptime executable itself (a --multi supervisor maps the library too). */
function isHuptime(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === process.execPath;
  } catch {
    return false;
  }
}

/** Every running process of this user that runs under huptime, preloaded or supervised by
 * seccomp (never this CLI itself). */
export function managedProcesses(): Instance[] {
  const self = process.pid;
  const out: Instance[] = [];
  for (const pid of allPids()) {
    if (pid === self || isHuptime(pid)) continue;
    const preloaded = isManaged(pid);
    const st = procStat(pid);
    if (!st || st.state === "Z" || (!preloaded && !isSeccompSupervised(pid, st.ppid))) continue;
    const argv = readArgv(pid);
    if (!argv || argv.length === 0) continue;
    out.push({ pid, ppid: st.ppid, argv, supervisor: preloaded ? undefined : st.ppid });
  }
  return out;
}

const INTERPRETERS = /^(python[0-9.]*|node|nodejs|bun|deno|ruby[0-9.]*|perl[0-9.]*|php[0-9.]*|bash|sh|dash|zsh|lua[0-9.]*)$/;

function sameProgram(a: string, b: string): boolean {
  if (a === b || basename(a) === basename(b) && (!a.includes("/") || !b.includes("/"))) return true;
  try {
    return realpathSync(resolveCommand(a)) === realpathSync(resolveCommand(b));
  } catch {
    return false;
  }
}

/**
 * Whether a process's command line matches the one the user gave: the same program and the
 * given arguments as a prefix of its own, or the same after an interpreter (the user names
 * `server.py`, the process runs `python3 server.py`).
 */
export function matches(procArgv: string[], wanted: string[]): boolean {
  if (wanted.length === 0 || procArgv.length === 0) return false;
  const prefix = (argv: string[]) =>
    argv.length >= wanted.length && sameProgram(argv[0], wanted[0]) && wanted.slice(1).every((w, i) => argv[i + 1] === w);
  if (prefix(procArgv)) return true;
  if (INTERPRETERS.test(basename(procArgv[0])) && prefix(procArgv.slice(1))) return true;
  // A process title written over argv (nginx: "nginx: master process nginx -c /etc/x.conf") is
  // one string: look for the command line inside it.
  if (procArgv.length === 1 && procArgv[0].includes(" ")) {
    const words = procArgv[0].split(" ").filter(Boolean);
    return words.some((w, i) => i > 0 && prefix(words.slice(i)));
  }
  return false;
}

/** The matching processes whose parent does not match too (masters, not their workers). */
export function findMasters(wanted: string[], all = managedProcesses()): Instance[] {
  const hits = all.filter((p) => matches(p.argv, wanted));
  const pids = new Set(hits.map((p) => p.pid));
  return hits.filter((p) => !pids.has(p.ppid));
}

/** Every matching process, masters and workers. */
export function findAll(wanted: string[], all = managedProcesses()): Instance[] {
  return all.filter((p) => matches(p.argv, wanted));
}
