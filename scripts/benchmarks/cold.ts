/**
 * How much a fresh copy of a server serves in its first moments, against a warm one (issue 18: "a
 * new node process serves cold"): wrk (Connection: close, 16 connections, 1 s) counts the
 * responses of every 100 ms from the moment the server first answered (a fresh copy) or from the
 * start of the load (a copy that has served for a second already).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./scenarios";
import { startServer, type Kind } from "./servers";

/** Buckets of 100 ms counted (1 s). */
const BUCKETS = 10;

// Per thread, a flat table of counts per 100 ms since T0 (wrk copies flat tables between its Lua
// states), summed over the threads at the end.
const lua = (t0: number, count: number) => `wrk.headers["Connection"] = "close"
local ffi = require("ffi")
ffi.cdef[[ typedef struct { long s; long ns; } cold_ts; int clock_gettime(int, cold_ts *); ]]
local ts = ffi.new("cold_ts")
local function now() ffi.C.clock_gettime(0, ts); return tonumber(ts.s) * 1000 + tonumber(ts.ns) / 1e6 end
local threads = {}
setup = function(t) table.insert(threads, t) end
buckets = {}
response = function()
  local b = math.floor((now() - ${t0}) / 100)
  buckets[b] = (buckets[b] or 0) + 1
end
done = function()
  local sum = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("buckets")) do sum[k] = (sum[k] or 0) + v end
  end
  local out = {}
  for b = 0, ${count - 1} do table.insert(out, tostring(sum[b] or 0)) end
  io.write("\\nbuckets " .. table.concat(out, " ") .. "\\n")
end
`;

/** Responses per 100 ms from `t0` (ms since the epoch), over `seconds` of load on `port`. */
export function buckets(port: number, t0: number, seconds = 1): number[] {
  const file = join(mkdtempSync(join(tmpdir(), "huptime-cold-")), "buckets.lua");
  writeFileSync(file, lua(t0, seconds * 10));
  const r = spawnSync("wrk", ["-t2", "-c16", `-d${seconds}s`, "--timeout", "5s", "-s", file, `http://127.0.0.1:${port}/`], { encoding: "utf8", timeout: 30_000 });
  const line = /^buckets (.*)$/m.exec(r.stdout ?? "");
  if (!line) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
  return line[1].split(" ").map(Number);
}

/** What a fresh and a warm copy served per 100 ms (sums over `repeats` copies). */
export interface ColdServe {
  kind: Kind;
  repeats: number;
  fresh: number[];
  warm: number[];
  /** fresh / warm per 100 ms. */
  share: number[];
}

/** Starts `repeats` fresh copies of `kind` (bare) and loads each at once, then again warm. */
export async function coldServe(kind: Kind, repeats = 5): Promise<ColdServe> {
  const fresh = new Array(BUCKETS).fill(0);
  const warm = new Array(BUCKETS).fill(0);
  for (let i = 0; i < repeats; i++) {
    const server = await startServer(kind, "bare", await freePort());
    try {
      buckets(server.port, Date.now()).forEach((n, b) => (fresh[b] += n));
      buckets(server.port, Date.now()).forEach((n, b) => (warm[b] += n));
    } finally {
      await server.stop();
    }
  }
  return { kind, repeats, fresh, warm, share: fresh.map((n, b) => n / warm[b]) };
}

/** A fresh copy's responses over its first `ms` (a multiple of 100) as a share of a warm one's. */
export function coldShare(c: ColdServe, ms: number): number {
  const sum = (xs: number[]) => xs.slice(0, ms / 100).reduce((a, b) => a + b, 0);
  return sum(c.fresh) / sum(c.warm);
}
