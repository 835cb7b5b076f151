/**
 * Scenario 8 of scripts/bench (issue 17): a static Go net/http server, which huptime restarts
 * through seccomp user notification (no preload): restarts under load (Connection: close, 16
 * connections, a SIGHUP every interval), its throughput under huptime against bare with
 * keep-alive and with Connection: close, and what one accept() costs under huptime's seccomp
 * filter (the call every new connection makes: not sent to huptime, its cost is the filter's).
 * Runs alone with `scripts/bench --scenario static`.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { compileC } from "../../test/helpers/gcc";
import { table, restartRows, f1, f2, f3, type Check, type ScenarioPart } from "./report";
import { median, overheadSideBySide, restartsUnderLoad, type RestartRun } from "./scenarios";
import { HUPTIME } from "./servers";

/** Calls per accept() measurement. */
const ACCEPTS = 100_000;

/**
 * Microseconds per accept() that finds no connection and per getppid(), bare and under huptime
 * (median of `repeats`).
 */
function acceptRoundTrip(repeats: number): { bareUs: number; huptimeUs: number; bareSyscallUs: number; huptimeSyscallUs: number } {
  const prog = compileC(join(import.meta.dir, "servers", "accept_round_trip.c"), { flags: ["-static"] });
  const run = (argv: string[]): [number, number] => {
    const r = spawnSync(argv[0], argv.slice(1), { encoding: "utf8", timeout: 120_000 });
    const accept = /([\d.]+) us per accept4/.exec(r.stderr ?? "");
    const getppid = /([\d.]+) us per getppid/.exec(r.stderr ?? "");
    if (!accept || !getppid) throw new Error(`${argv.join(" ")}: no figure in its output (status ${r.status}): ${r.stderr}`);
    return [Number(accept[1]), Number(getppid[1])];
  };
  const bare: [number, number][] = [];
  const under: [number, number][] = [];
  for (let i = 0; i < repeats; i++) {
    bare.push(run([prog, String(ACCEPTS)]));
    under.push(run([HUPTIME, prog, String(ACCEPTS)]));
  }
  const m = (rs: [number, number][], i: 0 | 1) => median(rs.map((r) => r[i]));
  return { bareUs: m(bare, 0), huptimeUs: m(under, 0), bareSyscallUs: m(bare, 1), huptimeSyscallUs: m(under, 1) };
}

/** Scenario 8's figures, section and checks. */
export async function staticPart(restarts: number, intervalMs: number, repeats: number, date: string, say: (s: string) => void): Promise<ScenarioPart> {
  say(`scenario 8: static go (seccomp) fork, ${restarts} restarts every ${intervalMs} ms, 16 connections`);
  const run: RestartRun = await restartsUnderLoad("go", "fork", restarts, intervalMs, true);
  // 20 sets of fresh processes (12 with --quick), 2 rounds of 2 s runs on each: one process
  // keeps its own speed (two bare processes stayed 11 to 13% apart over 4 rounds, where one 2 s
  // run moves by 3.5%), so more sets of fewer rounds tell more; 10 sets of 4 rounds left that
  // luck at about ±2% on the ratio.
  const blocks = repeats * 4;
  const rounds = 2;
  say(`scenario 8: static go under huptime and bare twice side by side (server and wrk on separate CPUs), keep-alive and Connection: close, ${blocks} sets of fresh processes × ${rounds} rounds of 2 s runs, rotating`);
  const keepAlive = await overheadSideBySide("go", blocks, rounds, false, 2);
  const close = await overheadSideBySide("go", blocks, rounds, true, 2);
  say("scenario 8: one accept() bare and under huptime's seccomp filter");
  const accept = acceptRoundTrip(repeats);
  const { samples, marks, ...figures } = run;

  const checks: Check[] = [];
  const check = (what: string, value: number, target: string, pass: boolean, unit = "") =>
    checks.push({ what, value: `${Number.isInteger(value) ? value : value.toFixed(3)}${unit}`, target, pass });
  check("8 go (static, seccomp) fork: failed requests", run.load.failed, "0", run.load.failed === 0);
  const sighups = run.marks.length; // sent before the load ended
  check("8 go fork: restarts / SIGHUPs", run.restartsCompleted, "all", run.restartsCompleted === sighups, `/${sighups}`);
  check("8 go: throughput under huptime / bare", keepAlive.ratio, "≥ 0.97", keepAlive.ratio >= 0.97);
  check("8 go Connection: close: throughput under huptime / bare", close.ratio, "≥ 0.97", close.ratio >= 0.97);

  const range = (xs: number[]) => `${f2(Math.min(...xs))} to ${f2(Math.max(...xs))}`;
  const head = ["run", "phase", "requests", "failed", "req/s", "p50 ms", "p99 ms", "max ms"];
  const extraUs = accept.huptimeUs - accept.bareUs;
  const perRequestUs = 1e6 / close.bare.rps;
  const section = `## 8. Static programs under seccomp (measured ${date})

A static Go net/http server (CGO_ENABLED=0) under huptime, which it restarts through seccomp user
notification: no preload; its bind() and listen() calls go to a thread of huptime. accept() is
not sent: an old generation is kept from new connections by steering them to the new one's socket.

${table(head, restartRows([run]))}

Restart latency (SIGHUP → new generation serving): median ${f1(median(run.readyMs))} ms (the preloaded servers' are in section 1).

The same server under huptime and bare twice, side by side: ${blocks} times, three fresh processes
ran ${rounds} rounds of back-to-back 2 s wrk runs (16 connections), each idle while another
is measured, in rotating order, after a 1 s run of each that is not counted (a process keeps its
own speed for its life: no one process's luck may weigh on the whole run).
${keepAlive.cpus ? `Each server (huptime with it) runs on CPU ${keepAlive.cpus.server} and wrk on CPU ${keepAlive.cpus.wrk}.` : "Server and wrk share this machine's one CPU."}
huptime's requests are compared with the two bare processes' mean; the two bare processes'
ratio to each other shows what the measurement itself can tell apart. Beside each, the median
of the ${blocks * rounds} rounds' own ratios.

${table(["load", "bare req/s", "huptime req/s", "huptime / bare", "median round", "bare / bare", "median round", "bare p99 ms", "huptime p99 ms"], [keepAlive, close].map((o) => [o.close ? "Connection: close" : "keep-alive", f1(o.bare.rps), f1(o.huptime.rps), f3(o.ratio), f3(o.medianPairRatio), f3(o.bareRatio), f3(o.medianBarePairRatio), f2(o.bare.p99Ms), f2(o.huptime.p99Ms)]))}

Per set of processes, huptime / bare and bare / bare ranged over ${[keepAlive, close].map((o) => `${o.close ? "Connection: close" : "keep-alive"} ${range(o.blockRatios.map((r) => r.huptime))} and ${range(o.blockRatios.map((r) => r.bare))}`).join("; ")}.

One accept() that finds no connection: ${f2(accept.bareUs)} µs bare, ${f2(accept.huptimeUs)} µs under huptime's
seccomp filter (median of ${repeats} × ${ACCEPTS.toLocaleString("en")} calls), ${f2(extraUs)} µs apart: the filter's cost, since
the call is not sent to huptime. Every new connection costs at least one; bare, the server
handled a Connection: close request every ${f2(perRequestUs)} µs. Any system call pays about as much for
passing the filter: getppid() took ${f3(accept.bareSyscallUs)} µs bare and ${f3(accept.huptimeSyscallUs)} µs under the filter (a task under
seccomp enters the kernel by its slower path). A keep-alive request makes several system calls
(read, write, waits): bare, the server handled one every ${f2(1e6 / keepAlive.bare.rps)} µs.
`;
  return {
    section,
    key: "scenario8",
    data: { restarts: figures, keepAlive, close, accept },
    checks,
    checkPrefix: "8 ",
  };
}
