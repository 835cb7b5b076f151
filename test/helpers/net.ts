/** Network helpers for tests: free ports, one-shot HTTP/1.0 requests, held connections, load loops. */
import { createServer, connect, type Socket } from "node:net";

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Outcome of one request. */
export type Reply = { ok: true; body: string } | { ok: false; error: string };

/** Parses a raw HTTP response into a Reply (2xx with a body = ok). */
function parse(raw: string): Reply {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(raw);
  if (!m) return { ok: false, error: `bad response ${JSON.stringify(raw.slice(0, 60))}` };
  if (!m[1].startsWith("2")) return { ok: false, error: `status ${m[1]}` };
  const i = raw.indexOf("\r\n\r\n");
  return { ok: true, body: i >= 0 ? raw.slice(i + 4) : "" };
}

/**
 * One exchange on a new connection: sends `payload`, collects the reply, and lets `settle` decide
 * after each chunk (`ended` false) and at EOF (`ended` true); undefined means "keep reading".
 */
function converse(
  port: number,
  host: string,
  payload: string,
  timeoutMs: number,
  settle: (raw: string, ended: boolean) => Reply | undefined,
): Promise<Reply> {
  return new Promise((resolve) => {
    let raw = "";
    let done = false;
    const finish = (r: Reply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = connect({ port, host });
    const timer = setTimeout(() => finish({ ok: false, error: `timeout (got ${JSON.stringify(raw.slice(0, 40))})` }), timeoutMs);
    sock.setEncoding("utf8");
    sock.on("connect", () => sock.write(payload));
    sock.on("data", (d) => {
      raw += d;
      const r = settle(raw, false);
      if (r) finish(r);
    });
    sock.on("end", () => finish(settle(raw, true) ?? { ok: false, error: "closed" }));
    sock.on("error", (e) => finish({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message }));
  });
}

/** Sends one `GET path` on a new connection and reads the reply until the server closes. */
export function request(port: number, path = "/", timeoutMs = 10_000, host = "127.0.0.1"): Promise<Reply> {
  return converse(port, host, `GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`, timeoutMs, (raw, ended) =>
    ended ? parse(raw) : undefined,
  );
}

/** A connection opened now, whose request is sent later with `send()`. */
export interface Held {
  send(path?: string): Promise<Reply>;
}

/** Opens a connection and waits until it is established; the request goes out on `send()`. */
export async function hold(port: number, timeoutMs = 15_000): Promise<Held> {
  const sock: Socket = connect({ port, host: "127.0.0.1" });
  sock.setEncoding("utf8");
  let raw = "";
  const closed = new Promise<Reply>((resolve) => {
    const timer = setTimeout(() => resolve({ ok: false, error: "timeout" }), timeoutMs);
    sock.on("data", (d) => (raw += d));
    sock.on("end", () => {
      clearTimeout(timer);
      resolve(parse(raw));
    });
    sock.on("error", (e) => {
      clearTimeout(timer);
      resolve({ ok: false, error: (e as NodeJS.ErrnoException).code ?? e.message });
    });
  });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  return {
    send(path = "/") {
      sock.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`);
      return closed;
    },
  };
}

/** Counters of a running load loop. */
export interface LoadStats {
  ok: number;
  failed: number;
  errors: string[];
  /** Body of every successful reply, counted. */
  bodies: Map<string, number>;
}

/**
 * Runs `concurrency` clients that each open a new connection, send a request, read the reply and
 * wait `intervalMs`, until `stop()` is called (or `maxMs` passes). Every connection is new.
 */
export function loadLoop(
  port: number,
  opts: { concurrency?: number; intervalMs?: number; maxMs?: number; send?: () => Promise<Reply> } = {},
) {
  const stats: LoadStats = { ok: 0, failed: 0, errors: [], bodies: new Map() };
  let running = true;
  const end = Date.now() + (opts.maxMs ?? 120_000);
  const worker = async () => {
    while (running && Date.now() < end) {
      const r = await (opts.send ? opts.send() : request(port));
      if (r.ok) {
        stats.ok++;
        stats.bodies.set(r.body, (stats.bodies.get(r.body) ?? 0) + 1);
      } else {
        stats.failed++;
        if (stats.errors.length < 20) stats.errors.push(r.error);
      }
      await Bun.sleep(opts.intervalMs ?? 3);
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, worker);
  return {
    stats,
    async stop(): Promise<LoadStats> {
      running = false;
      await Promise.all(workers);
      return stats;
    },
  };
}

/** Whether a TCP connection to 127.0.0.1:`port` is accepted (by the kernel: listening is enough). */
export function canConnect(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: "127.0.0.1" });
    const t = setTimeout(() => (s.destroy(), resolve(false)), timeoutMs);
    s.on("connect", () => (clearTimeout(t), s.destroy(), resolve(true)));
    s.on("error", () => (clearTimeout(t), resolve(false)));
  });
}

/** Sends `payload` on a new connection and collects the reply until it matches `until` (or EOF). */
export function exchange(port: number, payload: string, until: RegExp, timeoutMs = 10_000, host = "127.0.0.1"): Promise<Reply> {
  return converse(port, host, payload, timeoutMs, (raw, ended) =>
    until.test(raw) ? { ok: true, body: raw } : ended ? { ok: false, error: `closed: ${JSON.stringify(raw.slice(0, 40))}` } : undefined,
  );
}

/** A client loop: `step` runs again and again until `stop()`, which waits for the step in
 * progress, runs `end` (close the client's socket) and returns `stats`. */
export function repeatUntilStopped<T>(stats: T, step: () => Promise<void>, end: () => void): { stats: T; stop(): Promise<T> } {
  let running = true;
  const loop = (async () => {
    while (running) await step();
    end();
  })();
  return {
    stats,
    async stop() {
      running = false;
      await loop;
      return stats;
    },
  };
}

/** One whole HTTP response read from a persistent connection. */
export interface Response {
  head: string;
  body: string;
}

/** A persistent (keep-alive) HTTP/1.1 connection, asked one request at a time. */
export interface Persistent {
  /** Sends `GET path` (HTTP/1.1) and resolves with the next whole response (Content-Length framed). */
  ask(path?: string): Promise<Response>;
  /** Resolves when the server closes the connection: `end` for a FIN, else the error (a reset). */
  ended: Promise<{ how: string; at: number }>;
  /** When data last arrived (ms since the epoch). */
  lastDataAt(): number;
  destroy(): void;
}

/** Opens a persistent connection to 127.0.0.1:`port` and waits until it is established. */
export async function persistent(port: number): Promise<Persistent> {
  const sock: Socket = connect({ port, host: "127.0.0.1" });
  sock.setEncoding("latin1");
  let buf = "";
  let lastData = Date.now();
  let waiting: ((r: Response) => void) | undefined;
  const take = () => {
    const i = buf.indexOf("\r\n\r\n");
    if (i < 0 || !waiting) return;
    const head = buf.slice(0, i);
    const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
    if (buf.length < i + 4 + len) return;
    const w = waiting;
    waiting = undefined;
    w({ head, body: buf.slice(i + 4, i + 4 + len) });
    buf = buf.slice(i + 4 + len);
  };
  const ended = new Promise<{ how: string; at: number }>((resolve) => {
    sock.on("end", () => resolve({ how: "end", at: Date.now() }));
    sock.on("error", (e) => resolve({ how: (e as NodeJS.ErrnoException).code ?? e.message, at: Date.now() }));
  });
  sock.on("data", (d) => {
    buf += d;
    lastData = Date.now();
    take();
  });
  await new Promise<void>((resolve, reject) => {
    sock.once("connect", () => resolve());
    sock.once("error", reject);
  });
  return {
    ask(path = "/") {
      const r = new Promise<Response>((resolve) => (waiting = resolve));
      sock.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      return r;
    },
    ended,
    lastDataAt: () => lastData,
    destroy: () => sock.destroy(),
  };
}

/** `clients` loops, each asking on one persistent connection (a new one after a response that
 * says `Connection: close`, as HTTP clients do) until `stop()`: every answer's body and time. */
export function keepAliveLoad(port: number, clients: number) {
  const answers: { at: number; body: string }[] = [];
  const failures: string[] = [];
  let running = true;
  const loop = async () => {
    let c: Persistent | undefined;
    while (running) {
      try {
        c ??= await persistent(port);
        const conn = c;
        const r = await Promise.race([conn.ask(), conn.ended.then((e) => Promise.reject(new Error(`closed before the answer: ${e.how}`)))]);
        answers.push({ at: Date.now(), body: r.body.trim() });
        if (/\r\nconnection: *close *(\r\n|$)/i.test(`\r\n${r.head}`)) {
          conn.destroy();
          c = undefined;
        }
      } catch (e) {
        failures.push((e as Error).message);
        c?.destroy();
        c = undefined;
      }
    }
    c?.destroy();
  };
  const loops = Array.from({ length: clients }, loop);
  return {
    answers,
    failures,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** One HTTP/1.0 request over a unix socket; resolves with the body or an error string. */
export function unixRequest(path: string): Promise<string> {
  return new Promise((resolve) => {
    let raw = "";
    const s = connect({ path });
    s.setEncoding("utf8");
    s.setTimeout(5000, () => (s.destroy(), resolve("error: timeout")));
    s.on("connect", () => s.write("GET / HTTP/1.0\r\n\r\n"));
    s.on("data", (d) => (raw += d));
    s.on("end", () => resolve(raw.slice(raw.indexOf("\r\n\r\n") + 4)));
    s.on("error", (e) => resolve(`error: ${(e as NodeJS.ErrnoException).code}`));
  });
}
