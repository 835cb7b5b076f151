//! fork, signal, sigaction.

use super::enter;
use crate::fdtable::SOCKETS;
use crate::{real, restart};
use core::sync::atomic::{AtomicUsize, Ordering};
use libc::c_int;

/// fork(): the bound-socket table's lock is held across the fork so the child never inherits it
/// mid-update; the child becomes a worker of this generation.
#[no_mangle]
pub unsafe extern "C" fn fork() -> libc::pid_t {
    let Some(g) = enter() else { return real::fork() };
    let parent = libc::getpid();
    SOCKETS.lock_for_fork();
    let pid = real::fork();
    SOCKETS.unlock_after_fork();
    if pid == 0 {
        drop(g);
        restart::after_fork_child(parent);
        return 0;
    }
    pid
}

/// The handler the program asked for SIGHUP (it is recorded, not installed: SIGHUP is huptime's).
static PROGRAM_HUP: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PROGRAM_HUP_FLAGS: AtomicUsize = AtomicUsize::new(0);

/// sigaction(): SIGHUP stays huptime's; the program's choice is recorded and reported back.
#[no_mangle]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    if sig != libc::SIGHUP || !super::ACTIVE.load(Ordering::Relaxed) {
        return real::sigaction(sig, act, old);
    }
    if !old.is_null() {
        let mut o: libc::sigaction = core::mem::zeroed();
        o.sa_sigaction = PROGRAM_HUP.load(Ordering::Acquire);
        o.sa_flags = PROGRAM_HUP_FLAGS.load(Ordering::Acquire) as c_int;
        *old = o;
    }
    if !act.is_null() {
        PROGRAM_HUP.store((*act).sa_sigaction, Ordering::Release);
        PROGRAM_HUP_FLAGS.store((*act).sa_flags as usize, Ordering::Release);
    }
    0
}

/// signal(): as sigaction().
#[no_mangle]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if sig != libc::SIGHUP || !super::ACTIVE.load(Ordering::Relaxed) {
        return real::signal(sig, handler);
    }
    PROGRAM_HUP.swap(handler, Ordering::AcqRel)
}
