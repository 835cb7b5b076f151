/**
 * huptime's own log lines from the CLI, in the shim's format: `huptime[PID] gen=N: message` on
 * stderr, one line each. gen=0 marks huptime itself (the CLI, a --multi or --listen-fds
 * supervisor); the shim's lines carry the generation of the process that writes them. Errors and
 * restarts are always logged; `debug` lines only with --debug.
 */

let debugging = false;

/** Turns debug lines on (--debug). */
export function setDebug(on: boolean): void {
  debugging = on;
}

/** Always printed: restarts, rollbacks, errors. */
export function info(message: string): void {
  process.stderr.write(`huptime[${process.pid}] gen=0: ${message}\n`);
}

/** Printed only with --debug. */
export function debug(message: string): void {
  if (debugging) info(message);
}
