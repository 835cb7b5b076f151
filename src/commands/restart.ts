/**
 * `huptime --restart <command...>`: SIGHUP to every running instance, then wait until each one's
 * next generation serves (success), or the restart was rolled back (failure, exit 1).
 */
import { HuptimeError } from "../errors";
import { findMasters, isRunning } from "../instances";
import { readAllPublished, readPublished } from "../statusfile";

/** Outcome of restarting one instance. */
interface Outcome {
  pid: number;
  ok: boolean;
  message: string;
}

async function restartOne(dir: string, pid: number, timeoutMs: number): Promise<Outcome> {
  const before = readPublished(dir, pid);
  process.kill(pid, "SIGHUP");
  if (!before) {
    return { pid, ok: true, message: `sent SIGHUP to ${pid} (it publishes no state, so huptime cannot wait for it)` };
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const next = readAllPublished(dir).find(
      (p) => p.generation === before.generation + 1 && p.state === "serving" && (p.pid === pid || p.previous === pid),
    );
    if (next) {
      const change = next.pid === pid ? `pid ${pid}` : `pid ${pid} -> ${next.pid}`;
      return { pid, ok: true, message: `restarted: ${change}, generation ${next.generation} serving` };
    }
    const now = readPublished(dir, pid);
    if (now && now.rollbacks > before.rollbacks) {
      return { pid, ok: false, message: `restart of ${pid} failed and was rolled back: ${now.lastError}` };
    }
    if (!now && !isRunning(pid)) {
      const orphan = readAllPublished(dir).find((p) => p.previous === pid);
      if (!orphan) return { pid, ok: false, message: `pid ${pid} exited during the restart` };
    }
    await Bun.sleep(10);
  }
  return { pid, ok: false, message: `restart of ${pid} did not complete within ${Math.round(timeoutMs / 1000)} s` };
}

/** Restarts every instance of `command`; exit 0 when all new generations serve, 1 otherwise. */
export async function restartCommand(command: string[], dir: string, timeoutMs: number, out: NodeJS.WritableStream): Promise<number> {
  const masters = findMasters(command);
  if (masters.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  const results = await Promise.all(masters.map((m) => restartOne(dir, m.pid, timeoutMs)));
  for (const r of results) (r.ok ? out : process.stderr).write(`huptime: ${r.message}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}
