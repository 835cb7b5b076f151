/**
 * The state each generation publishes (see crates/huptime/src/status.rs): one key=value file per
 * process in the status directory. A file whose process is gone, or whose pid was reused (start
 * time differs), is ignored.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { procStat } from "./instances";

/** One process's published state. */
export interface Published {
  pid: number;
  generation: number;
  mode: string;
  state: string;
  /** Pid of the generation this one replaced (0 if none; the same pid in exec mode). */
  previous: number;
  rollbacks: number;
  lastError: string;
}

function parse(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** The published state of `pid`, if it has a current one. */
export function readPublished(dir: string, pid: number): Published | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, `${pid}.status`), "utf8");
  } catch {
    return undefined;
  }
  const f = parse(text);
  const st = procStat(pid);
  if (!st || st.state === "Z" || f.start !== st.start) return undefined;
  return {
    pid,
    generation: Number(f.generation),
    mode: f.mode ?? "",
    state: f.state ?? "",
    previous: Number(f.previous ?? 0),
    rollbacks: Number(f.rollbacks ?? 0),
    lastError: f.last_error ?? "",
  };
}

/** Every current published state in `dir`. */
export function readAllPublished(dir: string): Published[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .map((n) => /^(\d+)\.status$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => readPublished(dir, Number(m[1])))
    .filter((p): p is Published => p !== undefined);
}
