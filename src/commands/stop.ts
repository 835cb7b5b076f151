/**
 * `huptime --stop <command...>`: SIGTERM to every running instance, SIGKILL to what is left after
 * the timeout, and return once all of them (workers included) are gone.
 */
import { HuptimeError } from "../errors";
import { findAll, findMasters, isRunning } from "../instances";

/** Stops the instances of `command`; `timeoutS` seconds before SIGKILL. */
export async function stopCommand(command: string[], timeoutS: number, out: NodeJS.WritableStream): Promise<number> {
  const masters = findMasters(command);
  if (masters.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  const all = new Set(findAll(command).map((p) => p.pid));
  for (const m of masters) {
    try {
      process.kill(m.pid, "SIGTERM");
    } catch {}
  }
  const deadline = Date.now() + timeoutS * 1000;
  const left = () => [...all].filter(isRunning);
  while (left().length > 0 && Date.now() < deadline) await Bun.sleep(20);
  const stubborn = left();
  for (const pid of stubborn) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  while (left().length > 0) await Bun.sleep(20);
  const how = stubborn.length > 0 ? ` (killed ${stubborn.join(", ")} after ${timeoutS} s)` : "";
  out.write(`stopped ${masters.map((m) => m.pid).join(", ")}${how}\n`);
  return 0;
}
