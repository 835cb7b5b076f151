/**
 * How an old generation of a static program is kept from new connections once its successor
 * serves (crates/huptime/src/unotify/steer.rs): its TCP socket gets nothing new (new connections
 * go to the successor's own socket at that address), and it takes what its socket had queued
 * before its stop signal. A unix socket is handed over (one socket for both), so a program that
 * listens on one has its later generations' accept() calls sent to huptime, which refuses them on
 * the shared socket while they keep taking their TCP socket's queue.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { count, serve } from "../helpers/cli";
import { freePort, request, unixRequest } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";
import { killSeccompRun, staticCServer } from "../helpers/seccomp";

/** Connections waiting in the accept queues of the TCP listeners on 127.0.0.1:`port`. */
function queuedOn(port: number): number {
  let n = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[3] === "0A" && f[1] === `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`) n += parseInt(f[4].split(":")[1], 16);
  }
  return n;
}

test("a static server on TCP and a unix socket: 3 restarts, each while a slow request holds the old one and 3 connections queue behind it: each answered by the old generation; the unix socket handed over, the TCP address joined; accept() sent from generation 2 on", async () => {
  const program = staticCServer();
  const dir = mkdtempSync(join(tmpdir(), "huptime-seccomp-steer-"));
  const cookie = join(dir, "cookie");
  const sock = join(dir, "sock");
  writeFileSync(cookie, "c1");
  const port = await freePort();
  const s = serve([program, String(port), cookie], { env: { ...process.env, FIXTURE_UNIX_PATH: sock } });
  try {
    await waitFor(() => /generation 1 \(pid \d+\) is ready after/.test(s.output()), `generation 1 to be ready; huptime said:\n${s.output()}`);
    let old = Number(/generation 1 \(pid (\d+)\)/.exec(s.output())![1]);
    expect(await unixRequest(sock)).toBe(`c1 ${old}\n`);
    for (let i = 2; i <= 4; i++) {
      const slow = request(port, "/slow", 30_000);
      await waitFor(() => s.output().includes(`slow ${old}\n`), `the slow request to reach pid ${old}; huptime said:\n${s.output()}`);
      const queued = [0, 1, 2].map(() => request(port, "/", 30_000));
      await waitFor(() => queuedOn(port) >= 3, "3 connections to queue on the old generation's socket");
      writeFileSync(cookie, `c${i}`);
      process.kill(s.pid, "SIGHUP");
      let now = 0;
      await waitFor(async () => {
        const r = await request(port, "/", 2000);
        const m = r.ok ? /^c(\d+) (\d+)\n$/.exec(r.body) : null;
        if (m && m[1] === String(i)) now = Number(m[2]);
        return now > 0;
      }, `c${i} to answer; huptime said:\n${s.output()}`, 30_000);
      expect(now).not.toBe(old);
      const before = `c${i - 1} ${old}\n`;
      expect(await slow).toEqual({ ok: true, body: before });
      for (const q of await Promise.all(queued)) expect(q, s.output()).toEqual({ ok: true, body: before });
      await waitFor(() => !alive(old), `generation ${i - 1} (pid ${old}) to exit`);
      expect(await unixRequest(sock)).toBe(`c${i} ${now}\n`);
      old = now;
    }
    expect(count(s.output(), "1 socket taken over, 1 address joined beside the old socket")).toBe(3);
    expect(count(s.output(), "its accept() calls go through huptime")).toBe(3);
    expect(s.output()).not.toContain("to take or read");
    process.kill(s.pid, "SIGTERM");
    expect((await s.exited).code, s.output()).toBe(0);
  } finally {
    killSeccompRun(s);
  }
}, 120_000);
