//! SIGHUP, the user's request for a restart. The handler is trivial and async-signal-safe: it
//! notes the signal and writes the helper thread's eventfd; the helper thread (see
//! [`crate::helper`]) does the rest in normal context.

use crate::fdtable::internal;
use crate::{real, sys};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libc::c_int;

/// A SIGHUP arrived and is not handled yet (coalesces bursts into one restart).
static PENDING: AtomicBool = AtomicBool::new(false);
/// SIGHUPs received (lets a hooked call tell our own signal from the program's).
static COUNT: AtomicU64 = AtomicU64::new(0);

/// Takes the pending SIGHUP, if any (the helper thread).
pub fn take_pending() -> bool {
    PENDING.swap(false, Ordering::AcqRel)
}

/// Marks a restart as asked for, as a SIGHUP would (a deferred restart whose time has come).
pub fn set_pending() {
    PENDING.store(true, Ordering::Release);
}

/// How many SIGHUPs this process has received so far.
pub fn count() -> u64 {
    COUNT.load(Ordering::Acquire)
}

extern "C" fn on_sighup(_sig: c_int) {
    let saved = sys::errno();
    PENDING.store(true, Ordering::Release);
    COUNT.fetch_add(1, Ordering::AcqRel);
    sys::eventfd_signal(internal::get(internal::WAKE));
    sys::set_errno(saved);
}

/// Installs the SIGHUP handler (constructor time). SA_RESTART, so the program's own system calls
/// are not interrupted by it.
pub fn install_handler() {
    set_restartable(true);
}

/// With `restartable` false (a draining process), SIGHUP interrupts a blocked accept() instead of
/// restarting it, so that the accept gate can wake such threads.
pub fn set_restartable(restartable: bool) {
    // SAFETY: installing a handler that only touches atomics and writes an eventfd.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_sighup as extern "C" fn(c_int) as usize;
        act.sa_flags = if restartable { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut act.sa_mask);
        real::sigaction(libc::SIGHUP, &act, core::ptr::null_mut());
    }
}
