/**
 * `huptime --status [<command...>]`: every managed process of this user (root: of all users), or
 * those of one command: pid, parent, generation, mode, state, listening addresses, client
 * connections, uptime, command. A table on a terminal; otherwise the masters' pids one per line
 * (what scripts of the original huptime read), unless --table or --json asks for more.
 */
import { HuptimeError } from "../errors";
import { findMasters } from "../instances";
import { inventory, STATUS_JSON_VERSION } from "../inventory";
import { formatTable } from "../status-table";

/** How to print the status. */
export type StatusFormat = "table" | "json" | "pids";

/** The format asked for: --json, --table, else a table on a terminal and pids otherwise. */
export function statusFormat(json: boolean, table: boolean): StatusFormat {
  return json ? "json" : table || process.stdout.isTTY ? "table" : "pids";
}

/** Prints the status; a command with no running instance is an error (exit 1). */
export function statusCommand(command: string[], format: StatusFormat, dir: string, out: NodeJS.WritableStream & { columns?: number }): number {
  const rows = inventory(command, dir);
  if (command.length > 0 && rows.length === 0) {
    throw new HuptimeError(`no running instance of '${command.join(" ")}' under huptime`);
  }
  if (format === "json") {
    out.write(`${JSON.stringify({ version: STATUS_JSON_VERSION, processes: rows }, null, 2)}\n`);
  } else if (format === "table") {
    out.write(rows.length ? formatTable(rows, out.columns ?? Infinity) : "no process runs under huptime\n");
  } else {
    // Masters: not a process forked by another managed process, not huptime itself.
    const pids = command.length ? findMasters(command).map((m) => m.pid) : rows.filter((r) => r.state !== "worker" && r.mode !== "supervisor").map((r) => r.pid);
    for (const pid of pids) out.write(`${pid}\n`);
  }
  return 0;
}
