/**
 * `huptime ./static-server`: a statically linked program (LD_PRELOAD cannot reach it) run under
 * seccomp user notification (crates/huptime/src/unotify). huptime stays the parent; each
 * generation starts under a filter that sends its bind() and listen() calls to huptime, which
 * holds the listening sockets. The next generation's bind() to a TCP address gets a socket of its
 * own in the same SO_REUSEPORT group (else the held socket itself). On SIGHUP a new generation
 * starts beside the old one; once it waits for connections on its sockets (a thread in accept,
 * poll or select on them, or the socket registered with its epoll), the old one is refused new
 * connections (new TCP connections are steered to the new one's sockets; where that can't be, its
 * accept() calls are sent to huptime and refused), takes what its sockets queued, reads those
 * it accepted, and is sent
 * --stop-signal (SIGTERM by default: Go's http.Server.Shutdown, most servers' graceful stop); it
 * finishes and exits; after --drain-timeout its process group is killed. A generation that exits or is not ready within
 * --ready-timeout is killed (process group) and the old one goes on serving.
 *
 * Each generation's state file (statusfile.ts) is written here on its behalf, so --status and
 * --restart see it as they see a preloaded program; --restart and --stop signal this process.
 */
import { constants } from "node:os";
import { VAR_PREFIX, STATUS_STATES } from "../generated/protocol";
import { describeEnd, generation, pumpOutputs, reportFailure, signalGroup, type Generation as BaseGeneration } from "../generations";
import { HuptimeError } from "../errors";
import { info } from "../log";
import { native } from "../native";
import { Notifier } from "../notify";

/** Settings of a seccomp run. */
export interface SeccompOptions {
  readyTimeoutMs: number;
  /** How long an old generation may take to exit after the stop signal (0: no limit). */
  drainTimeoutMs: number;
  /** What tells an old generation to stop accepting and finish. */
  stopSignal: NodeJS.Signals;
  /** systemd's NOTIFY_SOCKET for huptime itself. */
  notifySocket?: string;
  /** Where the generations' state files go. */
  statusDir: string;
}

/** One generation and what its state file says. */
interface Generation extends BaseGeneration {
  state: string;
  previous: number;
  rollbacks: number;
  lastError: string;
}

/** Runs `file` under seccomp supervision until it stops; returns the exit status. */
export async function seccompCommand(file: string, argv: string[], baseEnv: NodeJS.ProcessEnv, o: SeccompOptions): Promise<number> {
  const nat = native();
  const notifier = new Notifier(o.notifySocket);
  const env = Object.entries(baseEnv)
    .filter(([k, v]) => v !== undefined && !k.startsWith(VAR_PREFIX) && k !== "NOTIFY_SOCKET")
    .map(([k, v]) => `${k}=${v}`);
  const gens: Generation[] = [];

  const publish = (g: Generation, state?: string): void => {
    if (state) g.state = state;
    nat.seccompPublish(o.statusDir, {
      pid: g.pid,
      generation: g.n,
      state: g.state,
      previous: g.previous,
      rollbacks: g.rollbacks,
      readyTimeoutMs: o.readyTimeoutMs,
      drainTimeoutMs: o.drainTimeoutMs,
      lastError: g.lastError,
    });
  };

  /** Starts generation `n`, or says why it could not (no process: fork, the socketpair or the
   * filter failed, e.g. EAGAIN at a process limit). */
  const start = (n: number, previous: number): Generation | string => {
    const [r, w] = nat.makePipe();
    let pid: number;
    try {
      pid = nat.seccompSpawn(file, argv, env, w, previous);
    } catch (e) {
      nat.closeFd(r);
      return `generation ${n}: ${e instanceof Error ? e.message : String(e)}`; // "can't start FILE: can't fork: ..."
    } finally {
      nat.closeFd(w);
    }
    const g: Generation = { ...generation(n, pid, r), state: STATUS_STATES.starting, previous, rollbacks: 0, lastError: "" };
    gens.push(g);
    publish(g);
    return g;
  };

  /**
   * Lets go of generations that ended: their state file. (Their notification fd is closed by the
   * native side once no process under their filter is left: those they started are answered.)
   */
  const bury = (): void => {
    for (let i = gens.length - 1; i >= 0; i--) {
      const g = gens[i];
      if (!g.ended) continue;
      nat.seccompWithdraw(o.statusDir, g.pid);
      if (g !== current && g.stderr < 0) {
        gens.splice(i, 1);
        nat.seccompSettle(current.pid); // its sockets alone at their addresses: no steering
      }
    }
  };

  let hup = false;
  let stopSignal: NodeJS.Signals | undefined;
  let wake = (): void => {};
  /** Sleeps `ms`, or until a signal comes. */
  const nap = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => (clearTimeout(timer), resolve());
    });
  process.on("SIGHUP", () => ((hup = true), wake()));
  process.on("SIGTERM", () => ((stopSignal = "SIGTERM"), wake()));
  process.on("SIGINT", () => ((stopSignal = "SIGINT"), wake()));

  /**
   * Waits until `g` waits for connections, ends, or runs out of time. If the generation it is to
   * replace (`replacing`) ends meanwhile, new connections are sent to `g`'s sockets at once: they
   * wait there for it rather than on a socket nobody accepts from.
   */
  const waitReady = async (g: Generation, replacing?: Generation): Promise<"ready" | "ended" | "timeout" | "stopped"> => {
    let steered = false;
    for (;;) {
      pumpOutputs(gens);
      if (stopSignal) return "stopped";
      if (g.ended) return "ended";
      if (replacing?.ended && !steered) {
        nat.seccompSteerTo(g.pid);
        steered = true;
      }
      if (nat.seccompGeneration(g.pid).ready) return "ready";
      if (Date.now() - g.startedAt >= o.readyTimeoutMs) return "timeout";
      await Bun.sleep(5);
    }
  };

  const readyLine = (g: Generation): string => {
    const s = nat.seccompGeneration(g.pid);
    const took = s.takenOver ? `, ${s.takenOver} socket${s.takenOver === 1 ? "" : "s"} taken over` : "";
    const joined = s.joined ? `, ${s.joined} address${s.joined === 1 ? "" : "es"} joined beside the old socket${s.joined === 1 ? "" : "s"}` : "";
    return `generation ${g.n} (pid ${g.pid}) is ready after ${Date.now() - g.startedAt} ms: listening on ${s.listening.join(", ")}${took}${joined}`;
  };

  /**
   * Stops `g` taking new connections, waits until it has taken what its sockets queued and read
   * those it took (a graceful stop may drop one it has not: Go's http.Server.Shutdown does),
   * within its --drain-timeout (10 s without one), then sends it the stop signal; SIGKILL to its
   * group --drain-timeout after that.
   */
  const retire = async (g: Generation): Promise<void> => {
    const began = Date.now();
    let fresh = nat.seccompRefuseAccepts(g.pid);
    publish(g, STATUS_STATES.draining);
    // An accept() let through just before the refusal may still be returning a connection to the
    // program, and its sockets may still hold connections to take: the stop signal waits for
    // three looks in a row, 2 ms apart, that find nothing fresh or queued.
    let quiet = fresh > 0 ? 0 : 1;
    const limitMs = o.drainTimeoutMs || 10_000;
    while (quiet < 3 && !g.ended && Date.now() - began < limitMs) {
      pumpOutputs(gens);
      await Bun.sleep(2);
      fresh = nat.seccompRefuseAccepts(g.pid);
      quiet = fresh > 0 ? 0 : quiet + 1;
    }
    if (fresh > 0 && !g.ended) {
      info(`generation ${g.n} (pid ${g.pid}) still has ${fresh} connection${fresh === 1 ? "" : "s"} to take or read ${limitMs / 1000} s after it was replaced; ${o.stopSignal} anyway`);
    }
    signalGroup(g.pid, o.stopSignal);
    g.killAt = o.drainTimeoutMs > 0 ? Date.now() + o.drainTimeoutMs : undefined;
    nat.seccompReleaseAccepts(g.pid);
  };

  const started = start(1, 0);
  if (typeof started === "string") throw new HuptimeError(started.slice(started.indexOf(": ") + 2));
  let current = started;

  /** The restart failed (`why`): the current generation keeps serving, and says so. */
  const rollBack = (why: string): void => {
    info(`rollback: generation ${current.n} (pid ${current.pid}) keeps serving`);
    nat.seccompKeepOnly(current.pid); // what only the failed one listened on
    current.rollbacks++;
    current.lastError = why;
    publish(current);
    notifier.ready(`restart rolled back: ${why}`);
  };
  info(`generation 1 is pid ${current.pid} (a static program: its bind() and listen() go through huptime by seccomp)`);
  const first = await waitReady(current);
  if (first === "ready") {
    info(readyLine(current));
    nat.seccompKeepOnly(current.pid); // not what it listened on and closed
    publish(current, STATUS_STATES.serving);
    notifier.ready(`serving: generation 1 (pid ${current.pid})`);
  } else if (first !== "stopped") {
    // As without huptime: its own exit status (killed after --ready-timeout: 1).
    reportFailure(current, first, o.readyTimeoutMs);
    while (!current.ended) {
      pumpOutputs(gens);
      await Bun.sleep(5);
    }
    bury();
    const e = current.ended;
    return first === "timeout" ? 1 : e.signal ? 128 + e.signal : (e.code ?? 1);
  }

  for (;;) {
    pumpOutputs(gens);
    bury();
    if (stopSignal) {
      notifier.stopping();
      info(`${stopSignal}: stopping generation ${current.n} (pid ${current.pid}) with ${o.stopSignal}`);
      for (const g of gens) if (!g.ended) signalGroup(g.pid, o.stopSignal);
      const deadline = o.drainTimeoutMs > 0 ? Date.now() + o.drainTimeoutMs : Infinity;
      while (gens.some((g) => !g.ended) && Date.now() < deadline) {
        pumpOutputs(gens);
        await Bun.sleep(10);
      }
      for (const g of gens) if (!g.ended) signalGroup(g.pid, "SIGKILL");
      while (gens.some((g) => !g.ended)) {
        pumpOutputs(gens);
        await Bun.sleep(10);
      }
      bury();
      const e = current.ended!;
      const asked = [stopSignal, o.stopSignal].map((s) => constants.signals[s]);
      return e.signal ? (asked.includes(e.signal) ? 0 : 128 + e.signal) : (e.code ?? 0);
    }
    // A SIGHUP while an old generation still drains waits until it has ended (at most its
    // --drain-timeout): never more than two generations, and a burst of signals is one restart.
    if (hup && !gens.some((g) => g !== current && !g.ended)) {
      hup = false;
      notifier.reloading(`restarting: starting generation ${current.n + 1}`);
      const next = start(current.n + 1, current.pid);
      if (typeof next === "string") {
        info(next);
        rollBack(next);
        continue;
      }
      const gated = nat.seccompGeneration(next.pid).sendsAccept ? " (its accept() calls go through huptime: the last generation had a socket its new connections can't be steered away from)" : "";
      info(`restarting: generation ${next.n} is pid ${next.pid}${gated}`);
      const outcome = await waitReady(next, current);
      if (outcome === "ready") {
        info(`${readyLine(next)}; ${o.stopSignal} to generation ${current.n} (pid ${current.pid})`);
        publish(next, STATUS_STATES.serving);
        nat.seccompSteerTo(next.pid); // new connections to its sockets (before the old ones are let go)
        nat.seccompKeepOnly(next.pid);
        const old = current;
        current = next;
        await retire(old);
        notifier.ready(`serving: generation ${current.n} (pid ${current.pid})`);
      } else if (outcome !== "stopped") {
        rollBack(reportFailure(next, outcome, o.readyTimeoutMs));
      }
      continue;
    }
    if (current.ended) {
      info(`generation ${current.n} (pid ${current.pid}) ${describeEnd(current.ended)}; stopping`);
      notifier.stopping();
      for (const g of gens) if (!g.ended) signalGroup(g.pid, o.stopSignal);
      return current.ended.signal ? 128 + current.ended.signal : (current.ended.code ?? 1);
    }
    for (const g of gens) {
      if (g !== current && !g.ended && g.killAt !== undefined && Date.now() >= g.killAt) {
        info(`generation ${g.n} (pid ${g.pid}) still running ${o.drainTimeoutMs / 1000} s after ${o.stopSignal}; killing its process group`);
        signalGroup(g.pid, "SIGKILL");
        g.killAt = undefined;
      }
    }
    // Nothing to do: a look every 50 ms (a signal cuts it short). huptime shares the CPUs with the
    // program it serves; a look every 10 ms took 1% of a CPU. The program's stderr waits in a
    // pipe of 1 MiB meanwhile (makePipe).
    await nap(50);
  }
}
