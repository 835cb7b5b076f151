/** Finding the program to run on PATH, with the shell's exit codes for failures. */
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, HuptimeError } from "./errors";

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves `command` like execvp(3): a name with a slash is used as is, otherwise the first
 * executable file of that name on PATH. Throws a HuptimeError with status 127 (not found) or
 * 126 (found, not executable) naming the command.
 */
export function resolveCommand(command: string, pathVar = process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin"): string {
  if (command === "") throw new HuptimeError("the command is empty", EXIT_NOT_FOUND);
  if (command.includes("/")) {
    if (!isFile(command)) {
      throw new HuptimeError(`${command}: no such file`, EXIT_NOT_FOUND);
    }
    if (!isExecutable(command)) {
      throw new HuptimeError(`${command}: permission denied (the file is not executable)`, EXIT_NOT_EXECUTABLE);
    }
    return command;
  }
  let denied: string | undefined;
  for (const dir of pathVar.split(delimiter)) {
    const candidate = join(dir === "" ? "." : dir, command);
    if (!isFile(candidate)) continue;
    if (isExecutable(candidate)) return candidate;
    denied ??= candidate;
  }
  if (denied) {
    throw new HuptimeError(`${command}: permission denied (${denied} is not executable)`, EXIT_NOT_EXECUTABLE);
  }
  throw new HuptimeError(`${command}: command not found on PATH`, EXIT_NOT_FOUND);
}
