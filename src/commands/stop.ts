/**
 * `huptime --stop <command...>`: SIGTERM to every running instance, SIGKILL to what is left after
 * the timeout, and return once all of them (workers included) are gone.
 */
import { Command, Option } from "clipanion";
import * as t from "typanion";
import { HuptimeError } from "../errors";
import { findAll, findMasters, isRunning } from "../instances";
import { CONTROL_CATEGORY, HuptimeCommand } from "./base";

/** `huptime --stop [--timeout S] <command> [args...]`. */
export class StopCommand extends HuptimeCommand {
  static paths = [Command.Default];

  static usage = Command.Usage({
    category: CONTROL_CATEGORY,
    description: "stop the running instances of a command",
    examples: [["Stop every running copy; SIGKILL what is left after 30 s", "$0 --stop --timeout=30 /usr/bin/myservice"]],
  });

  stop = Option.Boolean("--stop", { required: true, description: "stop the running instances of the command (SIGTERM, then SIGKILL)" });
  timeout = Option.String("--timeout", "10", { validator: t.cascade(t.isNumber(), [t.isAtLeast(0)]), description: "with --stop: seconds to wait before SIGKILL (default 10)" });
  command = Option.Proxy({ required: 1 });

  protected async perform(): Promise<number> {
    return await stopCommand(this.command, this.timeout, this.context.stdout);
  }
}

/** Stops the instances of `command`; `timeoutS` seconds before SIGKILL. */
async function stopCommand(command: string[], timeoutS: number, out: NodeJS.WritableStream): Promise<number> {
  const masters = findMasters(command);
  if (masters.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  const all = new Set(findAll(command).map((p) => p.pid));
  for (const m of masters) {
    try {
      process.kill(m.supervisor ?? m.pid, "SIGTERM"); // a static program's supervisor stops it
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
