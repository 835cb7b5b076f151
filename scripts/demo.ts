/**
 * The demo behind scripts/demo: runs examples/hello.py under dist/huptime, hammers it with new
 * connections, edits its code and sends SIGHUP several times, and reports each restart.
 */
import { spawn } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { allPids, isRunning, procStat } from "../src/instances";
import { freePort, loadLoop, request } from "../test/helpers/net";
import { killGroup } from "../test/helpers/spawn";

const ROOT = join(import.meta.dir, "..");
const RESTARTS = Number(process.env.DEMO_RESTARTS ?? 3);

/** Pids whose parent is this process and that are still running (fork mode's generations). */
function ourChildren(): number[] {
  return allPids().filter((p) => procStat(p)?.ppid === process.pid && isRunning(p));
}

async function until(pred: () => Promise<boolean> | boolean, ms = 15_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await Bun.sleep(20);
  }
  return false;
}

async function run(mode: "fork" | "exec"): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "huptime-demo-"));
  const app = join(dir, "hello.py");
  copyFileSync(join(ROOT, "examples", "hello.py"), app);
  const port = await freePort();
  const server = spawn(join(ROOT, "dist", "huptime"), [`--${mode}`, "python3", app, String(port)], {
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
  });
  let pid = server.pid!;
  console.log(`\n== ${mode} mode: huptime --${mode} python3 hello.py ${port}   (pid ${pid})`);
  if (!(await until(async () => (await request(port, "/", 1000)).ok))) throw new Error("server did not start");
  let failedTotal = 0;
  for (let n = 1; n <= RESTARTS; n++) {
    const load = loadLoop(port, { concurrency: 4, intervalMs: 2 });
    await Bun.sleep(300);
    const version = `v${n + 1}`;
    writeFileSync(app, readFileSync(app, "utf8").replace(/^VERSION = ".*"$/m, `VERSION = "${version}"`));
    const t0 = performance.now();
    process.kill(pid, "SIGHUP");
    let body = "";
    await until(async () => {
      const r = await request(port, "/", 2000);
      body = r.ok ? r.body.trim() : "";
      return body.startsWith(version + " ");
    });
    const ms = Math.round(performance.now() - t0);
    await Bun.sleep(300);
    const stats = await load.stop();
    failedTotal += stats.failed;
    const newPid = mode === "exec" ? pid : Number(body.split(" ")[1]);
    console.log(
      `restart ${n}: pid ${pid} -> ${newPid}, code ${version} answering after ${ms} ms, ` +
        `${stats.ok + stats.failed} requests, ${stats.failed} failed`,
    );
    pid = newPid;
  }
  process.kill(pid, "SIGTERM");
  await until(() => ourChildren().length === 0, 5000);
  killGroup(server.pid!);
  return failedTotal;
}

const failed = (await run("fork")) + (await run("exec"));
console.log(`\n${failed === 0 ? "no request failed" : `${failed} requests failed`} across ${RESTARTS * 2} restarts`);
process.exit(failed === 0 ? 0 : 1);
