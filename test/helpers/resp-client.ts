/**
 * A Redis client that holds one connection, as application clients do: `ECHO NAME-SEQ` every
 * `everyMs` (0: back to back) on the same socket, a new connection only when the server closed
 * the last one. A command whose connection closes or resets before its reply is lost (counted,
 * then sent again on the next connection); what the client saw is counted by kind, with when
 * each close came.
 */
import { connect, type Socket } from "node:net";
import { repeatUntilStopped } from "./net";

/** What one client saw. */
export interface RespStats {
  name: string;
  /** Commands answered with their own payload. */
  answered: number;
  /** Commands whose connection ended before the reply (each sent again afterwards). */
  lost: number;
  /** Error or unexpected replies. */
  errors: string[];
  /** Connections opened (1 + reconnects). */
  connections: number;
  /** FINs while no command was outstanding. */
  closedIdle: number;
  /** Resets while no command was outstanding. */
  resetIdle: number;
  /** Failed connection attempts, with the reason. */
  connectFailures: string[];
  /** When (ms since the epoch) each connection the server ended, ended. */
  closedAt: number[];
}

/** A running client; `stop()` ends it after the command in flight. */
export interface RespClient {
  stats: RespStats;
  stop(): Promise<RespStats>;
}

/** Starts client `name` against 127.0.0.1:`port`. */
export function respClient(port: number, name: string, everyMs: number, timeoutMs = 5000): RespClient {
  const stats: RespStats = { name, answered: 0, lost: 0, errors: [], connections: 0, closedIdle: 0, resetIdle: 0, connectFailures: [], closedAt: [] };
  let sock: Socket | undefined;
  let ended = true;
  let raw = "";
  let pending: ((why?: string) => void) | undefined;

  const open = () =>
    new Promise<boolean>((resolve) => {
      stats.connections++;
      raw = "";
      ended = false;
      let connected = false;
      const s = connect({ port, host: "127.0.0.1" });
      s.setEncoding("latin1");
      s.once("connect", () => ((connected = true), resolve(true)));
      s.on("data", (d: string) => {
        raw += d;
        pending?.();
      });
      const end = (why: string, reset: boolean) => {
        if (ended) return;
        ended = true;
        stats.closedAt.push(Date.now());
        if (pending) pending(why);
        else if (reset) stats.resetIdle++;
        else stats.closedIdle++;
      };
      s.on("end", () => end("closed", false));
      s.on("error", (e) => {
        if (!connected) {
          ended = true;
          stats.connectFailures.push((e as NodeJS.ErrnoException).code ?? e.message);
          resolve(false);
        } else end((e as NodeJS.ErrnoException).code ?? e.message, true);
      });
      sock = s;
    });

  /** Sends one ECHO; true once its reply came back whole and right. */
  const once = (payload: string): Promise<boolean> =>
    new Promise((resolve) => {
      const want = `$${payload.length}\r\n${payload}\r\n`;
      const timer = setTimeout(() => settle("no reply in time"), timeoutMs);
      const settle = (why?: string) => {
        if (why === undefined) {
          const eol = raw.indexOf("\r\n");
          if (eol < 0 || (raw.startsWith("$") && raw.length < want.length)) return; // not whole yet
          if (raw.startsWith(want)) {
            raw = raw.slice(want.length);
            stats.answered++;
          } else {
            stats.errors.push(JSON.stringify(raw.slice(0, 60)));
            raw = "";
          }
          clearTimeout(timer);
          pending = undefined;
          return resolve(true);
        }
        clearTimeout(timer);
        pending = undefined;
        stats.lost++;
        ended = true;
        sock?.destroy();
        resolve(false);
      };
      pending = settle;
      sock!.write(`*2\r\n$4\r\nECHO\r\n$${payload.length}\r\n${payload}\r\n`);
    });

  let seq = 0;
  return repeatUntilStopped(
    stats,
    async () => {
      if (ended && !(await open())) return void (await Bun.sleep(10));
      if (await once(`${name}-${seq}`)) seq++;
      if (everyMs > 0) await Bun.sleep(everyMs);
    },
    () => sock?.destroy(),
  );
}
