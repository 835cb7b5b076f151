/**
 * What `huptime --status` reports about each managed process, gathered from /proc, the kernel's
 * socket tables (through the native module) and the state each generation publishes. Read-only:
 * no signal, no ptrace. A non-root user sees only their own processes; root sees everyone's.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { STATUS_SUBDIR } from "./cachedir";
import { allPids, findAll, managedProcesses, matches, procStat, procUids, readArgv, shimLibrary, type Instance } from "./instances";
import { native } from "./native";
import { readPublished, readReceipt, type DrainClosed, type LastRestart, type Published } from "./statusfile";

/** One row of `huptime --status` (these names are the stable `--json` fields). */
export interface StatusRow {
  pid: number;
  ppid: number;
  /** Owner's uid. */
  uid: number;
  /** Generation number (1 for the first start), null when the process publishes none. */
  generation: number | null;
  /** fork, exec, multi, revive; for huptime's own supervisor processes: supervisor. */
  mode: string | null;
  /** starting, serving, restarting, draining; worker for a process forked by a generation;
   * supervising for a --multi/--listen-fds huptime; unknown otherwise. */
  state: string;
  /** `proto address` of each listening socket (tcp, tcp6, udp, udp6, unix). */
  listening: string[];
  /** Open client connections (connected sockets on one of its listening addresses). */
  connections: number;
  /** Connections its drain has closed (idle; past --drain-timeout at a request boundary, or
   * reset); null when it publishes none. */
  closed: DrainClosed | null;
  /** The receipt of its last restart (see statusfile.ts); null when it has none. */
  last_restart: LastRestart | null;
  /** Seconds since the process started. */
  uptime: number;
  /** Its command line. */
  command: string;
}

/** Version of the `--json` document; bumped only when a field changes meaning or goes away. */
export const STATUS_JSON_VERSION = 1;

function uidOf(pid: number): number {
  return procUids(pid)?.real ?? -1;
}

function uptimeOf(start: string): number {
  try {
    const boot = Number(readFileSync("/proc/uptime", "utf8").split(" ")[0]);
    return Math.max(0, Math.round(boot - Number(start) / 100)); // USER_HZ is 100 on Linux
  } catch {
    return 0;
  }
}

/** The status directory a process publishes into: the `status` directory beside the library it
 * maps (the CLI keeps both in one directory, see shim.ts), which for root looking at another
 * user's process is that user's; else `ownDir`. */
function statusDirOf(pid: number, ownDir: string): string {
  const library = shimLibrary(pid);
  return library ? join(dirname(library), STATUS_SUBDIR) : ownDir;
}

/** huptime's own processes that stay around (--multi, --listen-fds supervisors), never this one. */
function supervisors(): Instance[] {
  const out: Instance[] = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    try {
      if (readlinkSync(`/proc/${pid}/exe`) !== process.execPath) continue;
      const argv = readArgv(pid) ?? [];
      const st = procStat(pid);
      if (st && st.state !== "Z" && argv.some((a) => a.startsWith("--multi") || a === "--listen-fds")) {
        out.push({ pid, ppid: st.ppid, argv });
      }
    } catch {}
  }
  return out;
}

/** The command a supervisor runs: its arguments after huptime's own options. */
function supervisedCommand(argv: string[]): string[] {
  const rest = argv.slice(1);
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === "--") return rest.slice(i + 1);
    if (!rest[i].startsWith("-")) return rest.slice(i);
    if (/^--(multi|listen|ready-delay|ready-timeout|drain-timeout|drain-idle|unlink|stop-signal)$/.test(rest[i])) i++; // value follows
  }
  return [];
}

function row(p: Instance, ownDir: string, managedPids: Set<number>, supervisor: boolean): StatusRow | undefined {
  const st = procStat(p.pid);
  if (!st) return undefined;
  const dir = statusDirOf(p.pid, ownDir);
  const pub: Published | undefined = supervisor ? undefined : readPublished(dir, p.pid);
  const sockets = native().processSockets(p.pid);
  let state = pub?.state ?? "unknown";
  if (supervisor) state = "supervising";
  else if (!pub && managedPids.has(st.ppid)) state = "worker";
  return {
    pid: p.pid,
    ppid: st.ppid,
    uid: uidOf(p.pid),
    generation: pub ? pub.generation : null,
    mode: supervisor ? "supervisor" : (pub?.mode ?? null),
    state,
    listening: sockets?.listening ?? [],
    connections: sockets?.connections ?? 0,
    closed: pub?.closed ?? null,
    last_restart: (pub && readReceipt(dir, p.pid)) ?? null,
    uptime: uptimeOf(st.start),
    command: p.argv.join(" "),
  };
}

/**
 * Rows for every managed process visible to this user, or only those of `command` (and the
 * processes they forked, and the supervisors running it) when one is given. Sorted by pid.
 */
export function inventory(command: string[], ownDir: string): StatusRow[] {
  const root = process.getuid?.() === 0;
  const me = process.getuid?.() ?? -1;
  const mine = (p: Instance) => root || uidOf(p.pid) === me;
  const all = managedProcesses().filter(mine);
  const sups = supervisors().filter(mine);
  const procs = command.length ? findAll(command, all) : all;
  const supsShown = command.length ? sups.filter((s) => matches(supervisedCommand(s.argv), command)) : sups;
  const managedPids = new Set(all.map((p) => p.pid));
  const rows = [
    ...supsShown.map((s) => row(s, ownDir, managedPids, true)),
    ...procs.map((p) => row(p, ownDir, managedPids, false)),
  ].filter((r): r is StatusRow => r !== undefined);
  return rows.sort((a, b) => a.pid - b.pid);
}
