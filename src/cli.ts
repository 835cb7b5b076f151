/**
 * Entry point: registers the commands, each a form of `huptime` told apart by Clipanion (the
 * program to run, or --restart, --stop, --status), and runs the one the arguments select with a
 * HuptimeContext. Usage errors (the user's mistake) print one line and exit 2; HuptimeErrors
 * print one line with their own status; any other exception is a bug and is shown with its stack.
 */
import { Builtins, Cli } from "clipanion";
import { type HuptimeContext } from "./commands/base";
import { CompletionCommand, ManPageCommand } from "./commands/docs";
import { RestartCommand } from "./commands/restart";
import { RunCommand } from "./commands/run";
import { StatusCommand } from "./commands/status";
import { StatusAllCommand } from "./commands/status-all";
import { StopCommand } from "./commands/stop";
import { forms, ownOptions } from "./definitions";
import { reportFailure, reportUsage } from "./errors";
import { helpText } from "./manual";
import { refusal } from "./refusals";
import { statusDir } from "./shim";
import { VERSION } from "./version";

function color(): boolean {
  return Boolean(process.stdout.isTTY) && !("NO_COLOR" in process.env);
}

/** Builds the CLI with every command registered (the forms in the order the manual lists them). */
export function makeCli(): Cli<HuptimeContext> {
  const cli = new Cli<HuptimeContext>({
    binaryLabel: "huptime",
    binaryName: "huptime",
    binaryVersion: VERSION,
    enableColors: color(),
  });
  cli.register(Builtins.VersionCommand);
  cli.register(RunCommand);
  cli.register(RestartCommand);
  cli.register(StopCommand);
  cli.register(StatusCommand);
  cli.register(StatusAllCommand);
  cli.register(ManPageCommand);
  cli.register(CompletionCommand);
  return cli;
}

/** Runs the CLI with `argv` (without the executable) and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const cli = makeCli();
  const context: HuptimeContext = {
    ...Cli.defaultContext,
    stdout: process.stdout,
    stderr: process.stderr,
    colorDepth: color() ? 8 : 1,
    statusDir: () => statusDir(),
  };
  // One manual whatever form it is asked from (Clipanion would show the usage of one form).
  const own = ownOptions(argv, forms(cli.definitions())).given;
  if (own.includes("--help") || own.includes("-h")) {
    context.stdout.write(helpText(cli.definitions(), cli.format()));
    return 0;
  }
  let command;
  try {
    command = cli.process(argv, context);
  } catch (err) {
    // No form takes these arguments (UnknownSyntaxError, "Command not found; did you mean one
    // of: <every form>"): say in one line which options do not go together, are unknown, or that
    // the program is missing; a value a validator refused keeps Clipanion's line. Two forms taking
    // the same arguments (AmbiguousSyntaxError) would be a bug in the forms: shown as one.
    const why = refusal(argv, cli.definitions());
    return why === undefined ? reportFailure(err, context.stderr) : reportUsage(why, context.stderr);
  }
  return await cli.run(command, context);
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => process.exit(reportFailure(err, process.stderr)),
  );
}
