/**
 * `huptime [options] [--] <command> [args...]`: run a program so that SIGHUP restarts it with
 * zero downtime. (The running instances are acted on by restart.ts, stop.ts and status.ts.)
 */
import { Command, Option, UsageError } from "clipanion";
import * as t from "typanion";
import { programEnv } from "../environment";
import { EXIT_NOT_EXECUTABLE, HuptimeError } from "../errors";
import { DEFAULT_DRAIN_IDLE_MS, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_READY_TIMEOUT_MS, INIT_VAR, RESTART_MODES } from "../generated/protocol";
import { debug } from "../log";
import { native } from "../native";
import { assertPreloadReaches, refuseStatic } from "../reach";
import { resolveCommand } from "../resolve";
import { shimPath } from "../shim";
import { HuptimeCommand } from "./base";
import { multiCommand } from "./multi";
import { listenFdsCommand } from "./listen-fds";
import { seccompCommand } from "./seccomp";
import { parseStopSignal } from "../stop-signal";
import { parseListens } from "../listen";

const positiveInt = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(1)]);
const seconds = t.cascade(t.isNumber(), [t.isAtLeast(0)]);
/** A time that must pass before something is given up on: 0 would roll back every restart. */
const positiveSeconds = t.cascade(t.isNumber(), [t.isAtLeast(0.001)]);

/** The main command: options, then the program's command line. */
export class RunCommand extends HuptimeCommand {
  static paths = [Command.Default];

  static usage = Command.Usage({
    category: "Running a program",
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
      closes its idle persistent connections (no data moved for --drain-idle) with a FIN, makes
      the next HTTP/1.x response on each busy one say \`Connection: close\`, and closes what is
      still open after --drain-timeout at a request boundary (a reset only as the last resort).

      As PID 1 of a PID namespace (a container's entrypoint), or with --init, huptime does not
      become the program: it starts it as its child and stays its init. It reaps orphans, passes
      SIGHUP on as a restart and other signals to the program, stops on SIGTERM, SIGINT or
      SIGQUIT (a program that leaves SIGTERM at its default action is drained; SIGKILL after
      --timeout), and exits with the program's status.

      A statically linked program (a Go server built without cgo, say), which LD_PRELOAD cannot
      reach, is run under seccomp user notification instead (Linux 5.9 or later, fork mode only):
      huptime stays its parent, hands its listening sockets to each new generation's bind(), and
      tells an old generation to stop with --stop-signal (SIGTERM by default).

      Options end at the first word that is not an option: the program's own flags are never read
      by huptime. Use \`--\` if the program's name starts with a dash.
    `,
    examples: [
      ["Serve a directory; restart it with kill -HUP", "$0 --exec python3 -m http.server &"],
      ["Fork mode (default): the new copy starts beside the old one", "$0 /usr/bin/myservice &"],
      ["Remove a pidfile before each new copy starts", "$0 --unlink /var/run/myservice.pid /usr/bin/myservice &"],
      ["Give a slow starter 5 minutes; cut connections still open after 10 s", "$0 --ready-timeout=300 --drain-timeout=10 /usr/bin/myservice &"],
      ["Four instances sharing the port", "$0 --multi=4 /usr/bin/myservice &"],
      ["Start the program again whenever it exits", "$0 --revive nc -l 9000 < message.txt &"],
      ["A container's entrypoint (PID 1: stays the init; kill -HUP 1 restarts)", "$0 -- node server.js"],
    ],
  });

  fork = Option.Boolean("--fork", false, { description: "restart by starting a new process beside the old one (default)" });
  exec = Option.Boolean("--exec", false, { description: "restart in place: drain, then exec the new code (same pid)" });
  multi = Option.String("--multi", { validator: positiveInt, description: "run N instances sharing the listening sockets (SO_REUSEPORT)" });
  revive = Option.Boolean("--revive", false, { description: "start the program again when it exits, keeping its sockets" });
  wait = Option.Boolean("--wait", false, { description: "before a generation ends, also wait for its child processes" });
  unlink = Option.String("--unlink", { description: "remove FILE (a pidfile) before each new generation starts" });
  readyTimeout = Option.String("--ready-timeout", { validator: positiveSeconds, description: `seconds a new generation has to become ready before it is killed and rolled back; in fork mode also how long a SIGHUP waits for a previous generation still draining before the restart is refused (default ${DEFAULT_READY_TIMEOUT_MS / 1000})` });
  drainTimeout = Option.String("--drain-timeout", { validator: seconds, description: `seconds an old generation may take to finish its connections before it cuts them, each between two requests, the busy ones reset min(S, 1) s later (default ${DEFAULT_DRAIN_TIMEOUT_MS / 1000}; 0: no limit)` });
  drainIdle = Option.String("--drain-idle", { validator: seconds, description: `seconds a connection of an old generation must have moved no data to count as idle; idle connections are closed (FIN) while it drains (default ${DEFAULT_DRAIN_IDLE_MS / 1000})` });
  notify = Option.Boolean("--notify", false, { description: "tell systemd about readiness, restarts and stops (sd_notify; automatic when NOTIFY_SOCKET is set)" });
  listen = Option.Array("--listen", { description: "with --listen-fds: a socket huptime binds, [NAME=]HOST:PORT, [IPV6]:PORT, PORT or /unix/path (repeatable)" });
  listenFds = Option.Boolean("--listen-fds", false, { description: "hand the --listen sockets to the program by socket activation (LISTEN_FDS), for programs the preload cannot reach" });
  stopSignal = Option.String("--stop-signal", { description: "for a static program (run under seccomp): the signal that tells an old generation to stop accepting and finish (default TERM)" });
  readyDelay = Option.String("--ready-delay", { validator: seconds, description: "with --listen-fds: a program that sends no READY=1 counts as ready after this many seconds" });
  init = Option.Boolean("--init", false, { description: "stay the program's init (reap orphans, pass signals on) as when huptime is PID 1 of a container (automatic then)" });
  timeout = Option.String("--timeout", { validator: seconds, description: "as an init: seconds after SIGTERM/SIGINT/SIGQUIT before what is left gets SIGKILL (default: --drain-timeout + 5; 0: never)" });
  command = Option.Proxy({ required: 1 });

  protected async perform(): Promise<number> {
    this.refuseCombinations();
    const notifySocket = this.context.env.NOTIFY_SOCKET || undefined;
    if (this.notify && !notifySocket) {
      throw new HuptimeError("--notify: NOTIFY_SOCKET is not set (systemd sets it for Type=notify and Type=notify-reload services)");
    }
    const [cmd, ...args] = this.command;
    const file = resolveCommand(cmd);
    if (this.socketActivation()) {
      return await this.runListenFds(file, [cmd, ...args], notifySocket);
    }
    if (native().preloadObstacle(file)?.reason === "static") {
      return await this.runStatic(file, [cmd, ...args], notifySocket);
    }
    if (this.stopSignal !== undefined) throw new UsageError("--stop-signal is for static programs (run under seccomp); a preloaded program is stopped by huptime's shim");
    assertPreloadReaches(file);
    const shim = shimPath();
    const env = programEnv(this.context.env, shim, {
      mode: this.exec ? RESTART_MODES.exec : RESTART_MODES.fork,
      debug: this.debug,
      statusDir: this.context.statusDir(),
      multi: this.multi,
      revive: this.revive,
      wait: this.wait,
      unlink: this.unlink,
      readyTimeout: this.readyTimeout,
      drainTimeout: this.drainTimeout,
      drainIdle: this.drainIdle,
      notifySocket: this.multi === undefined ? notifySocket : undefined,
      rootPid: process.pid,
    });
    if (this.multi !== undefined) {
      return await multiCommand(this.multi, file, [cmd, ...args], env, this.context.statusDir(), notifySocket, this.asInit() ? this.stopTimeoutMs() : undefined);
    }
    if (this.asInit()) {
      // Set: this is the re-executed init, whose preload library should have taken over before
      // this runtime started; going on would execute it again and again.
      if (this.context.env[INIT_VAR] !== undefined) throw new HuptimeError(`can't become the init: the preload library did not start it (${INIT_VAR} is set)`);
      debug(`staying the init of ${file} (pid ${process.pid}), with ${shim} preloaded`);
      try {
        native().execInit(file, [cmd, ...args], env, this.stopTimeoutMs());
      } catch (e) {
        throw new HuptimeError((e as Error).message);
      }
      return 1; // execInit only returns by throwing
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

  /** Whether huptime stays the program's init: asked, or PID 1 of a PID namespace (a container). */
  private asInit(): boolean {
    return this.init || process.pid === 1;
  }

  /** How long a stop may take before SIGKILL, in ms (0: no limit). */
  private stopTimeoutMs(): number {
    if (this.timeout !== undefined) return Math.round(this.timeout * 1000);
    const drain = this.drainTimeout === undefined ? DEFAULT_DRAIN_TIMEOUT_MS : this.drainTimeout * 1000;
    return drain === 0 ? 0 : drain + 5000;
  }

  /** Whether the program is run by socket activation (--listen-fds and its options). */
  private socketActivation(): boolean {
    return this.listenFds || this.listen !== undefined || this.readyDelay !== undefined;
  }

  /**
   * The combinations of run options that Clipanion cannot refuse by itself (they belong to this
   * one form; the control forms' flags are refused by Clipanion, see refusals.ts).
   */
  private refuseCombinations(): void {
    if (this.fork && this.exec) throw new UsageError("--fork and --exec cannot be used together");
    if (this.unlink === "") throw new UsageError("--unlink needs a file name");
    if (this.socketActivation()) {
      if (!this.listenFds) throw new UsageError("--listen and --ready-delay need --listen-fds");
      if (!this.listen?.length) throw new UsageError("--listen-fds needs at least one --listen ADDRESS");
      const other = [this.exec && "--exec", this.multi !== undefined && "--multi", this.revive && "--revive", this.wait && "--wait", this.unlink !== undefined && "--unlink", this.drainIdle !== undefined && "--drain-idle"].filter(Boolean);
      if (other.length > 0) throw new UsageError(`${other.join(", ")} cannot be used with --listen-fds`);
    }
    if (this.timeout !== undefined && !this.asInit()) throw new UsageError("--timeout only goes with --stop or --init (or huptime as PID 1)");
    if (this.multi !== undefined) {
      if (this.revive) throw new UsageError("--revive cannot be used with --multi");
      if (this.context.env.LISTEN_FDS) throw new UsageError("--multi cannot be used with socket activation (LISTEN_FDS): let each instance bind with SO_REUSEPORT instead");
    }
  }

  /** A statically linked program: huptime stays the parent and hands sockets over by seccomp. */
  private async runStatic(file: string, argv: string[], notifySocket: string | undefined): Promise<number> {
    const why = native().seccompUnsupported();
    if (why) refuseStatic(file, why);
    if (this.exec) {
      throw new HuptimeError(`--exec cannot restart ${file}: it is statically linked, and a restart in place (same pid) needs huptime's code inside the program, which only LD_PRELOAD puts there; leave out --exec (fork mode: the new generation starts beside the old one)`);
    }
    const other = [this.multi !== undefined && "--multi", this.revive && "--revive", this.wait && "--wait", this.unlink !== undefined && "--unlink"].filter(Boolean);
    if (other.length > 0) throw new HuptimeError(`${other.join(", ")} cannot be used with ${file}: it is statically linked, and huptime runs static programs in fork mode only`);
    return await seccompCommand(file, argv, this.context.env, {
      readyTimeoutMs: this.readyTimeout === undefined ? DEFAULT_READY_TIMEOUT_MS : this.readyTimeout * 1000,
      drainTimeoutMs: this.drainTimeout === undefined ? DEFAULT_DRAIN_TIMEOUT_MS : this.drainTimeout * 1000,
      stopSignal: parseStopSignal(this.stopSignal ?? "TERM"),
      notifySocket,
      statusDir: this.context.statusDir(),
    });
  }

  /** `--listen ... --listen-fds`: huptime binds, stays the parent, hands the sockets over. */
  private async runListenFds(file: string, argv: string[], notifySocket: string | undefined): Promise<number> {
    let listens;
    try {
      listens = parseListens(this.listen ?? []);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    return await listenFdsCommand(file, argv, this.context.env, {
      listens,
      readyDelayMs: this.readyDelay === undefined ? undefined : this.readyDelay * 1000,
      readyTimeoutMs: this.readyTimeout === undefined ? DEFAULT_READY_TIMEOUT_MS : this.readyTimeout * 1000,
      drainTimeoutMs: this.drainTimeout === undefined ? DEFAULT_DRAIN_TIMEOUT_MS : this.drainTimeout * 1000,
      notifySocket,
      runDir: this.context.statusDir(),
    });
  }
}
