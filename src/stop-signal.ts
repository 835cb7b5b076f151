/** Reading `--stop-signal`, the signal that tells a static program's old generation to stop. */
import { UsageError } from "clipanion";
import { constants } from "node:os";

/**
 * The signal named by `--stop-signal` (TERM, SIGTERM or a number), for the user's mistakes a
 * UsageError.
 */
export function parseStopSignal(text: string): NodeJS.Signals {
  const byNumber = Object.entries(constants.signals).find(([, n]) => String(n) === text)?.[0];
  const name = byNumber ?? (text.toUpperCase().startsWith("SIG") ? text.toUpperCase() : `SIG${text.toUpperCase()}`);
  if (!(name in constants.signals) || name === "SIGKILL" || name === "SIGSTOP") {
    throw new UsageError(`--stop-signal: ${text} is not a signal a program can handle (e.g. TERM, INT, QUIT, USR1)`);
  }
  return name as NodeJS.Signals;
}
