/**
 * What a new generation inherits: sockets it does not bind again are closed once it serves, and it
 * gets the original stdin again from its start.
 */
import { expect, test } from "bun:test";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { alive, groupMembers, waitFor } from "../helpers/procs";

test("a socket the new generation does not bind is closed once it serves", async () => {
  const [a, b] = [await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), "huptime-unclaimed-"));
  const conf = join(dir, "ports");
  writeFileSync(conf, `${a}\n${b}\n`);
  const s = serve(["python3", join(SERVERS, "multi_port.py"), conf]);
  try {
    await waitFor(async () => (await request(a, "/", 1000)).ok && (await request(b, "/", 1000)).ok, "both ports to answer");
    writeFileSync(conf, `${a}\n`);
    process.kill(s.pid, "SIGHUP");
    await waitFor(() => !alive(s.pid), "the old generation to exit");
    const r = await request(a);
    expect(r.ok).toBe(true);
    const gone = await request(b, "/", 2000);
    expect(gone.ok ? "still served" : gone.error).toBe("ECONNREFUSED");
    expect(s.stderr()).toContain(`closing inherited tcp:127.0.0.1:${b}`);
  } finally {
    s.killGroup();
  }
}, 30_000);

test("each generation reads the original stdin from its start", async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "huptime-stdin-"));
  writeFileSync(join(dir, "cookie"), "from-stdin\n");
  const stdin = openSync(join(dir, "cookie"), "r");
  const s = serve(["python3", join(SERVERS, "stdin_cookie.py"), String(port)], { stdin });
  try {
    await waitFor(async () => (await request(port, "/", 1000)).ok, "the server to answer");
    let master = s.pid;
    for (let i = 0; i < 2; i++) {
      const before = master;
      process.kill(master, "SIGHUP");
      await waitFor(() => !alive(before), "the old generation to exit");
      master = groupMembers(s.pgid).find((p) => p.ppid === process.pid)!.pid;
      const r = await request(port);
      expect(r.ok && r.body).toBe(`from-stdin ${master}\n`);
    }
  } finally {
    s.killGroup();
  }
}, 30_000);
