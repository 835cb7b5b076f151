/**
 * Running a program under the preload library by hand, with values the CLI would never pass
 * (it drops inherited HUPTIME_* variables): garbage variables, invalid UTF-8, fds at chosen numbers.
 * Programs start through test/fixtures/with_fds.py, which sets LD_PRELOAD only for what it execs.
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir } from "../../src/cachedir";
import { RESTART_MODES, SHIM_VARS } from "../../src/generated/protocol";
import { ROOT, runCli } from "./cli";
import { SERVERS } from "./matrix";
import { freePort, request } from "./net";
import { waitFor } from "./procs";
import { spawnGroup, type Group } from "./spawn";

/** The wrapper that places fds and byte-valued variables, then execs. */
export const WITH_FDS = join(ROOT, "test", "fixtures", "with_fds.py");

let library: string | undefined;

/** File name of this build's preload library (named by its content hash), and that content. */
export function libraryFile(): { name: string; content: Buffer } {
  const content = readFileSync(join(ROOT, "dist", "huptime.node"));
  const hash = createHash("sha256").update(content).digest("hex");
  return { name: `huptime-${hash.slice(0, 32)}.so`, content };
}

/** Path of the preload library of this build, as the CLI writes it (written first if needed). */
export function preloadLibrary(): string {
  if (library) return library;
  const r = runCli(["true"]);
  if (r.code !== 0) throw new Error(`huptime true failed: ${r.stderr}`);
  return (library = join(cacheDir(process.env), libraryFile().name));
}

/** How to start a program under the preload. */
export interface PreloadOptions {
  /** Variables added to the environment as they are (HUPTIME_MODE defaults to fork). */
  env?: Record<string, string>;
  /** Variables set to raw bytes (may be invalid UTF-8). */
  bytes?: Record<string, Uint8Array>;
  /** Further with_fds.py options placing fds: ["--listen", "3:8080", "--file", "4:/etc/hostname"]. */
  fds?: string[];
}

/** with_fds.py arguments for `opts` and the preload, to run before `--` and the command. */
function wrapperArgs(opts: PreloadOptions): string[] {
  const args = [...(opts.fds ?? [])];
  const bytes: Record<string, Uint8Array> = { LD_PRELOAD: new TextEncoder().encode(preloadLibrary()), ...opts.bytes };
  for (const [k, v] of Object.entries(bytes)) args.push("--env", `${k}=${Buffer.from(v).toString("hex")}`);
  return args;
}

function environment(opts: PreloadOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, [SHIM_VARS.mode]: RESTART_MODES.fork, ...opts.env };
  delete env.LD_PRELOAD;
  return env;
}

/** A served test program (blocking.py) started under the preload in its own process group. */
export interface Preloaded extends Group {
  port: number;
}

/**
 * Starts test/fixtures/servers/blocking.py on a free port under the preload; `opts` may depend on
 * that port.
 */
export async function servePreloaded(options: PreloadOptions | ((port: number) => PreloadOptions) = {}): Promise<Preloaded> {
  const port = await freePort();
  const opts = typeof options === "function" ? options(port) : options;
  const cookie = join(mkdtempSync(join(tmpdir(), "huptime-preload-")), "cookie");
  writeFileSync(cookie, "cookie\n");
  const g = spawnGroup(["python3", WITH_FDS, ...wrapperArgs(opts), "--", "python3", join(SERVERS, "blocking.py"), String(port), cookie], {
    env: environment(opts),
  });
  return { ...g, port };
}

/** The pid that answers a request (the fixture's body is "cookie PID"), if one does. */
async function servingPid(port: number): Promise<number | undefined> {
  const r = await request(port, "/", 1000);
  return r.ok ? Number(r.body.trim().split(" ")[1]) : undefined;
}

/** Waits for the program to serve, sends SIGHUP, and waits for the next generation to serve. */
export async function servesAndRestarts(s: Preloaded): Promise<void> {
  let first: number | undefined;
  await waitFor(async () => (first = await servingPid(s.port)) !== undefined, `the program to serve (stderr: ${s.stderr()})`);
  process.kill(s.pid, "SIGHUP");
  await waitFor(async () => {
    const now = await servingPid(s.port);
    return now !== undefined && now !== first;
  }, `the next generation to serve (stderr: ${s.stderr()})`);
}

/** Outcome of a short run under the preload. */
export interface ShortRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  ms: number;
}

/** Runs `command` to completion under the preload, killing it after `timeoutMs`. */
export async function runPreloaded(command: string[], opts: PreloadOptions = {}, timeoutMs = 5000): Promise<ShortRun> {
  const start = Date.now();
  const g = spawnGroup(["python3", WITH_FDS, ...wrapperArgs(opts), "--", ...command], { env: environment(opts) });
  const timer = setTimeout(g.killGroup, timeoutMs);
  const { code, signal } = await g.exited;
  clearTimeout(timer);
  return { code, signal, stderr: g.stderr(), ms: Date.now() - start };
}
