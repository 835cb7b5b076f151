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
