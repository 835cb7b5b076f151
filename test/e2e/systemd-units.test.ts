/**
 * examples/huptime.service and examples/huptime.socket, run the way systemd would run them (with
 * the test's stand-ins for systemd's socket activation and notify socket): socket-activated
 * start, READY=1, `systemctl reload` (SIGHUP to MAINPID) under load with zero failed requests,
 * `systemctl stop` (SIGTERM to the whole unit).
 */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { appSource, pythonApp, waitForVersion } from "../helpers/app";
import { ROOT, serve } from "../helpers/cli";
import { freePort, loadLoop } from "../helpers/net";
import { notifyListener } from "../helpers/notify";
import { groupMembers, waitFor } from "../helpers/procs";

/** `[Section] Key=value` lines of a unit file (comments skipped; repeated keys keep the first). */
function unit(file: string): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  let section = "";
  for (const raw of readFileSync(join(ROOT, "examples", file), "utf8").split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^\[(.+)\]$/);
    if (m) section = m[1];
    else {
      const i = line.indexOf("=");
      out[section] ??= {};
      out[section][line.slice(0, i)] ??= line.slice(i + 1);
    }
  }
  return out;
}

test("the example units, run as systemd would: activation, READY, reload under load, stop", async () => {
  const service = unit("huptime.service");
  const socket = unit("huptime.socket");
  expect(service.Service.Type).toBe("notify-reload");
  expect(service.Service.ReloadSignal).toBe("SIGHUP");
  expect(socket.Socket.Service).toBe("huptime.service");
  const [huptime, ...rest] = service.Service.ExecStart.split(/\s+/);
  expect(huptime).toEndWith("/huptime");
  const options = rest.slice(0, rest.findIndex((a) => !a.startsWith("--")));
  expect(options.length).toBeGreaterThan(0);
  expect(socket.Socket.ListenStream).toMatch(/^127\.0\.0\.1:\d+$/);

  const sd = await notifyListener();
  const port = await freePort();
  const app = pythonApp("v1");
  // systemd binds ListenStream (on a free port here) and starts ExecStart with LISTEN_FDS; the
  // program (the test's app instead of myservice) binds the same address.
  const s = serve([...options, "python3", app.file, String(port)], {
    cwd: app.dir,
    env: { ...process.env, NOTIFY_SOCKET: sd.path },
    prefix: ["python3", join(ROOT, "test", "fixtures", "activate.py"), String(port)],
  });
  try {
    const ready = await sd.next((n) => n.fields.READY === "1", 0, "READY=1");
    expect(ready.fields.MAINPID).toBe(String(s.pid));
    await waitForVersion(port, "v1");
    expect(s.output()).toContain("socket activation");

    const load = loadLoop(port, { concurrency: 4 });
    let mainPid = s.pid;
    for (const v of ["v2", "v3"]) {
      app.write(appSource(v));
      const mark = sd.notices.length;
      process.kill(mainPid, "SIGHUP"); // systemctl reload
      await sd.next((n) => n.fields.RELOADING === "1", mark, "RELOADING=1");
      const done = await sd.next((n) => n.fields.READY === "1", mark, "READY=1 after the reload");
      mainPid = Number(done.fields.MAINPID);
      await waitForVersion(port, v);
    }
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join(", ")).toBe(0);

    const mark = sd.notices.length;
    process.kill(-s.pgid, "SIGTERM"); // systemctl stop: SIGTERM to every process of the unit
    await sd.next((n) => n.fields.STOPPING === "1" && n.pid === mainPid, mark, "STOPPING=1 from the main process");
    await waitFor(() => groupMembers(s.pgid).length === 0, "every process to end");
  } finally {
    s.killGroup();
    sd.stop();
  }
}, 40_000);
