/** The preload library as the CLI writes it out (for measuring it on its own). */
import { spawnSync } from "node:child_process";
import { HUPTIME } from "./servers";

/** Path of the library dist/huptime uses (running it once writes it out). */
export function shimPathForBench(): string {
  const r = spawnSync(HUPTIME, ["/bin/sh", "-c", 'printf %s "$LD_PRELOAD"'], { encoding: "utf8" });
  const path = (r.stdout ?? "").split(":")[0];
  if (!path.endsWith(".so")) throw new Error(`can't find the preload library: ${r.stderr}`);
  return path;
}
