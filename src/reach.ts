/**
 * Refusing, with the reason, to run a program under the preload when LD_PRELOAD would not reach
 * it: a statically linked program has no dynamic loader to read it, and the loader ignores it
 * when the kernel runs a setuid, setgid or file-capability program in secure-execution mode (the
 * rules are in crates/huptime/src/reach.rs). Started anyway, the program would run without
 * huptime's hooks and a SIGHUP would just end it. A static program is run by seccomp user
 * notification instead, and refused only when that is unavailable too.
 */
import { HuptimeError } from "./errors";
import { native } from "./native";

const SECURE = "so the kernel runs it in secure-execution mode, which ignores LD_PRELOAD";
const LISTEN_FDS = "use --listen-fds if it supports socket activation";

/** Why LD_PRELOAD would not apply to `file` (called `it` in the text), and what to do instead. */
function explain(it: string, file: string, reason: string, id: number | null | undefined): string {
  const [uid, euid, gid, egid] = [process.getuid?.(), process.geteuid?.(), process.getgid?.(), process.getegid?.()];
  switch (reason) {
    case "static":
      return `${it} is statically linked (LD_PRELOAD works through the dynamic loader only)`;
    case "setuid":
      return `${it} is setuid to uid ${id} and you are uid ${uid}, ${SECURE}; run huptime as uid ${id}, drop the bit (chmod u-s ${file}), or ${LISTEN_FDS}`;
    case "setgid":
      return `${it} is setgid to gid ${id} and your group is gid ${gid}, ${SECURE}; run huptime with group ${id}, drop the bit (chmod g-s ${file}), or ${LISTEN_FDS}`;
    case "capabilities":
      return `${it} has file capabilities (getcap ${file}) and you are not root, ${SECURE}; run huptime as root, drop them (setcap -r ${file}), or ${LISTEN_FDS}`;
    default:
      return `huptime runs with real uid ${uid}, effective uid ${euid}, real gid ${gid}, effective gid ${egid}, so the kernel runs every program it starts in secure-execution mode, which ignores LD_PRELOAD; run huptime with equal real and effective ids, or ${LISTEN_FDS}`;
  }
}

/**
 * Throws a HuptimeError naming `file` (a resolved program path) and the reason when the preload
 * library would not be loaded into it; returns when it would.
 */
export function assertPreloadReaches(file: string): void {
  const o = native().preloadObstacle(file);
  if (!o) return;
  throw new HuptimeError(`can't preload huptime into ${file}: ${explain(subject(file, o.file), o.file, o.reason, o.id)}`);
}

/**
 * Throws the HuptimeError refusing `file` (a resolved program path, statically linked or run by
 * a static interpreter) when seccomp user notification cannot run it either: `why` is the native
 * module's reason (the call that failed, its errno, the kernel requirement).
 */
export function refuseStatic(file: string, why: string): never {
  const o = native().preloadObstacle(file);
  const it = subject(file, o?.file ?? file);
  throw new HuptimeError(
    `can't run ${file}: ${explain(it, o?.file ?? file, "static", null)}, and huptime's way for static programs, seccomp user notification, is unavailable: ${why}; if the program supports socket activation, run it with --listen ADDR --listen-fds, which needs neither`,
  );
}

/** How the messages call the file LD_PRELOAD would not reach: the program itself, or its interpreter. */
function subject(program: string, file: string): string {
  return file === program ? "it" : `its interpreter ${file}`;
}
