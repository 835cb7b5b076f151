//! Whether the shim acts in a call: it is on in this process (the constructor found the program
//! runs under huptime), this is not a vfork child sharing the process's memory, and the calling
//! thread is not already inside a hook. Every hook asks here first; so do the signal handlers.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Set by the constructor when the program runs under huptime.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Pid of the process the shim's state belongs to: set by the constructor and in a child that
/// fork() returned to. A hooked call made under any other pid comes from a vfork() child (or a
/// raw clone) that shares this process's memory: it must not touch the shim's tables (Python's
/// subprocess closes every fd in such a child, which would make the parent forget its sockets).
pub static OWNER_PID: AtomicI32 = AtomicI32::new(0);

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as inside a hook until dropped.
pub struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|c| c.set(false));
    }
}

/// Whether the shim is on in this process and this is not a vfork child (see [`OWNER_PID`]).
#[inline]
pub fn active_here() -> bool {
    // SAFETY: getpid has no preconditions.
    ACTIVE.load(Ordering::Relaxed) && unsafe { libc::getpid() } == OWNER_PID.load(Ordering::Relaxed)
}

/// Returns a guard when the hook should do its work: the shim is active and this thread is not
/// already inside a hook. `None` means: call the real function and nothing else.
#[inline]
pub fn enter() -> Option<Entered> {
    if !active_here() {
        return None;
    }
    match IN_HOOK.try_with(|c| c.replace(true)) {
        Ok(false) => Some(Entered(())),
        _ => None,
    }
}

/// Runs `f` and restores the errno it produced after `after` (bookkeeping) ran.
#[inline]
pub fn keep_errno<T>(r: T, after: impl FnOnce(&T)) -> T {
    let e = crate::sys::errno();
    after(&r);
    crate::sys::set_errno(e);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_only_when_on_in_the_owning_process_and_not_re_entered() {
        assert!(enter().is_none(), "off until the constructor turns it on");
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() };
        OWNER_PID.store(me + 1, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::Release);
        assert!(enter().is_none(), "another pid owns the state: a vfork child");
        OWNER_PID.store(me, Ordering::Relaxed);
        {
            let outer = enter();
            assert!(outer.is_some());
            assert!(enter().is_none(), "re-entered from inside a hook");
        }
        assert!(enter().is_some(), "released when the guard is dropped");
        crate::sys::set_errno(libc::EINTR);
        assert_eq!(keep_errno(5, |_| crate::sys::set_errno(libc::EBADF)), 5);
        assert_eq!(crate::sys::errno(), libc::EINTR, "the bookkeeping's errno is not the caller's");
        ACTIVE.store(false, Ordering::Release);
    }
}
