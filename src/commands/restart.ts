/**
 * `huptime --restart <command...>`: SIGHUP to every running instance, then wait until each one's
 * next generation serves (success), or the restart was rolled back or refused (failure, exit 1).
 * Shows the steps as they happen (see Progress) and ends with one line per instance: the
 * restart's receipt (see statusfile.ts) as the generation that ran it wrote it, once the old
 * generation has drained.
 */
import { Command, Option } from "clipanion";
import { HuptimeError } from "../errors";
import { RECEIPT_OUTCOMES, STATUS_MODES, STATUS_STATES } from "../generated/protocol";
import { findMasters, isRunning, type Instance } from "../instances";
import { native } from "../native";
import { awaitNextGeneration, restartLimitMs } from "../next-generation";
import { Progress } from "../progress";
import { readPublished, readReceipt, type LastRestart } from "../statusfile";
import { CONTROL_CATEGORY, HuptimeCommand } from "./base";

/** `huptime --restart [options] <command> [args...]`. */
export class RestartCommand extends HuptimeCommand {
  static paths = [Command.Default];

  static usage = Command.Usage({
    category: CONTROL_CATEGORY,
    description: "restart the running instances of a command and wait until the new code serves",
    examples: [["Restart every running copy and wait until the new code serves", "$0 --restart /usr/bin/myservice"]],
  });

  restart = Option.Boolean("--restart", { required: true, description: "restart the running instances of the command; wait until they serve" });
  command = Option.Proxy({ required: 1 });

  protected async perform(): Promise<number> {
    return await restartCommand(this.command, this.context.statusDir(), this.context.stdout, this.context.stderr);
  }
}

/** Outcome of restarting one instance. */
interface Outcome {
  pid: number;
  ok: boolean;
  message: string;
}

async function restartOne(dir: string, m: Instance, live: boolean | undefined, err: NodeJS.WriteStream): Promise<Outcome> {
  const pid = m.pid;
  const before = readPublished(dir, pid);
  const progress = new Progress(`huptime: ${pid}`, err, live);
  const t0 = Date.now();
  const gen = (before?.generation ?? 0) + 1;
  // The receipt of this restart on `who` (written after t0, for the generation it started).
  const receiptOn = (who: number) => {
    const r = readReceipt(dir, who);
    return r && r.generation === gen && r.at >= t0 ? r : undefined;
  };
  // What is left of the restart's limit.
  const left = () => (before ? Math.max(0, restartLimitMs(before) - (Date.now() - t0)) : 0);
  process.kill(m.supervisor ?? pid, "SIGHUP"); // a static program's supervisor restarts it
  if (!before) {
    return { pid, ok: true, message: `sent SIGHUP to ${pid} (it publishes no state, so huptime cannot wait for it)` };
  }
  progress.step("SIGHUP sent");
  let announced = false;
  let drainSeen = false;
  const draining = (who: string) => {
    if (drainSeen) return;
    drainSeen = true;
    const conns = native().processSockets(pid)?.connections ?? 0;
    progress.step(`${who} draining ${conns} connection${conns === 1 ? "" : "s"}`);
  };
  try {
    const result = await awaitNextGeneration(dir, pid, before, {
      watch(now, next) {
        if (before.mode === STATUS_MODES.exec && now?.state === STATUS_STATES.draining) draining(`generation ${before.generation}`); // drains first
        if (next && !announced) {
          announced = true;
          progress.step(`generation ${gen} is pid ${next.pid}, starting`);
        }
      },
    });
    switch (result.outcome) {
      case "serving": {
        const next = result.next;
        progress.step(`ready in ${Date.now() - t0} ms`);
        let receipt: LastRestart | undefined;
        if (next.pid !== pid) {
          // Fork mode: the old generation now stops accepting and finishes its connections, then
          // writes the restart's receipt on the new one and exits. Wait for that (so that a request
          // sent once huptime returns reaches the new code), within what is left of the limit.
          await waitUntil(() => readPublished(dir, pid)?.state === STATUS_STATES.draining || !isRunning(pid), left());
          if (isRunning(pid)) draining(`old generation ${before.generation}`);
          await waitUntil(() => (receipt = receiptOn(next.pid)) !== undefined || !isRunning(pid), left());
          receipt ??= receiptOn(next.pid);
          progress.step(`old generation ${before.generation} done`);
        } else {
          // Exec mode: the new image writes the receipt its old image carried, once it serves.
          await waitUntil(() => (receipt = receiptOn(pid)) !== undefined || !isRunning(pid), left());
        }
        if (receipt) return { pid, ok: true, message: `restarted: ${receipt.summary}` };
        const change = next.pid === pid ? `pid ${pid}` : `pid ${pid} -> ${next.pid}`;
        return { pid, ok: true, message: `restarted: ${change}, generation ${gen} serving (ready in ${Date.now() - t0} ms)` };
      }
      case "rolled back": {
        // The receipt follows the rollback's state file (same thread, nothing slow in between).
        let receipt: LastRestart | undefined;
        await waitUntil(() => (receipt = receiptOn(pid)) !== undefined || !isRunning(pid), left());
        receipt ??= receiptOn(pid);
        if (receipt?.outcome === RECEIPT_OUTCOMES.refused) {
          progress.step("refused");
          return { pid, ok: false, message: `restart of ${pid} was refused: ${receipt.reason ?? result.error}` };
        }
        progress.step("rolled back");
        return { pid, ok: false, message: `restart of ${pid} failed and was rolled back: ${receipt?.reason ?? result.error}` };
      }
      case "exited":
      case "abandoned":
        return { pid, ok: false, message: `pid ${pid} exited during the restart` };
      case "timed out":
        return { pid, ok: false, message: `restart of ${pid} did not complete within ${Math.round(result.limitMs / 1000)} s` };
    }
  } finally {
    progress.end();
  }
}

async function waitUntil(pred: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!pred() && Date.now() < end) await Bun.sleep(5);
}

/**
 * The instances of `masters` to restart: all but an old generation that has handed over and still
 * drains while its successor is one of them. The successor is the one to restart (it holds its
 * restart back until the old one has ended, or refuses it); the old one has no next generation
 * to wait for, and a SIGHUP would only hurry its drain, as the successor's does.
 */
function toRestart(masters: Instance[], dir: string): Instance[] {
  const published = masters.map((m) => readPublished(dir, m.pid));
  const replaced = new Set(published.flatMap((p) => (p && p.previous !== p.pid ? [p.previous] : [])));
  return masters.filter((m, i) => !(replaced.has(m.pid) && published[i]?.state === STATUS_STATES.draining));
}

/** Restarts every instance of `command`; exit 0 when all new generations serve, 1 otherwise. */
async function restartCommand(command: string[], dir: string, out: NodeJS.WritableStream, err: NodeJS.WriteStream): Promise<number> {
  const masters = toRestart(findMasters(command), dir);
  if (masters.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  // One updating line per instance cannot share a terminal: several instances get plain lines.
  const live = masters.length === 1 ? undefined : false;
  const results = await Promise.all(masters.map((m) => restartOne(dir, m, live, err)));
  for (const r of results) (r.ok ? out : err).write(`huptime: ${r.message}\n`);
  return results.every((r) => r.ok) ? 0 : 1;
}
