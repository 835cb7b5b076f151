/**
 * Entry point: registers the commands and maps failures to exit codes. Usage errors (the user's
 * mistake) print one line and exit 2; HuptimeErrors print one line with their own status; any
 * other exception is a bug and is shown with its stack.
 */
import { Builtins, Cli } from "clipanion";
import { RunCommand } from "./commands/run";
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
  let command;
  try {
    command = cli.process(argv);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    process.stderr.write(`huptime: ${firstLine(msg)}\nTry 'huptime --help' for usage.\n`);
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
