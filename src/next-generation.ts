/**
 * Waiting, after a SIGHUP, until a process's next generation serves: the one wait behind
 * `huptime --restart` and the rolling restart of `--multi`. It watches the state files (see
 * statusfile.ts) and ends on the first of: the next generation serves, the restart was rolled
 * back, the process exited with no successor, the caller gave up, or the time limit passed.
 */
import { DEFAULT_READY_TIMEOUT_MS, RESTART_MODES, STATUS_STATES } from "./generated/protocol";
import { isRunning } from "./instances";
import { readAllPublished, readPublished, type Published } from "./statusfile";

/** The --ready-timeout a process that does not publish its own has (the shim's default). */
export { DEFAULT_READY_TIMEOUT_MS };

/**
 * Time on top of the published timeouts. The shim holds back a SIGHUP that comes while the
 * previous generation still drains until that one is gone (its drain deadline, then the second
 * its resets may take), and refuses the restart if it still runs at --ready-timeout; and its own
 * steps around the ready clock (taking the signal, spawning the new copy before the clock starts;
 * after a timeout, killing and reaping that copy, then publishing the rollback) take a moment
 * more on a slow, loaded machine: 15 s is ample for those.
 */
export const RESTART_MARGIN_MS = 15_000;

/**
 * How long a restart of `before` may take before the CLI stops waiting: its --ready-timeout
 * (the new generation's time to become ready), plus its --drain-timeout (in exec mode the old
 * image drains before it execs the new code; in fork mode the receipt is written once the old
 * generation has drained; 0, no drain limit, adds nothing: the wait would have no bound), plus in
 * fork mode --ready-timeout once more (a SIGHUP waits that long at most for a previous
 * generation that still drains, then the restart is refused), plus the margin above.
 */
export function restartLimitMs(before: Published): number {
  const ready = before.readyTimeoutMs || DEFAULT_READY_TIMEOUT_MS;
  const deferral = before.mode === RESTART_MODES.fork ? ready : 0;
  return deferral + ready + (before.drainTimeoutMs ?? 0) + RESTART_MARGIN_MS;
}

/** How the wait ended. */
export type NextGeneration =
  | { outcome: "serving"; next: Published }
  | { outcome: "rolled back"; error: string }
  | { outcome: "exited" }
  | { outcome: "abandoned" }
  | { outcome: "timed out"; limitMs: number };

/** What the caller sees and decides while waiting. */
export interface WaitHooks {
  /** Called on every poll with the process's own state and its next generation's, if any. */
  watch?(now: Published | undefined, next: Published | undefined): void;
  /** Returns true to stop waiting (the caller has its own reason: a stop, an exit it reaped). */
  abandon?(): boolean;
}

/**
 * Waits until the generation after `before` (the state `pid` published before it was sent
 * SIGHUP) serves, under `dir`; at most restartLimitMs(before), counted from now.
 */
export async function awaitNextGeneration(dir: string, pid: number, before: Published, hooks: WaitHooks = {}): Promise<NextGeneration> {
  const limitMs = restartLimitMs(before);
  const deadline = Date.now() + limitMs;
  const gen = before.generation + 1;
  while (Date.now() < deadline) {
    if (hooks.abandon?.()) return { outcome: "abandoned" };
    const all = readAllPublished(dir);
    const next = all.find((p) => p.generation === gen && (p.pid === pid || p.previous === pid));
    const now = readPublished(dir, pid);
    hooks.watch?.(now, next);
    if (next?.state === STATUS_STATES.serving) return { outcome: "serving", next };
    if (now && now.rollbacks > before.rollbacks) return { outcome: "rolled back", error: now.lastError };
    // Gone without a successor (one that took over is followed even once its parent ended).
    if (!now && !isRunning(pid) && !readAllPublished(dir).some((p) => p.previous === pid)) return { outcome: "exited" };
    await Bun.sleep(10);
  }
  return { outcome: "timed out", limitMs };
}
