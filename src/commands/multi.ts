/**
 * `huptime --multi=N <command...>`: N instances of the program sharing its listening sockets
 * (the shim sets SO_REUSEPORT before every bind). huptime stays their parent and a child
 * subreaper; SIGHUP restarts the instances one after another (rolling: the others keep serving),
 * SIGTERM/SIGINT are passed on; huptime exits when every instance has ended, with the first
 * failing status. As a container's init (PID 1, or --init: `stopTimeoutMs` given) SIGQUIT stops
 * too, SIGUSR1, SIGUSR2 and SIGWINCH go to the instances, and what is left `stopTimeoutMs` after a
 * stop signal is killed.
 */
import { constants } from "node:os";
import { SHIM_VARS, STATUS_STATES } from "../generated/protocol";
import { debug, info } from "../log";
import { native } from "../native";
import { awaitNextGeneration } from "../next-generation";
import { Notifier } from "../notify";
import { childPids, descendantPids } from "../instances";
import { readAllPublished, readPublished } from "../statusfile";

/** One instance: the pid of its current generation, and how it ended. */
interface Lineage {
  index: number;
  pid: number;
  ended?: { code?: number | null; signal?: number | null };
}


/** Runs the pool until every instance has ended; returns the exit status. */
export async function multiCommand(n: number, file: string, argv: string[], env: string[], statusDir: string, notifySocket?: string, stopTimeoutMs?: number): Promise<number> {
  const nat = native();
  const notifier = new Notifier(notifySocket);
  let announced = false;
  nat.setChildSubreaper();
  // As an init, a stop signal the instances leave at its default action drains them.
  const asInit = stopTimeoutMs === undefined ? [] : [`${SHIM_VARS.stopDrains}=1`];
  const envWithParent = [...env, `${SHIM_VARS.supervisorPid}=${process.pid}`, ...asInit];
  const lineages: Lineage[] = [];
  for (let i = 0; i < n; i++) {
    lineages.push({ index: i, pid: nat.spawnProgram(file, argv, envWithParent) });
  }
  info(`started ${n} instances: ${lineages.map((l) => l.pid).join(", ")}`);

  let stopping = false;
  const stopSignals = new Set<number>();
  let restarting = false;
  let restartAgain = false;

  /** Follows a lineage to its newest serving generation (fork mode changes pids). */
  const successor = (pid: number): number | undefined =>
    readAllPublished(statusDir).find((p) => p.previous === pid && p.pid !== pid && p.state === STATUS_STATES.serving)?.pid;

  const restartOne = async (l: Lineage): Promise<void> => {
    const before = readPublished(statusDir, l.pid);
    try {
      process.kill(l.pid, "SIGHUP");
    } catch {
      return;
    }
    if (!before) return;
    const result = await awaitNextGeneration(statusDir, l.pid, before, { abandon: () => l.ended !== undefined || stopping });
    if (result.outcome === "serving") l.pid = result.next.pid;
    else if (result.outcome === "rolled back") info(`instance ${l.index} (pid ${l.pid}): restart rolled back: ${result.error}`);
    else if (result.outcome === "timed out") info(`instance ${l.index} (pid ${l.pid}): restart not done within ${Math.round(result.limitMs / 1000)} s; going on`);
  };

  const rollingRestart = async (): Promise<void> => {
    if (restarting) {
      restartAgain = true;
      return;
    }
    restarting = true;
    notifier.reloading(`restarting ${lineages.filter((l) => !l.ended).length} instances`);
    do {
      restartAgain = false;
      for (const l of lineages) if (!l.ended && !stopping) await restartOne(l);
      info(`restarted: ${lineages.filter((l) => !l.ended).map((l) => l.pid).join(", ")}`);
    } while (restartAgain && !stopping);
    restarting = false;
    if (!stopping) notifier.ready(`serving: ${lineages.filter((l) => !l.ended).map((l) => l.pid).join(", ")}`);
  };

  const signalAll = (sig: NodeJS.Signals) => {
    for (const pid of childPids()) {
      try {
        process.kill(pid, sig);
      } catch {}
    }
  };
  let killAt: number | undefined;
  const stop = (sig: NodeJS.Signals) => {
    if (!stopping) notifier.stopping();
    if (!stopping && stopTimeoutMs) killAt = Date.now() + stopTimeoutMs;
    stopping = true;
    stopSignals.add(constants.signals[sig]);
    signalAll(sig);
  };
  process.on("SIGHUP", () => void rollingRestart());
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  if (stopTimeoutMs !== undefined) {
    process.on("SIGQUIT", () => stop("SIGQUIT"));
    for (const sig of ["SIGUSR1", "SIGUSR2", "SIGWINCH"] as const) process.on(sig, () => signalAll(sig));
  }
  const killIfDue = () => {
    if (killAt === undefined || Date.now() < killAt) return;
    killAt = undefined;
    info(`still running ${stopTimeoutMs! / 1000} s after the stop signal; killing what is left (SIGKILL)`);
    for (const pid of descendantPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  };

  while (lineages.some((l) => !l.ended)) {
    if (!announced && notifier.enabled && lineages.every((l) => readPublished(statusDir, l.pid)?.state === STATUS_STATES.serving)) {
      announced = true;
      notifier.ready(`serving: ${lineages.map((l) => l.pid).join(", ")}`);
    }
    let e;
    while ((e = nat.reapChild())) {
      const l = lineages.find((x) => x.pid === e!.pid);
      debug(`reaped pid ${e.pid} (${e.signal ? `signal ${e.signal}` : `status ${e.code}`})${l ? `, instance ${l.index}` : ""}`);
      if (!l) continue; // an old generation after its handover, or a new one that failed
      const next = stopping ? undefined : successor(e.pid);
      if (next) {
        l.pid = next;
        continue;
      }
      l.ended = { code: e.code, signal: e.signal };
      const how = e.signal ? `signal ${e.signal}` : `status ${e.code}`;
      info(`instance ${l.index} (pid ${e.pid}) ended with ${how}`);
    }
    killIfDue();
    await Bun.sleep(25);
  }
  // Wait for draining old generations too, so none outlives huptime.
  while (childPids().length > 0) {
    while (nat.reapChild());
    killIfDue();
    await Bun.sleep(25);
  }
  // An instance ended by the signal huptime passed on (a requested stop) did not fail.
  const failed = lineages.find((l) => l.ended && (l.ended.code || (l.ended.signal && !(stopping && stopSignals.has(l.ended.signal)))));
  if (!failed?.ended) return 0;
  return failed.ended.signal ? 128 + failed.ended.signal : (failed.ended.code ?? 1);
}
