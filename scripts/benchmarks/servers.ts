/**
 * The benchmark's servers (node http, a threaded python server, nginx with a master and two
 * workers, a static Go net/http server), started bare or under dist/huptime, and restarted the
 * way users do (SIGHUP to the current generation, which the state files name; for the static Go
 * server, run under seccomp, to huptime, which stays its parent).
 */
import { spawn } from "node:child_process";
import { connect } from "node:net";
import { mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir } from "../../src/cachedir";
import { STATUS_STATES } from "../../src/generated/protocol";
import { allPids, childPids, procStat, readArgv } from "../../src/instances";
import { readPublished, type Published } from "../../src/statusfile";
import { goFixture } from "../../test/helpers/go";
import { writeNginxConf } from "../../test/helpers/nginx";
import { killGroup } from "../../test/helpers/spawn";

export const ROOT = join(import.meta.dir, "..", "..");
export const HUPTIME = join(ROOT, "dist", "huptime");

/** Which server. */
export type Kind = "node" | "python" | "nginx" | "go";
/** How it runs: bare, or under huptime in fork or exec mode. */
export type Mode = "bare" | "fork" | "exec";

/** A running server. */
export interface Server {
  kind: Kind;
  mode: Mode;
  port: number;
  url: string;
  /** Everything huptime and the server wrote to stderr. */
  log(): string;
  /** Pid of the generation that serves now. */
  current(): number;
  /** SIGHUP to the current generation; resolves with the ms until the next one serves. */
  restart(): Promise<number | undefined>;
  /** SIGTERM to the current generation, as a supervisor stops a program; resolves once it has
   * exited (bare servers that stay in the foreground only: they are this process's children). */
  terminate(): Promise<void>;
  /** Every process the run left, generations and workers. */
  stop(): Promise<void>;
}

const statusDir = () => join(cacheDir(), "status");

/** The state huptime publishes for `pid`, if it runs under huptime. */
const published = (pid: number) => readPublished(statusDir(), pid);

/**
 * The next generation of `pid` once it serves: `pid` itself (exec mode) or a sibling that names it
 * as its previous one (fork mode starts the next generation beside the old one), among the
 * children of `parent`, the old one's parent read before the restart (the old one may have
 * drained and exited before the new one is first looked for). Looks only at
 * those processes: the state directory keeps the files of every process killed before it could
 * remove its own (thousands on a test machine), too many to read every few milliseconds while the
 * load runs.
 */
function successor(pid: number, generation: number, parent: number | undefined): Published | undefined {
  const candidates = [pid, ...(parent ? childPids(parent) : [])];
  for (const c of candidates) {
    const p = published(c);
    if (p && p.generation === generation + 1 && p.state === STATUS_STATES.serving && (p.pid === pid || p.previous === pid)) return p;
  }
  return undefined;
}

function nginxConf(dir: string, port: number): string[] {
  return ["nginx", "-c", writeNginxConf(dir, port, "ok", { connections: 4096, backlog: 1024 })];
}

/** The pid a pidfile names, 0 while it is missing (removed at a restart) or empty. */
function pidIn(file: string): number {
  try {
    return Number(readFileSync(file, "utf8").trim()) || 0;
  } catch {
    return 0;
  }
}


/** `pid` and every process below it, parents before their children. */
function tree(pid: number): number[] {
  return [pid, ...childPids(pid).flatMap(tree)];
}

/** Kills `pid`'s whole tree, parents first: a master killed after its workers (nginx) would
 * start new ones, which would outlive it. */
function killTree(pid: number, sig: NodeJS.Signals): void {
  for (const p of tree(pid)) {
    try {
      process.kill(p, sig);
    } catch {}
  }
}

/** Whether the server answers 2xx, on a connection that is closed at once (an idle keep-alive
 * connection of ours would hold up an exec-mode drain). */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    let raw = "";
    const s = connect({ port, host: "127.0.0.1" });
    const timer = setTimeout(() => (s.destroy(), resolve(false)), 1000);
    s.on("connect", () => s.write("GET / HTTP/1.0\r\nHost: bench\r\nConnection: close\r\n\r\n"));
    s.on("data", (d) => (raw += d));
    s.on("end", () => (clearTimeout(timer), resolve(/^HTTP\/1\.[01] 2/.test(raw))));
    s.on("error", () => (clearTimeout(timer), resolve(false)));
  });
}

/**
 * Starts `kind` on `port`, bare or under huptime (`extra`: more huptime options; `launcher`: a
 * command that runs what follows it, bare program or huptime, exec'ing it in the same process,
 * such as `taskset -c 1`).
 */
export async function startServer(kind: Kind, mode: Mode, port: number, extra: string[] = [], launcher: string[] = []): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), `huptime-bench-${kind}-`));
  if (kind === "go") writeFileSync(join(dir, "version"), "v1");
  const argv =
    kind === "node" ? ["node", join(import.meta.dir, "servers", "node.js"), String(port)]
    : kind === "python" ? ["python3", join(import.meta.dir, "servers", "python_threaded.py"), String(port)]
    : kind === "go" ? [goFixture("plain"), join(dir, "version"), `127.0.0.1:${port}`]
    : nginxConf(dir, port);
  const pidfile = join(dir, "nginx.pid");
  const full = [...launcher, ...(mode === "bare" ? argv : [HUPTIME, `--${mode}`, ...(kind === "nginx" ? ["--unlink", pidfile] : []), ...extra, ...argv])];
  const logPath = join(dir, "stderr.log");
  const child = spawn(full[0], full.slice(1), { detached: true, stdio: ["ignore", "ignore", openSync(logPath, "w")] });
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}/`;
  const end = Date.now() + 15_000;
  while (!(await answers(port))) {
    if (Date.now() > end) throw new Error(`${kind} (${mode}) did not answer on ${url}: ${readFileSync(logPath, "utf8")}`);
    await Bun.sleep(20);
  }
  // A static program under huptime is huptime's child; huptime takes its SIGHUPs.
  const supervised = kind === "go" && mode !== "bare";
  const first =
    kind === "nginx" ? Number(readFileSync(pidfile, "utf8").trim())
    : supervised ? (childPids(child.pid!).find((c) => published(c) !== undefined) ?? 0)
    : child.pid!;
  let pid = first;
  const seen = new Set<number>([first, child.pid!]);
  const generation = () => published(pid)?.generation ?? 1;
  return {
    kind,
    mode,
    port,
    url,
    log: () => readFileSync(logPath, "utf8"),
    current: () => pid,
    async restart() {
      const gen = generation();
      const parent = procStat(pid)?.ppid;
      const t0 = performance.now();
      try {
        process.kill(supervised ? child.pid! : pid, "SIGHUP");
      } catch {
        return undefined;
      }
      const until = Date.now() + 10_000;
      const old = pid;
      while (Date.now() < until) {
        // nginx names its master in its pidfile (rewritten by the new master, which is ready
        // by then); other servers are followed through huptime's state files.
        const fromPidfile = kind === "nginx" ? pidIn(pidfile) : 0;
        const next =
          kind === "nginx"
            ? fromPidfile && fromPidfile !== old && published(fromPidfile)?.state === STATUS_STATES.serving ? { pid: fromPidfile } : undefined
            : successor(old, gen, parent);
        if (next) {
          pid = next.pid;
          seen.add(pid);
          return performance.now() - t0;
        }
        await Bun.sleep(2);
      }
      return undefined;
    },
    async terminate() {
      if (mode !== "bare" || kind === "nginx") throw new Error(`can't terminate ${kind} (${mode}): only a bare server that stays in the foreground is this process's child`);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async stop() {
      // Daemons (nginx) leave the tree: find masters by their pidfile and their command line.
      if (kind === "nginx") {
        try {
          seen.add(Number(readFileSync(pidfile, "utf8").trim()));
        } catch {}
        for (const pid of allPids()) if (readArgv(pid)?.some((a) => a.includes(dir))) seen.add(pid);
      }
      for (const p of seen) killTree(p, "SIGKILL");
      killGroup(child.pid!);
      await Bun.sleep(50);
    },
  };
}
