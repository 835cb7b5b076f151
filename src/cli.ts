/**
 * Entry point: registers the commands and maps failures to exit codes. Usage errors (the user's
 * mistake) print one line and exit 2; HuptimeErrors print one line with their own status; any
 * other exception is a bug and is shown with its stack.
 */
import { Builtins, Cli } from "clipanion";
import { RunCommand } from "./commands/run";
import { StatusAllCommand } from "./commands/status-all";
import { CompletionCommand, ManPageCommand } from "./commands/docs";
import { EXIT_USAGE, HuptimeError } from "./errors";
import { VERSION } from "./version";

function color(): boolean {
  return Boolean(process.stdout.isTTY) && !("NO_COLOR" in process.env);
}

/** Builds the CLI with every command registered. */
export function makeCli(): Cli {
  const cli = new Cli({
    binaryLabel: "huptime",
    binaryName: "huptime",
    binaryVersion: VERSION,
    enableColors: color(),
  });
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  cli.register(RunCommand);
  cli.register(StatusAllCommand);
  cli.register(ManPageCommand);
  cli.register(CompletionCommand);
  return cli;
}

function firstLine(s: string): string {
  const line = s.split("\n").find((l) => l.trim() !== "")?.trim() ?? s;
  // Clipanion's wording for a missing program.
  return line === "Not enough positional arguments." ? "no command given" : line;
}

/** Runs the CLI with `argv` (without the executable) and returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const cli = makeCli();
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    // The detailed help of the main command (`--status` alone has a command of its own, which
    // would otherwise turn the help into a list of commands).
    process.stdout.write(cli.usage(RunCommand, { detailed: true, colored: color() }));
    return 0;
  }
  let command;
  try {
    command = cli.process(argv);
  } catch (err) {
    let msg = firstLine(err instanceof Error ? err.message : String(err));
    // Nothing but options (or nothing at all): the program is missing.
    if (msg.startsWith("Command not found") && argv.every((a) => a.startsWith("-"))) msg = "no command given";
    process.stderr.write(`huptime: ${msg}\nTry 'huptime --help' for usage.\n`);
    return EXIT_USAGE;
  }
  try {
    command.context = { ...Cli.defaultContext, colorDepth: color() ? 8 : 1 } as typeof command.context;
    command.cli = cli;
    const code = await command.validateAndExecute();
    return typeof code === "number" ? code : 0;
  } catch (err) {
    if (err instanceof HuptimeError) {
      process.stderr.write(`huptime: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof Error && (err.name === "UsageError" || err.constructor?.name === "UsageError")) {
      process.stderr.write(`huptime: ${firstLine(err.message)}\nTry 'huptime --help' for usage.\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`huptime: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(70);
    },
  );
}
