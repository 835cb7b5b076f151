/** Spawning the built CLI (dist/huptime), the one way tests run huptime. */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";

/** Repository root. */
export const ROOT = join(import.meta.dir, "..", "..");
/** The built executable under test. */
export const HUPTIME = join(ROOT, "dist", "huptime");

if (!existsSync(HUPTIME)) {
  throw new Error(`${HUPTIME} is missing: run scripts/build first`);
}

/** Result of a finished CLI run. */
export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `huptime args...` to completion (bounded by `timeoutMs`). */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}): RunResult {
  const r = spawnSync(HUPTIME, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    timeout: opts.timeoutMs ?? 30_000,
    input: opts.input ?? "",
    encoding: "utf8",
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

/** A long-running program started under huptime in its own process group. */
export interface Served {
  /** Pid of huptime, which became the program (same pid). */
  pid: number;
  /** Process group: every generation and worker stays in it. */
  pgid: number;
  child: ChildProcess;
  /** Everything written to stdout/stderr so far. */
  output(): string;
  /** Sends SIGKILL to the whole group (cleanup). */
  killGroup(): void;
}

/**
 * Starts `huptime args...` detached (own process group), capturing its output. With `prefix`,
 * runs `prefix... huptime args...` instead (a launcher that execs huptime, keeping the pid).
 */
export function serve(args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; prefix?: string[] } = {}): Served {
  const argv = [...(opts.prefix ?? []), HUPTIME, ...args];
  const child = spawn(argv[0], argv.slice(1), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const pid = child.pid!;
  return {
    pid,
    pgid: pid,
    child,
    output: () => out,
    killGroup() {
      try {
        process.kill(-pid, "SIGKILL");
      } catch {}
    },
  };
}
