/** Running wrk and reading its results (a Lua `done` hook prints them as one JSON line). */
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

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
}

function script(close: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), "huptime-wrk-"));
  const path = join(dir, "report.lua");
  writeFileSync(
    path,
    `${close ? 'wrk.headers["Connection"] = "close"\n' : ""}done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`,
  );
  return path;
}

/** Runs wrk against `url` for `seconds` with `connections` (2 threads); `close` sends
 * `Connection: close` (a new connection per request). */
export function wrk(url: string, opts: { connections: number; seconds: number; close: boolean }): WrkResult {
  const r = spawnSync("wrk", ["-t2", `-c${opts.connections}`, `-d${opts.seconds}s`, "--timeout", "5s", "-s", script(opts.close), url], {
    encoding: "utf8",
    timeout: (opts.seconds + 30) * 1000,
  });
  const line = (r.stdout ?? "").split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`wrk failed: ${r.stderr || r.stdout || r.error}`);
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
  };
}
