/**
 * Fork safety (test/fixtures/safety/fork_storm.c): eight threads keep taking the shim's locks
 * (bind, listen, epoll_ctl on a listening socket, dup, close) while another thread forks 1,000
 * times; each child closes a bound socket (taking the locks again), checks that nothing started
 * a thread in it, and execs /bin/true. No child may hang on a lock a vanished thread held, none
 * may find a helper thread started in it, and the program exits 0.
 */
import { expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";

const FIXTURE = join(ROOT, "test", "fixtures", "safety", "fork_storm.c");

/** Far above what 1,000 forks take on a slow machine (a few seconds here): only a hang reaches it. */
const LIMIT_MS = 240_000;

for (const mode of ["fork", "exec"] as const) {
  test(`${mode} mode: 1,000 forks while 8 threads hold the shim's locks: no hang, no thread in a child, exit 0`, async () => {
    const s = serve([`--${mode}`, compileC(FIXTURE), "8", "1000"]);
    try {
      const limit = new Promise<"hang">((resolve) => setTimeout(() => resolve("hang"), LIMIT_MS));
      const end = await Promise.race([s.exited, limit]);
      expect(end, s.output()).toEqual({ code: 0, signal: null });
      expect(s.stdout()).toContain("fork_storm: 1000 forks, 0 failed");
    } finally {
      s.killGroup();
    }
  }, LIMIT_MS + 30_000);
}
