/**
 * `--drain-timeout=T`: an old generation still holding connections after T seconds cuts them and
 * ends (fork mode) or execs the new code (exec mode), saying how many it cut and how: a busy
 * keep-alive client (one that ignores the `Connection: close` it was sent) is closed with a FIN
 * between two requests, a request still in progress a second later is reset. Until T the
 * keep-alive client is served by the old generation without errors. 0 waits forever.
 */
import { describe, expect, test } from "bun:test";
import { connect, type Socket } from "node:net";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { persistent, request } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";

/** A keep-alive HTTP client sending a request every 50 ms on one connection. */
function keepAlive(port: number) {
  const bodies: string[] = [];
  let closed = false;
  let error = "";
  let buf = "";
  const sock: Socket = connect({ port, host: "127.0.0.1" });
  const send = () => !closed && sock.write("GET / HTTP/1.1\r\nHost: t\r\n\r\n");
  sock.on("connect", send);
  sock.on("data", (d) => {
    buf += d;
    let m;
    while ((m = buf.match(/^HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\n(v\d+ \d+)\n/))) {
      bodies.push(m[1]);
      buf = buf.slice(m[0].length);
      setTimeout(send, 50);
    }
  });
  sock.on("error", (e) => (error = e.message));
  sock.on("close", () => (closed = true));
  return { bodies, closedAt: () => closed, error: () => error, destroy: () => sock.destroy() };
}

describe("--drain-timeout", () => {
  for (const mode of ["fork", "exec"] as const) {
    test(`${mode} mode: a busy keep-alive client is served by the old generation until T, then cut`, async () => {
      const { app, port, s } = await serveApp("v1", [`--${mode}`, "--drain-timeout=2"]);
      try {
        const client = keepAlive(port);
        const sleeper = await persistent(port);
        await waitFor(() => client.bodies.length >= 3, "the keep-alive client to be served");
        void sleeper.ask("/sleep=30");
        app.write(appSource("v2"));
        const t0 = Date.now();
        process.kill(s.pid, "SIGHUP");
        // The drain starts once the new generation is ready (fork mode) or at once (exec mode): the
        // deadline counts from there, however long the start-up took.
        await waitFor(() => s.output().includes("draining"), "the old generation to drain", 30_000, 10);
        const drainSeen = Date.now();
        await waitFor(() => client.closedAt(), "the old generation to cut the connection", 10_000, 10);
        const cut = Date.now();
        expect(cut - t0).toBeGreaterThanOrEqual(1800);
        expect(cut - drainSeen).toBeLessThan(4000);
        // Closed between two requests, with a FIN; the request still in progress a second
        // later, with a reset.
        expect(client.error()).toBe("");
        expect((await sleeper.ended).how).toBe("ECONNRESET");
        expect(client.bodies.length).toBeGreaterThan(20); // served all along, by the old code
        expect(client.bodies.every((b) => b === `v1 ${s.pid}`)).toBe(true);
        expect(s.output()).toMatch(/drain deadline \(2 s\) passed with 2 connection\(s\) still open; cutting them/);
        expect(s.output()).toMatch(/drain deadline: 1 closed at a request boundary, 1 reset/);
        await waitForVersion(port, "v2");
        // Fork mode: the old generation ends once it has written the restart's receipt.
        if (mode === "fork") await waitFor(() => !alive(s.pid), "the old generation to end", 10_000);
        else {
          const r = await request(port);
          expect(r.ok && r.body.trim()).toBe(`v2 ${s.pid}`);
        }
      } finally {
        s.killGroup();
      }
    }, 30_000);
  }

  test("--drain-timeout=0 waits for the connection however long it takes", async () => {
    const { port, s } = await serveApp("v1", ["--drain-timeout=0"]);
    try {
      const client = keepAlive(port);
      await waitFor(() => client.bodies.length >= 3, "the keep-alive client to be served");
      process.kill(s.pid, "SIGHUP");
      await Bun.sleep(3500);
      expect(alive(s.pid)).toBe(true);
      expect(client.closedAt()).toBe(false);
      client.destroy();
      await waitFor(() => !alive(s.pid), "the old generation to exit once the client left", 10_000);
      expect(s.output()).not.toContain("cutting");
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("bad values are usage errors", async () => {
    const { runCli } = await import("../helpers/cli");
    for (const v of ["-1", "soon"]) {
      const r = runCli([`--drain-timeout=${v}`, "true"]);
      expect(r.code).toBe(2);
      expect(r.stdout + r.stderr).toContain("--drain-timeout");
    }
  });
});
