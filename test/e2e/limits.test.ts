/**
 * The shim's fixed limits (test/fixtures/safety/limits.c): each is handled or announced on one
 * line naming it and its effect when first hit (the README lists them). Fds from 65536 up are
 * covered by fdtable's unit test: raising RLIMIT_NOFILE that far needs CAP_SYS_RESOURCE.
 */
import { expect, test } from "bun:test";
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import { ROOT, runCli, serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { exchange, freePort } from "../helpers/net";
import { waitFor } from "../helpers/procs";

const FIXTURE = join(ROOT, "test", "fixtures", "safety", "limits.c");

test("a 65th bound socket is announced once, naming the limit", () => {
  const r = runCli(["--fork", compileC(FIXTURE), "sockets", "70"]);
  expect(r.code, r.stderr).toBe(0);
  const lines = r.stderr.split("\n").filter((l) => l.includes("limit reached"));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("more than 64 bound sockets");
});

/** Fds of `pid` that are epoll sets, with how many registrations each has. */
function epollRegistrations(pid: number): number[] {
  const out: number[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = "";
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== "anon_inode:[eventpoll]") continue;
    out.push(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8").split("\n").filter((l) => l.startsWith("tfd:")).length);
  }
  return out;
}

/** Connects and reads the first line, keeping the connection open. */
function firstLine(port: number): Promise<{ line: string; sock: Socket }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ port, host: "127.0.0.1" });
    let raw = "";
    sock.setEncoding("utf8");
    sock.on("data", (d) => {
      raw += d;
      if (raw.includes("\n")) resolve({ line: raw.trim(), sock });
    });
    sock.on("error", reject);
  });
}

test("a listener in 300 epoll sets leaves all of them when its generation drains; 128+ registrations are announced", async () => {
  const port = await freePort();
  const s = serve(["--fork", compileC(FIXTURE), "epolls", String(port), "300"]);
  let held: Socket | undefined;
  try {
    await waitFor(() => s.stdout().includes("listening in 300 epoll sets"), "the program to listen");
    const first = await firstLine(port);
    held = first.sock; // keeps generation 1 draining
    const old = Number(first.line);
    expect(old).toBe(s.pid);
    expect(epollRegistrations(old).filter((n) => n > 0)).toHaveLength(300);
    process.kill(old, "SIGHUP");
    await waitFor(async () => {
      const r = await exchange(port, "", /\n/, 2000);
      return r.ok && r.body.trim() !== String(old);
    }, "generation 2 to answer");
    await waitFor(() => epollRegistrations(old).every((n) => n === 0), "generation 1's 300 epoll sets to be emptied", 10_000);
    expect(s.output().split("\n").filter((l) => l.startsWith(`huptime[${old}]`) && l.includes("limit reached"))).toEqual([
      expect.stringContaining("more than 128 epoll registrations of bound sockets"),
    ]);
  } finally {
    held?.destroy();
    s.killGroup();
  }
}, 60_000);
