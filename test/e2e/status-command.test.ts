/**
 * `huptime --status [<command...>]`: the masters' pids when not on a terminal (as the original);
 * with --json/--table, every managed process with its generation, state, sockets and connections.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { ROOT, runCli, serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, hold, request } from "../helpers/net";
import { groupMembers, waitFor } from "../helpers/procs";
import { asUser, secondUser, serveAppAs, sharedHuptime, userEnv } from "../helpers/users";
import type { StatusRow } from "../../src/inventory";
import { statusRows } from "../helpers/status";
import { RECEIPT_FIELDS } from "../../src/generated/protocol";

describe("huptime --status", () => {
  test("prints the master's pid, by full command line or by script name", async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "huptime-status-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "x");
    // A private copy, so that matching by script path alone finds only this test's pool.
    const script = join(dir, "prefork.py");
    copyFileSync(join(SERVERS, "prefork.py"), script);
    copyFileSync(join(SERVERS, "common.py"), join(dir, "common.py"));
    const s = serve(["python3", script, String(port), cookie]);
    try {
      await waitFor(async () => (await request(port, "/", 1000)).ok, "the pool to answer");
      await waitFor(() => groupMembers(s.pgid).length === 4, "master and 3 workers");
      for (const argv of [["python3", script], [script], [script, String(port)]]) {
        const r = runCli(["--status", ...argv]);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe(`${s.pid}\n`);
      }
      const other = runCli(["--status", script, "9"]);
      expect(other.code).toBe(1);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("nothing running: a clear message and exit 1", () => {
    const r = runCli(["--status", "no-such-service-xyz"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain("no running instance of 'no-such-service-xyz'");
  });
});

describe("huptime --status: what each process is doing", () => {
  const status = statusRows;

  test("a fork-mode server mid-drain: two generations, their states and connection counts", async () => {
    // --drain-idle: the held connections below carry no data and must not be closed as idle.
    const { app, port, s } = await serveApp("v1", ["--drain-idle=600"]);
    try {
      const held = [await hold(port), await hold(port)];
      await waitFor(() => status(["python3", app.file]).some((r) => r.connections === 2), "2 connections counted");
      const before = status(["python3", app.file]);
      expect(before).toHaveLength(1);
      expect(before[0]).toMatchObject({ pid: s.pid, generation: 1, mode: "fork", state: "serving", connections: 2, listening: [`tcp 127.0.0.1:${port}`] });
      app.write(appSource("v2"));
      process.kill(s.pid, "SIGHUP");
      await waitForVersion(port, "v2");
      await waitFor(() => status(["python3", app.file]).some((r) => r.pid === s.pid && r.state === "draining"), "the old generation to drain");
      const during = status(["python3", app.file]);
      const old = during.find((r) => r.pid === s.pid);
      const next = during.find((r) => r.pid !== s.pid);
      expect(old).toMatchObject({ generation: 1, state: "draining", connections: 2 });
      expect(next).toMatchObject({ generation: 2, state: "serving", mode: "fork", listening: [`tcp 127.0.0.1:${port}`] });
      expect(next!.command).toContain(app.file);
      for (const h of held) expect((await h.send()).ok).toBe(true);
      await waitFor(() => status(["python3", app.file]).length === 1, "the old generation to end");
      // The table says the same to a person.
      const table = runCli(["--status", "--table", "python3", app.file]);
      expect(table.stdout).toMatch(new RegExp(`^PID +PPID +GEN +MODE +STATE +CONNS +UPTIME +LAST RESTART +LISTENING +COMMAND\\n${next!.pid} +\\d+ +2 +fork +serving +0 +\\d+s +ready \\d+s ago +tcp 127\\.0\\.0\\.1:${port} +\\S*python3 ${app.file.replace(/[.]/g, "\\.")} ${port}\\n$`));
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("--json has exactly the fields the README documents, with their types", async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const start = readme.indexOf("`--json` prints");
    const section = readme.slice(start, readme.indexOf("\n## ", start));
    const documented = [...section.matchAll(/^\| `(\w+)` \| ([^|]+) \|/gm)].map((m) => [m[1], m[2].trim()]);
    expect(documented.length).toBe(12);
    const receiptDocumented = [...section.matchAll(/^\| `last_restart\.(\w+)` \| ([^|]+) \|/gm)].map((m) => m[1]);
    expect(receiptDocumented.sort()).toEqual(Object.values(RECEIPT_FIELDS).filter((f) => f !== "pid" && f !== "start").sort());
    const { port, s } = await serveApp("v1");
    try {
      const rows = status([]);
      const mine = rows.find((r) => r.pid === s.pid)!;
      expect(mine).toBeDefined();
      expect(Object.keys(mine).sort()).toEqual(documented.map(([f]) => f).sort());
      for (const [field, type] of documented) {
        const v = (mine as unknown as Record<string, unknown>)[field];
        const ok = type.startsWith("number") ? typeof v === "number" || (type.includes("null") && v === null)
          : type.startsWith("string[]") ? Array.isArray(v) && v.every((x) => typeof x === "string")
          : type.startsWith("object") ? (typeof v === "object" && v !== null && !Array.isArray(v)) || (type.includes("null") && v === null)
          : typeof v === "string" || (type.includes("null") && v === null);
        expect(ok, `${field}: ${type} but got ${JSON.stringify(v)}`).toBe(true);
      }
      expect(mine.listening).toEqual([`tcp 127.0.0.1:${port}`]);
      expect(mine.uid).toBe(process.getuid!());
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("another user sees only their own processes; root sees both", async () => {
    const user = secondUser();
    const shared = sharedHuptime();
    const { s: rootServer } = await serveApp("v1");
    try {
      const theirs = await serveAppAs(user, shared, "user");
      try {
        const asThem = spawnSync(asUser(user)[0], [...asUser(user).slice(1), shared.huptime, "--status", "--json"], { env: userEnv(user), encoding: "utf8" });
        expect(asThem.status, asThem.stderr).toBe(0);
        const seen: StatusRow[] = JSON.parse(asThem.stdout).processes;
        expect(seen.map((r) => r.pid)).toEqual([theirs.pid]);
        expect(seen[0]).toMatchObject({ uid: user.uid, state: "serving", listening: [`tcp 127.0.0.1:${theirs.port}`] });
        const asRoot = status([]);
        expect(asRoot.map((r) => r.pid)).toContain(rootServer.pid);
        // Their state comes from their status directory, found beside the library their
        // process maps (their environment holds none of huptime's variables).
        expect(asRoot.find((r) => r.pid === theirs.pid)).toMatchObject({ uid: user.uid, state: "serving", generation: 1 });
      } finally {
        theirs.killGroup();
      }
    } finally {
      rootServer.killGroup();
    }
  }, 30_000);
});
