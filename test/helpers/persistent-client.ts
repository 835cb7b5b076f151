/**
 * A client that holds one persistent HTTP/1.1 connection, as a pooled client library does: one
 * GET every `everyMs` on the same connection (net.ts's `persistent`), a new connection only when
 * the server closed the last one. Records who answered each response (the number after the body's
 * first word, "ok 1234") and when, and tells apart the closes a client library handles silently
 * from failures (a close or reset with a request unanswered, a non-2xx status, no answer within
 * `timeoutMs`) and from resets of an idle connection. Handled silently: a close after a response
 * that said `Connection: close`, a FIN while the connection was idle, and a FIN that crossed a
 * request sent after the connection had been quiet for `idleGraceMs` (huptime's --drain-idle:
 * the keep-alive timeout race, which HTTP client libraries answer by sending the request again
 * on a new connection, as this client does, counting it).
 */
import { persistent, repeatUntilStopped, type Persistent } from "./net";

/** One answered request: when (ms since the epoch), its status, who answered. */
export interface Answer {
  t: number;
  status: number;
  origin: string;
}

/** What the client saw so far. */
export interface PersistentStats {
  answers: Answer[];
  /** Requests that got no whole 2xx answer, with the reason. */
  failures: string[];
  /** Connections opened (1 + reconnects). */
  connections: number;
  /** Server closes after a response that said `Connection: close`. */
  closedAfterClose: number;
  /** Server closes (FIN) while no request was outstanding (an idle keep-alive connection closed). */
  closedIdle: number;
  /** Resets while no request was outstanding (a client library may retry; huptime should FIN). */
  resetIdle: number;
  /** Requests sent again because a FIN crossed them after `idleGraceMs` of quiet. */
  retriedAfterIdle: number;
}

/** A running client; `stop()` ends it after the request in flight. */
export interface PersistentClient {
  stats: PersistentStats;
  stop(): Promise<PersistentStats>;
}

/** Starts the client against 127.0.0.1:`port` (GET `path`). */
export function persistentClient(port: number, opts: { everyMs?: number; path?: string; timeoutMs?: number; idleGraceMs?: number } = {}): PersistentClient {
  const everyMs = opts.everyMs ?? 20;
  const idleGraceMs = opts.idleGraceMs ?? 500;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const stats: PersistentStats = { answers: [], failures: [], connections: 0, closedAfterClose: 0, closedIdle: 0, resetIdle: 0, retriedAfterIdle: 0 };
  let conn: Persistent | undefined;
  let ended: string | undefined; // how the current connection ended, once it has
  let quietSince = 0; // when the current connection last moved data (or opened)

  /** Sends one request on the current connection; returns a failure reason or undefined. */
  const once = async (c: Persistent): Promise<string | undefined> => {
    const idle = Date.now() - quietSince >= idleGraceMs;
    let timer: Timer | undefined;
    const r = await Promise.race([
      c.ask(opts.path ?? "/").then((response) => ({ response })),
      c.ended.then((e) => ({ ended: e.how })),
      new Promise<{ ended: string }>((resolve) => (timer = setTimeout(() => resolve({ ended: `no answer within ${timeoutMs} ms` }), timeoutMs))),
    ]);
    clearTimeout(timer);
    if ("ended" in r) {
      conn = undefined;
      c.destroy();
      if (r.ended === "end" && idle) {
        stats.retriedAfterIdle++;
        return undefined; // sent again on a new connection at the next step
      }
      return r.ended === "end" ? "closed with a request unanswered" : r.ended;
    }
    quietSince = Date.now();
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(r.response.head)?.[1] ?? 0);
    stats.answers.push({ t: Date.now(), status, origin: /^\S+ (\d+)/.exec(r.response.body)?.[1] ?? "?" });
    if (/\r\nconnection:[ \t]*close/i.test(r.response.head)) {
      stats.closedAfterClose++;
      conn = undefined;
      c.destroy();
    }
    return status >= 200 && status < 300 ? undefined : `status ${status}`;
  };

  return repeatUntilStopped(
    stats,
    async () => {
      if (conn && ended !== undefined) {
        // The server ended it while it was idle: a FIN is what a keep-alive timeout sends.
        if (ended === "end") stats.closedIdle++;
        else stats.resetIdle++;
        conn = undefined;
      }
      if (!conn) {
        try {
          const c = await persistent(port);
          stats.connections++;
          conn = c;
          ended = undefined;
          quietSince = Date.now();
          c.ended.then((e) => {
            if (conn === c) ended = e.how;
          });
        } catch (e) {
          stats.failures.push(`can't connect: ${(e as NodeJS.ErrnoException).code ?? e}`);
          await Bun.sleep(everyMs);
          return;
        }
      }
      const why = await once(conn);
      if (why) stats.failures.push(why);
      await Bun.sleep(everyMs);
    },
    () => conn?.destroy(),
  );
}
