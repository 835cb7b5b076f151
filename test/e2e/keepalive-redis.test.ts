/**
 * Issue 15, other protocols: redis-server under huptime restarted 5 times while clients hold
 * their connections (one socket each, reconnecting when the server closes it): one sends a
 * command every 20 ms (never idle for --drain-idle's default 0.5 s, so it stays until the drain
 * deadline and is closed at a request boundary), one every 2 s (idle well past the grace, closed
 * with a FIN long before its next command). No command goes unanswered (none outstanding when
 * its connection ends), and what the clients saw is printed for the record. --drain-timeout 3
 * bounds each drain. Clients that pause less than huptime needs to see a boundary and close it
 * (a command every 1 ms, or back to back) can have a command cross the FIN: scripts/bench
 * measures them and README "Persistent connections" says why.
 */
import { describe, expect, test } from "bun:test";
import { describeClients, redisRestarts } from "../helpers/redis-restarts";

const RESTARTS = 5;

describe("redis-server with clients holding their connections", () => {
  test(`${RESTARTS} restarts: no command lost, at most 2 generations`, async () => {
    const r = await redisRestarts(RESTARTS, 3, { every20ms: 20, every2s: 2000 });
    const stats = r.clients;
    const why = `${describeClients(stats)}\nmost generations alive: ${r.maxGenerations}\nhuptime said:\n${r.output.split("\n").filter((l) => l.startsWith("huptime[")).slice(-20).join("\n")}`;
    console.log(`redis, ${RESTARTS} restarts:\n${describeClients(stats)}`);
    expect(stats.map((c) => c.lost), why).toEqual([0, 0]);
    expect(stats.flatMap((c) => c.errors), why).toEqual([]);
    expect(stats.map((c) => c.resetIdle), why).toEqual([0, 0]);
    expect(stats.flatMap((c) => c.connectFailures), why).toEqual([]);
    expect(r.maxGenerations, why).toBeLessThanOrEqual(2);
    // Each old generation ended, so each client moved on every time: one connection per generation.
    for (const c of stats) expect(c.connections, why).toBeGreaterThanOrEqual(RESTARTS + 1);
  }, 240_000);
});
