/**
 * Running wrk and reading its results (a Lua `done` hook prints them as one JSON line), for the
 * benchmark and the keep-alive tests. With `origins`, a `response` hook also records which
 * process answered: the number after the first word of each body ("ok 1234" -> "1234"), with the
 * first and last time (ms since the epoch) it answered and how often, and the count per status.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Who answered: the body's origin token, first and last time (ms since the epoch), how often. */
export interface Origin {
  origin: string;
  first: number;
  last: number;
  count: number;
}

/** What one wrk run measured. */
export interface WrkResult {
  requests: number;
  durationS: number;
  /** Failed requests: connect, read, write errors, timeouts and non-2xx/3xx responses. */
  failed: number;
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** With `origins`: who answered (merged over wrk's threads). */
  origins?: Origin[];
  /** With `origins`: responses per HTTP status. */
  statuses?: Record<string, number>;
}

/** How to run it. */
export interface WrkOptions {
  connections: number;
  seconds: number;
  /** Send `Connection: close` (a new connection per request). */
  close: boolean;
  /** Record who answered each response (see the module comment); costs some throughput. */
  origins?: boolean;
  /** Run wrk on these CPUs only (a taskset(1) list such as "0" or "0,2-3"). */
  cpus?: string;
}

// The origin hook: per thread, flat tables (wrk copies flat tables between its Lua states, not
// nested ones) filled from a wall clock read through LuaJIT's ffi.
const ORIGINS_LUA = `
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long s; long ns; } huptime_ts; int clock_gettime(int, huptime_ts *); ]]
local ts = ffi.new("huptime_ts")
local function now() ffi.C.clock_gettime(0, ts); return tonumber(ts.s) * 1000 + tonumber(ts.ns) / 1e6 end
local threads = {}
setup = function(t) table.insert(threads, t) end
first, last, count, statuses = {}, {}, {}, {}
response = function(status, headers, body)
  local o = string.match(body or "", "^%S+ (%d+)") or "?"
  local t = now()
  if count[o] == nil then first[o] = t; count[o] = 0 end
  last[o] = t; count[o] = count[o] + 1
  statuses[status] = (statuses[status] or 0) + 1
end
local function origins()
  local f, l, n, st = {}, {}, {}, {}
  for _, t in ipairs(threads) do
    local tf, tl, tn, ts_ = t:get("first"), t:get("last"), t:get("count"), t:get("statuses")
    for k, v in pairs(tn) do
      if n[k] == nil then f[k] = tf[k]; l[k] = tl[k]; n[k] = 0 end
      f[k] = math.min(f[k], tf[k]); l[k] = math.max(l[k], tl[k]); n[k] = n[k] + v
    end
    for k, v in pairs(ts_) do st[k] = (st[k] or 0) + v end
  end
  local out = {}
  for k, v in pairs(n) do table.insert(out, string.format('{"origin":"%s","first":%.3f,"last":%.3f,"count":%d}', k, f[k], l[k], v)) end
  local s = {}
  for k, v in pairs(st) do table.insert(s, string.format('"%d":%d', k, v)) end
  return ',"origins":[' .. table.concat(out, ",") .. '],"statuses":{' .. table.concat(s, ",") .. '}'
end
`;

function script(opts: WrkOptions): string {
  const dir = mkdtempSync(join(tmpdir(), "huptime-wrk-"));
  const path = join(dir, "report.lua");
  writeFileSync(
    path,
    `${opts.close ? 'wrk.headers["Connection"] = "close"\n' : ""}${opts.origins ? ORIGINS_LUA : ""}done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
  io.write(${opts.origins ? "origins()" : '""'} .. "}\\n")
end
`,
  );
  return path;
}

/** The command line: wrk, under taskset with `cpus`. */
function command(url: string, opts: WrkOptions): string[] {
  return [...(opts.cpus ? ["taskset", "-c", opts.cpus] : []), "wrk", ...args(url, opts)];
}

function args(url: string, opts: WrkOptions): string[] {
  return ["-t2", `-c${opts.connections}`, `-d${Math.ceil(opts.seconds)}s`, "--timeout", "5s", "-s", script(opts), url];
}

/** The result from wrk's output (its last JSON line); throws with what wrk said if there is none. */
function parse(stdout: string, stderr: string): WrkResult {
  const line = stdout.split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`wrk failed: ${stderr || stdout}`);
  const j = JSON.parse(line);
  const errors = { connect: j.connect, read: j.read, write: j.write, timeout: j.timeout, status: j.status };
  const durationS = j.duration_us / 1e6;
  return {
    requests: j.requests,
    durationS,
    failed: errors.connect + errors.read + errors.write + errors.timeout + errors.status,
    errors,
    rps: j.requests / durationS,
    p50Ms: j.p50_us / 1000,
    p99Ms: j.p99_us / 1000,
    maxMs: j.max_us / 1000,
    ...(j.origins ? { origins: j.origins, statuses: j.statuses } : {}),
  };
}

/** Runs wrk against `url` for `seconds` with `connections` (2 threads) and waits for it. */
export function wrk(url: string, opts: WrkOptions): WrkResult {
  const [cmd, ...argv] = command(url, opts);
  const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: (opts.seconds + 30) * 1000 });
  return parse(r.stdout ?? "", r.stderr ?? String(r.error ?? ""));
}

/** A wrk run in the background. */
export interface WrkRun {
  /** Its result once it has ended by itself (after `seconds`). */
  done: Promise<WrkResult>;
  /** Ends it now (SIGINT: wrk stops its clients and reports) and returns its result. */
  stop(): Promise<WrkResult>;
}

/** Starts wrk against `url` in the background (see `wrk`). */
export function startWrk(url: string, opts: WrkOptions): WrkRun {
  const [cmd, ...argv] = command(url, opts);
  const child = spawn(cmd, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (err += d));
  const done = new Promise<WrkResult>((resolve, reject) =>
    child.on("close", () => {
      try {
        resolve(parse(out, err));
      } catch (e) {
        reject(e);
      }
    }),
  );
  return {
    done,
    stop() {
      child.kill("SIGINT");
      return done;
    },
  };
}
