/**
 * The servers of the keep-alive takeover runs (issue 15), started under dist/huptime on a free
 * port, each answering "ok PID" on keep-alive connections: node's http module, python's
 * ThreadingHTTPServer with an HTTP/1.1 handler, nginx (master + 2 workers, in the foreground), a
 * static Go net/http server through --listen-fds that stops at request boundaries on SIGTERM
 * ("go") or by http.Server.Shutdown ("go-shutdown": see test/fixtures/go/keepalive), and nginx in
 * front of the node app with an upstream keep-alive pool. The e2e tests and scripts/bench run
 * the same ones.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { childPids } from "../../src/instances";
import { ROOT, serve } from "./cli";
import { goFixture } from "./go";
import { freePort, request } from "./net";
import { writeNginxConf } from "./nginx";
import { waitFor } from "./procs";
import { killGroup, spawnGroup, type Group } from "./spawn";

/** Which server. */
export type KeepAliveKind = "node" | "python" | "nginx" | "go" | "go-shutdown" | "nginx-front";

/** Every kind, in the order the tests and the benchmark run them. */
export const KEEPALIVE_KINDS: KeepAliveKind[] = ["node", "python", "nginx", "go", "go-shutdown", "nginx-front"];

/** A running server. */
export interface KeepAliveServer {
  kind: KeepAliveKind;
  /** Where clients connect (for nginx-front: the front nginx). */
  port: number;
  /** huptime's process group (for nginx-front: the app's). */
  group: Group;
  /** Kills everything it started. */
  stop(): Promise<void>;
}

const BENCH_SERVERS = join(ROOT, "scripts", "benchmarks", "servers");

/** The argv huptime runs for `kind` on `port` (`dir`: a private directory for its files). */
function program(kind: Exclude<KeepAliveKind, "nginx-front">, port: number, dir: string): string[] {
  switch (kind) {
    case "node":
      return ["node", join(BENCH_SERVERS, "node.js"), String(port)];
    case "python":
      return ["python3", join(BENCH_SERVERS, "python_threaded.py"), String(port)];
    case "nginx": {
      const conf = writeNginxConf(dir, port, "ok", { daemon: false, connections: 1024, location: 'return 200 "ok $pid\\n";' });
      return ["--unlink", join(dir, "nginx.pid"), "nginx", "-c", conf, "-p", dir, "-e", join(dir, "error.log"), "-g", "daemon off;"];
    }
    case "go":
      return ["--listen", `127.0.0.1:${port}`, "--listen-fds", goFixture("keepalive"), "boundary"];
    case "go-shutdown":
      return ["--listen", `127.0.0.1:${port}`, "--listen-fds", goFixture("keepalive"), "shutdown"];
  }
}

/** Waits until 127.0.0.1:`port` answers "ok PID"; throws with `g`'s output if it does not. */
async function answers(port: number, g: Group): Promise<void> {
  await waitFor(async () => {
    const r = await request(port, "/", 1000);
    return r.ok && /^ok \d+/.test(r.body);
  }, `the server on port ${port} to answer; it said:\n${g.output()}`, 30_000);
}

/** Starts `kind` under huptime (`huptimeArgs`: more options, e.g. --drain-timeout). */
export async function startKeepAliveServer(kind: KeepAliveKind, huptimeArgs: string[] = []): Promise<KeepAliveServer> {
  const dir = mkdtempSync(join(tmpdir(), `huptime-keepalive-${kind}-`));
  const appPort = await freePort();
  const group = serve([...huptimeArgs, ...program(kind === "nginx-front" ? "node" : kind, appPort, dir)]);
  const groups = [group];
  const stop = async () => {
    // --listen-fds starts each generation in a process group of its own.
    for (const pid of childPids(group.pid)) killGroup(pid);
    for (const g of groups) g.killGroup();
    await Promise.all(groups.map((g) => g.exited));
  };
  try {
    await answers(appPort, group);
    if (kind !== "nginx-front") return { kind, port: appPort, group, stop };
    const port = await freePort();
    const conf = writeNginxConf(dir, port, "", {
      daemon: false,
      connections: 1024,
      http: `  upstream app { server 127.0.0.1:${appPort}; keepalive 32; }`,
      location: 'proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection "";',
    });
    const front = spawnGroup(["nginx", "-c", conf, "-p", dir, "-e", join(dir, "error.log"), "-g", "daemon off;"]);
    groups.push(front);
    await answers(port, front);
    return { kind, port, group, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}
