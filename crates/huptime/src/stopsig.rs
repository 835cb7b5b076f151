//! SIGINT and SIGTERM, the stop requests: with `--revive` (a stop must end the program, not
//! revive it), when notifying systemd (SIGTERM says STOPPING=1) and under huptime's init (a stop
//! signal the program leaves at its default action drains it, see [`drain_requested`]), the
//! handlers the program installs for them run behind a trampoline of the shim's that notices the
//! stop first. The program still sees its own handlers in what sigaction()/signal() report.

use crate::fdtable::internal;
use crate::{config, lineage, notify, real, revive, signals, sigrecord, sys};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use libc::c_int;

/// Handlers (SIG_DFL when none) and flags the program installed for SIGINT and SIGTERM, run by
/// `trampoline`.
static HANDLER: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
static FLAGS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// The trampoline's address as a sigaction handler.
fn trampoline_address() -> usize {
    trampoline as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize
}

fn index(sig: c_int) -> Option<usize> {
    match sig {
        libc::SIGINT => Some(0),
        libc::SIGTERM => Some(1),
        _ => None,
    }
}

/// A stop signal at its default action came, for the helper thread to drain this process.
static DRAIN_ASKED: AtomicBool = AtomicBool::new(false);

/// Whether the program's actions for `sig` go through the trampoline: a stop signal, with
/// `--revive`, when notifying systemd, or under huptime's init.
pub fn wraps(sig: c_int) -> bool {
    let cfg = config::get();
    index(sig).is_some() && (cfg.revive || notify::enabled() || cfg.stop_drains)
}

/// Whether a stop signal asked this process to drain and end (the helper thread asks, and
/// drains: see [`crate::drain::drain_and_exit`]).
pub fn drain_requested() -> bool {
    DRAIN_ASKED.load(Ordering::Acquire)
}

/// Under huptime's init, SIGTERM and SIGINT left at their default action drain the program
/// instead of killing it (constructor time; the program's own choices are wrapped as it makes
/// them, see [`set_action`]).
pub fn drain_on_stop() {
    if !config::get().stop_drains {
        return;
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        install_over_default(sig);
    }
}

/// When notifying systemd, SIGTERM says STOPPING=1 even if the program leaves it at its default
/// action (constructor time; the program's own handlers are wrapped as it installs them).
pub fn watch_for_notify() {
    if !notify::enabled() {
        return;
    }
    install_over_default(libc::SIGTERM);
}

/// Installs the trampoline for `sig` (a stop signal) if its action is the default one.
fn install_over_default(sig: c_int) {
    let Some(i) = index(sig) else { return };
    let mut cur = signals::empty_action();
    // SAFETY: no new action, and our own `cur` to fill.
    if unsafe { real::sigaction(sig, core::ptr::null(), &mut cur) } != 0 || cur.sa_sigaction != libc::SIG_DFL {
        return;
    }
    HANDLER[i].store(libc::SIG_DFL, Ordering::Release);
    let mut w = signals::empty_action();
    w.sa_sigaction = trampoline_address();
    w.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: installs the trampoline, an SA_SIGINFO handler of that signature.
    unsafe { real::sigaction(sig, &w, core::ptr::null_mut()) };
}

/// The handler installed for a wrapped stop signal: notes the stop, then runs the program's
/// action (the default one, when the trampoline stands in for it: see [`watch_for_notify`]).
extern "C" fn trampoline(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    revive::stop_requested();
    if sig == libc::SIGTERM && !lineage::is_worker() {
        notify::stopping();
    }
    let Some(i) = index(sig) else { return };
    let (handler, flags) = (HANDLER[i].load(Ordering::Acquire), FLAGS[i].load(Ordering::Acquire) as c_int);
    if handler == libc::SIG_DFL && drains(sig) {
        // The helper thread (which serves this process's sockets) drains; a second stop
        // signal while it does changes nothing.
        DRAIN_ASKED.store(true, Ordering::Release);
        sys::eventfd_signal(internal::get(internal::WAKE));
        return;
    }
    if flags & libc::SA_RESETHAND != 0 {
        // A one-shot handler (the trampoline itself never is): the action goes back to the
        // default now, as the kernel would have done. Node's exit handler re-raises the signal,
        // which must then meet the default action, not this handler again (an endless loop).
        HANDLER[i].store(libc::SIG_DFL, Ordering::Release);
    }
    // SAFETY: in a handler, with the kernel's arguments; the action is the one the program gave
    // for `sig` (recorded by `set_action`), or SIG_DFL.
    unsafe { sigrecord::run_action(sig, handler, flags, info, ctx) };
}

/// Whether `sig` at its default action drains this process rather than ending it: under
/// huptime's init, in a process whose helper thread runs (one that serves sockets; any other
/// process, such as one the program spawned, ends as it would).
fn drains(sig: c_int) -> bool {
    index(sig).is_some() && config::get().stop_drains && internal::get(internal::WAKE) >= 0
}

/// sigaction() for a signal that [`wraps`] says is wrapped: the program's handler is recorded and
/// the trampoline installed in its place (its flags kept, SA_SIGINFO added, never reset on
/// delivery; SIG_DFL and SIG_IGN are installed as they are); `old` reports the program's previous
/// choice, not the trampoline. Returns what sigaction() returns.
///
/// # Safety
/// `act` and `old` are null or valid (sigaction's contract).
pub unsafe fn set_action(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let i = index(sig).unwrap_or(0);
    let mut prev = signals::empty_action();
    // SAFETY: no new action, and our own `prev` to fill.
    let r = unsafe { real::sigaction(sig, core::ptr::null(), &mut prev) };
    if r != 0 {
        return r;
    }
    if prev.sa_sigaction == trampoline_address() {
        prev.sa_sigaction = HANDLER[i].load(Ordering::Acquire);
        prev.sa_flags = FLAGS[i].load(Ordering::Acquire) as c_int;
    }
    // SAFETY: `act` is null or valid (the contract above).
    if let Some(&a) = unsafe { act.as_ref() } {
        let mut w = a;
        if a.sa_sigaction == libc::SIG_IGN || (a.sa_sigaction == libc::SIG_DFL && !config::get().stop_drains) {
            HANDLER[i].store(libc::SIG_DFL, Ordering::Release);
        } else if a.sa_sigaction == libc::SIG_DFL {
            // Under huptime's init the default action of a stop signal is a drain (see `drains`).
            HANDLER[i].store(libc::SIG_DFL, Ordering::Release);
            w.sa_sigaction = trampoline_address();
            w.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        } else {
            HANDLER[i].store(a.sa_sigaction, Ordering::Release);
            FLAGS[i].store(a.sa_flags as usize, Ordering::Release);
            w.sa_sigaction = trampoline_address();
            w.sa_flags = (a.sa_flags | libc::SA_SIGINFO) & !libc::SA_RESETHAND;
        }
        // SAFETY: our own copy: the program's default or ignore action, or the trampoline, an
        // SA_SIGINFO handler of that signature that runs the program's recorded handler.
        let r = unsafe { real::sigaction(sig, &w, core::ptr::null_mut()) };
        if r != 0 {
            return r;
        }
    }
    if !old.is_null() {
        // SAFETY: non-null, hence valid for a write (the contract above).
        unsafe { *old = prev };
    }
    0
}
