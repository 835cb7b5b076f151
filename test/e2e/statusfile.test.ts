/**
 * Root's --status reads the state files of other users' programs from their own directories, and
 * believes only what that user's program can have written: a file the user replaced by a
 * symbolic link to a root-only file, by a FIFO (which would block the reader), or a file of
 * another owner in their directory is ignored (state unknown); a file of their own is read.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { chownSync, lchownSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { statusRows } from "../helpers/status";
import { secondUser, serveAppAs, sharedHuptime } from "../helpers/users";

describe("state files of other users", () => {
  test("root ignores a planted symlink, FIFO or foreign file; reads the user's own", async () => {
    const user = secondUser();
    const shared = sharedHuptime();
    const theirs = await serveAppAs(user, shared, "user");
    const secret = join(mkdtempSync(join(tmpdir(), "huptime-secret-")), "secret");
    try {
      const pid = theirs.pid;
      const stateOf = () => statusRows().find((r) => r.pid === pid)?.state;
      expect(stateOf()).toBe("serving");
      const file = join(user.home, ".cache", "huptime", "status", `${pid}.status`);
      const start = /^start=(\d+)$/m.exec(readFileSync(file, "utf8"))![1];
      const planted = `pid=${pid}\nstart=${start}\ngeneration=7\nmode=fork\nstate=planted\nprevious=0\nrollbacks=0\nlast_error=\n`;
      const replace = (make: () => void) => {
        rmSync(file, { force: true });
        make();
      };

      // Their own regular file is read (the planted text shows): the checks below can fail.
      replace(() => {
        writeFileSync(file, planted);
        chownSync(file, user.uid, user.gid);
      });
      expect(stateOf()).toBe("planted");

      // A symbolic link to a file only root may read.
      writeFileSync(secret, planted, { mode: 0o600 });
      replace(() => {
        symlinkSync(secret, file);
        lchownSync(file, user.uid, user.gid);
      });
      expect(stateOf()).toBe("unknown");

      // A FIFO: reading it would block --status for good.
      replace(() => {
        expect(spawnSync("mkfifo", [file]).status).toBe(0);
        chownSync(file, user.uid, user.gid);
      });
      const started = Date.now();
      expect(stateOf()).toBe("unknown");
      expect(Date.now() - started).toBeLessThan(10_000);

      // A file of another owner (root) in their directory.
      replace(() => writeFileSync(file, planted));
      expect(stateOf()).toBe("unknown");
    } finally {
      theirs.killGroup();
      rmSync(secret, { force: true });
      rmSync(shared.dir, { recursive: true, force: true });
    }
  }, 60_000);
});
