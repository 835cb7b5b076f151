/** The preload library as the CLI writes it out (for measuring it on its own). */
import { spawnSync } from "node:child_process";
import { shimLibraryIn } from "../../src/instances";
import { HUPTIME } from "./servers";

/**
 * Path of the library dist/huptime uses (running it once writes it out): read from the maps of
 * a program run under it, since the program's environment no longer shows LD_PRELOAD.
 */
export function shimPathForBench(): string {
  const r = spawnSync(HUPTIME, ["/bin/cat", "/proc/self/maps"], { encoding: "utf8" });
  const path = shimLibraryIn(r.stdout ?? "");
  if (!path) throw new Error(`can't find the preload library in the maps of a program run under ${HUPTIME}: ${r.stderr}`);
  return path;
}
