//! The actions the program asks for huptime's own signals, SIGHUP and the wake signal (see
//! [`crate::signals`]): recorded and reported back by sigaction()/signal(), never installed, and
//! run when such a signal turns out to be the program's ([`deliver`]). Also how a recorded or
//! wrapped action is run from a handler of the shim's ([`run_action`]), and what an exec that
//! leaves huptime behind, or a vfork child, sees of a recorded one ([`exec_leaving`],
//! [`inherited_view`]).

use crate::{real, signals};
use core::sync::atomic::{AtomicUsize, Ordering};
use libc::c_int;

/// The actions the program asked for huptime's signals: handler and flags, SIGHUP's then the
/// wake signal's.
static PROGRAM_ACTION: [[AtomicUsize; 2]; 2] = [const { [AtomicUsize::new(libc::SIG_DFL), AtomicUsize::new(0)] }; 2];

fn ours(sig: c_int) -> Option<usize> {
    if sig == libc::SIGHUP {
        Some(0)
    } else if sig == signals::wake_signal() {
        Some(1)
    } else {
        None
    }
}

/// For SIGHUP and the wake signal: the action the program asked for last (into `old`), and
/// records `new` in its place; returns false for any other signal (the caller makes the real call).
///
/// # Safety
/// `new` and `old` are null or valid (sigaction's contract).
pub unsafe fn swap(sig: c_int, new: *const libc::sigaction, old: *mut libc::sigaction) -> bool {
    let Some(i) = ours(sig) else { return false };
    if !old.is_null() {
        let mut o = signals::empty_action();
        o.sa_sigaction = PROGRAM_ACTION[i][0].load(Ordering::Acquire);
        o.sa_flags = PROGRAM_ACTION[i][1].load(Ordering::Acquire) as c_int;
        // SAFETY: `old` is non-null, hence valid for a write (the contract above).
        unsafe { *old = o };
    }
    // SAFETY: `new` is null or valid for a read (the contract above).
    if let Some(new) = unsafe { new.as_ref() } {
        PROGRAM_ACTION[i][0].store(new.sa_sigaction, Ordering::Release);
        PROGRAM_ACTION[i][1].store(new.sa_flags as usize, Ordering::Release);
    }
    true
}

/// Whether the program asked to ignore `sig`, one of huptime's signals (false for any other).
/// (Async-signal-safe.)
pub fn program_ignores(sig: c_int) -> bool {
    ours(sig).is_some_and(|i| PROGRAM_ACTION[i][0].load(Ordering::Acquire) == libc::SIG_IGN)
}

/// Runs `f`, an exec that leaves huptime behind (see [`crate::childenv`]), with SIGHUP's action
/// as the program set it where exec keeps it: ignored, when the program ignores it and the real
/// action is still huptime's handler (which exec would reset to the default). Put back if `f`
/// returns (the exec failed). Preserves `f`'s errno. Async-signal-safe (also in a vfork child,
/// whose actions are its own).
pub fn exec_leaving<T>(f: impl FnOnce() -> T) -> T {
    if !program_ignores(libc::SIGHUP) {
        return f();
    }
    let mut cur = signals::empty_action();
    // SAFETY: reading SIGHUP's action into our own struct.
    unsafe { real::sigaction(libc::SIGHUP, core::ptr::null(), &mut cur) };
    if !signals::is_hup_handler(cur.sa_sigaction) {
        return f();
    }
    let mut ign = signals::empty_action();
    ign.sa_sigaction = libc::SIG_IGN;
    // SAFETY: our own action: ignore.
    unsafe { real::sigaction(libc::SIGHUP, &ign, core::ptr::null_mut()) };
    let r = f();
    let e = crate::sys::errno();
    signals::install_handler();
    crate::sys::set_errno(e);
    r
}

/// After a real sigaction() of `sig` that reported `old`, in a process whose actions are its own
/// but whose memory is the program's (a vfork child): where that is huptime's SIGHUP handler,
/// which the child inherited, reports the action the program set instead, as it would see
/// without huptime (Python's subprocess resets every handled signal before exec, and would
/// otherwise turn a SIGHUP the program ignores into the default action).
///
/// # Safety
/// `old` is null or valid (sigaction's contract).
pub unsafe fn inherited_view(sig: c_int, old: *mut libc::sigaction) {
    // SAFETY: `old` is null or valid for reads and writes (the contract above).
    let Some(old) = (unsafe { old.as_mut() }) else { return };
    if sig == libc::SIGHUP && signals::is_hup_handler(old.sa_sigaction) {
        old.sa_sigaction = PROGRAM_ACTION[0][0].load(Ordering::Acquire);
        old.sa_flags = PROGRAM_ACTION[0][1].load(Ordering::Acquire) as c_int;
    }
}

/// Delivers to the program a signal of huptime's that was the program's own (not a wake): runs
/// the action it asked for (see [`run_action`]).
///
/// # Safety
/// Called from a signal handler with the kernel's arguments.
pub unsafe fn deliver(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let Some(i) = ours(sig) else { return };
    let (handler, flags) = (PROGRAM_ACTION[i][0].load(Ordering::Acquire), PROGRAM_ACTION[i][1].load(Ordering::Acquire) as c_int);
    // SAFETY: the kernel's arguments (the contract above), and the action as the program gave it
    // to sigaction() for this signal.
    unsafe { run_action(sig, handler, flags, info, ctx) }
}

/// Runs, from a handler of the shim's for `sig`, the action the program gave for it (`handler`
/// and `flags` as it passed them to sigaction): its handler, nothing for SIG_IGN, or the default
/// action for SIG_DFL (restored and raised again: it happens once the running handler returns,
/// usually ending the process). Async-signal-safe.
///
/// # Safety
/// Called from a signal handler with the kernel's arguments; `handler` is SIG_DFL, SIG_IGN or a
/// function the program gave for `sig`, of the signature its `flags` (SA_SIGINFO) declare.
pub unsafe fn run_action(sig: c_int, handler: usize, flags: c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    if handler == libc::SIG_IGN {
        return;
    }
    if handler == libc::SIG_DFL {
        let mut d = signals::empty_action();
        d.sa_sigaction = libc::SIG_DFL;
        // SAFETY: our own sigaction of SIG_DFL, no old action asked for; sigaction and raise are
        // async-signal-safe.
        unsafe {
            real::sigaction(sig, &d, core::ptr::null_mut());
            libc::raise(sig);
        }
        return;
    }
    // SAFETY: `handler` is a function of the signature `flags` declares (the contract above),
    // called with the kernel's arguments for this delivery, as the kernel would have called it.
    unsafe {
        if flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) = core::mem::transmute(handler);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(handler);
            f(sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_programs_action_for_sighup_is_recorded_and_reported_back_and_other_signals_pass() {
        let mut act = signals::empty_action();
        act.sa_sigaction = libc::SIG_IGN;
        act.sa_flags = libc::SA_RESTART;
        let mut old = signals::empty_action();
        // SAFETY: our own actions.
        assert!(unsafe { swap(libc::SIGHUP, &act, &mut old) });
        assert_eq!(old.sa_sigaction, libc::SIG_DFL, "nothing asked before: the default");
        // SAFETY: as above (a query: no new action).
        assert!(unsafe { swap(libc::SIGHUP, core::ptr::null(), &mut old) });
        assert_eq!((old.sa_sigaction, old.sa_flags), (libc::SIG_IGN, libc::SA_RESTART));
        // SAFETY: as above.
        assert!(!unsafe { swap(libc::SIGUSR1, &act, &mut old) }, "not one of huptime's: the real call");
    }
}
