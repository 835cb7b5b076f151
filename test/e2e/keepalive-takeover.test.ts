/**
 * Issue 15: the new code takes over keep-alive clients within a second of being ready, with no
 * failed request. Each server runs under huptime with wrk holding 16 keep-alive connections and
 * one client holding a single persistent connection (a request every 20 ms), SIGHUP every 1.5 s:
 * 0 failed requests (errors, resets, non-2xx, 502), every SIGHUP a restart, all responses from
 * the new code within 1 s after its ready line, never more than 2 generations alive. scripts/bench
 * runs the same for 15 s ("keep-alive takeover"); the suite runs 6 s of SIGHUPs.
 */
import { describe, expect, test } from "bun:test";
import { describeTakeover, keepAliveTakeover, type TakeoverOptions } from "../helpers/keepalive";
import { startKeepAliveServer, type KeepAliveKind } from "../helpers/keepalive-servers";

const SECONDS = 6;
/** The bound: from "new generation ready" until every response comes from the new code. */
const TAKEOVER_MS = 1000;

/** Runs the takeover against `kind` and checks the bounds. */
async function takeover(kind: KeepAliveKind, load: Pick<TakeoverOptions, "connections" | "persistentEveryMs"> = {}): Promise<void> {
  const server = await startKeepAliveServer(kind);
  try {
    const r = await keepAliveTakeover({ port: server.port, group: server.group, seconds: SECONDS, ...load });
    console.log(`${kind}${load.connections === 0 ? " (a request every 20 ms)" : ""}: ${describeTakeover(r).split("\n").slice(0, 3).join("; ")}`);
    const why = `${describeTakeover(r)}\nhuptime said:\n${server.group.output().split("\n").slice(-30).join("\n")}`;
    expect(r.failed, why).toBe(0);
    expect(r.status502, why).toBe(0);
    expect(r.persistent.resetIdle, why).toBe(0);
    expect(r.restarts.length, why).toBe(r.sighups);
    expect(r.maxGenerations, why).toBeLessThanOrEqual(2);
    for (const x of r.restarts) expect(x.takeoverMs, `generation ${x.generation}\n${why}`).toBeLessThanOrEqual(TAKEOVER_MS);
    // Every answer is accounted for: each pid that answered belongs to a known generation.
    expect(r.origins.filter((o) => o.generation === undefined).map((o) => o.origin), why).toEqual([]);
  } finally {
    await server.stop();
  }
}

describe("keep-alive takeover: wrk -c16 and a persistent client, SIGHUP every 1.5 s", () => {
  test("node http server", () => takeover("node"), 180_000);
  test("python3 http.server with an HTTP/1.1 handler", () => takeover("python"), 180_000);
  test("nginx in the foreground (master + 2 workers)", () => takeover("nginx"), 180_000);
  // Stopping at request boundaries on SIGTERM; http.Server.Shutdown resets the connections whose
  // next request is unread at that instant (16 wrk read errors per restart, whatever huptime does:
  // scripts/bench's "go-shutdown" row measures it).
  test("Go net/http through --listen-fds (stops at request boundaries on SIGTERM)", () => takeover("go"), 300_000);
  test("nginx in front (upstream keepalive 32) of a node app, heavy traffic: 0 errors, 0 status 502", () => takeover("nginx-front"), 180_000);
  test("nginx in front (upstream keepalive 32) of a node app, a request every 20 ms: 0 errors, 0 status 502", () =>
    takeover("nginx-front", { connections: 0, persistentEveryMs: 20 }), 180_000);
});
