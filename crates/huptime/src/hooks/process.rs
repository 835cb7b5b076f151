//! fork, vfork, _exit, _Exit, setsid, sigaction, signal.

use super::enter;
use crate::{forklocks, real, signals, sigrecord, stopsig};
use core::sync::atomic::Ordering;
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

#[cfg(target_arch = "x86_64")] // called by the x86_64 trampoline only
extern "C" fn vfork_begin() {
    crate::guard::set_vforking(true);
}

/// In the parent once the child has exec'd or exited: clears the mark; `r` is the system call's
/// result (a pid, or a negated errno).
#[cfg(target_arch = "x86_64")] // called by the x86_64 trampoline only
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

/// The program's sigaction() of a signal whose action the shim keeps apart (see [`stopsig`] and
/// [`sigrecord`]): what sigaction() returns, or `None` for any other signal (the real call then).
///
/// # Safety
/// `act` and `old` are null or valid (sigaction's contract).
unsafe fn program_action(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> Option<c_int> {
    if stopsig::wraps(sig) {
        // SAFETY: `act` and `old` as the contract above says.
        return Some(unsafe { stopsig::set_action(sig, act, old) });
    }
    // SAFETY: as above.
    unsafe { sigrecord::swap(sig, act, old) }.then_some(0)
}

/// sigaction(): SIGHUP and the wake signal stay huptime's; the program's choice is recorded and
/// reported back (and a wake signal that is not a wake goes to it, see `accept_gate`). SIGINT
/// and SIGTERM may be wrapped (see [`stopsig`]). In a vfork child the call is real (its actions
/// are its own), and reports the program's SIGHUP action where huptime's handler is.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int {
    // SAFETY: the program's `act` and `old`, null or valid (sigaction's contract): what
    // `program_action` asks for, or handed on unchanged.
    unsafe {
        if super::active_here() {
            if let Some(r) = program_action(sig, act, old) {
                return r;
            }
        }
        let r = real::sigaction(sig, act, old);
        if r == 0 && super::ACTIVE.load(Ordering::Relaxed) && !super::active_here() {
            sigrecord::inherited_view(sig, old); // a vfork child
        }
        r
    }
}

/// signal(): as sigaction().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t {
    let mut act = signals::empty_action();
    act.sa_sigaction = handler;
    act.sa_flags = libc::SA_RESTART;
    let mut old = signals::empty_action();
    // SAFETY: our own `act` and `old`.
    let kept = if super::active_here() { unsafe { program_action(sig, &act, &mut old) } } else { None };
    match kept {
        Some(0) => old.sa_sigaction,
        Some(_) => libc::SIG_ERR,
        // SAFETY: the program's handler, handed on unchanged: its contract with libc holds.
        None => unsafe { real::signal(sig, handler) },
    }
}
