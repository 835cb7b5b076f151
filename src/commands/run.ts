/**
 * `huptime [options] [--] <command...>`: run a program so that SIGHUP restarts it with zero
 * downtime; or, with --restart/--stop/--status, act on the instances already running.
 */
import { Command, Option, UsageError } from "clipanion";
import * as t from "typanion";
import { programEnv } from "../environment";
import { EXIT_NOT_EXECUTABLE, HuptimeError } from "../errors";
import { debug, setDebug } from "../log";
import { native } from "../native";
import { assertPreloadReaches } from "../reach";
import { resolveCommand } from "../resolve";
import { shimPath, statusDir } from "../shim";
import { restartCommand } from "./restart";
import { statusCommand, statusFormat } from "./status";
import { multiCommand } from "./multi";
import { listenFdsCommand } from "./listen-fds";
import { parseListens } from "../listen";
import { stopCommand } from "./stop";

const positiveInt = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(1)]);
const seconds = t.cascade(t.isNumber(), [t.isAtLeast(0)]);
/** A time that must pass before something is given up on: 0 would roll back every restart. */
const positiveSeconds = t.cascade(t.isNumber(), [t.isAtLeast(0.001)]);

/** The one entry command: options, then the program's command line. */
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

      A new copy counts as ready once it waits for connections on the sockets it took over. If
      it exits, crashes or is not ready within --ready-timeout, it is killed and the old copy goes
      on serving (a rollback, logged with its exit status and last stderr lines). An old copy
      still holding connections after --drain-timeout closes them and ends.

      Options end at the first word that is not an option: the program's own flags are never read
      by huptime. Use \`--\` if the program's name starts with a dash.
    `,
    examples: [
      ["Serve a directory; restart it with kill -HUP", "$0 --exec python3 -m http.server &"],
      ["Fork mode (default): the new copy starts beside the old one", "$0 /usr/bin/myservice &"],
      ["Restart every running copy and wait until the new code serves", "$0 --restart /usr/bin/myservice"],
      ["Remove a pidfile before each new copy starts", "$0 --unlink /var/run/myservice.pid /usr/bin/myservice &"],
      ["Give a slow starter 5 minutes; cut connections still open after 10 s", "$0 --ready-timeout=300 --drain-timeout=10 /usr/bin/myservice &"],
      ["Four instances sharing the port", "$0 --multi=4 /usr/bin/myservice &"],
      ["Start the program again whenever it exits", "$0 --revive nc -l 9000 < message.txt &"],
    ],
  });

  fork = Option.Boolean("--fork", false, { description: "restart by starting a new process beside the old one (default)" });
  exec = Option.Boolean("--exec", false, { description: "restart in place: drain, then exec the new code (same pid)" });
  multi = Option.String("--multi", { validator: positiveInt, description: "run N instances sharing the listening sockets (SO_REUSEPORT)" });
  revive = Option.Boolean("--revive", false, { description: "start the program again when it exits, keeping its sockets" });
  wait = Option.Boolean("--wait", false, { description: "before a generation ends, also wait for its child processes" });
  unlink = Option.String("--unlink", { description: "remove FILE (a pidfile) before each new generation starts" });
  readyTimeout = Option.String("--ready-timeout", { validator: positiveSeconds, description: "seconds a new generation has to become ready before it is killed and rolled back (default 60)" });
  drainTimeout = Option.String("--drain-timeout", { validator: seconds, description: "seconds an old generation may take to finish its connections before it cuts them (default 30; 0: no limit)" });
  notify = Option.Boolean("--notify", false, { description: "tell systemd about readiness, restarts and stops (sd_notify; automatic when NOTIFY_SOCKET is set)" });
  listen = Option.Array("--listen", { description: "with --listen-fds: a socket huptime binds, [NAME=]HOST:PORT, [IPV6]:PORT, PORT or /unix/path (repeatable)" });
  listenFds = Option.Boolean("--listen-fds", false, { description: "hand the --listen sockets to the program by socket activation (LISTEN_FDS), for programs the preload cannot reach" });
  readyDelay = Option.String("--ready-delay", { validator: seconds, description: "with --listen-fds: a program that sends no READY=1 counts as ready after this many seconds" });
  debug = Option.Boolean("--debug", false, { description: "log every step of the shim and the CLI to stderr" });
  restart = Option.Boolean("--restart", false, { description: "restart the running instances of the command; wait until they serve" });
  stop = Option.Boolean("--stop", false, { description: "stop the running instances of the command (SIGTERM, then SIGKILL)" });
  status = Option.Boolean("--status", false, { description: "print the pids of the running instances of the command" });
  timeout = Option.String("--timeout", "10", { validator: seconds, description: "seconds --stop waits before SIGKILL (default 10)" });
  json = Option.Boolean("--json", false, { description: "with --status: print JSON (the fields are listed in the README)" });
  table = Option.Boolean("--table", false, { description: "with --status: print a table even when not on a terminal" });
  command = Option.Proxy({ required: 1 });

  async execute(): Promise<number> {
    const actions = [this.restart && "--restart", this.stop && "--stop", this.status && "--status"].filter(Boolean);
    if (actions.length > 1) throw new UsageError(`${actions.join(" and ")} cannot be used together`);
    if (this.fork && this.exec) throw new UsageError("--fork and --exec cannot be used together");
    if ((this.json || this.table) && !this.status) throw new UsageError(`${this.json ? "--json" : "--table"} only goes with --status`);
    if (this.json && this.table) throw new UsageError("--json and --table cannot be used together");
    if (actions.length === 1) {
      const runOnly = this.runOptionsGiven();
      if (runOnly.length > 0) throw new UsageError(`${runOnly.join(", ")} cannot be used with ${actions[0]}`);
      if (this.status) return statusCommand(this.command, statusFormat(this.json, this.table), statusDir(), process.stdout);
      if (this.stop) return await stopCommand(this.command, this.timeout, this.context.stdout);
      return await restartCommand(this.command, statusDir(), this.context.stdout);
    }
    setDebug(this.debug);
    if (this.unlink === "") throw new UsageError("--unlink needs a file name");
    const notifySocket = process.env.NOTIFY_SOCKET || undefined;
    if (this.notify && !notifySocket) {
      throw new HuptimeError("--notify: NOTIFY_SOCKET is not set (systemd sets it for Type=notify and Type=notify-reload services)");
    }
    const [cmd, ...args] = this.command;
    const file = resolveCommand(cmd);
    if (this.listenFds || this.listen !== undefined || this.readyDelay !== undefined) {
      return await this.runListenFds(file, [cmd, ...args], notifySocket);
    }
    assertPreloadReaches(file);
    const shim = shimPath();
    const env = programEnv(process.env, shim, {
      mode: this.exec ? "exec" : "fork",
      debug: this.debug,
      statusDir: statusDir(),
      multi: this.multi,
      revive: this.revive,
      wait: this.wait,
      unlink: this.unlink,
      readyTimeout: this.readyTimeout,
      drainTimeout: this.drainTimeout,
      notifySocket: this.multi === undefined ? notifySocket : undefined,
      rootPid: process.pid,
    });
    if (this.multi !== undefined) {
      if (this.revive) throw new UsageError("--revive cannot be used with --multi");
      if (process.env.LISTEN_FDS) throw new UsageError("--multi cannot be used with socket activation (LISTEN_FDS): let each instance bind with SO_REUSEPORT instead");
      return await multiCommand(this.multi, file, [cmd, ...args], env, statusDir(), notifySocket);
    }
    debug(`exec ${file} with ${shim} preloaded`);
    try {
      native().exec(file, [cmd, ...args], env);
    } catch (e) {
      // Not a program the kernel can run (no #! line, a foreign binary): the exec's own reason.
      throw new HuptimeError((e as Error).message, EXIT_NOT_EXECUTABLE);
    }
    return 1; // exec only returns by throwing
  }

  /** The options given that only make sense when running a program. */
  private runOptionsGiven(): string[] {
    const given: [string, boolean][] = [
      ["--fork", this.fork],
      ["--exec", this.exec],
      ["--multi", this.multi !== undefined],
      ["--revive", this.revive],
      ["--wait", this.wait],
      ["--unlink", this.unlink !== undefined],
      ["--ready-timeout", this.readyTimeout !== undefined],
      ["--drain-timeout", this.drainTimeout !== undefined],
      ["--notify", this.notify],
      ["--listen", this.listen !== undefined],
      ["--listen-fds", this.listenFds],
      ["--ready-delay", this.readyDelay !== undefined],
    ];
    return given.filter(([, on]) => on).map(([name]) => name);
  }

  /** `--listen ... --listen-fds`: huptime binds, stays the parent, hands the sockets over. */
  private async runListenFds(file: string, argv: string[], notifySocket: string | undefined): Promise<number> {
    if (!this.listenFds) throw new UsageError("--listen and --ready-delay need --listen-fds");
    if (!this.listen?.length) throw new UsageError("--listen-fds needs at least one --listen ADDRESS");
    const other = [this.exec && "--exec", this.multi !== undefined && "--multi", this.revive && "--revive", this.wait && "--wait", this.unlink !== undefined && "--unlink"].filter(Boolean);
    if (other.length > 0) throw new UsageError(`${other.join(", ")} cannot be used with --listen-fds`);
    let listens;
    try {
      listens = parseListens(this.listen);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return await listenFdsCommand(file, argv, process.env, {
      listens,
      readyDelayMs: this.readyDelay === undefined ? undefined : this.readyDelay * 1000,
      readyTimeoutMs: (this.readyTimeout ?? 60) * 1000,
      drainTimeoutMs: (this.drainTimeout ?? 30) * 1000,
      notifySocket,
      runDir: statusDir(),
    });
  }
}
