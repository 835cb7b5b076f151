/**
 * Readiness-gated handover: after SIGHUP the old generation keeps accepting until the new one
 * waits for connections on the sockets it took over, even when the new one takes its time between
 * listen() and its accept loop.
 */
import { expect, test } from "bun:test";
import { appSource, serveApp, waitForVersion } from "../helpers/app";
import { loadLoop } from "../helpers/net";
import { waitFor } from "../helpers/procs";

test("a new generation that sleeps 2 s between listen() and accept(): the old one serves meanwhile", async () => {
  const { app, port, s } = await serveApp("v1");
  try {
    app.write(appSource("v2", { beforeServe: "time.sleep(2)" }));
    const load = loadLoop(port, { concurrency: 4 });
    const t0 = Date.now();
    process.kill(s.pid, "SIGHUP");
    // During the new generation's 2 s nap every request is answered by the old code, at once.
    await Bun.sleep(1500);
    const during = { ...load.stats, bodies: new Map(load.stats.bodies) };
    expect(during.failed, during.errors.join(", ")).toBe(0);
    expect([...during.bodies.keys()].every((b) => b.startsWith("v1 "))).toBe(true);
    expect(during.ok).toBeGreaterThan(50);
    await waitForVersion(port, "v2");
    const stats = await load.stop();
    expect(stats.failed, stats.errors.join(", ")).toBe(0);
    // The old generation logs the handover once it has read the ready message, which the new
    // generation's helper thread sends: possibly just after the new code first answers.
    const ready = /generation 2 \(pid \d+\) is ready after (\d+) ms/;
    await waitFor(() => ready.test(s.output()), "the old generation to log the handover");
    const m = s.output().match(ready);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(2000);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000);
  } finally {
    s.killGroup();
  }
}, 30_000);
