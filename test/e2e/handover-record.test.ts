/**
 * A malformed, foreign or lying handover record never crashes the program: the shim says what is
 * wrong with it, starts fresh, and the program serves (and restarts) normally.
 */
import { describe, expect, test } from "bun:test";
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/cli";
import { SERVERS } from "../helpers/matrix";
import { freePort, request } from "../helpers/net";
import { record } from "../helpers/record";
import { waitFor } from "../helpers/procs";

function shim(): string {
  runCli(["true"]);
  const dir = join(homedir(), ".cache", "huptime");
  return join(dir, readdirSync(dir).find((n) => /^huptime-[0-9a-f]{32}\.so$/.test(n))!);
}

async function startWith(state: string) {
  const port = await freePort();
  const cookie = join(SERVERS, "common.py"); // any readable file works as a cookie
  const child = spawn("python3", [join(SERVERS, "blocking.py"), String(port), cookie], {
    env: { ...process.env, LD_PRELOAD: shim(), HUPTIME_MODE: "fork", HUPTIME_STATE: state },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  let out = "";
  child.stderr.on("data", (d) => (err += d));
  child.stdout.on("data", (d) => (out += d));
  return { port, child, stderr: () => err, stdout: () => out };
}

const cases: [string, () => string, RegExp][] = [
  ["not hex", () => "zz-not-hex", /ignoring the handover record in HUPTIME_STATE \(not hex-encoded\); starting fresh/],
  ["foreign bytes", () => "deadbeef00112233445566778899", /bad magic/],
  ["future version", () => record(2, [], { version: 9 }), /unsupported version 9/],
  ["truncated", () => record(2, [{ fd: 40, port: 1 }]).slice(0, -10), /length field|truncated/],
  ["names an fd that is not that socket", () => record(2, [{ fd: 1, port: 9 }]), /inherited fd 1 is not the tcp:127\.0\.0\.1:9 socket the record names \(/],
];

describe("hostile HUPTIME_STATE", () => {
  for (const [name, make, message] of cases) {
    test(`${name}: clear message, fresh start, program serves`, async () => {
      const s = await startWith(make());
      try {
        await waitFor(async () => (await request(s.port, "/", 1000)).ok, "the program to serve");
        expect(s.stderr()).toMatch(message);
        expect(s.child.exitCode).toBeNull();
        // The program's own fds are untouched: it still writes to its stdout.
        await waitFor(() => s.stdout().includes("listening"), "the program's stdout");
      } finally {
        s.child.kill("SIGKILL");
      }
    }, 20_000);
  }
});
