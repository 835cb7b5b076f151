/** `huptime --status <command...>`: the pids of the running instances of a command. */
import { HuptimeError } from "../errors";
import { findMasters } from "../instances";

/** Prints one pid per line; no instance is an error (exit 1). */
export function statusCommand(command: string[], out: NodeJS.WritableStream): number {
  const masters = findMasters(command);
  if (masters.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  for (const m of masters) out.write(`${m.pid}\n`);
  return 0;
}
