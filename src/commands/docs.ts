/**
 * `huptime --manpage` and `huptime --completion bash` (hidden): the man page and the bash
 * completion, generated from the CLI's own definitions (see manual.ts) so that they cannot drift
 * from it. scripts/build writes them to dist/huptime.1 and dist/huptime.bash.
 */
import { Command, Option, UsageError } from "clipanion";
import { bashCompletion, manPage } from "../manual";
import { HuptimeCommand } from "./base";

/** `huptime --manpage` (hidden): prints the man page. */
export class ManPageCommand extends HuptimeCommand {
  static paths = [Command.Default];

  manpage = Option.Boolean("--manpage", { required: true, hidden: true });

  protected async perform(): Promise<number> {
    this.context.stdout.write(manPage(this.cli.definitions()));
    return 0;
  }
}

/** `huptime --completion bash` (hidden): prints the bash completion script. */
export class CompletionCommand extends HuptimeCommand {
  static paths = [Command.Default];

  shell = Option.String("--completion", { required: true, hidden: true });

  protected async perform(): Promise<number> {
    if (this.shell !== "bash") throw new UsageError(`--completion: only bash is supported (got ${this.shell})`);
    this.context.stdout.write(bashCompletion(this.cli.definitions()));
    return 0;
  }
}
