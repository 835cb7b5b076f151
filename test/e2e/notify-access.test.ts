/**
 * The --listen-fds supervisor's notify socket believes only its generations: a READY=1 (with a
 * MAINPID=) from another user's process, inside the program's process group or outside it, or
 * from a process of huptime's own user outside every generation, changes nothing; the program's
 * own READY=1 makes it ready. The forgers connect as root (the socket is in root's private
 * directory) and become the second user before they send, as the kernel stamps the credentials
 * of the moment of sending.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { freePort } from "../helpers/net";
import { waitFor } from "../helpers/procs";
import { secondUser } from "../helpers/users";

const forger = join(ROOT, "test", "fixtures", "notify_forger.py");

describe("--listen-fds notify socket", () => {
  test("forged READY=1 from another user or from outside the program is dropped; the program's own counts", async () => {
    const user = secondUser();
    const trigger = join(mkdtempSync(join(tmpdir(), "huptime-notify-access-")), "ready");
    const port = await freePort();
    const s = serve(["--debug", "--listen", `127.0.0.1:${port}`, "--listen-fds", "python3", forger, "program", String(user.uid), String(user.gid), trigger]);
    try {
      await waitFor(() => s.output().includes("forged"), `the program's forged notice; huptime said:\n${s.output()}`);
      const path = /notify socket: (\S+)/.exec(s.output())![1];
      const send = (uid: number, gid: number) => {
        const r = spawnSync("python3", [forger, "send", path, String(uid), String(gid), "READY=1\\nMAINPID={pid}"], { encoding: "utf8" });
        expect(r.status, r.stderr).toBe(0);
      };
      send(user.uid, user.gid); // another user, outside the program
      send(0, 0); // huptime's own user, outside the program
      const dropped = () => s.output().split("\n").filter((l) => / dropped \(/.test(l));
      await waitFor(() => dropped().length === 3, `three dropped notices; huptime said:\n${s.output()}`);
      const lines = dropped();
      expect(lines.filter((l) => l.includes(`uid ${user.uid} dropped (uid ${user.uid} is neither huptime's (0) nor root`))).toHaveLength(2);
      expect(lines.filter((l) => /uid 0 dropped \(pid \d+ is in no generation's process group\)/.test(l))).toHaveLength(1);
      for (const l of lines) expect(l).toMatch(/: READY=1 MAINPID=\d+$/);
      await Bun.sleep(300);
      expect(s.output()).not.toContain("is ready after");
      writeFileSync(trigger, "");
      await waitFor(() => s.output().includes("is ready after"), `the program's own READY=1; huptime said:\n${s.output()}`);
      const gen = /generation 1 is pid (\d+)/.exec(s.output())![1];
      expect(s.output()).toContain(`notice from pid ${gen} uid 0 (generation 1): READY=1`);
      expect(s.output()).toMatch(new RegExp(`generation 1 \\(pid ${gen}\\) is ready after`));
      process.kill(s.pid, "SIGTERM");
      expect((await s.exited).code).toBe(0);
    } finally {
      s.killGroup();
    }
  }, 30_000);
});
