/**
 * redis-server under huptime restarted while clients hold their connections (issue 15, other
 * protocols): each client is a loop on one socket that reconnects when the server closes it
 * (resp-client.ts). Each restart waits for the new generation's ready line and for the old one
 * to end. Used by the e2e test (which asserts) and scripts/bench (which reports).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "./cli";
import { newestServing, watchGenerations } from "./generations";
import { canConnect, freePort } from "./net";
import { alive, waitFor } from "./procs";
import { respClient, type RespStats } from "./resp-client";

/** What the run saw. */
export interface RedisRun {
  restarts: number;
  drainTimeoutS: number;
  clients: RespStats[];
  /** Most generations alive at once. */
  maxGenerations: number;
  /** huptime's and redis's output. */
  output: string;
}

/** One line per client: what it saw. */
export function describeClients(clients: RespStats[]): string {
  return clients
    .map((c) => `${c.name}: ${c.answered} answered, ${c.lost} lost, ${c.connections} connections, ${c.closedIdle} idle FIN, ${c.resetIdle} idle RST, ${c.connectFailures.length} failed connects, errors: ${c.errors.slice(0, 3).join("; ") || "none"}`)
    .join("\n");
}

/** Waits until every client has been answered once more than now. */
function everyAnswered(clients: ReturnType<typeof respClient>[], what: string): Promise<void> {
  const answered = clients.map((c) => c.stats.answered);
  return waitFor(() => clients.every((c, i) => c.stats.answered > answered[i]), what, 30_000);
}

/**
 * Starts redis-server under huptime (`--drain-timeout drainTimeoutS`), one client per entry of
 * `paces` (ms between commands), and restarts it `restarts` times.
 */
export async function redisRestarts(restarts: number, drainTimeoutS: number, paces: Record<string, number>): Promise<RedisRun> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "huptime-redis-"));
  const s = serve(["--drain-timeout", String(drainTimeoutS), "redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir]);
  const watch = watchGenerations(s);
  const clients: ReturnType<typeof respClient>[] = [];
  try {
    await waitFor(() => canConnect(port), `redis to listen; huptime said:\n${s.output()}`, 30_000);
    for (const [name, everyMs] of Object.entries(paces)) clients.push(respClient(port, name, everyMs));
    await everyAnswered(clients, `redis to answer every client; huptime said:\n${s.output()}`);
    for (let gen = 2; gen <= restarts + 1; gen++) {
      await everyAnswered(clients, "every client to be answered");
      const old = newestServing(s);
      process.kill(old, "SIGHUP");
      await waitFor(() => watch.ready.has(gen), `generation ${gen}'s ready line; huptime said:\n${s.output()}`, 30_000);
      await waitFor(() => !alive(old), `generation ${gen - 1} (pid ${old}) to end`, 30_000);
    }
    await everyAnswered(clients, "every client to be answered by the last generation");
  } finally {
    for (const c of clients) await c.stop();
    await watch.stop();
    s.killGroup();
  }
  return { restarts, drainTimeoutS, clients: clients.map((c) => c.stats), maxGenerations: watch.maxAlive(), output: s.output() };
}
