//! The interposed libc functions. Each hook is thin: when the shim is off, or the call is
//! re-entered from inside the shim, it goes straight to the real function; otherwise it does its
//! bookkeeping around the real call and preserves errno.

use core::cell::Cell;
use core::sync::atomic::{AtomicBool, Ordering};

pub mod fd;
pub mod process;
pub mod socket;
pub mod stderr;

/// Set by the constructor when the program runs under huptime.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);

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

/// Returns a guard when the hook should do its work: the shim is active and this thread is not
/// already inside a hook. `None` means: call the real function and nothing else.
#[inline]
pub fn enter() -> Option<Entered> {
    if !ACTIVE.load(Ordering::Relaxed) {
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
