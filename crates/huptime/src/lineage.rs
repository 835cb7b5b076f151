//! Who this process is among the processes huptime runs: which generation, started by whom,
//! whether it is a forked copy of a generation (a worker) rather than the generation itself, and
//! whether its generation has bound a socket yet (which decides what an exec carries, see
//! [`crate::childenv`]). Set at start-up (the constructor, a fork() child) and at the first bind;
//! read everywhere, also from signal handlers and vfork children.

use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Pid of the previous generation, from the handover record (0 for the first generation).
static PREVIOUS_GENERATION_PID: AtomicI32 = AtomicI32::new(0);
/// This image was started by a previous generation (it received a valid handover record).
static STARTED_BY_GENERATION: AtomicBool = AtomicBool::new(false);
/// Pid this process was forked from (0 when this image was exec'd).
static FORK_PARENT: AtomicI32 = AtomicI32::new(0);
/// This process, or the one it was forked from, has bound a socket or been handed one.
static HAS_BOUND: AtomicBool = AtomicBool::new(false);
/// This process was forked from one that had bound a socket by then.
static FORKED_AFTER_BIND: AtomicBool = AtomicBool::new(false);

/// Constructor time: this image received a valid handover record from the generation `pid`.
pub fn set_previous_generation(pid: libc::pid_t) {
    PREVIOUS_GENERATION_PID.store(pid, Ordering::Relaxed);
    STARTED_BY_GENERATION.store(true, Ordering::Release);
}

/// Pid of the generation this one replaced (0 for the first).
pub fn previous_generation_pid() -> libc::pid_t {
    PREVIOUS_GENERATION_PID.load(Ordering::Relaxed)
}

/// Whether this image was started by a previous generation (fork or exec restart, revive), as
/// opposed to by the huptime command or socket activation.
pub fn started_by_generation() -> bool {
    STARTED_BY_GENERATION.load(Ordering::Acquire)
}

/// fork() child: this process is a copy of the generation running in `parent` (made after the
/// bind if that one had bound already).
pub fn set_forked_from(parent: libc::pid_t) {
    FORK_PARENT.store(parent, Ordering::Release);
    FORKED_AFTER_BIND.store(parent != 0 && has_bound(), Ordering::Release);
}

/// This process binds a socket, or is handed one (by the previous generation, socket activation).
pub fn note_bound() {
    HAS_BOUND.store(true, Ordering::Release);
}

/// Whether this process, or the one it was forked from, has bound a socket or been handed one:
/// its generation serves or is about to. (Async-signal-safe.)
pub fn has_bound() -> bool {
    HAS_BOUND.load(Ordering::Acquire)
}

/// Whether this process was forked from one that had bound a socket by then (a worker, or a
/// child about to exec something else). (Async-signal-safe.)
pub fn forked_after_bind() -> bool {
    FORKED_AFTER_BIND.load(Ordering::Acquire)
}

/// Whether this process is a forked copy (not an image exec'd by huptime or a restart).
pub fn is_forked_copy() -> bool {
    FORK_PARENT.load(Ordering::Acquire) != 0
}

/// A worker is a forked copy whose forking process is still its parent: it follows its master.
/// (Async-signal-safe.)
pub fn is_worker() -> bool {
    let p = FORK_PARENT.load(Ordering::Acquire);
    // SAFETY: getppid has no preconditions.
    p != 0 && unsafe { libc::getppid() } == p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_is_a_forked_copy_whose_forking_process_is_its_parent() {
        assert!(!started_by_generation() && previous_generation_pid() == 0);
        assert!(!is_forked_copy() && !is_worker());
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        set_forked_from(parent);
        assert!(is_forked_copy() && is_worker());
        set_forked_from(parent + 1);
        assert!(is_forked_copy() && !is_worker(), "its master is gone: it is a master now");
        set_forked_from(0);
        assert!(!forked_after_bind());
        note_bound();
        assert!(has_bound());
        set_forked_from(parent);
        assert!(forked_after_bind(), "forked once bound");
        set_forked_from(0);
        assert!(!forked_after_bind());
        set_previous_generation(1234);
        assert!(started_by_generation());
        assert_eq!(previous_generation_pid(), 1234);
    }
}
