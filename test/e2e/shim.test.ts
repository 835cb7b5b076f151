/** The preload library itself: no undefined napi symbols, and invisible to programs that never bind. */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ROOT, runCli } from "../helpers/cli";
import { preloadLibrary } from "../helpers/preload";

const built = join(ROOT, "dist", "huptime.node");

describe("preload library", () => {
  test("has zero undefined napi_* symbols (built and extracted copies)", () => {
    for (const f of [built, preloadLibrary()]) {
      const r = spawnSync("nm", ["-D", "--undefined-only", f], { encoding: "utf8" });
      expect(r.status).toBe(0);
      expect(r.stdout.split("\n").filter((l) => /\bnapi_/.test(l))).toEqual([]);
    }
  });

  test("exports only the hooks and the napi entry point", () => {
    const r = spawnSync("nm", ["-D", "--defined-only", built], { encoding: "utf8" });
    const names = r.stdout.trim().split("\n").map((l) => l.split(" ").pop()!).sort();
    expect(names).toContain("bind");
    expect(names).toContain("accept4");
    expect(names).toContain("napi_register_module_v1");
    for (const n of names) expect(n).toMatch(/^(napi_register_module_v1|bind|listen|accept4?|close(_range|from)?|dup[23]?|epoll_(create1?|ctl|pwait)|p?poll|p?select|v?fork|fcntl(64)?|ioctl|sigaction|signal|sig(procmask|suspend)|pthread_(sigmask|create)|exec(l[ep]?|v[ep]?|vpe)|fexecve|posix_spawnp?|system|popen|syscall|unlink(at)?|_exit|_Exit|setsid|writev?|readv?|__read_chk|recv(from|msg)?|__recv_chk|send(to|msg)?|sendfile(64)?)$/);
  });

  const programs: [string, string[], string?][] = [
    ["python3", ["-c", "import sys,os; print('py', sys.argv[1:], sorted(os.listdir('.'))[:1]); sys.exit(3)", "a"]],
    ["node", ["-e", "console.log('node', process.argv.length); process.exitCode = 4"]],
    ["bash", ["-c", "echo bash $((6*7)); read l; echo \"$l\"; exit 5"], "line-in\n"],
    ["nc", ["-h"]],
  ];
  for (const [prog, args, input] of programs) {
    test(`preloading into ${prog} changes nothing for a program that never binds`, () => {
      const plain = spawnSync(prog, args, { encoding: "utf8", input: input ?? "", cwd: ROOT });
      const under = runCli([prog, ...args], { input: input ?? "", cwd: ROOT });
      expect(under.code).toBe(plain.status);
      expect(under.stdout).toBe(plain.stdout);
      expect(under.stderr).toBe(plain.stderr);
    });
  }
});
