/**
 * The state each generation publishes (see crates/huptime/src/status.rs): one key=value file per
 * process in the status directory, its keys and values those of generated/protocol.ts; and beside
 * it the receipt of the process's last restart (crates/huptime/src/receipt.rs). A file whose
 * process is gone, or whose pid was reused (start time differs), is ignored.
 *
 * Root's --status reads other users' directories (found beside the library their processes map), so a
 * file is believed only if another user cannot have planted it: the directory is writable by its
 * owner only, that owner is root or the process's (real or effective) uid, and the file is a
 * regular file (no symbolic link, no FIFO to block on) of that same owner.
 */
import { closeSync, constants, existsSync, fstatSync, openSync, readdirSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { RECEIPT_FIELDS as R, RECEIPT_SUFFIX, STATUS_FIELDS as F, STATUS_SUFFIX } from "./generated/protocol";
import { procStat, procUids } from "./instances";

/** One process's published state. */
export interface Published {
  pid: number;
  generation: number;
  mode: string;
  state: string;
  /** Pid of the generation this one replaced (0 if none; the same pid in exec mode). */
  previous: number;
  rollbacks: number;
  lastError: string;
  /** Its --ready-timeout in ms (undefined when the file does not say: an older shim). */
  readyTimeoutMs?: number;
  /** Its --drain-timeout in ms (0: no limit; undefined when the file does not say). */
  drainTimeoutMs?: number;
  /** Connections its drain has closed so far (undefined when the file does not say). */
  closed?: DrainClosed;
}

/**
 * The receipt of a process's last restart (`last_restart` in `huptime --status --json`), written
 * by the generation that ran it; the keys are the file's. Durations in ms, null when the restart
 * did not get that far (or the figure could not be read).
 */
export interface LastRestart {
  /** The generation the restart started (or would have started). */
  generation: number;
  /** ready, rolled_back or refused. */
  outcome: string;
  /** Pid of the generation that ran it. */
  previous: number;
  /** When it was recorded, ms since the Unix epoch. */
  at: number;
  sighup_to_ready_ms: number | null;
  handover_ms: number | null;
  drained_ms: number | null;
  connections_drained: number | null;
  connections_cut: number | null;
  listen_drops: number | null;
  /** Why it was rolled back or refused; null when it succeeded. */
  reason: string | null;
  /** The receipt in one line (what `huptime --restart` prints). */
  summary: string;
}

/** Connections a draining process has closed: idle ones (FIN), and once its --drain-timeout
 * passed, those closed at a request boundary (FIN) and those reset (RST) as the last resort. */
export interface DrainClosed {
  idle: number;
  atBoundary: number;
  reset: number;
}

function parse(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** A published duration in ms or count: a whole number, else undefined. */
function millis(field: string | undefined): number | undefined {
  return field !== undefined && /^\d+$/.test(field) ? Number(field) : undefined;
}

/** The drain's counts of closed connections, if the file has all three. */
function closedCounts(f: Record<string, string>): DrainClosed | undefined {
  const [idle, atBoundary, reset] = [f[F.closedIdle], f[F.closedAtBoundary], f[F.closedReset]].map(millis);
  return idle === undefined || atBoundary === undefined || reset === undefined ? undefined : { idle, atBoundary, reset };
}

/** A published number (a count, or ms with decimals), else null. */
function figure(field: string | undefined): number | null {
  return field !== undefined && /^\d+(\.\d+)?$/.test(field) ? Number(field) : null;
}

/** The text of `dir/PID<suffix>` if it passes the checks above (at most 4 KiB of it). */
function readTrusted(dir: string, pid: number, suffix: string): string | undefined {
  let fd: number | undefined;
  try {
    const d = statSync(dir);
    const ids = procUids(pid);
    if (!d.isDirectory() || (d.mode & 0o022) !== 0 || !ids) return undefined;
    if (d.uid !== 0 && d.uid !== ids.real && d.uid !== ids.effective) return undefined;
    fd = openSync(join(dir, `${pid}${suffix}`), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const f = fstatSync(fd);
    if (!f.isFile() || f.uid !== d.uid) return undefined;
    const buf = Buffer.alloc(4096);
    return buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString("utf8");
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The start time of `pid` if it runs (not a zombie), else undefined. Looked at before its files
 * are read: a state directory keeps the files of every process killed before it could remove its
 * own (thousands on a test machine), and a wait that reads them all every few milliseconds keeps a
 * CPU busy.
 */
function liveStart(pid: number): string | undefined {
  if (!existsSync(`/proc/${pid}`)) return undefined; // no exception thrown and caught: cheap
  const st = procStat(pid);
  return st && st.state !== "Z" ? st.start : undefined;
}

/** The published state of `pid`, if it has a current one. */
export function readPublished(dir: string, pid: number): Published | undefined {
  const start = liveStart(pid);
  const text = start === undefined ? undefined : readTrusted(dir, pid, STATUS_SUFFIX);
  if (text === undefined) return undefined;
  const f = parse(text);
  if (f[F.start] !== start) return undefined;
  return {
    pid,
    generation: Number(f[F.generation]),
    mode: f[F.mode] ?? "",
    state: f[F.state] ?? "",
    previous: Number(f[F.previous] ?? 0),
    rollbacks: Number(f[F.rollbacks] ?? 0),
    lastError: f[F.lastError] ?? "",
    readyTimeoutMs: millis(f[F.readyTimeoutMs]),
    drainTimeoutMs: millis(f[F.drainTimeoutMs]),
    closed: closedCounts(f),
  };
}

/** The receipt of `pid`'s last restart, if it has a current one. */
export function readReceipt(dir: string, pid: number): LastRestart | undefined {
  const start = liveStart(pid);
  const text = start === undefined ? undefined : readTrusted(dir, pid, RECEIPT_SUFFIX);
  if (text === undefined) return undefined;
  const f = parse(text);
  if (f[R.start] !== start || f[R.pid] !== String(pid)) return undefined;
  return {
    [R.generation]: Number(f[R.generation]),
    [R.outcome]: f[R.outcome] ?? "",
    [R.previous]: Number(f[R.previous] ?? 0),
    [R.at]: Number(f[R.at] ?? 0),
    [R.sighupToReadyMs]: figure(f[R.sighupToReadyMs]),
    [R.handoverMs]: figure(f[R.handoverMs]),
    [R.drainedMs]: figure(f[R.drainedMs]),
    [R.connectionsDrained]: figure(f[R.connectionsDrained]),
    [R.connectionsCut]: figure(f[R.connectionsCut]),
    [R.listenDrops]: figure(f[R.listenDrops]),
    [R.reason]: f[R.reason] || null,
    [R.summary]: f[R.summary] ?? "",
  };
}

/** Every current published state in `dir`. */
export function readAllPublished(dir: string): Published[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => (n.endsWith(STATUS_SUFFIX) ? n.slice(0, -STATUS_SUFFIX.length) : ""))
    .filter((pid) => /^\d+$/.test(pid))
    .map((pid) => readPublished(dir, Number(pid)))
    .filter((p): p is Published => p !== undefined);
}
