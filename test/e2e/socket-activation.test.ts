/**
 * Socket activation in (LISTEN_FDS): huptime started with a listening socket at fd 3 maps the
 * program's bind() on that address onto it; connections made before the program is up are
 * served; restarts keep the socket; the program never sees LISTEN_FDS.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { appSource, pythonApp, waitForVersion } from "../helpers/app";
import { ROOT, runCli, serve } from "../helpers/cli";
import { freePort, loadLoop, request } from "../helpers/net";
import { waitFor } from "../helpers/procs";

const ACTIVATE = join(ROOT, "test", "fixtures", "activate.py");

test("the program's bind() gets the passed socket; early clients are served; restarts keep it", async () => {
  // The app takes 1 s before it binds: a client that connects meanwhile waits in the passed socket.
  const app = pythonApp("v1");
  app.write(appSource("v1", { prelude: "print('LISTEN_FDS=%s' % os.environ.get('LISTEN_FDS'), file=sys.stderr, flush=True)\ntime.sleep(1)" }));
  const port = await freePort();
  const s = serve(["python3", app.file, String(port)], { cwd: app.dir, prefix: ["python3", ACTIVATE, String(port)] });
  try {
    // The program has started and now naps before its bind(): this client comes early.
    await waitFor(() => s.output().includes("LISTEN_FDS="), "the program to start", 30_000);
    const early = await request(port, "/", 10_000);
    expect(early.ok && early.body.startsWith("v1 ")).toBe(true);
    expect(s.output()).toContain("LISTEN_FDS=None");
    expect(s.output()).toMatch(/socket activation: tcp:127\.0\.0\.1:\d+ \(fd 3\)/);
    const load = loadLoop(port);
    app.write(appSource("v2"));
    process.kill(s.pid, "SIGHUP");
    await waitForVersion(port, "v2");
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join(", ")).toBe(0);
  } finally {
    s.killGroup();
  }
}, 30_000);

test("LISTEN_FDS meant for another process is ignored (and not passed on)", async () => {
  const app = pythonApp("v1");
  app.write(appSource("v1", { prelude: "print('LISTEN_FDS=%s' % os.environ.get('LISTEN_FDS'), file=sys.stderr, flush=True)" }));
  const port = await freePort();
  const s = serve(["python3", app.file, String(port)], { cwd: app.dir, env: { ...process.env, LISTEN_FDS: "1", LISTEN_PID: "1" } });
  try {
    await waitForVersion(port, "v1");
    expect(s.output()).toContain("LISTEN_FDS=None");
    expect(s.output()).not.toContain("socket activation");
  } finally {
    s.killGroup();
  }
}, 30_000);

test("--multi with socket activation is refused with a clear message", () => {
  const r = runCli(["--multi=2", "true"], { env: { ...process.env, LISTEN_FDS: "1", LISTEN_PID: String(process.pid) } });
  expect(r.code).toBe(2);
  expect(r.stderr + r.stdout).toContain("--multi cannot be used with socket activation");
});
