/** Spawning the built CLI (dist/huptime), the one way tests run huptime. */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawnGroup, type Group, type GroupOptions } from "./spawn";

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

/**
 * Starts `huptime args...` in its own process group, capturing its output. With `prefix`, runs
 * `prefix... huptime args...` instead (a launcher that execs huptime, keeping the pid).
 */
export function serve(args: string[], opts: GroupOptions & { prefix?: string[] } = {}): Group {
  const { prefix = [], ...rest } = opts;
  return spawnGroup([...prefix, HUPTIME, ...args], rest);
}

/** How many times `text` occurs in `s` (huptime's or a program's output). */
export function count(s: string, text: string): number {
  return s.split(text).length - 1;
}
