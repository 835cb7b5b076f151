/**
 * The preload library: embedded in the executable, written out to a private per-user directory
 * under its content hash, and used from there both as LD_PRELOAD and as the CLI's native module.
 *
 * The directory must be owned by the user and not reachable by others (mode 0700, see
 * privatedir.ts); the file is written to a temporary name with O_EXCL|O_NOFOLLOW and renamed into
 * place. An existing file is used only if it is a regular file owned by the user whose content has
 * the expected hash; one with other content is replaced (and said so), a symbolic link or another
 * user's file is refused.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, constants } from "node:fs";
import { join } from "node:path";
// The native library, built by scripts/build before the executable is compiled.
import embeddedPath from "../dist/huptime.node" with { type: "file" };
import { cacheDir, STATUS_SUBDIR } from "./cachedir";
import { errnoOf, HuptimeError } from "./errors";
import { CACHE_DIR_VAR } from "./generated/protocol";
import { info } from "./log";
import { ensurePrivateDir, lstatIfAny, refuseUnlessOurs } from "./privatedir";

export { cacheDir };

function sha256(data: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(data).digest("hex");
}

function fail(what: string, dir: string, err: unknown): never {
  throw new HuptimeError(`can't ${what} ${dir}: ${errnoOf(err)} (set ${CACHE_DIR_VAR} to a private writable directory)`);
}

/**
 * Whether the library at `path` is there with the expected content (hashing to `hash`). Missing
 * or different content (corrupted, or changed by someone who could write there) means it is to
 * be written again; a symbolic link, anything but a regular file, or another user's file is
 * refused: huptime never preloads, nor replaces, what it did not write.
 */
function isIntact(path: string, hash: string): boolean {
  const st = lstatIfAny(path, "preload library");
  if (!st) return false;
  refuseUnlessOurs(st, path, "preload library", "regular file", "remove it; huptime writes the file itself");
  try {
    return sha256(readFileSync(path)) === hash;
  } catch (err) {
    fail("read the preload library", path, err);
  }
}

/**
 * The private directory where served programs publish their state (created 0700 if needed).
 */
export function statusDir(env: NodeJS.ProcessEnv = process.env): string {
  const dir = join(cacheDir(env), STATUS_SUBDIR);
  ensurePrivateDir(cacheDir(env), "library directory");
  ensurePrivateDir(dir, "state directory");
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
  ensurePrivateDir(dir, "library directory");
  const path = join(dir, `huptime-${hash.slice(0, 32)}.so`);
  if (isIntact(path, hash)) return (cached = path);
  if (lstatIfAny(path, "preload library")) {
    info(`replacing the preload library ${path}: its content is not what this huptime wrote (corrupted, or changed by someone else)`);
  }
  const tmp = join(dir, `.huptime-${hash.slice(0, 8)}-${process.pid}.tmp`);
  try {
    unlinkSync(tmp); // left by a crashed run with this pid
  } catch {}
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
