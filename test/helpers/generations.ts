/**
 * Watching the generations of one huptime run while it restarts: when each became ready (huptime's
 * ready line, timestamped as it arrives), which generation a pid belongs to (the ready lines, the
 * state each generation publishes and, for workers such as nginx's, their first parent, recorded
 * while they live), and the most generations with a process alive at once (sampled every 10 ms).
 * Works for the preload modes (the group's processes) and for --listen-fds (the supervisor's
 * children). Used by the keep-alive takeover runs and the Redis test.
 */
import { readlinkSync } from "node:fs";
import { join } from "node:path";
import { cacheDir } from "../../src/cachedir";
import { STATUS_STATES } from "../../src/generated/protocol";
import { childPids, isRunning } from "../../src/instances";
import { readPublished, type Published } from "../../src/statusfile";
import { HUPTIME } from "./cli";
import { groupMembers } from "./procs";
import type { Group } from "./spawn";

/** huptime's line when a new generation is ready (fork mode's old generation, and --listen-fds). */
const READY_LINE = /generation (\d+) \(pid (\d+)\) is ready after/g;

/** A generation's ready line: its pid and when the line arrived (ms since the epoch). */
export interface Ready {
  pid: number;
  at: number;
}

/** A watch on one run's generations; `stop()` ends the sampling and the reading. */
export interface GenerationWatch {
  /** Ready lines by generation (including those said before the watch began). */
  ready: Map<number, Ready>;
  /** The generation `pid` belongs to (itself or an ancestor), if known. */
  generation(pid: number): number | undefined;
  /** Most generations alive at once so far. */
  maxAlive(): number;
  stop(): Promise<void>;
}

/** The status directory this user's generations publish into. */
const statusDir = () => join(cacheDir(), "status");

/** Whether `pid` is huptime itself (a --listen-fds or --multi supervisor), not a program. */
function isHuptime(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) === HUPTIME;
  } catch {
    return false;
  }
}

/** What the generations of `group` publish (the preload modes). Read per process of the group:
 * the status directory can hold thousands of other runs' files. */
function published(group: Group, members = groupMembers(group.pgid)): Published[] {
  const dir = statusDir();
  return members.map((m) => readPublished(dir, m.pid)).filter((p): p is Published => p !== undefined);
}

/** The newest serving generation of `group`, else its leader: where a user sends SIGHUP. */
export function newestServing(group: Group): number {
  const serving = published(group).filter((p) => p.state === STATUS_STATES.serving);
  return serving.sort((a, b) => b.generation - a.generation)[0]?.pid ?? group.pid;
}

/** Starts watching `group` (huptime's process group: its output carries the ready lines). */
export function watchGenerations(group: Group): GenerationWatch {
  const ready = new Map<number, Ready>();
  let text = "";
  const onData = (d: Buffer | string) => {
    const at = Date.now();
    text += d;
    const cut = text.lastIndexOf("\n");
    if (cut < 0) return;
    for (const m of text.slice(0, cut).matchAll(READY_LINE)) {
      if (!ready.has(Number(m[1]))) ready.set(Number(m[1]), { pid: Number(m[2]), at });
    }
    text = text.slice(cut + 1);
  };
  onData(group.output()); // what it said before (--listen-fds: generation 1 is ready)
  group.child.stdout!.on("data", onData);
  group.child.stderr!.on("data", onData);

  const generationOf = new Map<number, number>();
  const parentOf = new Map<number, number>();
  let maxAlive = 0;
  const generation = (pid: number): number | undefined => {
    for (let p = pid, hops = 0; p > 1 && hops < 4; p = parentOf.get(p) ?? 0, hops++) {
      const g = generationOf.get(p);
      if (g !== undefined) return g;
    }
    return undefined;
  };
  const sample = () => {
    // Asked each time: the leader is huptime until it execs the program (preload modes).
    const supervisor = isHuptime(group.pid);
    const members = groupMembers(group.pgid);
    if (!supervisor) for (const p of published(group, members)) generationOf.set(p.pid, p.generation);
    for (const [g, r] of ready) generationOf.set(r.pid, g);
    // The first parent seen: a worker whose master exited is re-parented, and still belongs to it.
    for (const m of members) if (!parentOf.has(m.pid)) parentOf.set(m.pid, m.ppid);
    // A supervisor's children are one generation each; otherwise the group's processes count
    // (an old generation's workers still serving after its master left keep it alive).
    const live = new Set<string>();
    if (supervisor) for (const pid of childPids(group.pid).filter(isRunning)) live.add(String(generationOf.get(pid) ?? `pid ${pid}`));
    else for (const m of members) live.add(String(generation(m.pid) ?? "?"));
    live.delete("?");
    maxAlive = Math.max(maxAlive, live.size);
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      sample();
      await Bun.sleep(10);
    }
  })();
  return {
    ready,
    generation,
    maxAlive: () => maxAlive,
    async stop() {
      sampling = false;
      await sampler;
      sample();
      group.child.stdout!.off("data", onData);
      group.child.stderr!.off("data", onData);
    },
  };
}
