/** The environment the served program is started with: the user's, plus huptime's settings. */
import { SHIM_VARS, type RestartMode } from "./generated/protocol";

/** Settings passed to the shim. */
export interface ShimSettings {
  /** Restart mode. */
  mode: RestartMode;
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
  /** Seconds a draining generation's connection must have moved no data to be closed as idle. */
  drainIdle?: number;
  /** systemd's notify socket, when the shim speaks sd_notify for the program. NOTIFY_SOCKET is
   * never passed to the program itself. */
  notifySocket?: string;
  /** Pid the program will have (huptime execs into it): only it is revived, not its children. */
  rootPid?: number;
}

/** Variables the shim reads; inherited values are dropped so they never leak into a new run. */
const OWN: ReadonlySet<string> = new Set(Object.values(SHIM_VARS));

/**
 * Builds the program's environment as `KEY=value` strings: `base` without huptime's own
 * variables, the settings, and LD_PRELOAD with the shim first (existing entries kept after it).
 */
export function programEnv(base: NodeJS.ProcessEnv, shim: string, s: ShimSettings): string[] {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) {
    if (v !== undefined && !OWN.has(k)) env[k] = v;
  }
  const preload = (env.LD_PRELOAD ?? "").split(/[: ]+/).filter((p) => p && p !== shim);
  env.LD_PRELOAD = [shim, ...preload].join(":");
  env[SHIM_VARS.mode] = s.mode;
  if (s.debug) env[SHIM_VARS.debug] = "1";
  if (s.statusDir) env[SHIM_VARS.statusDir] = s.statusDir;
  if (s.multi !== undefined) env[SHIM_VARS.multi] = String(s.multi);
  if (s.revive) env[SHIM_VARS.revive] = "1";
  if (s.wait) env[SHIM_VARS.wait] = "1";
  if (s.unlink) env[SHIM_VARS.unlink] = s.unlink;
  if (s.readyTimeout !== undefined) env[SHIM_VARS.readyTimeout] = String(s.readyTimeout);
  if (s.drainTimeout !== undefined) env[SHIM_VARS.drainTimeout] = String(s.drainTimeout);
  if (s.drainIdle !== undefined) env[SHIM_VARS.drainIdle] = String(s.drainIdle);
  // huptime is the one that talks to systemd: the program (and each generation of it) is not
  // the main process systemd knows, and would report readiness at the wrong moments.
  delete env.NOTIFY_SOCKET;
  if (s.notifySocket) env[SHIM_VARS.notifySocket] = s.notifySocket;
  if (s.rootPid !== undefined) env[SHIM_VARS.rootPid] = String(s.rootPid);
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
