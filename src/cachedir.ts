/** Where huptime keeps its private files (the preload library, the state files): chosen from the
 * environment, without touching the disk. */
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";

/** Environment variable that chooses where the library is written. */
export const CACHE_DIR_VAR = "HUPTIME_CACHE_DIR";

/** The directory the library is written to, from the environment. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env[CACHE_DIR_VAR]) return env[CACHE_DIR_VAR];
  const uid = process.getuid?.() ?? 0;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "huptime");
  const home = env.HOME || homedir();
  if (home) return join(home, ".cache", "huptime");
  return join(tmpdir(), `huptime-${uid}`);
}
