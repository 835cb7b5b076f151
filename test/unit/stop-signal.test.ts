/** The --stop-signal value: a name with or without SIG, or a number; never one a program cannot handle. */
import { describe, expect, test } from "bun:test";
import { parseStopSignal } from "../../src/stop-signal";

describe("parseStopSignal", () => {
  test("names with or without SIG, in any case, and numbers", () => {
    expect(parseStopSignal("TERM")).toBe("SIGTERM");
    expect(parseStopSignal("sigquit")).toBe("SIGQUIT");
    expect(parseStopSignal("SIGUSR1")).toBe("SIGUSR1");
    expect(parseStopSignal("2")).toBe("SIGINT");
  });

  test("KILL, STOP and what is no signal are refused, naming the value", () => {
    for (const bad of ["KILL", "9", "SIGSTOP", "TERMINATE", "", "99"]) {
      expect(() => parseStopSignal(bad)).toThrow(`--stop-signal: ${bad} is not a signal a program can handle`);
    }
  });
});
