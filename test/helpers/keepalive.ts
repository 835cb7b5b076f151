/**
 * Keep-alive takeover (issue 15): SIGHUP every `everyMs` while wrk holds `connections` keep-alive
 * connections and one client holds a single persistent connection, and measure what users of a
 * connection pool see: failed requests (errors, resets, non-2xx, 502), who answered each
 * response, the most huptime generations alive at once, and per restart the time from "new
 * generation ready" (huptime's log line, read as it arrives) until every response comes from the
 * new code (the last answer of an older generation, if any came later).
 *
 * Servers answer "WORD PID" (the pid of the process that answered). A pid is mapped to its
 * generation through huptime's ready lines, the state each generation publishes and, for worker
 * processes (nginx), their parent, all recorded while they are alive. Used by the e2e tests and by
 * scripts/bench; nothing here asserts.
 */
import { newestServing, watchGenerations } from "./generations";
import { persistentClient, type PersistentStats } from "./persistent-client";
import { waitFor } from "./procs";
import type { Group } from "./spawn";
import { startWrk, type Origin, type WrkResult } from "./wrk";

/** One restart: when its generation was ready, and how long older code went on answering. */
export interface Restart {
  generation: number;
  pid: number;
  /** ms since the epoch when its ready line arrived. */
  readyAt: number;
  /** ms from its ready line to the last answer of an older generation (0: none came after). */
  takeoverMs: number;
}

/** How to run it. */
export interface TakeoverOptions {
  port: number;
  /** huptime's process group: its output carries the ready lines. */
  group: Group;
  /** The pid a user sends SIGHUP to now (default: the newest serving generation of `group`). */
  sighupTarget?: () => number;
  /** How long SIGHUPs are sent. */
  seconds: number;
  /** ms between SIGHUPs (default 1500). */
  everyMs?: number;
  /** wrk's keep-alive connections (default 16; 0: none, only the persistent client). */
  connections?: number;
  /** ms between the persistent client's requests (default 20). */
  persistentEveryMs?: number;
  /** Called right after each SIGHUP is sent (default: nothing). */
  onSighup?: (n: number) => void;
}

/** What the run measured. */
export interface TakeoverResult {
  sighups: number;
  restarts: Restart[];
  /** Most generations with a process alive at once (sampled every 10 ms). */
  maxGenerations: number;
  wrk?: WrkResult;
  persistent: PersistentStats;
  /** Responses in all (wrk's and the persistent client's). */
  responses: number;
  /** Failed requests in all: wrk's errors and non-2xx, the persistent client's failures. */
  failed: number;
  /** Responses with status 502 (wrk's and the persistent client's). */
  status502: number;
  /** Who answered: one row per origin pid, with its generation (undefined: not known). */
  origins: (Origin & { generation?: number })[];
}

/** Runs the load and the SIGHUPs (see the module comment); resolves once it has measured. */
export async function keepAliveTakeover(o: TakeoverOptions): Promise<TakeoverResult> {
  const everyMs = o.everyMs ?? 1500;
  const target = o.sighupTarget ?? (() => newestServing(o.group));
  const watch = watchGenerations(o.group);
  const { ready, generation } = watch;

  const url = `http://127.0.0.1:${o.port}/`;
  const connections = o.connections ?? 16;
  const load = connections > 0 ? startWrk(url, { connections, seconds: o.seconds + 120, close: false, origins: true }) : undefined;
  const client = persistentClient(o.port, { everyMs: o.persistentEveryMs ?? 20 });
  let sighups = 0;
  let wrkResult: WrkResult | undefined;
  try {
    await waitFor(() => client.stats.answers.length > 0, "the persistent client's first answer");
    const start = Date.now();
    // Generation numbers go on from the newest one ready now (1 when none said so).
    const base = Math.max(1, ...ready.keys());
    for (let n = 1; n * everyMs <= o.seconds * 1000; n++) {
      // Every `everyMs`, but not before the previous SIGHUP's generation serves and is the one a
      // SIGHUP reaches: on a machine where a restart takes longer, SIGHUPs would be folded.
      if (n > 1) {
        const previous = base + n - 1;
        await waitFor(() => ready.has(previous) && (generation(target()) ?? previous) >= previous, `generation ${previous} to serve`, 30_000).catch(() => {});
      }
      const wait = start + n * everyMs - Date.now();
      if (wait > 0) await Bun.sleep(wait);
      process.kill(target(), "SIGHUP");
      sighups++;
      o.onSighup?.(sighups);
    }
    // Every SIGHUP restarts (none merged or deferred for long): wait for the last one's ready
    // line, then watch long enough to see older code answer past the 1 s the issue allows.
    const expected = base + sighups;
    await waitFor(() => ready.has(expected), `generation ${expected}'s ready line`, 30_000).catch(() => {});
    const last = Math.max(...[...ready.values()].map((r) => r.at));
    const newest = Math.max(...ready.keys());
    await waitFor(
      () => Date.now() >= last + 1500 && client.stats.answers.some((a) => a.t > last && generation(Number(a.origin)) === newest),
      "the newest generation to answer the persistent client",
      30_000,
    ).catch(() => {});
  } finally {
    wrkResult = await load?.stop();
    await client.stop();
    await watch.stop();
  }

  // Who answered, from both clients, with each pid's generation (a worker: its parent's).
  const byOrigin = new Map<string, Origin>();
  const add = (r: Origin) => {
    const was = byOrigin.get(r.origin);
    byOrigin.set(r.origin, was ? { origin: r.origin, first: Math.min(was.first, r.first), last: Math.max(was.last, r.last), count: was.count + r.count } : { ...r });
  };
  for (const r of wrkResult?.origins ?? []) add(r);
  for (const a of client.stats.answers) add({ origin: a.origin, first: a.t, last: a.t, count: 1 });
  const origins = [...byOrigin.values()].map((r) => ({ ...r, generation: generation(Number(r.origin)) }));
  const restarts: Restart[] = [...ready.entries()]
    .filter(([g]) => g > 1)
    .sort(([a], [b]) => a - b)
    .map(([g, r]) => {
      const older = origins.filter((x) => x.generation !== undefined && x.generation < g).map((x) => x.last);
      return { generation: g, pid: r.pid, readyAt: r.at, takeoverMs: Math.max(0, Math.max(...older, -Infinity) - r.at) };
    });
  const persistent = client.stats;
  const p502 = persistent.answers.filter((a) => a.status === 502).length;
  return {
    sighups,
    restarts,
    maxGenerations: watch.maxAlive(),
    wrk: wrkResult,
    persistent,
    responses: (wrkResult?.requests ?? 0) + persistent.answers.length,
    failed: (wrkResult?.failed ?? 0) + persistent.failures.length,
    status502: (wrkResult?.statuses?.["502"] ?? 0) + p502,
    origins,
  };
}

/** One line per figure, for a test's failure message or a log. */
export function describeTakeover(r: TakeoverResult): string {
  const w = r.wrk;
  return [
    `SIGHUPs ${r.sighups}, restarts ready ${r.restarts.length}, most generations alive ${r.maxGenerations}`,
    `takeover ms per restart: ${r.restarts.map((x) => `g${x.generation} ${x.takeoverMs.toFixed(0)}`).join(", ")}`,
    `responses ${r.responses}, failed ${r.failed}, status 502: ${r.status502}`,
    w ? `wrk: ${w.requests} requests, errors ${JSON.stringify(w.errors)}, statuses ${JSON.stringify(w.statuses)}` : "wrk: not run",
    `persistent client: ${r.persistent.answers.length} answers, ${r.persistent.connections} connections, ${r.persistent.closedAfterClose} closed after Connection: close, ${r.persistent.closedIdle} idle FIN, ${r.persistent.resetIdle} idle RST, ${r.persistent.retriedAfterIdle} retried after an idle FIN, failures: ${r.persistent.failures.slice(0, 5).join("; ")}`,
    `origins: ${r.origins.map((x) => `${x.origin}(g${x.generation ?? "?"}) ×${x.count}`).join(", ")}`,
  ].join("\n");
}
