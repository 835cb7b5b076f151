/** The benchmark scenarios of scripts/bench; each returns plain data for the report. */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { RESTART_MODES, SHIM_VARS } from "../../src/generated/protocol";
import { isRunning } from "../../src/instances";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { shimPathForBench } from "./shim";
import { probe, type Sample } from "./probe";
import { HUPTIME, startServer, type Kind, type Mode } from "./servers";
import { startWrk, wrk, type WrkResult } from "../../test/helpers/wrk";

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

/** Scenario 1/2 result for one server and mode. */
export interface RestartRun {
  kind: Kind;
  mode: Mode;
  close: boolean;
  restarts: number;
  restartsCompleted: number;
  intervalMs: number;
  load: WrkResult;
  baseline: WrkResult;
  /** ms from SIGHUP to the new generation serving, per restart. */
  readyMs: number[];
  /** ms from the new generation's ready message to the old one no longer accepting (from the log). */
  handoverMs: number[];
  /** Most old generations alive at once (scenario 2). */
  oldAliveMax: number;
  samples: Sample[];
  marks: number[];
}

function aliveCount(pids: number[]): number {
  return pids.filter(isRunning).length;
}

/** What wrk and the probe saw while something restarted at marks. */
export interface LoadedRun {
  load: WrkResult;
  samples: Sample[];
  /** ms since the start at which each restart began. */
  marks: number[];
}

/** Seconds of load for `restarts` restarts every `intervalMs` (1 s more: wrk warms up first). */
export const loadSeconds = (restarts: number, intervalMs: number) => Math.ceil((restarts * intervalMs) / 1000) + 1;

/**
 * wrk (and the probe) on `port` while `cycle` (one restart) starts every `intervalMs`, `restarts`
 * times or until the load is about to end; the first starts 0.5 s into the load.
 */
export async function underRestarts(port: number, restarts: number, intervalMs: number, close: boolean, connections: number, cycle: () => Promise<void>): Promise<LoadedRun> {
  const seconds = loadSeconds(restarts, intervalMs);
  const start = performance.now();
  const sampler = probe(port, start);
  const marks: number[] = [];
  try {
    const load = startWrk(`http://127.0.0.1:${port}/`, { connections, seconds, close }).done;
    await Bun.sleep(500);
    for (let i = 0; i < restarts; i++) {
      const t = performance.now();
      marks.push(t - start);
      await cycle();
      const wait = intervalMs - (performance.now() - t);
      if (wait > 0) await Bun.sleep(wait);
      if (performance.now() - start > seconds * 1000 - 300) break;
    }
    return { load: await load, samples: await sampler.stop(), marks };
  } finally {
    await sampler.stop();
  }
}

/** Restarts every `intervalMs` under wrk load; then the same load without restarts. */
export async function restartsUnderLoad(kind: Kind, mode: Exclude<Mode, "bare">, restarts: number, intervalMs: number, close: boolean, connections = 16): Promise<RestartRun> {
  const port = await freePort();
  const server = await startServer(kind, mode, port);
  const readyMs: number[] = [];
  const previous: number[] = [];
  let oldAliveMax = 0;
  try {
    const { load, samples, marks } = await underRestarts(port, restarts, intervalMs, close, connections, async () => {
      const before = server.current();
      const ms = await server.restart();
      if (ms !== undefined) readyMs.push(ms);
      if (server.current() !== before) previous.push(before);
      oldAliveMax = Math.max(oldAliveMax, aliveCount(previous));
    });
    const handoverMs = [...server.log().matchAll(/stopped accepting (\d+\.\d+) ms later/g)].map((m) => Number(m[1]));
    await server.stop();
    const base = await startServer(kind, mode, await freePort());
    const baseline = await startWrk(base.url, { connections, seconds: loadSeconds(restarts, intervalMs), close }).done;
    await base.stop();
    return { kind, mode, close, restarts, restartsCompleted: readyMs.length, intervalMs, load, baseline, readyMs, handoverMs, oldAliveMax, samples, marks };
  } finally {
    await server.stop();
  }
}

/**
 * Scenario 3: throughput and p99 bare vs under huptime, alternating, `repeats` each. `close`:
 * Connection: close, so every request is a new connection (accept-bound: the accept and close
 * hooks on every request); otherwise keep-alive.
 */
export async function overhead(kind: Kind, repeats: number, close = false, seconds = 3) {
  const bare: WrkResult[] = [];
  const under: WrkResult[] = [];
  for (let i = 0; i < repeats; i++) {
    for (const mode of ["bare", "fork"] as const) {
      const server = await startServer(kind, mode, await freePort());
      try {
        (mode === "bare" ? bare : under).push(wrk(server.url, { connections: 16, seconds, close }));
      } finally {
        await server.stop();
      }
    }
  }
  const rps = (rs: WrkResult[]) => median(rs.map((r) => r.rps));
  const p99 = (rs: WrkResult[]) => median(rs.map((r) => r.p99Ms));
  return { kind, close, repeats, bare: { rps: rps(bare), p99Ms: p99(bare) }, huptime: { rps: rps(under), p99Ms: p99(under) }, ratio: rps(under) / rps(bare), runs: { bare, huptime: under } };
}

/** The CPUs this process may run on, from /proc/self/status ("0-3,6" -> [0, 1, 2, 3, 6]). */
function allowedCpus(): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? "0";
  return list.split(",").flatMap((part) => {
    const [from, to] = part.split("-").map(Number);
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i);
  });
}

/**
 * Where a throughput comparison runs: the server on the last allowed CPU, wrk on the others, so
 * that the scheduler's placing them differently from one run to the next does not add to the
 * noise (a 2 s run of the same server moved by 6.6% unpinned against 3.4% pinned on a 2-CPU
 * machine). None with a single CPU.
 */
function cpuSplit(): { server: string; wrk: string } | undefined {
  const cpus = allowedCpus();
  if (cpus.length < 2) return undefined;
  return { server: String(cpus[cpus.length - 1]), wrk: cpus.slice(0, -1).join(",") };
}

/** What {@link overheadSideBySide} measured for one load. */
export interface SideBySide {
  kind: Kind;
  close: boolean;
  /** Fresh processes started, and rounds run on each set. */
  blocks: number;
  rounds: number;
  seconds: number;
  /** Both bare servers' runs together. */
  bare: { rps: number; p99Ms: number };
  huptime: { rps: number; p99Ms: number };
  /** huptime's requests over the bare servers' mean, all runs (equal durations). */
  ratio: number;
  /** The median of the rounds' own ratios (huptime over that round's bare mean). */
  medianPairRatio: number;
  /** The second bare server's requests over the first's: what the measurement can tell apart. */
  bareRatio: number;
  medianBarePairRatio: number;
  /** `ratio` and `bareRatio` of each set of processes. */
  blockRatios: { huptime: number; bare: number }[];
  /** The CPUs the servers and wrk ran on (taskset lists), if they were kept apart. */
  cpus?: { server: string; wrk: string };
}

/**
 * Throughput and p99 under huptime against the same server run bare twice: the three run side
 * by side (each idle while another is measured) in rounds of back-to-back `seconds`-long wrk runs
 * in rotating order, so that the machine's drift and a fresh process's warm-up weigh on all alike.
 * Each server runs on one CPU and wrk on the others ({@link cpuSplit}); huptime runs on the
 * server's CPU with it, so what it does while the program serves counts against it. Two kinds of
 * noise are larger than what is measured, on a shared 2-CPU machine:
 * - a 2 s run of the same server moves by about 3.5%;
 * - a process keeps its own speed for its life (where its memory landed): two bare processes
 *   stayed 11 to 13% apart over 4 rounds.
 * So the servers are started afresh `blocks` times, each set warmed up by a 1 s run of each
 * server (not counted), then measured in `rounds` rounds (more sets of fewer rounds tell more),
 * and huptime is compared with the mean of two bare processes; the two bare ones' ratio to each
 * other shows what the measurement can tell apart in this run.
 */
export async function overheadSideBySide(kind: Kind, blocks: number, rounds: number, close = false, seconds = 2): Promise<SideBySide> {
  const order = ["bare", "huptime", "bare2"] as const;
  const runs: Record<(typeof order)[number], WrkResult[]> = { bare: [], huptime: [], bare2: [] };
  const sum = (rs: WrkResult[]) => rs.reduce((n, r) => n + r.requests, 0);
  const ratios = (rs: typeof runs) => ({ huptime: (2 * sum(rs.huptime)) / (sum(rs.bare) + sum(rs.bare2)), bare: sum(rs.bare2) / sum(rs.bare) });
  const blockRatios: SideBySide["blockRatios"] = [];
  const split = cpuSplit();
  const pin = split ? ["taskset", "-c", split.server] : [];
  for (let b = 0; b < blocks; b++) {
    const servers = {
      bare: await startServer(kind, "bare", await freePort(), [], pin),
      huptime: await startServer(kind, "fork", await freePort(), [], pin),
      bare2: await startServer(kind, "bare", await freePort(), [], pin),
    };
    const block: typeof runs = { bare: [], huptime: [], bare2: [] };
    try {
      // Not counted: a fresh process's first second (its heap growing, its first connections).
      for (const which of order) wrk(servers[which].url, { connections: 16, seconds: 1, close, cpus: split?.wrk });
      for (let i = 0; i < rounds; i++) {
        for (let j = 0; j < order.length; j++) {
          const which = order[(b + i + j) % order.length];
          block[which].push(wrk(servers[which].url, { connections: 16, seconds, close, cpus: split?.wrk }));
        }
      }
    } finally {
      for (const which of order) await servers[which].stop();
    }
    blockRatios.push(ratios(block));
    for (const which of order) runs[which].push(...block[which]);
  }
  const all = ratios(runs);
  const summary = (rs: WrkResult[]) => ({ rps: sum(rs) / (rs.length * seconds), p99Ms: median(rs.map((r) => r.p99Ms)) });
  return {
    kind,
    close,
    blocks,
    rounds,
    seconds,
    bare: summary([...runs.bare, ...runs.bare2]),
    huptime: summary(runs.huptime),
    ratio: all.huptime,
    medianPairRatio: median(runs.huptime.map((r, i) => (2 * r.rps) / (runs.bare[i].rps + runs.bare2[i].rps))),
    bareRatio: all.bare,
    medianBarePairRatio: median(runs.bare2.map((r, i) => r.rps / runs.bare[i].rps)),
    blockRatios,
    cpus: split,
  };
}

/** hyperfine: mean seconds of each command (no shell). */
function hyperfine(commands: string[], runs = 200): number[] {
  const file = join(mkdtempSync(join(tmpdir(), "huptime-hyperfine-")), "out.json");
  const r = spawnSync("hyperfine", ["-N", "--warmup", "20", "--runs", String(runs), "--export-json", file, "--style", "none", ...commands], { encoding: "utf8", timeout: 300_000 });
  if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
  const json = JSON.parse(readFileSync(file, "utf8"));
  return json.results.map((x: { mean: number }) => x.mean);
}

/** Peak RSS (KiB, VmHWM) of `sleep 0.3` run with `env`, read while it sleeps. */
async function peakRss(env: Record<string, string>): Promise<number> {
  const child = spawn("/bin/sleep", ["0.3"], { env: { ...process.env, ...env }, stdio: "ignore" });
  await Bun.sleep(150);
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
  await new Promise((r) => child.on("exit", r));
  return m ? Number(m[1]) : NaN;
}

/** Scenario 4: the shim's cost in a program that never serves. */
export async function shimCost() {
  const shim = shimPathForBench();
  const [plain, withShim] = hyperfine([`/usr/bin/env /bin/true`, `/usr/bin/env LD_PRELOAD=${shim} ${SHIM_VARS.mode}=${RESTART_MODES.fork} /bin/true`]);
  const with_ = { LD_PRELOAD: shim, [SHIM_VARS.mode]: RESTART_MODES.fork };
  const rssPlain: number[] = [];
  const rssShim: number[] = [];
  for (let i = 0; i < 3; i++) {
    rssPlain.push(await peakRss({}));
    rssShim.push(await peakRss(with_));
  }
  const [a, b] = [median(rssPlain), median(rssShim)];
  return { trueMs: plain * 1000, trueWithShimMs: withShim * 1000, ratio: withShim / plain, rssKiB: a, rssWithShimKiB: b, extraRssKiB: b - a };
}

/** Scenario 5: the CLI's own cost, and a restart's cost beyond the program's start-up. */
export async function cliCost(repeats = 5) {
  const [version, viaHuptime, direct] = hyperfine([`${HUPTIME} --version`, `${HUPTIME} /bin/true`, `/bin/true`], 50);
  // The program's own start-up: from exec to listening (it exits right there).
  const server_py = join(import.meta.dir, "servers", "python_threaded.py");
  const [startupS] = hyperfine([`/usr/bin/env BENCH_EXIT_AFTER_LISTEN=1 python3 ${server_py} 0`], 20);
  const startup = [startupS * 1000];
  const server = await startServer("python", "fork", await freePort());
  const ready: number[] = [];
  try {
    for (let i = 0; i < repeats; i++) {
      const ms = await server.restart();
      if (ms !== undefined) ready.push(ms);
      await Bun.sleep(200);
    }
  } finally {
    await server.stop();
  }
  return {
    versionMs: version * 1000,
    startViaHuptimeMs: viaHuptime * 1000,
    startDirectMs: direct * 1000,
    startOverheadMs: (viaHuptime - direct) * 1000,
    programStartupMs: median(startup),
    restartReadyMs: median(ready),
    restartOverheadMs: median(ready) - median(startup),
  };
}

export { median };
