/**
 * What every huptime command shares: the context cli.ts passes to Clipanion (the services a
 * command uses, instead of reaching for globals), the --debug option, and the one way a failure
 * becomes a message and an exit status.
 */
import { Command, Option, type BaseContext } from "clipanion";
import { reportFailure } from "../errors";
import { setDebug } from "../log";

/** The help's heading for the forms that act on running instances (--restart, --stop, --status). */
export const CONTROL_CATEGORY = "Acting on the running instances of a command";

/** The context of every huptime command. */
export interface HuptimeContext extends BaseContext {
  /** The process's own output streams: commands ask whether they are terminals, and how wide. */
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  /** The private directory where served programs publish their state (made on first use). */
  statusDir(): string;
}

/** A huptime command: its work is `perform`; what it throws is reported here. */
export abstract class HuptimeCommand extends Command<HuptimeContext> {
  debug = Option.Boolean("--debug", false, { description: "log every step of the shim and the CLI to stderr" });

  /** The command's work; returns the exit status. */
  protected abstract perform(): Promise<number>;

  /** Runs `perform` and turns what it throws into a message on stderr and an exit status. */
  async execute(): Promise<number> {
    setDebug(this.debug);
    try {
      return await this.perform();
    } catch (err) {
      return reportFailure(err, this.context.stderr);
    }
  }
}
