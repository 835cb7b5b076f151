/** The environment the served program is started with: the user's, plus huptime's settings. */

/** Settings passed to the shim. */
export interface ShimSettings {
  /** Restart mode. */
  mode: "fork" | "exec";
  /** Log every decision. */
  debug: boolean;
  /** Where the program publishes its state. */
  statusDir?: string;
  /** Number of instances (pools). */
  multi?: number;
  /** Re-execute the program when it exits. */
  revive?: boolean;
  /** Wait for child processes before ending or exec'ing a generation. */
  wait?: boolean;
  /** File removed before each new generation starts (a pidfile). */
  unlink?: string;
  /** Seconds a new generation has to become ready (rollback after). */
  readyTimeout?: number;
  /** Seconds an old generation may drain before it cuts its connections (0: no limit). */
  drainTimeout?: number;
  /** systemd's notify socket, when the shim speaks sd_notify for the program. NOTIFY_SOCKET is
   * never passed to the program itself. */
  notifySocket?: string;
  /** Pid the program will have (huptime execs into it): only it is revived, not its children. */
  rootPid?: number;
}

/** Variables owned by huptime; inherited values are dropped so they never leak into a new run. */
const OWN = /^HUPTIME_(STATE|MODE|DEBUG|READY_TIMEOUT|DRAIN_TIMEOUT|STATUS_DIR|MULTI|REVIVE|REVIVE_STREAK|WAIT|UNLINK|ROOT_PID|SUPERVISOR_PID|NOTIFY_SOCKET)$/;

/**
 * Builds the program's environment as `KEY=value` strings: `base` without huptime's own
 * variables, the settings, and LD_PRELOAD with the shim first (existing entries kept after it).
 */
export function programEnv(base: NodeJS.ProcessEnv, shim: string, s: ShimSettings): string[] {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !OWN.test(k)) env[k] = v;
  }
  const preload = (env.LD_PRELOAD ?? "").split(/[: ]+/).filter((p) => p && p !== shim);
  env.LD_PRELOAD = [shim, ...preload].join(":");
  env.HUPTIME_MODE = s.mode;
  if (s.debug) env.HUPTIME_DEBUG = "1";
  if (s.statusDir) env.HUPTIME_STATUS_DIR = s.statusDir;
  if (s.multi !== undefined) env.HUPTIME_MULTI = String(s.multi);
  if (s.revive) env.HUPTIME_REVIVE = "1";
  if (s.wait) env.HUPTIME_WAIT = "1";
  if (s.unlink) env.HUPTIME_UNLINK = s.unlink;
  if (s.readyTimeout !== undefined) env.HUPTIME_READY_TIMEOUT = String(s.readyTimeout);
  if (s.drainTimeout !== undefined) env.HUPTIME_DRAIN_TIMEOUT = String(s.drainTimeout);
  // huptime is the one that talks to systemd: the program (and each generation of it) is not
  // the main process systemd knows, and would report readiness at the wrong moments.
  delete env.NOTIFY_SOCKET;
  if (s.notifySocket) env.HUPTIME_NOTIFY_SOCKET = s.notifySocket;
  if (s.rootPid !== undefined) env.HUPTIME_ROOT_PID = String(s.rootPid);
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
