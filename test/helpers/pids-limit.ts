/**
 * Making fork() fail in one process, as a container's process limit does: the process is moved
 * into a new cgroup of the pids controller whose pids.max is the number of tasks it has, so its
 * next fork() or new thread fails with EAGAIN. cgroup v1 (a `pids` hierarchy) or v2 (a cgroup2
 * mount offering `pids`); root only.
 */
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Where a pids controller is mounted, and its cgroup version. */
function pidsHierarchy(): { root: string; v2: boolean } {
  for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
    const [, dir, type, opts] = line.split(" ");
    if (type === "cgroup" && opts?.split(",").includes("pids")) return { root: dir, v2: false };
    if (type === "cgroup2") {
      try {
        if (readFileSync(join(dir, "cgroup.controllers"), "utf8").split(/\s+/).includes("pids")) return { root: dir, v2: true };
      } catch {}
    }
  }
  throw new Error("no pids cgroup controller is mounted here (/proc/self/mounts): the process-limit test needs one");
}

/** A process held at its current number of tasks. */
export interface ForkLimit {
  /** Lets it fork again (pids.max = max). */
  lift(): void;
  /** Moves it, and the processes it started since, back where it was and removes the cgroup. */
  remove(): void;
}

/** The directory of `pid`'s cgroup in the hierarchy mounted at `root` (from /proc/PID/cgroup). */
function cgroupOf(pid: number, root: string, v2: boolean): string {
  for (const line of readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n")) {
    const [id, controllers, path] = line.split(":");
    if (v2 ? id === "0" && controllers === "" : controllers?.split(",").includes("pids")) return join(root, path);
  }
  throw new Error(`/proc/${pid}/cgroup names no cgroup of the pids controller`);
}

/** Holds `pid` at the number of tasks it has now: its next fork() fails with EAGAIN. */
export function limitForks(pid: number): ForkLimit {
  const { root, v2 } = pidsHierarchy();
  const parent = cgroupOf(pid, root, v2);
  if (v2) writeFileSync(join(parent, "cgroup.subtree_control"), "+pids");
  const dir = join(parent, `huptime-test-${process.pid}-${pid}`);
  mkdirSync(dir);
  writeFileSync(join(dir, "cgroup.procs"), String(pid));
  writeFileSync(join(dir, "pids.max"), readFileSync(join(dir, "pids.current"), "utf8").trim());
  return {
    lift: () => writeFileSync(join(dir, "pids.max"), "max"),
    remove: () => {
      // It and what it started since (a generation forked after lift()).
      for (const p of readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) {
        try {
          writeFileSync(join(parent, "cgroup.procs"), p);
        } catch {} // it has exited meanwhile
      }
      rmdirSync(dir);
    },
  };
}
