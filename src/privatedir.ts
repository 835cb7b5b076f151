/**
 * huptime's private directories (the library directory and its `status` subdirectory): created
 * mode 0700, and refused before anything in them is used when they are a symbolic link, not a
 * directory, or another user's; one of ours that others can reach is made private again. Every
 * refusal is one line that names the path and says what to do.
 */
import { chmodSync, lstatSync, mkdirSync, type Stats } from "node:fs";
import { errnoOf, HuptimeError } from "./errors";
import { CACHE_DIR_VAR } from "./generated/protocol";

/** The user huptime runs as. */
export function myUid(): number {
  return process.getuid?.() ?? 0;
}

/** What to do about a directory huptime cannot use. */
const ELSEWHERE = `set ${CACHE_DIR_VAR} to a private directory of yours`;

/** lstat, or undefined if nothing is there. */
export function lstatIfAny(path: string, what: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (err) {
    if (errnoOf(err) === "ENOENT") return undefined;
    throw new HuptimeError(`can't inspect the ${what} ${path}: ${errnoOf(err)} (${ELSEWHERE})`);
  }
}

/**
 * Refuses what is at `path` unless it is a `kind` owned by us: not through a symbolic link,
 * not another user's. `fix` says how to get rid of it.
 */
export function refuseUnlessOurs(st: Stats, path: string, what: string, kind: "directory" | "regular file", fix: string): void {
  if (st.isSymbolicLink()) throw new HuptimeError(`refusing the ${what} ${path}: it is a symbolic link (${fix})`);
  const isKind = kind === "directory" ? st.isDirectory() : st.isFile();
  if (!isKind) throw new HuptimeError(`refusing the ${what} ${path}: it is not a ${kind} (${fix})`);
  if (st.uid !== myUid()) throw new HuptimeError(`refusing the ${what} ${path}: it is owned by uid ${st.uid}, not by you (uid ${myUid()}) (${fix})`);
}

/** Creates (or checks) the private directory `dir`: a real directory, owned by us, mode 0700. */
export function ensurePrivateDir(dir: string, what: string): void {
  if (/[\s:]/.test(dir)) {
    throw new HuptimeError(`can't use the ${what} ${dir}: LD_PRELOAD cannot carry a path with spaces or colons (${ELSEWHERE})`);
  }
  if (!lstatIfAny(dir, what)) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new HuptimeError(`can't create the ${what} ${dir}: ${errnoOf(err)} (${ELSEWHERE})`);
    }
  }
  const st = lstatIfAny(dir, what);
  if (!st) throw new HuptimeError(`can't create the ${what} ${dir}: it vanished (${ELSEWHERE})`);
  refuseUnlessOurs(st, dir, what, "directory", `remove it, or ${ELSEWHERE}`);
  if ((st.mode & 0o077) !== 0) {
    try {
      chmodSync(dir, 0o700);
    } catch (err) {
      throw new HuptimeError(`can't make the ${what} ${dir} private: ${errnoOf(err)} (${ELSEWHERE})`);
    }
  }
}
