/**
 * Scenario 6 of scripts/bench, keep-alive takeover (issue 15): each keep-alive server under
 * huptime with wrk -c16 and one persistent client, SIGHUP every 1.5 s for 15 s (nginx in front of
 * the node app also with only a request every 20 ms); per restart the time from the new
 * generation's ready line until every response comes from the new code, failed requests, status
 * 502, and the most generations alive at once. Then redis-server restarted 5 times while clients
 * hold their connections: what they see. The e2e tests run the same, shorter.
 */
import { describeTakeover, keepAliveTakeover, type TakeoverResult } from "../../test/helpers/keepalive";
import { startKeepAliveServer, type KeepAliveKind } from "../../test/helpers/keepalive-servers";
import { describeClients, redisRestarts, type RedisRun } from "../../test/helpers/redis-restarts";
import { table, type Check, type ScenarioPart } from "./report";

/** One run of the scenario. */
export interface KeepAliveRun {
  kind: KeepAliveKind;
  /** "heavy": wrk -c16 + the persistent client; "everyday": a request every 20 ms only. */
  traffic: "heavy" | "everyday";
  seconds: number;
  result: TakeoverResult;
}

/** Issue 15's bound from "ready" until every response comes from the new code. */
const TAKEOVER_MS = 1000;

/** Runs every server (`say`: progress to stderr). go-shutdown is measured, not held to the bounds. */
export async function keepAliveTakeovers(seconds: number, say: (s: string) => void): Promise<KeepAliveRun[]> {
  const plan: [KeepAliveKind, KeepAliveRun["traffic"]][] = [
    ["node", "heavy"],
    ["python", "heavy"],
    ["nginx", "heavy"],
    ["go", "heavy"],
    ["go-shutdown", "heavy"],
    ["nginx-front", "heavy"],
    ["nginx-front", "everyday"],
  ];
  const runs: KeepAliveRun[] = [];
  for (const [kind, traffic] of plan) {
    say(`scenario 6: ${kind}, ${traffic} keep-alive traffic, SIGHUP every 1.5 s for ${seconds} s`);
    const server = await startKeepAliveServer(kind);
    try {
      const result = await keepAliveTakeover({ port: server.port, group: server.group, seconds, ...(traffic === "everyday" ? { connections: 0 } : {}) });
      say(describeTakeover(result).replace(/^/gm, "  "));
      runs.push({ kind, traffic, seconds, result });
    } finally {
      await server.stop();
    }
  }
  return runs;
}

const name = (r: KeepAliveRun) => `${r.kind}${r.traffic === "everyday" ? " (a request every 20 ms)" : ""}`;
const maxTakeover = (r: KeepAliveRun) => Math.max(0, ...r.result.restarts.map((x) => x.takeoverMs));

/** Redis clients: back to back, and paced (ms between commands). */
const REDIS_PACES: Record<string, number> = { "back to back": 0, "every 1 ms": 1, "every 20 ms": 20, "every 2 s": 2000 };

/** Redis restarted 5 times (--drain-timeout 3) with clients holding their connections. */
export async function redisClients(say: (s: string) => void): Promise<RedisRun> {
  say("scenario 6: redis-server, 5 restarts, clients holding their connections");
  const r = await redisRestarts(5, 3, REDIS_PACES);
  say(describeClients(r.clients).replace(/^/gm, "  "));
  return r;
}

/** The targets the scenario checks (go-shutdown is left out: Go's Shutdown loses requests itself;
 * so are Redis clients pausing less than 20 ms, whose next command can cross the close: README
 * "Persistent connections" says why). */
export function keepAliveChecks(runs: KeepAliveRun[], redis: RedisRun): Check[] {
  const paced = redis.clients.filter((c) => (REDIS_PACES[c.name] ?? 0) >= 20);
  const lost = paced.reduce((n, c) => n + c.lost, 0);
  return [
    ...keepAliveRunChecks(runs),
    { what: "6 redis, clients pausing 20 ms or more: commands unanswered", value: String(lost), target: "0", pass: lost === 0 },
    { what: "6 redis: generations alive at once", value: String(redis.maxGenerations), target: "≤ 2", pass: redis.maxGenerations <= 2 },
  ];
}

function keepAliveRunChecks(runs: KeepAliveRun[]): Check[] {
  return runs
    .filter((r) => r.kind !== "go-shutdown")
    .flatMap((r) => [
      { what: `6 ${name(r)}: failed requests (502: ${r.result.status502})`, value: String(r.result.failed), target: "0", pass: r.result.failed === 0 && r.result.status502 === 0 },
      { what: `6 ${name(r)}: restarts / SIGHUPs`, value: `${r.result.restarts.length}/${r.result.sighups}`, target: "all", pass: r.result.restarts.length === r.result.sighups },
      { what: `6 ${name(r)}: ready → only new code (max)`, value: `${maxTakeover(r).toFixed(0)} ms`, target: `≤ ${TAKEOVER_MS} ms`, pass: r.result.restarts.length > 0 && maxTakeover(r) <= TAKEOVER_MS },
      { what: `6 ${name(r)}: generations alive at once`, value: String(r.result.maxGenerations), target: "≤ 2", pass: r.result.maxGenerations <= 2 },
    ]);
}

/** The report's section for the scenario. */
export function keepAliveSection(runs: KeepAliveRun[], redis: RedisRun, date: string): string {
  const rows = runs.map((r) => {
    const p = r.result.persistent;
    return [
      name(r),
      `${r.result.restarts.length}/${r.result.sighups}`,
      r.result.restarts.map((x) => x.takeoverMs.toFixed(0)).join(", ") || "-",
      r.result.responses,
      r.result.failed,
      r.result.status502,
      r.result.maxGenerations,
      `${p.connections - 1}: ${p.closedAfterClose} / ${p.closedIdle} / ${p.retriedAfterIdle} / ${p.resetIdle}`,
    ];
  });
  return `## 6. Keep-alive takeover (SIGHUP every 1.5 s for ${runs[0]?.seconds ?? "-"} s)

Measured on ${date} (\`scripts/bench --scenario keep-alive\` runs it alone). Each server under huptime (fork mode;
Go through \`--listen-fds\`) with wrk holding 16 keep-alive connections and one client holding a
single persistent connection (a request every 20 ms); "a request every 20 ms" is that client
alone. "ready → only new code" is, per restart, the time from the new generation's ready line
until the last response of older code (0: none came after). "failed" counts wrk's connect, read,
write errors, timeouts and non-2xx, and the persistent client's failed requests. go-shutdown
stops with \`http.Server.Shutdown\`, which closes connections whose next request is unread (a
reset and a lost request each; huptime does not see Go's connections): measured, not a target.

${table(["server", "restarts / SIGHUPs", "ready → only new code, ms per restart", "responses", "failed", "502", "generations at once", "persistent client: reconnects: after Connection: close / idle FIN / FIN crossing a request after 0.5 s quiet (retried) / idle RST"], rows)}

redis-server restarted ${redis.restarts} times (\`--drain-timeout ${redis.drainTimeoutS}\`, each restart once the previous
generation has ended), clients each looping \`ECHO\` on one connection and reconnecting when it
closes; "lost" counts commands whose connection ended before their reply (sent again on the next
connection; whether Redis had run them is not known to the client). Generations alive at once: ${redis.maxGenerations}.

${table(["client", "commands answered", "lost", "connections", "idle FIN", "idle RST", "failed connects", "errors"], redis.clients.map((c) => [c.name, c.answered, c.lost, c.connections, c.closedIdle, c.resetIdle, c.connectFailures.length, c.errors.length]))}
`;
}

/** A run's figures for report.json (without who answered each response: the persistent
 * client's answers are reduced to a count, the origins left out). */
function figures(r: KeepAliveRun) {
  const { persistent, origins, wrk, ...rest } = r.result;
  const { answers, ...seen } = persistent;
  const { origins: wrkOrigins, ...load } = wrk ?? {};
  return { kind: r.kind, traffic: r.traffic, seconds: r.seconds, ...rest, wrk: wrk && load, persistent: { answers: answers.length, ...seen } };
}

/** Runs the whole scenario; returns its part of the report: section, report.json's `scenario6`, checks. */
export async function keepAlivePart(seconds: number, date: string, say: (s: string) => void): Promise<ScenarioPart> {
  const runs = await keepAliveTakeovers(seconds, say);
  const redis = await redisClients(say);
  const { output, ...redisFigures } = redis;
  return {
    section: keepAliveSection(runs, redis, date),
    key: "scenario6",
    data: { takeovers: runs.map(figures), redis: redisFigures },
    checks: keepAliveChecks(runs, redis),
    checkPrefix: "6 ",
  };
}
