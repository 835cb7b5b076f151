/** The run path's answers to good and bad input: exit codes and messages of dist/huptime. */
import { describe, expect, test } from "bun:test";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cacheDir, STATUS_SUBDIR } from "../../src/cachedir";
import { STATUS_FIELDS, STATUS_SUFFIX } from "../../src/generated/protocol";
import { runCli } from "../helpers/cli";

describe("huptime CLI", () => {
  test("--version prints the package version", () => {
    const r = runCli(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("--help lists every option", () => {
    const r = runCli(["--help"]);
    for (const opt of ["--fork", "--exec", "--multi", "--revive", "--wait", "--unlink", "--debug", "--restart", "--stop", "--status", "--timeout"]) {
      expect(r.stdout).toContain(opt);
    }
  });

  test("--help reads like a manual page: the forms, then options with named values", () => {
    const r = runCli(["--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("huptime [options] [--] <command> [args...]\n");
    expect(r.stdout).toContain("huptime --restart|--stop|--status [options] <command> [args...]\n");
    expect(r.stdout).toContain("huptime --status [--json|--table]\n");
    for (const opt of ["--multi N", "--unlink FILE", "--ready-timeout S", "--drain-timeout S", "--listen ADDR", "--timeout S", "--ready-delay S"]) {
      expect(r.stdout).toMatch(new RegExp(`^  ${opt} `, "m"));
    }
    expect(r.stdout).not.toContain("#0");
  });

  test("help asked from any form is the same manual", () => {
    const full = runCli(["--help"]).stdout;
    for (const args of [["-h"], ["--exec", "--help"], ["--status", "--help"], ["--restart", "-h", "x"]]) {
      const r = runCli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(full);
    }
  });

  test("no command is a usage error (exit 2)", () => {
    const r = runCli([]);
    expect(r.code).toBe(2);
    expect(r.stderr).toStartWith("huptime: no command given\n");
  });

  const usage: [string[], string][] = [
    [["--multi=0", "true"], "--multi: expected to be at least 1 (got 0)"],
    [["--multi=abc", "true"], '--multi: expected a number (got "abc")'],
    [["--multi", "2.5", "true"], "--multi: expected to be an integer"],
    [["--stop", "--timeout=-1", "true"], "--timeout: expected to be at least 0 (got -1)"],
    [["--ready-timeout=0", "true"], "--ready-timeout: expected to be at least 0.001 (got 0)"],
    [["--status", "--stop", "true"], "--stop and --status cannot be used together"],
    [["--restart", "--status", "true"], "--restart and --status cannot be used together"],
    [["--restart", "--exec", "true"], "--exec cannot be used with --restart"],
    [["--unlink=", "true"], "--unlink needs a file name"],
  ];
  for (const [args, message] of usage) {
    test(`usage error: ${args.join(" ")}`, () => {
      const r = runCli(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
      expect(r.stderr.split("\n")[0]).toStartWith("huptime: ");
    });
  }

  // Combinations no form takes: Clipanion refuses them; the user sees one line naming the options.
  const refused: [string[], string][] = [
    [["--restart", "--stop", "true"], "--restart and --stop cannot be used together"],
    [["--stop", "--restart", "--status", "true"], "--restart and --stop and --status cannot be used together"],
    [["--json", "true"], "--json only goes with --status"],
    [["--table", "true"], "--table only goes with --status"],
    [["--timeout=5", "true"], "--timeout only goes with --stop or --init (or huptime as PID 1)"],
    [["--fork", "--stop", "true"], "--fork cannot be used with --stop"],
    [["--restart", "--multi", "2", "--unlink=x", "true"], "--multi, --unlink cannot be used with --restart"],
    [["--status", "--timeout", "3"], "--timeout cannot be used with --status"],
    [["--restart", "--json", "true"], "--json cannot be used with --restart"],
    [["--status", "--json", "--table"], "--json and --table cannot be used together"],
    [["--restart"], "no command given"],
    [["--exec", "--"], "no command given"],
    [["--bogus", "true"], "unknown option --bogus"],
    [["--restart", "--bogus", "true"], "unknown option --bogus"],
  ];
  for (const [args, message] of refused) {
    test(`refused: ${args.join(" ")}`, () => {
      const r = runCli(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr).toBe(`huptime: ${message}\nTry 'huptime --help' for usage.\n`);
    });
  }

  test("--status alone and with --json or --table is taken (it needs no command)", () => {
    for (const args of [["--status"], ["--status", "--json"], ["--json", "--status"], ["--status", "--table"]]) {
      const r = runCli(args);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(0);
    }
    expect(JSON.parse(runCli(["--status", "--json"]).stdout).processes).toBeArray();
  });

  test("--opt=value and --opt value are the same", () => {
    // The program shows the setting the shim got as it publishes it (huptime's variables are
    // not in the program's environment): its status file, once it serves.
    const script = `import os, socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(open(os.path.join(sys.argv[1], "%d${STATUS_SUFFIX}" % os.getpid())).read())`;
    for (const args of [["--drain-timeout=7"], ["--drain-timeout", "7"]]) {
      const r = runCli([...args, "python3", "-c", script, join(cacheDir(process.env), STATUS_SUBDIR)]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`\n${STATUS_FIELDS.drainTimeoutMs}=7000\n`);
    }
  });

  test("colors only on a TTY: piped help has no escape codes", () => {
    expect(runCli(["--help"]).stdout).not.toContain("\x1b[");
  });

  test("unknown option is a usage error naming it", () => {
    const r = runCli(["--bogus", "true"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--bogus");
  });

  test("--fork with --exec is refused", () => {
    const r = runCli(["--fork", "--exec", "true"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("--fork and --exec");
  });

  test("command not found: 127, names the command", () => {
    const r = runCli(["no-such-command-xyz"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("no-such-command-xyz");
  });

  test("not executable: 126, names the file", () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-cli-"));
    const f = join(dir, "script");
    writeFileSync(f, "#!/bin/sh\necho hi\n");
    chmodSync(f, 0o644);
    const r = runCli([f]);
    expect(r.code).toBe(126);
    expect(r.stderr).toContain(f);
  });

  test("the program's own flags are not parsed by huptime", () => {
    const r = runCli(["echo", "-n", "--exec", "--bogus"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("--exec --bogus");
  });

  test("-- ends huptime's options", () => {
    const r = runCli(["--exec", "--", "echo", "ok"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe("ok\n");
  });

  test("the program replaces huptime: exit status and stdin pass through", () => {
    const r = runCli(["sh", "-c", "read x; echo got:$x; exit 7"], { input: "hello\n" });
    expect(r.code).toBe(7);
    expect(r.stdout).toBe("got:hello\n");
  });

  test("inherited fds reach the program, signals are reset", () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-fd-"));
    const log = join(dir, "log");
    // fd 3 given by the shell; SIGPIPE/SIGINT must be at their defaults in the program.
    const r = runCli(["sh", "-c", `exec 3>${log}; exec dist/huptime sh -c 'echo to3 >&3; grep -E "^Sig(Ign|Blk)" /proc/self/status'`], {
      cwd: join(import.meta.dir, "..", ".."),
    });
    expect(r.code).toBe(0);
    expect(readFileSync(log, "utf8")).toBe("to3\n");
    expect(r.stdout).toContain("SigIgn:\t0000000000000000");
    expect(r.stdout).toContain("SigBlk:\t0000000000000000");
  });

  test("an unwritable library directory is a clear error and the program does not run", () => {
    const r = runCli(["sh", "-c", "echo RAN"], { env: { ...process.env, HUPTIME_CACHE_DIR: "/proc/huptime-cannot-exist" } });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("RAN");
    expect(r.stderr).toContain("/proc/huptime-cannot-exist");
    expect(r.stderr).toContain("HUPTIME_CACHE_DIR");
  });
});
