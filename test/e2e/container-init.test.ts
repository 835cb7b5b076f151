/**
 * huptime as a container's entrypoint: PID 1 of a new PID namespace (`unshare --pid --fork
 * --mount-proc`, what a container runtime makes). It stays the init: SIGHUP to PID 1 restarts
 * (fork and exec mode), orphans are reaped, SIGTERM stops (SIGKILL after --timeout), the
 * namespace ends with the program's status, and the control commands run inside find it.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids, descendantPids, procStat, readArgv } from "../../src/instances";
import { HUPTIME, ROOT } from "../helpers/cli";
import { freePort, loadLoop, request } from "../helpers/net";
import { fdTargets, waitFor } from "../helpers/procs";
import { SERVERS } from "../helpers/matrix";
import { spawnGroup, type Group } from "../helpers/spawn";

const APP = join(ROOT, "test", "fixtures", "container", "app.py");

/** A namespace running `huptime ...opts python3 app.py PORT VERSION_FILE onTerm` as its PID 1. */
interface Container {
  ns: Group;
  port: number;
  /** Host pid of the namespace's PID 1. */
  init: number;
  versionFile: string;
  setVersion(v: string): void;
  /** The program's command line, as the control commands take it. */
  command: string[];
}

/** The program: app.py with its SIGTERM action `onTerm`. */
const pythonApp = (onTerm: string) => (port: number, versionFile: string) => ["python3", APP, String(port), versionFile, onTerm];

async function startContainer(opts: string[], onTerm = "default", program = pythonApp(onTerm)): Promise<Container> {
  const port = await freePort();
  const versionFile = join(mkdtempSync(join(tmpdir(), "huptime-container-")), "version");
  writeFileSync(versionFile, "v1");
  const command = program(port, versionFile);
  const ns = spawnGroup(["unshare", "--pid", "--fork", "--mount-proc", HUPTIME, ...opts, ...command]);
  let init = 0;
  await waitFor(() => (init = childPids(ns.pid)[0] ?? 0) > 0, "the namespace's PID 1");
  await waitFor(async () => (await request(port, "/", 1000)).ok, `the program to answer (output: ${ns.output()})`);
  return { ns, port, init, command, versionFile, setVersion: (v) => writeFileSync(versionFile, v) };
}

/** The version that answers, or undefined. */
async function version(port: number): Promise<string | undefined> {
  const r = await request(port, "/", 2000);
  return r.ok ? r.body.split(" ")[0] : undefined;
}

/** Processes in the namespace (under its PID 1) that are zombies. */
function zombies(init: number): number[] {
  return descendantPids(init).filter((p) => procStat(p)?.state === "Z");
}

/** Restarts by SIGHUP to PID 1, `times` times under a client loop: no failed request, new code each time. */
async function restartsUnderLoad(c: Container, times: number): Promise<void> {
  const load = loadLoop(c.port, { concurrency: 4, intervalMs: 2 });
  for (let gen = 2; gen <= times + 1; gen++) {
    const served = load.stats.ok;
    await waitFor(() => load.stats.ok >= served + 30, "the client loop to be served");
    c.setVersion(`v${gen}`);
    process.kill(c.init, "SIGHUP");
    await waitFor(async () => (await version(c.port)) === `v${gen}`, `v${gen} to answer (output: ${c.ns.output()})`);
  }
  const stats = await load.stop();
  expect(stats.failed, stats.errors.join(", ")).toBe(0);
}

/** Waits for the namespace to end; its exit status and how long that took after `since`. */
async function ending(c: Container, since: number): Promise<{ code: number | null; ms: number }> {
  const e = await c.ns.exited;
  return { code: e.code, ms: Date.now() - since };
}

/** Connections to 127.0.0.1:`port` that `pid` has accepted (an fd of its own, established). */
function acceptedConnections(pid: number, port: number): number {
  const mine = new Set(fdTargets(pid).map((t) => /socket:\[(\d+)\]$/.exec(t)?.[1]).filter(Boolean));
  const local = `:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync(`/proc/${pid}/net/tcp`, "utf8")
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1]?.endsWith(local) && f[3] === "01" && mine.has(f[9])).length;
}

/**
 * SIGTERM to PID 1 (started with --drain-timeout=5) while a slow request to `path` is open
 * (`taken` says when the program has it): the request finishes, and the namespace ends with 0
 * within the drain deadline.
 */
async function stopsWithOpenRequest(c: Container, path: string, taken: () => boolean): Promise<void> {
  const open = request(c.port, path, 10_000);
  await waitFor(taken, "the request to be in the program's hands");
  const t0 = Date.now();
  process.kill(c.init, "SIGTERM");
  const reply = await open;
  expect(reply.ok, reply.ok ? "" : reply.error).toBe(true);
  const end = await ending(c, t0);
  expect(end.code, c.ns.output()).toBe(0);
  expect(end.ms).toBeLessThan(5000);
}

describe("huptime as PID 1 of a PID namespace", () => {
  for (const mode of ["--fork", "--exec"]) {
    test(`${mode}: PID 1 stays huptime; 3 SIGHUPs to it under load: 0 failures, new code each time; every orphan reaped`, async () => {
      const c = await startContainer([mode]);
      try {
        expect(readArgv(c.init)?.slice(0, 2)).toEqual(["huptime", "--init"]);
        await restartsUnderLoad(c, 3);
        // Each start left a `sleep 0.2` orphan: once they have run out, none stays a zombie.
        await waitFor(() => !descendantPids(c.init).some((p) => readArgv(p)?.[0] === "sleep" && procStat(p)?.state !== "Z"), "the orphans to end");
        await waitFor(() => zombies(c.init).length === 0, "no zombie in the namespace");
        // Zombies are processes too: once the old generations have drained, only the program is left.
        await waitFor(() => descendantPids(c.init).length === 1, "only the program's current generation to be left");
      } finally {
        c.ns.killGroup();
      }
    }, 90_000);
  }

  // default: the shim drains a program that leaves SIGTERM alone; drain: the program's own handler.
  for (const onTerm of ["default", "drain"]) {
    test(`SIGTERM to PID 1 (program's SIGTERM action: ${onTerm}): the open request finishes and the namespace ends with 0 within the drain deadline`, async () => {
      const c = await startContainer(["--drain-timeout=5"], onTerm);
      try {
        await stopsWithOpenRequest(c, "/sleep=1", () => existsSync(`${c.versionFile}.busy`));
      } finally {
        c.ns.killGroup();
      }
    }, 60_000);
  }

  test("node (whose SIGTERM handler resets itself and raises it again) drains too: its slow request finishes, the namespace ends with 0", async () => {
    const c = await startContainer(["--drain-timeout=5"], "default", (port, file) => ["node", join(SERVERS, "node_http.js"), String(port), file]);
    try {
      const node = childPids(c.init)[0];
      await stopsWithOpenRequest(c, "/slow", () => acceptedConnections(node, c.port) > 0);
    } finally {
      c.ns.killGroup();
    }
  }, 60_000);

  test("a program that ignores SIGTERM is killed (SIGKILL) --timeout after it; the namespace ends with 137", async () => {
    const c = await startContainer(["--timeout=1"], "ignore");
    try {
      const t0 = Date.now();
      process.kill(c.init, "SIGTERM");
      const end = await ending(c, t0);
      expect(end.code, c.ns.output()).toBe(137);
      expect(end.ms).toBeGreaterThanOrEqual(1000);
      expect(c.ns.stderr()).toContain("killing what is left (SIGKILL)");
    } finally {
      c.ns.killGroup();
    }
  }, 60_000);

  test("a program that ends by itself ends the namespace with its status", async () => {
    const c = await startContainer([]);
    try {
      void request(c.port, "/exit=3", 2000);
      expect((await c.ns.exited).code, c.ns.output()).toBe(3);
    } finally {
      c.ns.killGroup();
    }
  }, 60_000);

  test("--multi=2 as PID 1: both instances restart on SIGHUP under load, orphans are reaped, SIGTERM ends it with 0", async () => {
    const c = await startContainer(["--multi=2"]);
    try {
      await restartsUnderLoad(c, 1);
      await waitFor(() => zombies(c.init).length === 0, "no zombie in the namespace");
      process.kill(c.init, "SIGTERM");
      expect((await c.ns.exited).code, c.ns.output()).toBe(0);
    } finally {
      c.ns.killGroup();
    }
  }, 90_000);

  test("--restart and --status run inside the namespace find the program under PID 1", async () => {
    const c = await startContainer([]);
    try {
      const inside = (args: string[]) => spawnGroup(["nsenter", "-t", String(c.init), "-p", "-m", HUPTIME, ...args]);
      const status = inside(["--status", ...c.command]);
      expect((await status.exited).code, status.output()).toBe(0);
      c.setVersion("v2");
      const restart = inside(["--restart", ...c.command]);
      expect((await restart.exited).code, restart.output()).toBe(0);
      expect(await version(c.port)).toBe("v2");
      process.kill(c.init, "SIGTERM");
      expect((await c.ns.exited).code, c.ns.output()).toBe(0);
    } finally {
      c.ns.killGroup();
    }
  }, 60_000);
});

describe("--init outside a namespace", () => {
  test("huptime stays the parent and a child subreaper: SIGHUP to it restarts, the orphans are its own and reaped, SIGTERM drains and ends it with 0", async () => {
    const port = await freePort();
    const versionFile = join(mkdtempSync(join(tmpdir(), "huptime-init-")), "version");
    writeFileSync(versionFile, "v1");
    const s = spawnGroup([HUPTIME, "--init", "python3", APP, String(port), versionFile, "default"]);
    try {
      await waitFor(async () => (await version(port)) === "v1", `v1 to answer (output: ${s.output()})`);
      writeFileSync(versionFile, "v2");
      process.kill(s.pid, "SIGHUP");
      await waitFor(async () => (await version(port)) === "v2", `v2 to answer (output: ${s.output()})`);
      // Both starts' orphans were reparented to huptime (not to the system's init) and reaped.
      await waitFor(() => descendantPids(s.pid).length === 1, "only the program's current generation to be left under huptime");
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code, s.output()).toBe(0);
    } finally {
      s.killGroup();
    }
  }, 60_000);
});

