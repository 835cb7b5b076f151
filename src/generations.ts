/**
 * The generations a supervising huptime starts and watches itself (--listen-fds, and static
 * programs under seccomp): each one's stderr passed on with its last lines kept for a rollback
 * report, its exit reaped, its process group signalled.
 */
import { info } from "./log";
import { native } from "./native";

/** One started copy of the program. */
export interface Generation {
  n: number;
  pid: number;
  startedAt: number;
  /** Read end of its stderr pipe (-1 once it reached end of file). */
  stderr: number;
  partial: string;
  /** Its last (up to 10) non-empty stderr lines. */
  tail: string[];
  ended?: { code: number | null; signal: number | null };
  /** Old generation: SIGKILL after this time (ms epoch). */
  killAt?: number;
}

/** A generation just started as `pid`, its stderr readable at `stderr`. */
export function generation(n: number, pid: number, stderr: number): Generation {
  return { n, pid, startedAt: Date.now(), stderr, partial: "", tail: [] };
}

/** How a generation ended, for a log line ("exited with status 3"). */
export function describeEnd(e: { code: number | null; signal: number | null } | undefined): string {
  if (!e) return "ended";
  return e.signal ? `was killed by signal ${e.signal}` : `exited with status ${e.code}`;
}

/** Sends `sig` to process group `pgid` (gone already: nothing to do). */
export function signalGroup(pgid: number, sig: NodeJS.Signals | number): void {
  try {
    process.kill(-pgid, sig);
  } catch {}
}

/** Passes the generations' stderr on (keeping each one's last lines) and reaps those that ended. */
export function pumpOutputs(gens: Generation[]): void {
  const nat = native();
  for (const g of gens) {
    if (g.stderr < 0) continue;
    let chunk: Buffer | null;
    while ((chunk = nat.readAvailable(g.stderr)) && chunk.length > 0) {
      process.stderr.write(chunk);
      const lines = (g.partial + chunk.toString("utf8")).split("\n");
      g.partial = lines.pop() ?? "";
      g.tail.push(...lines.filter((l) => l.trim() !== ""));
      g.tail.splice(0, Math.max(0, g.tail.length - 10));
    }
    if (chunk === null) {
      nat.closeFd(g.stderr);
      g.stderr = -1;
      if (g.partial.trim()) g.tail.push(g.partial);
    }
  }
  let e;
  while ((e = nat.reapChild())) {
    const g = gens.find((x) => x.pid === e!.pid);
    if (g) g.ended = { code: e.code ?? null, signal: e.signal ?? null };
  }
}

/**
 * Kills a generation that failed to start (its whole process group) and logs why with its last
 * stderr lines; returns the reason in one line.
 */
export function reportFailure(g: Generation, outcome: "ended" | "timeout", readyTimeoutMs: number): string {
  signalGroup(g.pid, "SIGKILL");
  const what = outcome === "ended" ? describeEnd(g.ended) : `was not ready within ${readyTimeoutMs / 1000} s; killed its process group`;
  info(`generation ${g.n} (pid ${g.pid}) ${what}${outcome === "ended" ? " before it was ready" : ""}`);
  if (g.tail.length) {
    info(`the last lines generation ${g.n} wrote to stderr:`);
    for (const l of g.tail) info(`  | ${l}`);
  }
  return `generation ${g.n} (pid ${g.pid}) ${what}`;
}
