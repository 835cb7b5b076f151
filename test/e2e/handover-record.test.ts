/**
 * A malformed, foreign or lying handover record never crashes the program: the shim says what is
 * wrong with it, starts fresh, and the program serves (and restarts) normally. Records name fds
 * that are not open, not sockets, the wrong sockets, or a readiness pipe nobody reads; random and
 * mutated records never crash or hang a short program either.
 */
import { describe, expect, test } from "bun:test";
import { freePort } from "../helpers/net";
import { runPreloaded, servePreloaded, servesAndRestarts, type PreloadOptions } from "../helpers/preload";
import { randomState, record, seeded } from "../helpers/record";
import { waitFor } from "../helpers/procs";

const state = (v: string): PreloadOptions => ({ env: { HUPTIME_STATE: v } });
const ignored = (why: string) => new RegExp(`ignoring the handover record in HUPTIME_STATE \\(${why}\\); starting fresh`);
const notThe = (fd: number, why: string) => new RegExp(`inherited fd ${fd} is not the tcp:127\\.0\\.0\\.1:\\d+ socket the record names \\(${why}\\); ignoring it`);
const badReadyFd = (fd: number) => new RegExp(`the readiness fd ${fd} named in the handover record is not a write-only pipe; ignoring it`);

const cases: [string, (port: number) => PreloadOptions, RegExp | undefined][] = [
  ["not hex", () => state("zz-not-hex"), ignored("not hex-encoded")],
  ["invalid UTF-8", () => ({ bytes: { HUPTIME_STATE: Uint8Array.from([0x34, 0x38, 0xff, 0xfe]) } }), ignored("not hex-encoded")],
  ["100 KB", () => state("ab".repeat(50_000)), ignored("100000 characters long, at most 65536")],
  ["foreign bytes", () => state("deadbeef00112233445566778899"), /bad magic/],
  ["future version", () => state(record(2, [], { version: 9 })), /unsupported version 9/],
  ["truncated", () => state(record(2, [{ fd: 40, port: 1 }]).slice(0, -10)), /length field|truncated/],
  ["names a standard stream", () => state(record(2, [{ fd: 1, port: 9 }])), notThe(1, "that is a standard stream")],
  ["names an fd that is not open", (p) => state(record(2, [{ fd: 200, port: p }])), notThe(200, "not open")],
  ["names a file", (p) => ({ ...state(record(2, [{ fd: 5, port: p }])), fds: ["--file", "5:/etc/hostname"] }), notThe(5, "not a socket")],
  ["names a UDP socket as TCP", (p) => ({ ...state(record(2, [{ fd: 5, port: p }])), fds: ["--udp", "5:0"] }), notThe(5, "a socket of another type")],
  ["names a socket on another port", (p) => ({ ...state(record(2, [{ fd: 5, port: p }])), fds: ["--listen", "5:0"] }), notThe(5, "bound to another port")],
  // The program's own socket, named twice: the first entry is handed to its bind(), the second is gone.
  ["names one socket twice", (p) => ({ ...state(record(2, [{ fd: 3, port: p }, { fd: 3, port: p }])), fds: ["--listen", `3:${p}`] }), notThe(3, "not open")],
  ["readiness fd is a file", () => ({ ...state(record(2, [], { readyFd: 5 })), fds: ["--file", "5:/etc/hostname"] }), badReadyFd(5)],
  ["readiness fd is not open", () => state(record(2, [], { readyFd: 300 })), badReadyFd(300)],
  ["readiness fd is a read end", () => ({ ...state(record(2, [], { readyFd: 6 })), fds: ["--pipe", "6:r"] }), badReadyFd(6)],
  ["generation and parent pid at their limits", () => state(record(0xffffffff, [], { parentPid: -1 })), undefined],
];

describe("hostile HUPTIME_STATE", () => {
  for (const [name, make, message] of cases) {
    test(`${name}: clear message, fresh start, program serves and restarts`, async () => {
      const s = await servePreloaded(make);
      try {
        await servesAndRestarts(s);
        if (message) expect(s.stderr()).toMatch(message);
        else expect(s.stderr()).not.toMatch(/ignoring|panicked/);
        // The program's own fds are untouched: it still writes to its stdout.
        await waitFor(() => s.stdout().includes("listening"), "the program's stdout");
      } finally {
        s.killGroup();
      }
    }, 20_000);
  }

  test("a readiness pipe nobody reads: the program's stderr writes do not kill it (SIGPIPE)", async () => {
    const perl = ["perl", "-e", 'print STDERR "line $_\\n" for 1..3; exit 0'];
    const r = await runPreloaded(perl, { ...state(record(2, [], { readyFd: 6 })), fds: ["--pipe", "6:w"] });
    expect({ code: r.code, signal: r.signal }).toEqual({ code: 0, signal: null });
    expect(r.stderr).toContain("line 3");
  });

  test("random and mutated records: every run exits 0 within 5 s", async () => {
    const seed = Number(process.env.HUPTIME_FUZZ_SEED ?? Date.now() % 2 ** 31);
    const rand = seeded(seed);
    const workers = 4;
    const until = Date.now() + 20_000;
    let runs = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: workers }, async () => {
        // Each worker has its own ports: a listening socket, a UDP socket, a file, both pipe ends.
        const [port, other] = [await freePort(), await freePort()];
        const fds = ["--listen", `3:${port}`, "--udp", `4:${port}`, "--file", "5:/etc/hostname", "--pipe", "6:w", "--pipe", "7:r", "--listen", `8:${other}`];
        // At least 50 runs however slow the machine is; more while the time allows.
        while (runs < 200 && (runs < 50 || Date.now() < until)) {
          runs++;
          const value = randomState(rand, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200], [port, other, 1]);
          const r = await runPreloaded(["perl", "-e", 'print STDERR "started\\n"; exit 0'], { ...state(value), fds });
          if (r.code !== 0 || r.signal !== null || /panicked/.test(r.stderr)) {
            failures.push(`HUPTIME_STATE=${value}: code ${r.code}, signal ${r.signal}, ${r.ms} ms, stderr ${r.stderr}`);
          }
        }
      }),
    );
    console.log(`${runs} random records (seed ${seed}; replay with HUPTIME_FUZZ_SEED=${seed})`);
    expect(failures).toEqual([]);
  }, 120_000);
});
