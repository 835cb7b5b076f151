/**
 * Sockets other than IPv4 TCP survive restarts too: IPv6 TCP, unix stream sockets (whose path the
 * program unlinks before binding), and UDP sockets.
 */
import { describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, request, unixRequest } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";

function cookieFile(v: string): string {
  const f = join(mkdtempSync(join(tmpdir(), "huptime-kinds-")), "cookie");
  writeFileSync(f, v);
  return f;
}

/** One datagram round trip. */
function udpRequest(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = createSocket("udp4");
    const t = setTimeout(() => (s.close(), resolve("error: timeout")), 2000);
    s.on("message", (m) => (clearTimeout(t), s.close(), resolve(m.toString())));
    s.send("ping", port, "127.0.0.1");
  });
}

/** Sends SIGHUP to `pid` and returns the next generation's master (fork mode). */
async function restart(pgid: number, pid: number): Promise<number> {
  const before = groupMembers(pgid).map((p) => p.pid);
  process.kill(pid, "SIGHUP");
  await waitFor(() => !alive(pid), `pid ${pid} to hand over`);
  return groupMembers(pgid).find((p) => p.ppid === process.pid && !before.includes(p.pid))!.pid;
}

describe("socket kinds", () => {
  test("IPv6 TCP", async () => {
    const port = await freePort();
    const cookie = cookieFile("six1");
    const s = serve(["python3", join(SERVERS, "blocking.py"), String(port), cookie], { env: { ...process.env, FIXTURE_HOST: "::1" } });
    try {
      await waitFor(async () => (await request(port, "/", 1000, "::1")).ok, "IPv6 server to answer");
      writeFileSync(cookie, "six2");
      const next = await restart(s.pgid, s.pid);
      const r = await request(port, "/", 5000, "::1");
      expect(r.ok && r.body.startsWith("six2 ")).toBe(true);
      process.kill(next, "SIGTERM");
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("unix stream socket whose path the program unlinks before bind", async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-unix-"));
    const path = join(dir, "s.sock");
    const cookie = cookieFile("unix1");
    const s = serve(["--debug", "python3", join(SERVERS, "unix_server.py"), path, cookie]);
    try {
      await waitFor(async () => (await unixRequest(path)).startsWith("unix1"), "unix server to answer");
      let master = s.pid;
      for (const gen of ["unix2", "unix3"]) {
        writeFileSync(cookie, gen);
        master = await restart(s.pgid, master);
        const body = await unixRequest(path);
        expect(body, s.output().slice(-2000)).toStartWith(`${gen} `);
      }
      process.kill(master, "SIGTERM");
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("UDP socket", async () => {
    const port = await freePort();
    const cookie = cookieFile("udp1");
    const s = serve(["python3", join(SERVERS, "udp_echo.py"), String(port), cookie]);
    try {
      await waitFor(async () => (await udpRequest(port)).startsWith("udp1"), "UDP server to answer");
      writeFileSync(cookie, "udp2");
      process.kill(s.pid, "SIGHUP");
      await waitFor(async () => (await udpRequest(port)).startsWith("udp2"), "new generation on the same UDP socket");
      await waitFor(() => !alive(s.pid), "old generation to exit");
    } finally {
      s.killGroup();
    }
  }, 30_000);
});
