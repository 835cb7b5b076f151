/**
 * Garbage in any HUPTIME_* variable the shim reads never crashes or hangs the served program: it
 * starts, serves, and restarts on SIGHUP; a value the shim ignores is reported on one short line
 * naming the variable. The values are set by hand (the CLI drops inherited HUPTIME_* variables and
 * never writes such values itself). HUPTIME_STATE has its own test (handover-record.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { servePreloaded, servesAndRestarts, type PreloadOptions } from "../helpers/preload";

const GARBAGE: [string, string | Uint8Array][] = [
  ["a word", "garbage"],
  ["negative", "-5"],
  ["huge", "99999999999999999999999999"],
  ["NaN", "NaN"],
  ["empty", ""],
  ["other digits", "٣"],
  ["100 KB", "9".repeat(100_000)],
  ["invalid UTF-8", Uint8Array.from([0x31, 0xff, 0xfe])],
];

/** Every variable the shim reads, and which garbage it must report (the rest it accepts). */
const VARIABLES: [string, (v: string | Uint8Array) => boolean][] = [
  ["HUPTIME_MODE", (v) => v !== ""],
  ["HUPTIME_READY_TIMEOUT", () => true],
  ["HUPTIME_DRAIN_TIMEOUT", () => true],
  ["HUPTIME_REVIVE_STREAK", () => true],
  ["HUPTIME_ROOT_PID", () => true],
  ["HUPTIME_SUPERVISOR_PID", () => true],
  ["HUPTIME_MULTI", () => true],
  ["HUPTIME_STATUS_DIR", (v) => v !== ""], // relative: reported; empty: unset
  ["HUPTIME_NOTIFY_SOCKET", () => true],
  // Flags (on unless empty or 0) and a path: any value is accepted.
  ["HUPTIME_DEBUG", () => false],
  ["HUPTIME_WAIT", () => false],
  ["HUPTIME_REVIVE", () => false],
  ["HUPTIME_UNLINK", () => false],
];

function withValue(name: string, value: string | Uint8Array): PreloadOptions {
  return typeof value === "string" ? { env: { [name]: value } } : { bytes: { [name]: value } };
}

describe("garbage in HUPTIME_* variables", () => {
  for (const [name, reports] of VARIABLES) {
    test(`${name}: the program serves and restarts; an ignored value is one line naming it`, async () => {
      const runs = await Promise.all(GARBAGE.map(([, value]) => servePreloaded(withValue(name, value))));
      try {
        await Promise.all(runs.map(servesAndRestarts));
        runs.forEach((s, i) => {
          const [what, value] = GARBAGE[i];
          const lines = s.stderr().split("\n").filter((l) => / gen=1: /.test(l)); // each generation says it again
          const naming = lines.filter((l) => l.includes(`${name}=`) || l.includes(`${name} `));
          expect({ what, naming: naming.length }).toEqual({ what, naming: reports(value) ? 1 : 0 });
          for (const l of naming) {
            expect(l).toMatch(/^huptime\[\d+\] gen=\d+: /);
            expect(l.length).toBeLessThan(300);
          }
          expect(s.stderr()).not.toMatch(/panicked|Segmentation|core dumped|rollback/);
        });
      } finally {
        for (const s of runs) s.killGroup();
      }
    }, 60_000);
  }
});
