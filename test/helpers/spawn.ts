/**
 * Starting a process in its own process group with its output captured, and killing that group:
 * the one way tests start long-running programs (huptime, launchers, wrappers) and clean them up.
 * Every generation, worker and helper the program starts stays in the group, so one SIGKILL to
 * the group ends them all, whatever the test did or failed to do.
 */
import { spawn, type ChildProcess } from "node:child_process";

/** How it ended: the exit code, or the signal that killed it. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A process started by `spawnGroup`: the leader of its own process group. */
export interface Group {
  /** Pid of the process started. */
  pid: number;
  /** Its process group (the same number): everything it starts stays in it. */
  pgid: number;
  child: ChildProcess;
  /** Everything written to stdout so far. */
  stdout(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Everything written to stdout and stderr so far, in the order it arrived. */
  output(): string;
  /** Resolves once it has exited and both outputs have ended (a process still holding them delays it). */
  exited: Promise<Exit>;
  /** Sends SIGKILL to the whole group (cleanup; it may be gone already). */
  killGroup(): void;
}

/** How to start it. */
export interface GroupOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** An fd to read as stdin (default: none, /dev/null). */
  stdin?: number;
}

/** Starts `argv` detached (in a new process group led by it) with stdout and stderr captured. */
export function spawnGroup(argv: string[], opts: GroupOptions = {}): Group {
  const child = spawn(argv[0], argv.slice(1), {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    detached: true,
    stdio: [opts.stdin ?? "ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  let both = "";
  child.stdout!.on("data", (d) => ((out += d), (both += d)));
  child.stderr!.on("data", (d) => ((err += d), (both += d)));
  const exited = new Promise<Exit>((resolve) => child.on("close", (code, signal) => resolve({ code, signal })));
  const pid = child.pid!;
  return {
    pid,
    pgid: pid,
    child,
    stdout: () => out,
    stderr: () => err,
    output: () => both,
    exited,
    killGroup: () => killGroup(pid),
  };
}

/** SIGKILL to process group `pgid` (test cleanup; the group may be gone already). */
export function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {}
}
