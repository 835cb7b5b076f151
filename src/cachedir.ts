/** Where huptime keeps its private files (the preload library, the state files): chosen from the
 * environment, without touching the disk. */
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CACHE_DIR_VAR } from "./generated/protocol";

/**
 * The directory the library is written to, from the environment; always absolute (LD_PRELOAD
 * is read again by every exec, from whatever directory the program is in by then).
 */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env[CACHE_DIR_VAR]) return resolve(env[CACHE_DIR_VAR]);
  const uid = process.getuid?.() ?? 0;
  if (env.XDG_RUNTIME_DIR) return resolve(env.XDG_RUNTIME_DIR, "huptime");
  const home = env.HOME || homedir();
  if (home) return resolve(home, ".cache", "huptime");
  return join(tmpdir(), `huptime-${uid}`);
}

/** The directory, inside the library's, where served programs publish their state: --status
 * finds a process's by the library it maps. */
export const STATUS_SUBDIR = "status";
