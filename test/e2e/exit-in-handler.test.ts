/**
 * `--revive` from a signal handler (test/fixtures/safety/exit_in_handler.c): the program calls
 * _exit() from a SIGALRM handler that interrupts malloc-heavy code in two threads, so the shim's
 * revival runs inside that handler, possibly while the interrupted malloc holds its lock. It must
 * neither allocate nor take a lock there: the program is revived 40 times in a row without a
 * deadlock or a crash.
 */
import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { freePort } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";

const FIXTURE = join(ROOT, "test", "fixtures", "safety", "exit_in_handler.c");
const REVIVALS = 40;

test(`_exit() from a signal handler that interrupted malloc: revived ${REVIVALS} times, no deadlock`, async () => {
  const port = await freePort();
  const count = join(mkdtempSync(join(tmpdir(), "huptime-exit-in-handler-")), "starts");
  const s = serve(["--revive", compileC(FIXTURE), String(port), count]);
  const starts = () => (existsSync(count) ? readFileSync(count, "utf8").split("\n").filter(Boolean) : []);
  try {
    // Each life lasts 5 ms plus a start-up: a deadlock or a crash stops the count for good.
    await waitFor(() => starts().length > REVIVALS || !alive(s.pid), `${REVIVALS} revivals`, 90_000);
    expect(alive(s.pid), s.output()).toBe(true);
    expect(new Set(starts())).toEqual(new Set([String(s.pid)])); // revived in place, same pid
    expect(s.output()).not.toMatch(/can't revive/);
  } finally {
    s.killGroup();
  }
}, 120_000);
