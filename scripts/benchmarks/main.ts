/**
 * scripts/bench: what huptime costs and whether it loses requests, measured side by side in one
 * run on this machine. Prints a summary with PASS/FAIL against the targets (goals, not test
 * assertions) and writes report.md, report.json and latency.svg into --out (default bench/).
 *
 * Options: --out DIR; --restarts N (scenarios 1 and 7, default 100 per server and mode); --quick (20
 * restarts, 3 repeats: a smoke run); --scenario keep-alive|compare|static (run scenario 6, 7 or 8
 * alone and put its figures into the report already in --out).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { comparePart } from "./compare";
import { keepAlivePart } from "./keepalive";
import { mergeScenario, writeReport, latencySvg, restartRows, table, targetsTable, f1, f2, type Check, type ScenarioPart } from "./report";
import { cliCost, median, overhead, restartsUnderLoad, shimCost, type RestartRun } from "./scenarios";
import { ROOT, type Kind } from "./servers";
import { staticPart } from "./static";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const quick = process.argv.includes("--quick");
const out = arg("--out") ?? join(ROOT, "bench");
const restarts = Number(arg("--restarts") ?? (quick ? 20 : 100));
const repeats = quick ? 3 : 5;
const interval = 300;

function say(s: string): void {
  process.stderr.write(`bench: ${s}\n`);
}

/** Seconds of SIGHUPs in scenario 6 (issue 15's 15 s; --quick: 6). */
const keepAliveSeconds = quick ? 6 : 15;
const today = new Date().toISOString().slice(0, 10);

/** The scenarios that run alone (--scenario NAME). */
const alone: Record<string, () => Promise<ScenarioPart>> = {
  "keep-alive": () => keepAlivePart(keepAliveSeconds, today, say),
  compare: () => comparePart(restarts, interval, today, say),
  static: () => staticPart(restarts, interval, repeats, today, say),
};

const only = arg("--scenario");
if (only !== undefined) {
  const part = alone[only];
  if (part === undefined) {
    say(`can't run scenario '${only}' alone: the ones that run alone are ${Object.keys(alone).join(", ")}`);
    process.exit(2);
  }
  if (!existsSync(join(out, "report.json")) || !existsSync(join(out, "report.md"))) {
    say(`can't run scenario '${only}' alone into ${out}: it has no report.md and report.json to add it to (run scripts/bench once)`);
    process.exit(2);
  }
  const measured = await part();
  mergeScenario(out, measured);
  process.stdout.write(`\n${targetsTable(measured.checks)}\n\nreport: ${join(out, "report.md")}\n`);
  process.exit(0);
}

const checks: Check[] = [];
const check = (what: string, value: number, target: string, pass: boolean, unit = "") =>
  checks.push({ what, value: `${Number.isInteger(value) ? value : value.toFixed(2)}${unit}`, target, pass });

// 1. Restarts under load, Connection: close.
const s1: RestartRun[] = [];
for (const kind of ["node", "python", "nginx"] as Kind[]) {
  for (const mode of ["fork", "exec"] as const) {
    say(`scenario 1: ${kind} ${mode}, ${restarts} restarts every ${interval} ms, 16 connections`);
    const r = await restartsUnderLoad(kind, mode, restarts, interval, true);
    s1.push(r);
    check(`1 ${kind} ${mode}: failed requests`, r.load.failed, "0", r.load.failed === 0);
  }
}
const nodeFork = s1.find((r) => r.kind === "node" && r.mode === "fork")!;
check("1 node fork: throughput restarting / without", nodeFork.load.rps / nodeFork.baseline.rps, "≥ 0.6", nodeFork.load.rps / nodeFork.baseline.rps >= 0.6);
for (const r of s1) {
  const ratio = r.load.p99Ms / r.baseline.p99Ms;
  check(`1 ${r.kind} ${r.mode}: p99 restarting / without`, ratio, "≤ 4", ratio <= 4);
}
const handover = s1.flatMap((r) => r.handoverMs);
check("handover: new ready → old stops accepting (max)", Math.max(...handover), "≤ 5 ms", Math.max(...handover) <= 5, " ms");

// 2. Keep-alive clients, fork mode.
const s2: RestartRun[] = [];
for (const kind of ["node", "python"] as Kind[]) {
  say(`scenario 2: ${kind} fork, keep-alive clients, ${Math.min(restarts, 50)} restarts`);
  const r = await restartsUnderLoad(kind, "fork", Math.min(restarts, 50), interval, false);
  s2.push(r);
  check(`2 ${kind} keep-alive: failed requests`, r.load.failed, "0", r.load.failed === 0);
}

// 3. Overhead when nothing restarts.
const s3 = [];
for (const kind of ["nginx", "node"] as Kind[]) {
  say(`scenario 3: ${kind} bare vs under huptime, ${repeats} repeats each, alternating`);
  const o = await overhead(kind, repeats);
  s3.push(o);
  check(`3 ${kind}: throughput under huptime / bare`, o.ratio, "≥ 0.97", o.ratio >= 0.97);
}
// Accept-bound: a new connection per request (nginx accepts non-blocking, python's
// ThreadingHTTPServer blocking), so the accept and close hooks run on every request. The static
// Go server is measured in scenario 8.
for (const kind of ["nginx", "python"] as Kind[]) {
  say(`scenario 3: ${kind} bare vs under huptime, Connection: close, ${repeats} repeats each, alternating`);
  const o = await overhead(kind, repeats, true);
  s3.push(o);
  check(`3 ${kind} Connection: close: throughput under huptime / bare`, o.ratio, "≥ 0.97", o.ratio >= 0.97);
}

// 4. The shim in a program that does not serve.
say("scenario 4: the shim on /bin/true");
const s4 = await shimCost();
check("4 /bin/true with the shim / without", s4.ratio, "≤ 1.3", s4.ratio <= 1.3);
check("4 extra peak RSS with the shim", s4.extraRssKiB, "≤ 2048 KiB", s4.extraRssKiB <= 2048, " KiB");

// 5. The CLI.
say("scenario 5: the CLI and the cost of a restart");
const s5 = await cliCost(repeats);

// 6. Keep-alive takeover.
const s6 = await alone["keep-alive"]();
checks.push(...s6.checks);

// 7. Against a plain restart and the limit.
const s7 = await alone.compare();
checks.push(...s7.checks);

// 8. Static programs under seccomp.
const s8 = await alone.static();
checks.push(...s8.checks);

const head = ["run", "phase", "requests", "failed", "req/s", "p50 ms", "p99 ms", "max ms"];
const md = `# huptime benchmark

Measured by \`scripts/bench${quick ? " --quick" : ""}\` on ${today} (${navigator.hardwareConcurrency} CPUs; every figure
of one table comes from the same run). wrk with 2 threads; "failed" counts connect, read, write
errors, timeouts and non-2xx responses.

## Targets

${targetsTable(checks)}

## 1. Restarts under load (Connection: close, 16 connections, SIGHUP every ${interval} ms)

${table(head, restartRows(s1))}

Restart latency (SIGHUP → new generation serving), median per run: ${s1.map((r) => `${r.kind} ${r.mode} ${f1(median(r.readyMs))} ms`).join("; ")}.
Handover (new generation ready → old one stops accepting): median ${f2(median(handover))} ms, max ${f2(Math.max(...handover))} ms over ${handover.length} fork-mode restarts.

![latency over time](latency.svg)

## 2. Restarts with keep-alive clients (fork mode)

${table(head, restartRows(s2))}

Old generations alive at once (at most): ${s2.map((r) => `${r.kind} ${r.oldAliveMax}`).join(", ")}. Keep-alive connections stay with the
generation that accepted them until they close or \`--drain-timeout\` (30 s) passes.

## 3. Overhead when nothing restarts (16 connections, median of ${repeats} alternating runs)

${table(["server", "load", "bare req/s", "huptime req/s", "ratio", "bare p99 ms", "huptime p99 ms"], s3.map((o) => [o.kind, o.close ? "Connection: close" : "keep-alive", f1(o.bare.rps), f1(o.huptime.rps), f2(o.ratio), f2(o.bare.p99Ms), f2(o.huptime.p99Ms)]))}

## 4. The shim in a program that does not serve

${table(["", "without", "with the shim", "ratio / extra"], [
  ["/bin/true wall time (hyperfine, via env)", `${f2(s4.trueMs)} ms`, `${f2(s4.trueWithShimMs)} ms`, f2(s4.ratio)],
  ["peak RSS of sleep (VmHWM)", `${s4.rssKiB} KiB`, `${s4.rssWithShimKiB} KiB`, `${s4.extraRssKiB} KiB`],
])}

## 5. The CLI

${table(["what", "ms"], [
  ["huptime --version", f2(s5.versionMs)],
  ["huptime /bin/true (start through huptime)", f2(s5.startViaHuptimeMs)],
  ["/bin/true directly", f2(s5.startDirectMs)],
  ["cost of starting through huptime", f2(s5.startOverheadMs)],
  ["python server: start-up until it answers (bare)", f1(s5.programStartupMs)],
  ["python server: SIGHUP until the new generation serves", f1(s5.restartReadyMs)],
  ["restart cost beyond the program's own start-up", f1(s5.restartOverheadMs)],
])}

${s6.section}
${s7.section}
${s8.section}`;

const json = {
  date: new Date().toISOString(),
  quick,
  checks,
  scenario1: s1.map(({ samples, marks, ...r }) => r),
  scenario2: s2.map(({ samples, marks, ...r }) => r),
  scenario3: s3,
  scenario4: s4,
  scenario5: s5,
  [s6.key]: s6.data,
  [s7.key]: s7.data,
  [s8.key]: s8.data,
};
writeReport(out, md, json, latencySvg(`node, fork mode: latency of a probe request every 25 ms during ${nodeFork.restartsCompleted} restarts`, nodeFork.samples, nodeFork.marks));

process.stdout.write(`\n${targetsTable(checks)}\n\nreport: ${join(out, "report.md")}\n`);
