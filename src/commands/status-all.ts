/**
 * `huptime --status` with no command: every managed process. A form of its own because a
 * Clipanion proxy (the command and its own flags, never parsed by huptime) must take at least
 * one word for huptime's options before it to be parsed.
 */
import { Command } from "clipanion";
import { CONTROL_CATEGORY } from "./base";
import { StatusForm } from "./status";

/** `huptime --status [--json|--table]`. */
export class StatusAllCommand extends StatusForm {
  static paths = [Command.Default];

  static usage = Command.Usage({
    category: CONTROL_CATEGORY,
    description: "show every process that runs under huptime",
    examples: [["Every process under huptime, as JSON", "$0 --status --json"]],
  });

  protected async perform(): Promise<number> {
    return this.show([]);
  }
}
