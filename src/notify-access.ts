/**
 * Whom the --listen-fds supervisor believes on its notify socket (systemd's NotifyAccess, for
 * huptime's own socket). The socket sits in the user's private directory, but a process can be
 * handed a connected socket, and a program's process tree may hold processes of other users (a
 * worker that dropped its privileges). The kernel vouches for each sender's pid and uid
 * (SCM_CREDENTIALS); a message counts for a generation when it comes from:
 *
 * - the generation's own process (its main pid, a child huptime has not reaped, so no other
 *   process can have that pid), whatever its uid: a program may drop its privileges before it
 *   reports readiness;
 * - another process of the generation's process group, if it runs as huptime's uid or as root.
 *
 * Anything else is dropped: a process outside every generation, or one of another user inside it.
 */

/** The sender of one message, as the kernel reported it. */
export interface Sender {
  pid: number;
  /** Null when the message came without credentials. */
  uid?: number | null;
}

/** A generation the supervisor started (its pid leads its process group). */
export interface Candidate {
  pid: number;
  ended?: unknown;
}

/** The generation a message speaks for, or why it is dropped. */
export type Verdict<G> = { generation: G } | { dropped: string };

/**
 * Decides which live generation in `gens` the message from `sender` belongs to. `ourUid` is
 * huptime's uid; `pgrpOf(pid)` reads a process's group (undefined when it is gone).
 */
export function noticeGeneration<G extends Candidate>(sender: Sender, gens: G[], ourUid: number, pgrpOf: (pid: number) => number | undefined): Verdict<G> {
  const live = gens.filter((g) => !g.ended);
  const main = live.find((g) => g.pid === sender.pid);
  if (main) return { generation: main };
  if (sender.uid === undefined || sender.uid === null) return { dropped: "it came without credentials" };
  if (sender.uid !== ourUid && sender.uid !== 0) {
    return { dropped: `uid ${sender.uid} is neither huptime's (${ourUid}) nor root, and pid ${sender.pid} is no generation's main process` };
  }
  const group = pgrpOf(sender.pid);
  const member = live.find((g) => g.pid === group);
  if (member) return { generation: member };
  return { dropped: `pid ${sender.pid} is in no generation's process group` };
}
