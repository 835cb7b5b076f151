/**
 * The program never notices huptime's signals: a SIGHUP that arrives while a request handler is
 * blocked in nanosleep, poll, epoll_wait, select, read or recv (the first four are never restarted
 * by the kernel, SA_RESTART or not) lets the call run its full 1.5 s, and the restart still
 * happens. Single-threaded (the SIGHUP would otherwise land in the busy main thread) and with a
 * pool of threads in accept() beside a main thread that sleeps in a loop (the drain wakes the idle
 * ones; that wake is not a user's SIGHUP: one restart per SIGHUP, no more).
 *
 * And since huptime keeps SIGHUP blocked in the program's threads, every program the program
 * starts (exec, spawn, system, popen, Python's subprocess) must get the mask it would get bare.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { count, ROOT, runCli, serve } from "../helpers/cli";
import type { Group } from "../helpers/spawn";
import { compileC } from "../helpers/gcc";
import { freePort, request } from "../helpers/net";
import { waitFor } from "../helpers/procs";

const CALLS = ["nanosleep", "poll", "epoll_wait", "select", "read", "recv"];
const MODES = ["--fork", "--exec"];

let program = "";
let running: Group | undefined;

beforeAll(() => {
  program = compileC(join(ROOT, "test", "fixtures", "signals", "slow_calls.c"), { flags: ["-pthread"] });
});

afterEach(() => {
  running?.killGroup();
  running = undefined;
});

/** The answering image, "PID:IMAGE" (undefined while nothing answers). */
async function imageOf(port: number): Promise<string | undefined> {
  const r = await request(port, "/id", 2000);
  return r.ok ? /^id (\d+:\d+) \d+\n$/.exec(r.body)?.[1] : undefined;
}

/** Waits until an image other than `old` answers; returns it. */
async function nextImage(port: number, old: string): Promise<string> {
  let now: string | undefined;
  await waitFor(async () => {
    now = await imageOf(port);
    return now !== undefined && now !== old;
  }, `an image other than ${old} to answer`, 30_000);
  return now!;
}

/** Starts the fixture under huptime; returns its port and the image that answers. */
async function start(mode: string, threads: number): Promise<{ s: Group; port: number; image: string }> {
  const port = await freePort();
  const s = serve([mode, program, String(port), String(threads)]);
  running = s;
  let image: string | undefined;
  await waitFor(async () => (image = await imageOf(port)) !== undefined, "the fixture to answer");
  return { s, port, image: image! };
}

/** Sends the requests for `calls` at once, waits until each call has started, sends SIGHUP to
 * the image's pid, and returns the replies. */
async function hupDuring(s: Group, port: number, image: string, calls: string[]): Promise<string[]> {
  const before = calls.map((c) => count(s.output(), `started ${c}\n`));
  const replies = calls.map((c) => request(port, `/${c}`, 20_000));
  await waitFor(() => calls.every((c, i) => count(s.output(), `started ${c}\n`) > before[i]), `${calls.join(", ")} to start`);
  process.kill(Number(image.split(":")[0]), "SIGHUP");
  return (await Promise.all(replies)).map((r) => (r.ok ? r.body : r.error));
}

describe("huptime's SIGHUP does not cut the program's calls short", () => {
  for (const mode of MODES) {
    test(`huptime ${mode}, one thread: each call runs its full time, and each SIGHUP restarts once`, async () => {
      let { s, port, image } = await start(mode, 1);
      for (const call of CALLS) {
        const [reply] = await hupDuring(s, port, image, [call]);
        expect(reply, s.output()).toBe(`${call} uninterrupted ${image} 0\n`);
        image = await nextImage(port, image);
      }
      expect(count(s.output(), "listening\n")).toBe(CALLS.length + 1);
    }, 120_000);

    test(`huptime ${mode}, eight threads in accept: every call runs its full time, one restart per SIGHUP`, async () => {
      let { s, port, image } = await start(mode, 8);
      for (let round = 1; round <= 2; round++) {
        const replies = await hupDuring(s, port, image, CALLS);
        // The last number: the main thread's own sleeps a signal cut short.
        expect(replies, s.output()).toEqual(CALLS.map((c) => `${c} uninterrupted ${image} 0\n`));
        image = await nextImage(port, image);
        expect(count(s.output(), "listening\n"), s.output()).toBe(round + 1);
      }
      // A restart nobody asked for (a wake taken for a SIGHUP) would show as one more image by the
      // time a full 1.5 s call has run in the last one.
      const last = await request(port, "/nanosleep", 20_000);
      expect(last.ok && last.body, s.output()).toBe(`nanosleep uninterrupted ${image} 0\n`);
      expect(count(s.output(), "listening\n"), s.output()).toBe(3);
    }, 120_000);
  }
});

describe("what the program starts gets the signal mask it would get without huptime", () => {
  let spawner = "";
  let reporter = "";
  beforeAll(() => {
    spawner = compileC(join(ROOT, "test", "fixtures", "signals", "spawn_report.c"), { flags: ["-pthread"] });
    reporter = compileC(join(ROOT, "test", "fixtures", "signals", "sigblk.c"), { flags: ["-static"] });
  });

  /** The reporter's lines, one per way of starting it. */
  function lines(out: string): string[] {
    return out.split("\n").filter((l) => l.includes("SigBlk:"));
  }

  for (const block of [[], ["block"]]) {
    const what = block.length ? "a program that blocked SIGHUP itself" : "a program that left SIGHUP alone";
    for (const mode of MODES) {
      test(`huptime ${mode}, ${what}: every way of starting a program gives it the bare mask`, () => {
        const bare = spawnSync(spawner, [reporter, ...block], { encoding: "utf8", timeout: 30_000 });
        expect(bare.status).toBe(0);
        expect(lines(bare.stdout).length).toBe(21);
        const hupBit = /SigBlk:\s+[0-9a-f]*[13579bdf]$/;
        expect(lines(bare.stdout).every((l) => hupBit.test(l))).toBe(block.length > 0);
        const under = runCli([mode, spawner, reporter, ...block], { timeoutMs: 30_000 });
        expect(under.code, under.stderr).toBe(0);
        expect(lines(under.stdout)).toEqual(lines(bare.stdout));
      }, 40_000);
    }
  }

  test("Python's subprocess (vfork and execve) under huptime gives the bare mask", () => {
    const script = `import socket, subprocess, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
sys.stdout.write(subprocess.run([sys.argv[1], "subprocess"], capture_output=True, text=True).stdout)`;
    const bare = spawnSync("python3", ["-c", script, reporter], { encoding: "utf8", timeout: 30_000 });
    expect(lines(bare.stdout).length).toBe(1);
    const under = runCli(["--fork", "python3", "-c", script, reporter], { timeoutMs: 30_000 });
    expect(under.code, under.stderr).toBe(0);
    expect(lines(under.stdout)).toEqual(lines(bare.stdout));
  }, 40_000);
});
