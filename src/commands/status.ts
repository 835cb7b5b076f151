/**
 * `huptime --status [<command...>]`: every managed process of this user (root: of all users), or
 * those of one command: pid, parent, generation, mode, state, listening addresses, client
 * connections, uptime, command. A table on a terminal; otherwise the masters' pids one per line
 * (what scripts of the original huptime read), unless --table or --json asks for more.
 */
import { Command, Option, UsageError } from "clipanion";
import { HuptimeError } from "../errors";
import { findMasters } from "../instances";
import { inventory, STATUS_JSON_VERSION } from "../inventory";
import { formatTable } from "../status-table";
import { CONTROL_CATEGORY, HuptimeCommand } from "./base";

/** What both status forms share: the --status flag, the format options, the printing. */
export abstract class StatusForm extends HuptimeCommand {
  status = Option.Boolean("--status", { required: true, description: "print the pids of the running instances of the command (without a command: every process under huptime)" });
  json = Option.Boolean("--json", false, { description: "with --status: print JSON (the fields are listed in the README)" });
  table = Option.Boolean("--table", false, { description: "with --status: print a table even when not on a terminal" });

  /** Prints the status of `command`'s instances (every process under huptime if empty). */
  protected show(command: string[]): number {
    if (this.json && this.table) throw new UsageError("--json and --table cannot be used together");
    const out = this.context.stdout;
    const format = this.json ? "json" : this.table || out.isTTY ? "table" : "pids";
    return statusCommand(command, format, this.context.statusDir(), out);
  }
}

/** `huptime --status [--json|--table] <command> [args...]`. */
export class StatusCommand extends StatusForm {
  static paths = [Command.Default];

  static usage = Command.Usage({
    category: CONTROL_CATEGORY,
    description: "show the processes of a command that run under huptime",
    examples: [["The processes of one service, as a table", "$0 --status --table /usr/bin/myservice"]],
  });

  command = Option.Proxy({ required: 1 });

  protected async perform(): Promise<number> {
    return this.show(this.command);
  }
}

/** How to print the status. */
type StatusFormat = "table" | "json" | "pids";

/** Prints the status; a command with no running instance is an error (exit 1). */
function statusCommand(command: string[], format: StatusFormat, dir: string, out: NodeJS.WriteStream): number {
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
