/** The server styles the restart tests run, each a fixture in test/fixtures/servers. */
import { join } from "node:path";
import { ROOT } from "./cli";
import { compileC } from "./gcc";

/** Directory of the fixture servers. */
export const SERVERS = join(ROOT, "test", "fixtures", "servers");

/** A server style: how to start it and how many processes it keeps when idle. */
export interface Style {
  name: string;
  argv(port: number, cookie: string): string[];
  /** Processes of one generation when idle (master + workers). */
  procs: number;
}

/** Compiles the C fixture once per test run. */
export function compiledCServer(): string {
  return compileC(join(SERVERS, "c_server.c"));
}

const py = (file: string, procs = 1): Style => ({
  name: file.replace(/\.py$/, ""),
  argv: (port, cookie) => ["python3", join(SERVERS, file), String(port), cookie],
  procs,
});

/** Every style of the matrix. */
export const STYLES: Style[] = [
  py("blocking.py"),
  py("select_loop.py"),
  py("poll_loop.py"),
  py("thread_per_conn.py"),
  py("fork_per_conn.py"),
  py("thread_pool.py"),
  py("prefork.py", 4),
  { name: "node_http", argv: (port, cookie) => ["node", join(SERVERS, "node_http.js"), String(port), cookie], procs: 1 },
  { name: "c_server", argv: (port, cookie) => [compiledCServer(), String(port), cookie], procs: 1 },
];
