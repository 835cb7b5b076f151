/** Restarting a running server several times under a client loop, for the real-server tests. */
import { expect } from "bun:test";
import { loadLoop, type Reply } from "./net";
import { alive, waitFor } from "./procs";

/** What the routine needs to know about one server. */
export interface RestartPlan {
  port: number;
  restarts: number;
  /** One request of the load loop (a new connection each time). */
  send: () => Promise<Reply>;
  /** Called before each restart: change the config/code so generation `gen` is recognisable. */
  prepare?: (gen: number) => void;
  /** The pid to send SIGHUP to now. */
  master: () => number;
  /** Whether generation `gen` (the new code/config) answers now. */
  answersNew: (gen: number) => Promise<boolean>;
}

/** Restarts `restarts` times; asserts zero failed requests and that every old master exits. */
export async function restartUnderLoad(p: RestartPlan): Promise<void> {
  const load = loadLoop(p.port, { concurrency: 4, intervalMs: 2, send: p.send });
  for (let gen = 2; gen <= p.restarts + 1; gen++) {
    const served = load.stats.ok;
    await waitFor(() => load.stats.ok >= served + 30, "the client loop to be served");
    p.prepare?.(gen);
    const master = p.master();
    process.kill(master, "SIGHUP");
    await waitFor(() => p.answersNew(gen), `generation ${gen} to answer`);
    await waitFor(() => !alive(master), `the old master ${master} to exit`);
  }
  const stats = await load.stop();
  expect(stats.failed, stats.errors.join(", ")).toBe(0);
}
