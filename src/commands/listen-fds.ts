/**
 * `huptime --listen ADDR [--listen ...] --listen-fds <command...>`: for programs the preload
 * cannot reach (static binaries such as Go's) that support socket activation. huptime binds the
 * sockets itself, stays the parent, and starts the program with them (LISTEN_FDS, LISTEN_PID,
 * LISTEN_FDNAMES) and a notify socket (NOTIFY_SOCKET; which senders count: notify-access.ts). On
 * SIGHUP it starts a new generation with the same sockets, waits until it is ready (READY=1, or
 * --ready-delay without it), then sends the old one SIGTERM (its own graceful shutdown). A
 * generation that exits or is not ready in time is killed (process group) and the old one goes on
 * serving.
 */
import { unlinkSync } from "node:fs";
import { join } from "node:path";
import { HuptimeError } from "../errors";
import { VAR_PREFIX } from "../generated/protocol";
import { procStat } from "../instances";
import type { ListenSpec } from "../listen";
import { describeEnd, generation, pumpOutputs, reportFailure, signalGroup, type Generation as BaseGeneration } from "../generations";
import { debug, info } from "../log";
import { native } from "../native";
import { Notifier } from "../notify";
import { noticeGeneration } from "../notify-access";
import { myUid } from "../privatedir";

/** Settings of a --listen-fds run. */
export interface ListenFdsOptions {
  listens: ListenSpec[];
  /** Without READY=1, a generation alive this long counts as ready (undefined: READY=1 needed). */
  readyDelayMs?: number;
  readyTimeoutMs: number;
  /** How long an old generation may take to exit after SIGTERM (0: no limit). */
  drainTimeoutMs: number;
  /** systemd's NOTIFY_SOCKET for huptime itself. */
  notifySocket?: string;
  /** Private directory for the programs' notify socket. */
  runDir: string;
}

/** One started copy of the program, and whether it said READY=1. */
interface Generation extends BaseGeneration {
  ready: boolean;
}

/** Runs the program under a --listen-fds supervisor until it stops; returns the exit status. */
export async function listenFdsCommand(file: string, argv: string[], baseEnv: NodeJS.ProcessEnv, o: ListenFdsOptions): Promise<number> {
  const nat = native();
  const notifier = new Notifier(o.notifySocket);
  const fds: number[] = [];
  try {
    for (const l of o.listens) fds.push(nat.listenSocket(l.family, l.host, l.port, l.label));
  } catch (e) {
    throw new HuptimeError(`${(e as Error).message}`);
  }
  const notifyPath = join(o.runDir, `notify-${process.pid}.sock`);
  try {
    unlinkSync(notifyPath);
  } catch {}
  const notifyFd = nat.notifySocket(notifyPath);
  const env: string[] = [];
  for (const [k, v] of Object.entries(baseEnv)) {
    if (v !== undefined && !k.startsWith(VAR_PREFIX) && !/^(LISTEN_(FDS|PID|FDNAMES)|NOTIFY_SOCKET)$/.test(k)) env.push(`${k}=${v}`);
  }
  env.push(`LISTEN_FDS=${fds.length}`, `LISTEN_FDNAMES=${o.listens.map((l) => l.name).join(":")}`, `NOTIFY_SOCKET=${notifyPath}`);
  info(`listening on ${o.listens.map((l) => l.label).join(", ")}`);

  const gens: Generation[] = [];
  const ourUid = myUid();
  const start = (n: number): Generation => {
    const [r, w] = nat.makePipe();
    let pid: number;
    try {
      pid = nat.spawnWithFds(file, argv, env, fds, w);
    } finally {
      nat.closeFd(w);
    }
    const g: Generation = { ...generation(n, pid, r), ready: false };
    gens.push(g);
    return g;
  };

  /** Passes the programs' stderr on (keeping each one's last lines), reaps, reads notices. */
  const pump = (): void => {
    pumpOutputs(gens);
    let m;
    while ((m = nat.recvNotice(notifyFd))) {
      const fields = new Map(m.message.split("\n").map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)] as [string, string]));
      const v = noticeGeneration(m, gens, ourUid, (pid) => procStat(pid)?.pgrp);
      const text = m.message.replace(/\n/g, " ");
      if ("dropped" in v) {
        debug(`notice from pid ${m.pid} uid ${m.uid ?? "?"} dropped (${v.dropped}): ${text}`);
        continue;
      }
      debug(`notice from pid ${m.pid} uid ${m.uid} (generation ${v.generation.n}): ${text}`);
      if (fields.get("READY") === "1") v.generation.ready = true;
    }
  };

  /** Waits until `g` is ready, ends, or runs out of time. */
  const waitReady = async (g: Generation): Promise<"ready" | "ended" | "timeout" | "stopped"> => {
    for (;;) {
      pump();
      if (stopSignal) return "stopped";
      if (g.ended) return "ended";
      if (g.ready) return "ready";
      const waited = Date.now() - g.startedAt;
      if (o.readyDelayMs !== undefined && waited >= o.readyDelayMs) return "ready";
      if (waited >= o.readyTimeoutMs) return "timeout";
      await Bun.sleep(5);
    }
  };

  const failure = (g: Generation, outcome: "ended" | "timeout"): string => reportFailure(g, outcome, o.readyTimeoutMs);

  let hup = false;
  let stopSignal: NodeJS.Signals | undefined;
  process.on("SIGHUP", () => (hup = true));
  process.on("SIGTERM", () => (stopSignal = "SIGTERM"));
  process.on("SIGINT", () => (stopSignal = "SIGINT"));

  let current = start(1);
  info(`generation 1 is pid ${current.pid}`);
  const first = await waitReady(current);
  if (first === "ready") {
    info(`generation 1 (pid ${current.pid}) is ready after ${Date.now() - current.startedAt} ms`);
    notifier.ready(`serving: generation 1 (pid ${current.pid})`);
  } else if (first !== "stopped") {
    failure(current, first);
    cleanup();
    return current.ended?.code || 1;
  }

  const retire = (g: Generation): void => {
    signalGroup(g.pid, "SIGTERM");
    g.killAt = o.drainTimeoutMs > 0 ? Date.now() + o.drainTimeoutMs : undefined;
  };

  function cleanup(): void {
    try {
      unlinkSync(notifyPath);
    } catch {}
  }

  for (;;) {
    pump();
    if (stopSignal) {
      notifier.stopping();
      info(`${stopSignal}: stopping generation ${current.n} (pid ${current.pid})`);
      for (const g of gens) if (!g.ended) signalGroup(g.pid, stopSignal);
      const deadline = o.drainTimeoutMs > 0 ? Date.now() + o.drainTimeoutMs : Infinity;
      while (gens.some((g) => !g.ended) && Date.now() < deadline) {
        pump();
        await Bun.sleep(10);
      }
      for (const g of gens) if (!g.ended) signalGroup(g.pid, "SIGKILL");
      while (gens.some((g) => !g.ended)) {
        pump();
        await Bun.sleep(10);
      }
      cleanup();
      const e = current.ended!;
      return e.signal ? (e.signal === 15 || e.signal === 2 ? 0 : 128 + e.signal) : (e.code ?? 0);
    }
    if (hup) {
      hup = false;
      notifier.reloading(`restarting: starting generation ${current.n + 1}`);
      const next = start(current.n + 1);
      info(`restarting: generation ${next.n} is pid ${next.pid}`);
      const outcome = await waitReady(next);
      if (outcome === "ready") {
        info(`generation ${next.n} (pid ${next.pid}) is ready after ${Date.now() - next.startedAt} ms; SIGTERM to generation ${current.n} (pid ${current.pid})`);
        retire(current);
        current = next;
        notifier.ready(`serving: generation ${current.n} (pid ${current.pid})`);
      } else if (outcome !== "stopped") {
        const why = failure(next, outcome);
        info(`rollback: generation ${current.n} (pid ${current.pid}) keeps serving`);
        notifier.ready(`restart rolled back: ${why}`);
      }
      continue;
    }
    if (current.ended) {
      info(`generation ${current.n} (pid ${current.pid}) ${describeEnd(current.ended)}; stopping`);
      notifier.stopping();
      for (const g of gens) if (!g.ended) signalGroup(g.pid, "SIGTERM");
      cleanup();
      return current.ended.signal ? 128 + current.ended.signal : (current.ended.code ?? 1);
    }
    for (const g of gens) {
      if (g !== current && !g.ended && g.killAt !== undefined && Date.now() >= g.killAt) {
        info(`generation ${g.n} (pid ${g.pid}) still running ${o.drainTimeoutMs / 1000} s after SIGTERM; killing its process group`);
        signalGroup(g.pid, "SIGKILL");
        g.killAt = undefined;
      }
    }
    for (let i = gens.length - 1; i >= 0; i--) {
      if (gens[i] !== current && gens[i].ended && gens[i].stderr < 0) gens.splice(i, 1);
    }
    await Bun.sleep(10);
  }
}
