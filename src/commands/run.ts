/** `huptime [options] [--] <command...>`: run a program so that SIGHUP restarts it without downtime. */
import { Command, Option, UsageError } from "clipanion";
import { programEnv } from "../environment";
import { native } from "../native";
import { resolveCommand } from "../resolve";
import { shimPath } from "../shim";

/** The default command: replaces huptime with the program (same pid), preloaded with the shim. */
export class RunCommand extends Command {
  static paths = [Command.Default];

  static usage = Command.Usage({
    description: "run a program so that SIGHUP restarts it with zero downtime",
    details: `
      huptime replaces itself with the program (same pid), with its shim preloaded. On SIGHUP the
      program's listening sockets are kept open and handed to a fresh copy of the program (new
      code and configuration from disk); no connection is refused or dropped.

      In fork mode (the default) the new copy starts beside the old one, which keeps serving until
      the new one is ready and then finishes its open connections and exits (the pid changes). In
      exec mode the program stops accepting (new connections wait in the kernel queue), finishes
      its open connections and then execs the new code in the same process (the pid stays).

      Options end at the first word that is not an option: the program's own flags are never read
      by huptime. Use \`--\` if the program's name starts with a dash.
    `,
    examples: [
      ["Serve a directory, restart it with kill -HUP", "$0 --exec python3 -m http.server &"],
      ["Fork mode (default): the new copy starts beside the old one", "$0 /usr/bin/myservice &"],
      ["Show what the shim does", "$0 --debug node server.js"],
    ],
  });

  fork = Option.Boolean("--fork", false, { description: "restart by starting a new process beside the old one (default)" });
  exec = Option.Boolean("--exec", false, { description: "restart in place: drain, then exec the new code (same pid)" });
  debug = Option.Boolean("--debug", false, { description: "log every step of the shim and the CLI to stderr" });
  command = Option.Proxy({ required: 1 });

  async execute(): Promise<number> {
    if (this.fork && this.exec) {
      throw new UsageError("--fork and --exec cannot be used together");
    }
    const [cmd, ...args] = this.command;
    const file = resolveCommand(cmd);
    const shim = shimPath();
    const env = programEnv(process.env, shim, { mode: this.exec ? "exec" : "fork", debug: this.debug });
    if (this.debug) {
      process.stderr.write(`huptime[${process.pid}] cli: exec ${file} with ${shim} preloaded\n`);
    }
    native().exec(file, [cmd, ...args], env);
    return 1; // exec only returns by throwing
  }
}
