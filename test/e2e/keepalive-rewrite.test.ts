/**
 * While a generation drains, the next HTTP/1.x response it writes on each persistent connection
 * says `Connection: close` (crates/huptime/src/rewrite.rs), however the program writes it: one
 * writev, write + sendfile, chunked by several writes, send, sendmsg, a head that says
 * keep-alive (HTTP/1.0 keep-alive), three pipelined requests (only the last answer closes), and
 * `Expect: 100-continue` (the interim response is left alone), all on non-blocking sockets with
 * a 4 KiB send buffer (partial writes). Every response arrives whole, byte for byte; the client
 * closes, the program sees it, and the old generation ends long before any deadline. While the
 * generation serves, nothing is changed. Under load, 16 keep-alive clients of a node server reach
 * the new code within a second after it is ready, restart after restart, and no request fails.
 */
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../helpers/cli";
import { compileC } from "../helpers/gcc";
import { SERVERS } from "../helpers/matrix";
import { canConnect, freePort, keepAliveLoad } from "../helpers/net";
import { alive, waitFor } from "../helpers/procs";

/** The fixture's body before its cookie and pid (keepalive_shapes.c). */
const BODY_LEN = 100003;
const PATTERN = Buffer.from(Array.from({ length: BODY_LEN }, (_, i) => 97 + ((i * 7) % 26)));

interface Parsed {
  status: number;
  head: string;
  body: Buffer;
}

/** Parses one response from the start of `b`: it and its length, or undefined if incomplete. */
function parseResponse(b: Buffer): [Parsed, number] | undefined {
  const end = b.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const head = b.subarray(0, end).toString("latin1");
  const status = Number(head.slice(9, 12));
  let pos = end + 4;
  if (status < 200) return [{ status, head, body: Buffer.alloc(0) }, pos];
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = b.indexOf("\r\n", pos);
      if (eol < 0) return undefined;
      const size = parseInt(b.subarray(pos, eol).toString("latin1"), 16);
      if (b.length < eol + 2 + size + 2) return undefined;
      parts.push(b.subarray(eol + 2, eol + 2 + size));
      pos = eol + 2 + size + 2;
      if (size === 0) return [{ status, head, body: Buffer.concat(parts) }, pos];
    }
  }
  const len = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
  if (b.length < pos + len) return undefined;
  return [{ status, head, body: b.subarray(pos, pos + len) }, pos + len];
}

/** A raw client connection: send bytes, take whole responses, see how it ends. */
class Client {
  private buf = Buffer.alloc(0);
  private wake = () => {};
  readonly closed: Promise<string>;
  private constructor(private sock: Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.closed = new Promise((resolve) => {
      sock.on("close", () => resolve("closed"));
      sock.on("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
    });
  }
  static async open(port: number): Promise<Client> {
    const sock = connect({ port, host: "127.0.0.1" });
    await new Promise<void>((resolve, reject) => (sock.once("connect", resolve), sock.once("error", reject)));
    return new Client(sock);
  }
  send(s: string) {
    this.sock.write(s);
  }
  /** The next `n` whole responses (within 30 s). */
  async responses(n: number): Promise<Parsed[]> {
    const out: Parsed[] = [];
    const deadline = Date.now() + 30_000;
    while (out.length < n) {
      const p = parseResponse(this.buf);
      if (p) {
        out.push(p[0]);
        this.buf = this.buf.subarray(p[1]);
        continue;
      }
      if (Date.now() > deadline) throw new Error(`no whole response (have ${this.buf.length} bytes: ${JSON.stringify(this.buf.subarray(0, 80).toString("latin1"))})`);
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 200);
      });
    }
    return out;
  }
  end() {
    this.sock.end();
  }
}

const get = (path: string, version = "1.1", extra = "") => `GET ${path} HTTP/${version}\r\nHost: t\r\n${extra}\r\n`;
const closes = (head: string) => /\r\nconnection: close *(\r\n|$)/i.test(head);

/** Each shape: the request(s) sent, then what the client checks; returns the closing response. */
const SHAPES: [string, (c: Client) => Promise<Parsed>][] = [
  ["writev", async (c) => (c.send(get("/writev")), (await c.responses(1))[0])],
  ["write + sendfile", async (c) => (c.send(get("/sendfile")), (await c.responses(1))[0])],
  ["chunked", async (c) => (c.send(get("/chunked")), (await c.responses(1))[0])],
  ["send", async (c) => (c.send(get("/send")), (await c.responses(1))[0])],
  ["sendmsg", async (c) => (c.send(get("/sendmsg")), (await c.responses(1))[0])],
  [
    "HTTP/1.0 keep-alive",
    async (c) => {
      c.send(get("/keepalive", "1.0", "Connection: keep-alive\r\n"));
      const [r] = await c.responses(1);
      expect(r.head).not.toMatch(/keep-alive/i);
      return r;
    },
  ],
  [
    "3 pipelined requests",
    async (c) => {
      c.send(get("/writev") + get("/send") + get("/chunked"));
      const rs = await c.responses(3);
      expect(rs.map((r) => closes(r.head))).toEqual([false, false, true]);
      for (const r of rs.slice(0, 2)) expect(r.body.subarray(0, BODY_LEN).equals(PATTERN)).toBe(true);
      return rs[2];
    },
  ],
  [
    "Expect: 100-continue",
    async (c) => {
      c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
      const [interim] = await c.responses(1);
      expect(interim.status).toBe(100);
      expect(interim.head).toBe("HTTP/1.1 100 Continue");
      c.send("0123456789");
      const [r] = await c.responses(1);
      expect(r.body.toString()).toBe("got 10\n");
      return r;
    },
  ],
];

describe("Connection: close on the next response while draining", () => {
  test("every way of writing a response, under partial writes: answered whole, then closed", async () => {
    const program = compileC(join(SERVERS, "keepalive_shapes.c"));
    const dir = mkdtempSync(join(tmpdir(), "huptime-shapes-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "v1");
    const port = await freePort();
    // A long idle grace: only the rewritten responses close these connections.
    const s = serve(["--drain-idle=60", program, String(port), cookie]);
    try {
      await waitFor(() => canConnect(port), "the server to listen");
      const clients = await Promise.all(SHAPES.map(() => Client.open(port)));
      const mine = Buffer.concat([PATTERN, Buffer.from(` v1 ${s.pid}\n`)]);
      // While serving, nothing is changed.
      for (const c of clients) {
        c.send(get("/writev"));
        const [r] = await c.responses(1);
        expect(closes(r.head)).toBe(false);
        expect(r.body.equals(mine)).toBe(true);
      }
      writeFileSync(cookie, "v2");
      process.kill(s.pid, "SIGHUP");
      await waitFor(() => /is ready after .*; draining/.test(s.output()), "the old generation to drain", 30_000, 10);
      for (const [i, [name, run]] of SHAPES.entries()) {
        const r = await run(clients[i]);
        expect(closes(r.head), `${name}: ${r.head}`).toBe(true);
        expect((r.head.match(/\r\nconnection:/gi) ?? []).length, name).toBe(1);
        if (name !== "Expect: 100-continue") expect(r.body.equals(mine), name).toBe(true);
        clients[i].end();
      }
      for (const c of clients) expect(await c.closed).toBe("closed");
      await waitFor(() => !alive(s.pid), "the old generation to end once its clients closed", 15_000);
      expect(s.output()).not.toContain("drain deadline");
      expect(s.output()).not.toContain("write returned");
    } finally {
      s.killGroup();
    }
  }, 90_000);
});

describe("keep-alive clients under restarts", () => {
  test("node, 16 keep-alive clients, 3 restarts: each time the new code serves every request within 1 s after it is ready", async () => {
    const dir = mkdtempSync(join(tmpdir(), "huptime-ka-node-"));
    const cookie = join(dir, "cookie");
    writeFileSync(cookie, "v1");
    const port = await freePort();
    const s = serve(["node", join(SERVERS, "node_keepalive.js"), String(port), cookie]);
    try {
      await waitFor(() => canConnect(port), "node to listen");
      const load = keepAliveLoad(port, 16);
      await waitFor(() => load.answers.length >= 100, "the clients to be served");
      let serving = s.pid;
      for (let gen = 2; gen <= 4; gen++) {
        writeFileSync(cookie, `v${gen}`);
        const ready = new RegExp(`generation ${gen} \\(pid \\d+\\) is ready after`);
        process.kill(serving, "SIGHUP");
        await waitFor(() => ready.test(s.output()), `generation ${gen} to be ready`, 30_000, 5);
        const readyAt = Date.now();
        await waitFor(() => load.answers.some((a) => a.at > readyAt + 1000), "answers a second after it is ready", 30_000);
        const late = load.answers.filter((a) => a.at > readyAt + 1000);
        expect(late.length).toBeGreaterThan(0);
        const bodies = new Set(late.map((a) => a.body.split(" ")[0]));
        expect([...bodies], `generation ${gen}, a second after it was ready`).toEqual([`v${gen}`]);
        serving = Number(late.at(-1)!.body.split(" ")[1]);
      }
      await load.stop();
      expect(load.failures).toEqual([]);
      console.log(`16 keep-alive clients, 3 restarts: ${load.answers.length} answers, none failed`);
    } finally {
      s.killGroup();
    }
  }, 120_000);
});
