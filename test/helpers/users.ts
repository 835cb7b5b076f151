/** A second, unprivileged user for tests of what one user may see of another's processes. */
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { appSource, waitForVersion } from "./app";
import { HUPTIME } from "./cli";
import { freePort } from "./net";
import { spawnGroup } from "./spawn";

const NAME = "huptime-test2";

/** Creates the user if needed (the tests run as root); returns its ids and home. */
export function secondUser(): { name: string; uid: number; gid: number; home: string } {
  if (process.getuid?.() !== 0) throw new Error("the multi-user tests must run as root (scripts/test runs them so)");
  let r = spawnSync("id", ["-u", NAME], { encoding: "utf8" });
  if (r.status !== 0) {
    const add = spawnSync("useradd", ["--create-home", "--shell", "/bin/sh", NAME], { encoding: "utf8" });
    if (add.status !== 0) throw new Error(`useradd ${NAME} failed: ${add.stderr}`);
    r = spawnSync("id", ["-u", NAME], { encoding: "utf8" });
  }
  const uid = Number(r.stdout.trim());
  const gid = Number(spawnSync("id", ["-g", NAME], { encoding: "utf8" }).stdout.trim());
  return { name: NAME, uid, gid, home: `/home/${NAME}` };
}

/** A copy of dist/huptime in a directory every user can read (the checkout may not be). */
export function sharedHuptime(): { dir: string; huptime: string } {
  const dir = mkdtempSync(join(tmpdir(), "huptime-shared-"));
  chmodSync(dir, 0o755);
  const huptime = join(dir, "huptime");
  copyFileSync(HUPTIME, huptime);
  chmodSync(huptime, 0o755);
  return { dir, huptime };
}

/** `setpriv` arguments that run a command as `user`, with its own HOME and no inherited groups. */
export function asUser(user: { uid: number; gid: number }): string[] {
  return ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--"];
}

/** The environment a command of `user` runs with: PATH, their HOME, LANG=C. */
export function userEnv(user: { home: string }): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: user.home, LANG: "C" };
}

/**
 * Starts the test app (answering `version`) as `user` under the `shared` huptime copy, in its own
 * process group; returns once it answers, with its port.
 */
export async function serveAppAs(user: { uid: number; gid: number; home: string }, shared: { dir: string; huptime: string }, version: string) {
  const port = await freePort();
  const script = join(shared.dir, "app.py");
  writeFileSync(script, appSource(version));
  chmodSync(script, 0o644);
  const [cmd, ...opts] = asUser(user);
  const g = spawnGroup([cmd, ...opts, shared.huptime, "python3", script, String(port)], { env: userEnv(user), cwd: shared.dir });
  try {
    await waitForVersion(port, version);
  } catch (e) {
    g.killGroup();
    throw e;
  }
  return { ...g, port };
}
