/** A small Python HTTP app whose code the tests rewrite between restarts ("new versions"). */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "./cli";
import type { Group } from "./spawn";
import { freePort, request } from "./net";
import { waitFor } from "./procs";

/** Source of a threading HTTP server answering `<version> <pid>` on 127.0.0.1:argv[1]. `prelude`
 * runs first (before the socket exists); `beforeServe` runs between listen() and the accept loop. */
export function appSource(version: string, opts: { prelude?: string; beforeServe?: string } = {}): string {
  return `
import http.server, os, sys, time
${opts.prelude ?? ""}
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if self.path.startswith("/sleep"):
            time.sleep(float(self.path.split("=")[1]))
        body = ("${version} %d\\n" % os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
srv.daemon_threads = True
${opts.beforeServe ?? ""}
srv.serve_forever()
`;
}

/** A directory with `app.py` at `version`; `write` replaces the code (the next start runs it). */
export function pythonApp(version: string): { dir: string; file: string; write(src: string): void } {
  const dir = mkdtempSync(join(tmpdir(), "huptime-app-"));
  const file = join(dir, "app.py");
  writeFileSync(file, appSource(version));
  return { dir, file, write: (src) => writeFileSync(file, src) };
}

/** Waits until 127.0.0.1:`port` answers with `version` (a body starting with it). */
export async function waitForVersion(port: number, version: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => {
    const r = await request(port, "/", 1000);
    return r.ok && r.body.startsWith(`${version} `);
  }, `${version} to answer`, timeoutMs);
}

/** Starts `huptime ...huptimeArgs python3 app.py PORT` on a free port; returns once it answers. */
export async function serveApp(
  version: string,
  huptimeArgs: string[] = [],
  env?: NodeJS.ProcessEnv,
): Promise<{ app: ReturnType<typeof pythonApp>; port: number; s: Group }> {
  const app = pythonApp(version);
  const port = await freePort();
  const s = serve([...huptimeArgs, "python3", app.file, String(port)], { cwd: app.dir, env });
  try {
    await waitForVersion(port, version);
  } catch (e) {
    s.killGroup();
    throw e;
  }
  return { app, port, s };
}
