/**
 * Scenario 7 of scripts/bench (issue 18): huptime's restarts beside what users compare them with,
 * one server under the same load (wrk, Connection: close, 16 connections) and a restart at the
 * same interval:
 * - "plain restart": a supervisor stops the bare server (SIGTERM, waits until it has exited) and
 *   starts it again on the same port;
 * - "limit": the bare server serves all along while a fresh copy of it starts on another port
 *   (until it answers) and the previous fresh copy is stopped: the CPU cost of starting the
 *   program, which any restart of an unmodified program pays, with no handover;
 * - huptime in fork mode.
 * Then where the rest goes: how much a fresh copy serves in its first moments against a warm one.
 * node is the server the targets are for; python (no JIT to warm) runs the same as a contrast.
 */
import { coldServe, coldShare, type ColdServe } from "./cold";
import { table, f1, f2, type Check, type ScenarioPart } from "./report";
import { freePort, loadSeconds, median, restartsUnderLoad, underRestarts, type LoadedRun, type RestartRun } from "./scenarios";
import { startServer, type Kind, type Server } from "./servers";
import { startWrk, type WrkResult } from "../../test/helpers/wrk";

/** The servers compared, the first one held to the targets. */
const KINDS: Kind[] = ["node", "python"];

/** A supervised run: the load, and per restart how long its cycle took (ms). */
interface SupervisedRun extends LoadedRun {
  /** plain: SIGTERM until the new server answers; limit: the fresh copy's start until it answers. */
  cycleMs: number[];
}

/** One round: each run once, back to back. */
export interface Round {
  steady: WrkResult;
  plain: SupervisedRun;
  limit: SupervisedRun;
  huptime: RestartRun;
}

/** Everything the scenario measured for one server. */
export interface CompareRun {
  kind: Kind;
  /** Restarts per run of a round. */
  restarts: number;
  intervalMs: number;
  /** The runs alternate round by round, so that a change in the machine's other load shows in
   * every run alike; shares are taken within a round, and their median reported. */
  rounds: Round[];
  cold: ColdServe;
}

/** Rounds the restarts are split into. */
const ROUNDS = 3;

/** Times `f` in ms. */
async function timed(f: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

/** The bare server stopped and started again at every restart. */
async function plainRestarts(kind: Kind, restarts: number, intervalMs: number): Promise<SupervisedRun> {
  const port = await freePort();
  let server = await startServer(kind, "bare", port);
  const cycleMs: number[] = [];
  try {
    const run = await underRestarts(port, restarts, intervalMs, true, 16, async () => {
      cycleMs.push(await timed(async () => {
        await server.terminate();
        server = await startServer(kind, "bare", port);
      }));
    });
    return { ...run, cycleMs };
  } finally {
    await server.stop();
  }
}

/** The bare server serving while a fresh copy starts beside it at every restart. */
async function limitRestarts(kind: Kind, restarts: number, intervalMs: number): Promise<SupervisedRun> {
  const port = await freePort();
  const server = await startServer(kind, "bare", port);
  let fresh: Server | undefined;
  const cycleMs: number[] = [];
  try {
    const run = await underRestarts(port, restarts, intervalMs, true, 16, async () => {
      const previous = fresh;
      const freshPort = await freePort();
      cycleMs.push(await timed(async () => (fresh = await startServer(kind, "bare", freshPort))));
      await previous?.terminate();
    });
    return { ...run, cycleMs };
  } finally {
    await fresh?.stop();
    await server.stop();
  }
}

/** Runs the scenario for `kind` (`say`: progress to stderr): `restarts` in all, split into rounds. */
export async function compareRestarts(kind: Kind, restarts: number, intervalMs: number, say: (s: string) => void): Promise<CompareRun> {
  const perRound = Math.ceil(restarts / ROUNDS);
  const rounds: Round[] = [];
  for (let i = 1; i <= ROUNDS; i++) {
    say(`scenario 7: ${kind}, round ${i}/${ROUNDS}: bare with no restarts, a plain restart, the limit and huptime (fork), ${perRound} restarts every ${intervalMs} ms each`);
    const base = await startServer(kind, "bare", await freePort());
    const steady = await startWrk(base.url, { connections: 16, seconds: loadSeconds(perRound, intervalMs), close: true }).done;
    await base.stop();
    const plain = await plainRestarts(kind, perRound, intervalMs);
    const limit = await limitRestarts(kind, perRound, intervalMs);
    const huptime = await restartsUnderLoad(kind, "fork", perRound, intervalMs, true);
    rounds.push({ steady, plain, limit, huptime });
  }
  say(`scenario 7: ${kind}, fresh copies against warm ones`);
  const cold = await coldServe(kind);
  return { kind, restarts: perRound * ROUNDS, intervalMs, rounds, cold };
}

const share = (a: number, b: number) => a / b;

/** The median over the rounds of `f`. */
const acrossRounds = (r: CompareRun, f: (round: Round) => number) => median(r.rounds.map(f));

/** A run's results over the rounds: counts summed, req/s over the whole time, p50 and p99 the
 * rounds' median, max the largest. */
function combined(results: WrkResult[]): WrkResult {
  const sum = (f: (w: WrkResult) => number) => results.reduce((n, w) => n + f(w), 0);
  const errors = { connect: sum((w) => w.errors.connect), read: sum((w) => w.errors.read), write: sum((w) => w.errors.write), timeout: sum((w) => w.errors.timeout), status: sum((w) => w.errors.status) };
  return {
    requests: sum((w) => w.requests),
    durationS: sum((w) => w.durationS),
    failed: sum((w) => w.failed),
    errors,
    rps: sum((w) => w.requests) / sum((w) => w.durationS),
    p50Ms: median(results.map((w) => w.p50Ms)),
    p99Ms: median(results.map((w) => w.p99Ms)),
    maxMs: Math.max(...results.map((w) => w.maxMs)),
  };
}

/** huptime's throughput and p99 while restarting as shares of the limit's (median over the rounds). */
function againstLimit(r: CompareRun) {
  return {
    rps: acrossRounds(r, (x) => share(x.huptime.load.rps, x.limit.load.rps)),
    p99: acrossRounds(r, (x) => share(x.huptime.load.p99Ms, x.limit.load.p99Ms)),
  };
}

/** The targets: huptime while restarting against the limit (issue 18). */
export function compareChecks(r: CompareRun): Check[] {
  const failed = r.rounds.reduce((n, x) => n + x.huptime.load.failed, 0);
  const { rps, p99 } = againstLimit(r);
  return [
    { what: `7 ${r.kind} fork: failed requests while restarting`, value: String(failed), target: "0", pass: failed === 0 },
    { what: `7 ${r.kind} fork: throughput restarting / the limit's`, value: f2(rps), target: "≥ 0.8", pass: rps >= 0.8 },
    { what: `7 ${r.kind} fork: p99 restarting / the limit's`, value: f2(p99), target: "≤ 2", pass: p99 <= 2 },
  ];
}

/** One server's table. */
function compareTable(r: CompareRun): string {
  const steady = (x: Round) => x.steady;
  const limit = (x: Round) => x.limit.load;
  const row = (name: string, pick: (x: Round) => WrkResult, cycle: string) => {
    const load = combined(r.rounds.map(pick));
    return [
      name, load.requests, load.failed, f1(load.rps),
      f2(acrossRounds(r, (x) => share(pick(x).rps, steady(x).rps))), f2(acrossRounds(r, (x) => share(pick(x).rps, limit(x).rps))),
      f2(load.p50Ms), f2(load.p99Ms),
      f2(acrossRounds(r, (x) => share(pick(x).p99Ms, steady(x).p99Ms))), f2(acrossRounds(r, (x) => share(pick(x).p99Ms, limit(x).p99Ms))),
      f1(load.maxMs), cycle,
    ];
  };
  const all = (f: (x: Round) => number[]) => r.rounds.flatMap(f);
  const completed = all((x) => x.huptime.readyMs).length;
  return table(["run", "requests", "failed", "req/s", "of steady", "of limit", "p50 ms", "p99 ms", "p99 / steady", "p99 / limit", "max ms", "median ms per restart"], [
    row(`${r.kind} bare, no restarts (steady)`, steady, "-"),
    row("plain restart (SIGTERM, wait, start)", (x) => x.plain.load, `${f1(median(all((x) => x.plain.cycleMs)))} SIGTERM → answering again`),
    row("limit (a fresh copy starts beside it)", limit, `${f1(median(all((x) => x.limit.cycleMs)))} start → answering`),
    row("huptime, fork", (x) => x.huptime.load, `${f1(median(all((x) => x.huptime.readyMs)))} SIGHUP → ready (${completed}/${r.restarts}); handover ${f2(median(all((x) => x.huptime.handoverMs)))}`),
    row("huptime, fork, no restarts", (x) => x.huptime.baseline, "-"),
  ]);
}

/** The fresh-against-warm profile, per 100 ms. */
function coldTable(runs: CompareRun[]): string {
  const head = ["fresh copy / warm one", ...runs[0].cold.share.map((_, b) => `${b * 100}–${b * 100 + 100} ms`), "first 300 ms", "first 1 s"];
  return table(head, runs.map((r) => [r.kind, ...r.cold.share.map(f2), f2(coldShare(r.cold, 300)), f2(coldShare(r.cold, 1000))]));
}

/** The report's section. */
export function compareSection(runs: CompareRun[], date: string): string {
  const r = runs[0];
  return `## 7. Against a plain restart and the limit (Connection: close, 16 connections, a restart every ${r.intervalMs} ms)

Measured on ${date} (\`scripts/bench --scenario compare\` runs it alone). The same server and load
in each run; ${r.restarts} restarts in each kind of run, in ${r.rounds.length} rounds of every run back to back
(shares are taken within a round and their median reported; p50 and p99 are the rounds' median).
"plain restart": a supervisor stops it (SIGTERM, waits until it has exited) and starts it again.
"limit": it serves all along while a fresh copy of it starts on another port and the previous
fresh copy is stopped, with no handover: the CPU cost of starting the program that any restart of
it pays. Shares are of the steady run's and of the limit's figure; "failed" counts what wrk counts
(a plain restart's refused connects each count, as wrk retries at once).

${runs.map(compareTable).join("\n\n")}

Where the rest goes: the limit's serving copy is always warm, while under huptime the copy that
serves is the newest one, and at this interval never older than about one interval. A fresh copy
serves cold: wrk (same load, 1 s) on a copy the moment it first answers, against the same copy
once it has served for a second (sums over ${r.cold.repeats} copies):

${coldTable(runs)}

A warm handover (the old generation accepting beside the new one for a while once the new one is
ready) was tried and not kept: README, *Performance*, has its figures.
`;
}

/** Runs the scenario; its part of the report: section, report.json's `scenario7`, checks. */
export async function comparePart(restarts: number, intervalMs: number, date: string, say: (s: string) => void): Promise<ScenarioPart> {
  const runs: CompareRun[] = [];
  for (const kind of KINDS) runs.push(await compareRestarts(kind, restarts, intervalMs, say));
  const strip = ({ samples, marks, ...x }: LoadedRun) => x;
  const data = runs.map((r) => ({
    ...r,
    againstLimit: againstLimit(r),
    rounds: r.rounds.map((x) => ({ steady: x.steady, plain: strip(x.plain), limit: strip(x.limit), huptime: strip(x.huptime) })),
  }));
  return { section: compareSection(runs, date), key: "scenario7", data, checks: runs.flatMap(compareChecks), checkPrefix: "7 " };
}
