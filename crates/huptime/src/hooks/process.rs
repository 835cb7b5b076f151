//! fork, signal, sigaction.

use super::enter;
use crate::{forklocks, notify, real};
use core::sync::atomic::{AtomicUsize, Ordering};
use libc::c_int;

/// fork(): every lock of the shim is held across the fork so the child never inherits a table
/// mid-update; the child becomes a worker of this generation. It runs nothing POSIX forbids in
/// the child of a multithreaded program (its helper thread starts only when it serves).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fork() -> libc::pid_t {
    // SAFETY: the program's fork: what its child may do is the program's business (POSIX's rules
    // for a multithreaded parent); the shim's part in the child keeps to them (see above).
    let fork = || unsafe { real::fork() };
    let Some(g) = enter() else { return fork() };
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    forklocks::before_fork();
    let pid = fork();
    forklocks::after_fork();
    if pid == 0 {
        // SAFETY: getpid has no preconditions (and is async-signal-safe).
        super::OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
        drop(g);
        crate::helper::after_fork_child(parent);
        return 0;
    }
    if pid > 0 && crate::helper::wanted() {
        // A forked copy that forks in turn runs the program (a daemon's master starting its
        // workers): it follows restarts from now on.
        crate::helper::ensure();
    }
    pid
}

/// vfork(): the real system call, with the calling thread marked as vforking meanwhile, so that
/// the hooked calls the child makes on this thread's memory leave the shim's state alone (see
/// [`crate::guard`]). Written like glibc's: the return address is kept in a register (rdi, which
/// the kernel preserves) rather than on the stack the child goes on to use.
#[cfg(target_arch = "x86_64")]
#[cfg_attr(not(test), no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn vfork() -> libc::pid_t {
    core::arch::naked_asm!(
        "sub rsp, 8",
        "call {begin}",
        "add rsp, 8",
        "pop rdi",
        "mov eax, {nr}",
        "syscall",
        "push rdi",
        "test rax, rax",
        "jz 2f",
        "mov rdi, rax",
        "sub rsp, 8",
        "call {end}",
        "add rsp, 8",
        "2:",
        "ret",
        begin = sym vfork_begin,
        end = sym vfork_end,
        nr = const libc::SYS_vfork,
    )
}

extern "C" fn vfork_begin() {
    crate::guard::set_vforking(true);
}

/// In the parent once the child has exec'd or exited: clears the mark; `r` is the system call's
/// result (a pid, or a negated errno).
extern "C" fn vfork_end(r: libc::c_long) -> libc::pid_t {
    crate::guard::set_vforking(false);
    if r < 0 {
        crate::sys::set_errno(-r as c_int);
        return -1;
    }
    r as libc::pid_t
}

/// _exit(): with `--revive`, the program is started again instead (same pid, sockets kept).
/// (A normal exit() is caught by the on_exit handler the constructor registers.)
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn _exit(status: c_int) -> ! {
    if super::active_here() {
        crate::revive::instead_of_exit(status);
    }
    real::_exit(status);
    std::process::abort()
}

/// _Exit(): as _exit().
#[cfg_attr(not(test), no_mangle)]
#[allow(non_snake_case)]
pub extern "C" fn _Exit(status: c_int) -> ! {
    _exit(status)
}

/// Handlers the program installed for SIGINT and SIGTERM, called through `stop_trampoline` in
/// `--revive` mode so that a stop request is noticed (and not answered by a revival).
static STOP_HANDLER: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];
static STOP_FLAGS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// SIGINT/SIGTERM handlers are wrapped with `--revive` (a stop must not be revived) and when
/// notifying systemd (STOPPING=1).
fn wraps_stop_signals() -> bool {
    crate::config::get().revive || notify::enabled()
}

/// When notifying systemd, SIGTERM says STOPPING=1 even if the program leaves it at its default
/// action (constructor time; the program's own handlers are wrapped as it installs them).
pub fn watch_stop_for_notify() {
    if !notify::enabled() {
        return;
    }
    // SAFETY: reading and (if default) replacing the disposition of SIGTERM.
    unsafe {
        let mut cur: libc::sigaction = core::mem::zeroed();
        if real::sigaction(libc::SIGTERM, core::ptr::null(), &mut cur) != 0 || cur.sa_sigaction != libc::SIG_DFL {
            return;
        }
        STOP_HANDLER[1].store(0, Ordering::Release);
        let mut w: libc::sigaction = core::mem::zeroed();
        w.sa_sigaction = stop_trampoline as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        w.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        real::sigaction(libc::SIGTERM, &w, core::ptr::null_mut());
    }
}

fn stop_index(sig: c_int) -> Option<usize> {
    match sig {
        libc::SIGINT => Some(0),
        libc::SIGTERM => Some(1),
        _ => None,
    }
}

extern "C" fn stop_trampoline(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    crate::revive::stop_requested();
    if sig == libc::SIGTERM && !crate::lineage::is_worker() {
        notify::stopping();
    }
    let Some(i) = stop_index(sig) else { return };
    let h = STOP_HANDLER[i].load(Ordering::Acquire);
    if h == libc::SIG_DFL || h == 0 {
        // Installed by `watch_stop_for_notify` over the default action: do that action now.
        // SAFETY: a zeroed sigaction with SIG_DFL is the default action; sigaction and raise are
        // async-signal-safe. The raised signal is delivered once this handler returns.
        unsafe {
            let mut d: libc::sigaction = core::mem::zeroed();
            d.sa_sigaction = libc::SIG_DFL;
            real::sigaction(sig, &d, core::ptr::null_mut());
            libc::raise(sig);
        }
        return;
    }
    if h == libc::SIG_IGN {
        return;
    }
    // SAFETY: `h` is the handler the program installed (neither SIG_DFL nor SIG_IGN, so a
    // function), called with the signature its SA_SIGINFO flag declares and with the kernel's
    // arguments for this delivery, as the kernel would have called it.
    unsafe {
        if STOP_FLAGS[i].load(Ordering::Acquire) as c_int & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) = core::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(c_int) = core::mem::transmute(h);
            f(sig);
        }
    }
}

/// sigaction() for SIGINT or SIGTERM when they are wrapped: the program's handler is recorded and
/// `stop_trampoline` installed in its place (its flags kept, SA_SIGINFO added, never reset on
/// delivery); `old` reports the program's previous choice, not the trampoline.
///
/// # Safety
/// `act` and `old` are null or valid (sigaction's contract).
unsafe fn wrap_stop_signal(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    let i = stop_index(sig).unwrap_or(0);
    let mut prev = crate::signals::empty_action();
    // SAFETY: a null new action and our own `prev` to fill.
    let r = unsafe { real::sigaction(sig, core::ptr::null(), &mut prev) };
    if r != 0 {
        return r;
    }
    if prev.sa_sigaction == stop_trampoline as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize {
        prev.sa_sigaction = STOP_HANDLER[i].load(Ordering::Acquire);
        prev.sa_flags = STOP_FLAGS[i].load(Ordering::Acquire) as c_int;
    }
    // SAFETY: `act` is null or valid (the contract above).
    if let Some(&a) = unsafe { act.as_ref() } {
        if a.sa_sigaction == libc::SIG_DFL || a.sa_sigaction == libc::SIG_IGN {
            STOP_HANDLER[i].store(0, Ordering::Release);
            // SAFETY: the program's own action (a default or ignore), from our copy.
            let r = unsafe { real::sigaction(sig, &a, core::ptr::null_mut()) };
            if r != 0 {
                return r;
            }
        } else {
            STOP_HANDLER[i].store(a.sa_sigaction, Ordering::Release);
            STOP_FLAGS[i].store(a.sa_flags as usize, Ordering::Release);
            let mut w = a;
            w.sa_sigaction = stop_trampoline as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
            w.sa_flags = (a.sa_flags | libc::SA_SIGINFO) & !libc::SA_RESETHAND;
            // SAFETY: installs our trampoline, an SA_SIGINFO handler of that very signature
            // that only calls async-signal-safe code and the program's recorded handler.
            let r = unsafe { real::sigaction(sig, &w, core::ptr::null_mut()) };
            if r != 0 {
                return r;
            }
        }
    }
    if !old.is_null() {
        // SAFETY: non-null, hence valid for a write (the contract above).
        unsafe { *old = prev };
    }
    0
}

/// setsid(): a forked copy that starts its own session is daemonizing: it lets go of the
/// terminal or pipes it was started with, so the shim lets go of its saved copies of them too
/// (otherwise whoever started the program would never see them close).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn setsid() -> libc::pid_t {
    let r = real::setsid();
    super::keep_errno(r, |&r| {
        if r >= 0 && super::active_here() && crate::lineage::is_forked_copy() {
            crate::launch::release_stdio();
            // The daemon is the generation's master from now on: it publishes the state.
            crate::lifecycle::republish();
        }
    })
}

/// sigaction(): SIGHUP and the wake signal stay huptime's; the program's choice is recorded and
/// reported back (and a wake signal that is not a wake goes to it, see `accept_gate`).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // SAFETY: the program's `act` and `old`, null or valid (sigaction's contract): handed on
    // unchanged, or read and written by the wrapping and recording calls that ask for just that.
    unsafe {
        if !super::active_here() {
            return real::sigaction(sig, act, old);
        }
        if stop_index(sig).is_some() && wraps_stop_signals() {
            return wrap_stop_signal(sig, act, old);
        }
        if crate::signals::swap_program_action(sig, act, old) {
            return 0;
        }
        real::sigaction(sig, act, old)
    }
}

/// signal(): as sigaction().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    if !super::active_here() {
        // SAFETY: the program's handler, handed on unchanged: its contract with libc holds.
        return unsafe { real::signal(sig, handler) };
    }
    let mut a = crate::signals::empty_action();
    a.sa_sigaction = handler;
    a.sa_flags = libc::SA_RESTART;
    let mut old = crate::signals::empty_action();
    if stop_index(sig).is_some() && wraps_stop_signals() {
        // SAFETY: our own `a` and `old`.
        return if unsafe { wrap_stop_signal(sig, &a, &mut old) } == 0 { old.sa_sigaction } else { libc::SIG_ERR };
    }
    // SAFETY: our own `a` and `old`.
    if unsafe { crate::signals::swap_program_action(sig, &a, &mut old) } {
        return old.sa_sigaction;
    }
    // SAFETY: as above.
    unsafe { real::signal(sig, handler) }
}
