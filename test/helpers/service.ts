/** A throwaway "myservice" binary (the C fixture under a unique short name) for the seed examples. */
import { chmodSync, copyFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compiledCServer } from "./matrix";

/** Copies the compiled C server to `<tmp>/msvNNNNNN`; returns its directory and path. */
export function myservice(): { dir: string; path: string; name: string } {
  const dir = mkdtempSync(join(tmpdir(), "huptime-svc-"));
  const name = `msv${String(Math.floor(Math.random() * 1e6)).padStart(6, "0")}`;
  const path = join(dir, name);
  copyFileSync(compiledCServer(), path);
  chmodSync(path, 0o755);
  return { dir, path, name };
}
