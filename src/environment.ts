/** The environment the served program is started with: the user's, plus huptime's settings. */

/** Settings passed to the shim. */
export interface ShimSettings {
  /** Restart mode. */
  mode: "fork" | "exec";
  /** Log every decision. */
  debug: boolean;
}

/** Variables owned by huptime; inherited values are dropped so they never leak into a new run. */
const OWN = /^HUPTIME_(STATE|MODE|DEBUG|READY_TIMEOUT|DRAIN_TIMEOUT)$/;

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
  return Object.entries(env).map(([k, v]) => `${k}=${v}`);
}
