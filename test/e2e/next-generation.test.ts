/**
 * The wait for a next generation takes its time limit from the running copy: the shim publishes
 * its --ready-timeout and --drain-timeout in its state file, where the CLI reads them.
 */
import { expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appSource, pythonApp, waitForVersion } from "../helpers/app";
import { serve } from "../helpers/cli";
import { freePort } from "../helpers/net";
import { waitFor } from "../helpers/procs";
import { readAllPublished, readPublished } from "../../src/statusfile";

test("a served program publishes its --ready-timeout and --drain-timeout (ms)", async () => {
  const cache = mkdtempSync(join(tmpdir(), "huptime-cache-"));
  const app = pythonApp("v1");
  const port = await freePort();
  const s = serve(["--ready-timeout=7.5", "--drain-timeout=3", "python3", app.file, String(port)], { env: { ...process.env, HUPTIME_CACHE_DIR: cache } });
  try {
    await waitForVersion(port, "v1");
    const dir = join(cache, "status");
    await waitFor(() => readPublished(dir, s.pid)?.state === "serving", "the state file to say serving");
    expect(readPublished(dir, s.pid)).toMatchObject({ readyTimeoutMs: 7500, drainTimeoutMs: 3000 });
    // The next generation publishes the same (it reads the same settings).
    app.write(appSource("v2"));
    process.kill(s.pid, "SIGHUP");
    await waitForVersion(port, "v2");
    await waitFor(() => readAllPublished(dir).some((p) => p.generation === 2 && p.state === "serving"), "generation 2 to say serving");
    expect(readAllPublished(dir).find((p) => p.generation === 2)).toMatchObject({ previous: s.pid, readyTimeoutMs: 7500, drainTimeoutMs: 3000 });
  } finally {
    s.killGroup();
  }
}, 30_000);
