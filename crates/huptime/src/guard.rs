//! Whether the shim acts in a call: it is on in this process (the constructor found the program
//! runs under huptime), this is not a vfork child sharing the process's memory, and the calling
//! thread is not already inside a hook. Every hook asks here first; so do the signal handlers.
//!
//! None of this makes a system call. A vfork child runs on the memory, thread-local storage
//! included, of the thread that called vfork() (suspended until the child execs or exits): the
//! vfork hook sets that thread's [`VFORKING`] flag before the real vfork and clears it when the
//! call returns in the parent, so a hooked call sees the flag set exactly in the child. (Asking
//! getpid() on every hooked call would cost a system call each; on other architectures than
//! x86_64, where the hook is not written, the shim still does, see [`in_vfork_child`].)

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
    /// This thread is inside vfork(): set, it is the child that runs on this thread's memory.
    static VFORKING: Cell<bool> = const { Cell::new(false) };
}

/// Called by the vfork hook around the real vfork: `true` just before it, `false` once it
/// returned in the parent (the child has exec'd or exited by then).
pub fn set_vforking(on: bool) {
    let _ = VFORKING.try_with(|v| v.set(on));
}

/// Whether the caller is a vfork child sharing this process's memory (see the module doc).
#[inline]
fn in_vfork_child() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        VFORKING.try_with(|v| v.get()).unwrap_or(false)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: getpid has no preconditions.
        (unsafe { libc::getpid() }) != OWNER_PID.load(Ordering::Relaxed)
    }
}

/// Marks the current thread as inside a hook until dropped.
pub struct Entered(());

impl Drop for Entered {
    fn drop(&mut self) {
        let _ = IN_HOOK.try_with(|c| c.set(false));
    }
}

/// Whether the shim is on in this process and this is not a vfork child (see the module doc).
#[inline]
pub fn active_here() -> bool {
    ACTIVE.load(Ordering::Relaxed) && !in_vfork_child()
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

/// [`enter`], only when `wanted` (a cheap check of the hook's own comes first).
#[inline]
pub fn enter_if(wanted: bool) -> Option<Entered> {
    if wanted {
        enter()
    } else {
        None
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
        OWNER_PID.store(me, Ordering::Relaxed);
        ACTIVE.store(true, Ordering::Release);
        #[cfg(target_arch = "x86_64")]
        set_vforking(true);
        #[cfg(not(target_arch = "x86_64"))]
        OWNER_PID.store(me + 1, Ordering::Relaxed);
        assert!(enter().is_none(), "a vfork child runs on this thread's memory: hands off");
        #[cfg(target_arch = "x86_64")]
        set_vforking(false);
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
