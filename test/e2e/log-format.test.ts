/**
 * Every line huptime writes, from the shim in the program or from the CLI (--multi and
 * --listen-fds supervisors), has one format: `huptime[PID] gen=N: message`. Restarts are logged
 * without --debug; --debug adds the details.
 */
import { describe, expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { waitFor } from "../helpers/procs";

const FORMAT = /^huptime\[\d+\] gen=\d+: \S/;

/** huptime's lines (the program's own output is everything else). */
const ours = (output: string) => output.split("\n").filter((l) => l.startsWith("huptime"));

describe("log lines", () => {
  for (const args of [[], ["--debug"], ["--multi=1"], ["--multi=1", "--debug"]]) {
    test(`one format (${args.join(" ") || "defaults"}); restarts logged always, details with --debug`, async () => {
      const { app, port, s } = await serveApp("v1", args);
      try {
        app.write(appSource("v2"));
        process.kill(s.pid, "SIGHUP");
        await waitForVersion(port, "v2");
        await waitFor(() => s.output().includes("draining"), "the restart's log");
        const lines = ours(s.output());
        expect(lines.length).toBeGreaterThan(0);
        for (const l of lines) expect(l).toMatch(FORMAT);
        expect(lines.some((l) => /gen=1: restarting: generation 2 is pid \d+/.test(l))).toBe(true);
        const debugLines = lines.filter((l) => /ready: waiting for connections|restart thread started|reaped pid/.test(l));
        if (args.includes("--debug")) expect(debugLines.length).toBeGreaterThan(0);
        else expect(debugLines).toEqual([]);
        if (args.includes("--multi=1")) expect(lines.some((l) => /gen=0: started 1 instances/.test(l))).toBe(true);
      } finally {
        s.killGroup();
      }
    }, 30_000);
  }
});
