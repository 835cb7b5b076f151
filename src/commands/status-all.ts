/**
 * `huptime --status` with no command: every managed process. A command of its own because the
 * main command needs a program (its proxy takes everything after the options).
 */
import { Command, Option, UsageError } from "clipanion";
import { statusDir } from "../shim";
import { statusCommand, statusFormat } from "./status";

/** `huptime --status [--json|--table]`. */
export class StatusAllCommand extends Command {
  static paths = [Command.Default];

  status = Option.Boolean("--status", { required: true });
  json = Option.Boolean("--json", false);
  table = Option.Boolean("--table", false);

  async execute(): Promise<number> {
    if (this.json && this.table) throw new UsageError("--json and --table cannot be used together");
    return statusCommand([], statusFormat(this.json, this.table), statusDir(), process.stdout);
  }
}
