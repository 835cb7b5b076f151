/** Compiling the C fixtures with gcc, once per test run and set of flags. */
import { spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

const built = new Map<string, string>();

/**
 * Compiles `source` (a path) into a private directory and returns the executable's path. `name`
 * names the output (default: the source's base name); `flags` go to gcc before the source
 * (e.g. ["-static"]). Throws with gcc's messages when it fails.
 */
export function compileC(source: string, opts: { name?: string; flags?: string[] } = {}): string {
  const name = opts.name ?? basename(source).replace(/\.c$/, "");
  const key = `${source}\0${name}\0${(opts.flags ?? []).join("\0")}`;
  const done = built.get(key);
  if (done) return done;
  const dir = join(tmpdir(), `huptime-fixtures-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const out = join(dir, name);
  const r = spawnSync("gcc", ["-O2", "-Wall", "-Werror", ...(opts.flags ?? []), "-o", out, source], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc ${source} failed: ${r.stderr || r.error}`);
  built.set(key, out);
  return out;
}
