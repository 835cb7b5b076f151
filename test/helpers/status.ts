/** `huptime --status --json` from tests. */
import { expect } from "bun:test";
import type { StatusRow } from "../../src/inventory";
import { runCli } from "./cli";

/** The processes `huptime --status --json [args]` reports (the run must succeed). */
export function statusRows(args: string[] = [], opts: { env?: NodeJS.ProcessEnv } = {}): StatusRow[] {
  const r = runCli(["--status", "--json", ...args], opts);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout).processes;
}

/** Client connections `pid` holds, as --status reports them (0 if it is not listed). */
export function connectionsOf(pid: number): number {
  return statusRows().find((r) => r.pid === pid)?.connections ?? 0;
}
