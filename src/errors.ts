/**
 * Errors the CLI reports to the user: one line, no stack, a chosen exit code.
 * Anything else that escapes is a bug and is shown with its stack.
 */
export class HuptimeError extends Error {
  /** Process exit status to use. */
  readonly exitCode: number;

  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "HuptimeError";
    this.exitCode = exitCode;
  }
}

/** Exit status for a command that was not found (as in POSIX shells). */
export const EXIT_NOT_FOUND = 127;
/** Exit status for a command that was found but cannot be executed. */
export const EXIT_NOT_EXECUTABLE = 126;
/** Exit status for a usage error. */
export const EXIT_USAGE = 2;

/** The short code of a Node-style system error ("EACCES"), or its message. */
export function errnoOf(err: unknown): string {
  if (err && typeof err === "object" && "code" in err && typeof err.code === "string") return err.code;
  return err instanceof Error ? err.message : String(err);
}

/** Exit status for a bug: an exception that is neither a usage error nor a HuptimeError. */
export const EXIT_INTERNAL = 70;

/** The first non-blank line of an error message (Clipanion's run on with usage listings). */
function firstLine(s: string): string {
  return s.split("\n").find((l) => l.trim() !== "")?.trim() ?? s;
}

/** Prints a usage error the one way huptime does and returns its exit status. */
export function reportUsage(message: string, stderr: NodeJS.WritableStream): number {
  stderr.write(`huptime: ${message}\nTry 'huptime --help' for usage.\n`);
  return EXIT_USAGE;
}

/**
 * Reports a failure on `stderr` and returns the exit status: a usage error (the user's mistake,
 * Clipanion's or ours) is one line and a hint, exit 2; a HuptimeError its one line and its own
 * status; anything else is a bug, shown with its stack (exit 70).
 */
export function reportFailure(err: unknown, stderr: NodeJS.WritableStream): number {
  if (err instanceof HuptimeError) {
    stderr.write(`huptime: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof Error && (err.name === "UsageError" || err.name === "UnknownSyntaxError")) {
    return reportUsage(firstLine(err.message), stderr);
  }
  stderr.write(`huptime: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  return EXIT_INTERNAL;
}
