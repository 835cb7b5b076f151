/**
 * The preload library: embedded in the executable, written out to a private per-user directory
 * under its content hash, and used from there both as LD_PRELOAD and as the CLI's native module.
 *
 * The directory must be owned by the user and not reachable by others (mode 0700); the file is
 * written to a temporary name with O_EXCL|O_NOFOLLOW and renamed into place, and an existing file
 * is used only if it is a regular file owned by the user whose content has the expected hash.
 */
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
// The native library, built by scripts/build before the executable is compiled.
import embeddedPath from "../dist/huptime.node" with { type: "file" };
import { CACHE_DIR_VAR, cacheDir } from "./cachedir";
import { errnoOf, HuptimeError } from "./errors";

export { CACHE_DIR_VAR, cacheDir };

function sha256(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

function fail(what: string, dir: string, err: unknown): never {
  throw new HuptimeError(
    `can't ${what} ${dir}: ${errnoOf(err)} (set ${CACHE_DIR_VAR} to a private writable directory)`,
  );
}

/** Creates (or checks) the private directory: a real directory, owned by us, mode 0700. */
function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    fail("create the library directory", dir, err);
  }
  let st;
  try {
    st = lstatSync(dir);
  } catch (err) {
    fail("inspect the library directory", dir, err);
  }
  const uid = process.getuid?.() ?? 0;
  if (st.isSymbolicLink() || !st.isDirectory()) {
    throw new HuptimeError(`refusing the library directory ${dir}: it is a symbolic link or not a directory (set ${CACHE_DIR_VAR} elsewhere)`);
  }
  if (st.uid !== uid) {
    throw new HuptimeError(`refusing the library directory ${dir}: owned by uid ${st.uid}, not by you (uid ${uid})`);
  }
  if ((st.mode & 0o077) !== 0) {
    try {
      chmodSync(dir, 0o700);
    } catch (err) {
      fail("make private", dir, err);
    }
  }
}

/** Whether `path` is a regular file we own whose content hashes to `hash`. */
function isIntact(path: string, hash: string): boolean {
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.uid !== (process.getuid?.() ?? 0)) return false;
    return sha256(readFileSync(path)) === hash;
  } catch {
    return false;
  }
}

/**
 * The private directory where served programs publish their state (created 0700 if needed).
 */
export function statusDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = join(cacheDir(env), "status");
  ensurePrivateDir(cacheDir(env));
  ensurePrivateDir(dir);
  return dir;
}

let cached: string | undefined;

/**
 * Path of the library on disk, writing it out first if needed. Throws a HuptimeError naming the
 * directory when it cannot be written.
 */
export function shimPath(env: NodeJS.ProcessEnv = process.env): string {
  if (cached) return cached;
  const data = new Uint8Array(readFileSync(embeddedPath));
  const hash = sha256(data);
  const dir = cacheDir(env);
  ensurePrivateDir(dir);
  const path = join(dir, `huptime-${hash.slice(0, 32)}.so`);
  if (isIntact(path, hash)) return (cached = path);
  const tmp = join(dir, `.huptime-${hash.slice(0, 8)}-${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o500);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {}
    fail("write the preload library to", dir, err);
  }
  if (!isIntact(path, hash)) {
    throw new HuptimeError(`the preload library at ${path} does not match its expected content; remove it and retry`);
  }
  return (cached = path);
}
