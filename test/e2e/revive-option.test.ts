/** `--revive`: the program is started again whenever it exits, keeping its sockets. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, serve } from "../helpers/cli";
import { freePort } from "../helpers/net";
import { SERVERS } from "../helpers/matrix";
import { groupMembers, waitFor } from "../helpers/procs";

describe("--revive", () => {
  test("huptime --revive nc -l PORT < message.txt: five clients in a row each get the whole message", async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-revive-"));
    const message = "hello from message.txt\nsecond line\n";
    writeFileSync(join(dir, "message.txt"), message);
    const port = await freePort();
    const s = serve(["--revive", "nc", "-l", String(port)], { stdin: openSync(join(dir, "message.txt"), "r") });
    const log = s.stderr;
    try {
      await waitFor(() => {
        const r = runCli(["--status", "--json", "nc", "-l", String(port)]);
        return r.code === 0 && JSON.parse(r.stdout).processes.some((p: { listening: string[] }) => p.listening.length > 0);
      }, "nc to listen", 30_000);
      for (let i = 1; i <= 5; i++) {
        const r = spawnSync("nc", ["-N", "127.0.0.1", String(port)], { input: "", encoding: "utf8", timeout: 10_000 });
        expect(r.stdout, `client ${i}: ${r.stderr}\n${log()}`).toBe(message);
      }
      await waitFor(() => log().includes("reviving"), "the log to say nc was revived"); // spawnSync blocked the loop
      expect(log()).not.toContain("without serving");
      expect(runCli(["--stop", "nc", "-l", String(port)]).code).toBe(0);
      expect(groupMembers(s.pgid)).toEqual([]);
    } finally {
      s.killGroup();
    }
  }, 60_000);

  test("a program that fails at every start is revived with a growing, logged back-off", async () => {
    const port = await freePort();
    const script = `import socket,sys,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", ${port})); s.listen(8)\nsys.exit(3)\n`;
    const s = serve(["--revive", "python3", "-c", script]);
    try {
      await waitFor(() => /reviving in 400 ms/.test(s.stderr()), "the back-off to reach 400 ms", 15_000);
      const log = s.stderr();
      const delays = [...log.matchAll(/reviving in (\d+) ms/g)].map((m) => Number(m[1]));
      expect(delays.slice(0, 3)).toEqual([100, 200, 400]);
      expect(log).toContain("exited with status 3");
      // Not a hot loop: a handful of starts in the time it took.
      expect((log.match(/exited with status 3/g) ?? []).length).toBeLessThan(8);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("Ctrl-C (SIGINT to a program with a handler) stops it instead of reviving it", async () => {
    const port = await freePort();
    const script = `import socket,time\ns=socket.socket(); s.bind(("127.0.0.1", ${port})); s.listen(8)\nprint("up", flush=True)\ntime.sleep(60)\n`;
    const s = serve(["--revive", "python3", "-c", script]);
    try {
      await waitFor(() => s.stdout().includes("up"), "the program to start");
      process.kill(s.pid, "SIGINT"); // Python's KeyboardInterrupt, then a normal exit
      await waitFor(() => groupMembers(s.pgid).length === 0, "the program to end", 10_000);
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("SIGTERM to node (a one-shot handler that raises the signal again) ends it instead of looping in the handler", async () => {
    const port = await freePort();
    const cookie = join(mkdtempSync(join(tmpdir(), "huptime-revive-")), "cookie");
    writeFileSync(cookie, "a");
    const s = serve(["--revive", "node", join(SERVERS, "node_http.js"), String(port), cookie]);
    try {
      await waitFor(() => s.stdout().includes("listening"), "node to listen");
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).signal).toBe("SIGTERM");
    } finally {
      s.killGroup();
    }
  }, 30_000);

  test("processes the program spawns are never revived, only the program", async () => {
    const port = await freePort();
    // The program runs a helper that exits 5 (it must stay dead), then serves one client and exits 0.
    const script = `sh -c 'exit 5'; echo "helper:$?"; exec nc -l ${port}`;
    const s = serve(["--revive", "bash", "-c", script]);
    try {
      await waitFor(() => s.stdout().includes("helper:5"), "the helper to run");
      await Bun.sleep(300);
      expect(s.stderr()).not.toContain("status 5");
      expect((s.stdout().match(/helper:5/g) ?? []).length).toBe(1);
    } finally {
      s.killGroup();
    }
  }, 30_000);
});
