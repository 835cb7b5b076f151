//! sigprocmask, pthread_sigmask, sigsuspend, epoll_pwait, pthread_create: SIGHUP stays blocked in
//! the program's threads while the program sees the masks it set (see `signals`).

use crate::{real, signals};
use libc::{c_int, c_void, sigset_t};

/// sigprocmask(): SIGHUP stays blocked; `old` and later queries show the program's own choice.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigprocmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int {
    // SAFETY: `set` and `old` are the program's, null or valid (sigprocmask's contract, which
    // `program_mask` asks for); the real call gets them or `program_mask`'s own copy of `set`.
    unsafe { signals::program_mask(how, set, old, |h, s, o| real::sigprocmask(h, s, o)) }
}

/// pthread_sigmask(): as sigprocmask().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pthread_sigmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int {
    // SAFETY: as in sigprocmask() above.
    unsafe { signals::program_mask(how, set, old, |h, s, o| real::pthread_sigmask(h, s, o)) }
}

/// sigsuspend(): waits with the program's mask, SIGHUP kept blocked.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sigsuspend(mask: *const sigset_t) -> c_int {
    let mut buf = signals::empty_set();
    // SAFETY: `mask` is the program's, null or valid (sigsuspend's contract); the real call gets
    // it or its copy in `buf`, which lives across the call.
    unsafe { real::sigsuspend(signals::keeping_hup_blocked(mask, &mut buf)) }
}

/// epoll_pwait(): as epoll_wait() with the program's temporary mask, SIGHUP kept blocked.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn epoll_pwait(ep: c_int, ev: *mut libc::epoll_event, n: c_int, timeout: c_int, mask: *const sigset_t) -> c_int {
    let mut buf = signals::empty_set();
    // SAFETY: `ev` and `n` are the program's, handed on; `mask` is null or valid (epoll_pwait's
    // contract) and goes on as is or as its copy in `buf`, which lives across the call.
    unsafe { real::epoll_pwait(ep, ev, n, timeout, signals::keeping_hup_blocked(mask, &mut buf)) }
}

/// What a new thread needs to start with its creator's view of huptime's signals.
struct Start {
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
    view: u8,
}

extern "C-unwind" fn start_with_view(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Box leaked by pthread_create below, taken back exactly once.
    let s = unsafe { Box::from_raw(p as *mut Start) };
    let Start { start, arg, view } = *s;
    signals::adopt_view(view);
    start(arg)
}

/// pthread_create(): the new thread inherits its creator's view of SIGHUP (its real mask, with
/// SIGHUP blocked, it inherits anyway). Only a creator whose view differs from the program's
/// start needs carrying it over; other threads start untouched.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pthread_create(
    t: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut c_void) -> *mut c_void,
    arg: *mut c_void,
) -> c_int {
    let Some(view) = (if super::active_here() { signals::view_to_inherit() } else { None }) else {
        // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
        return unsafe { real::pthread_create(t, attr, start, arg) };
    };
    let p = Box::into_raw(Box::new(Start { start, arg, view }));
    // SAFETY: the trampoline has the C ABI pthread expects (C-unwind: pthread_exit unwinds through it).
    let tramp: extern "C" fn(*mut c_void) -> *mut c_void = unsafe { core::mem::transmute(start_with_view as extern "C-unwind" fn(*mut c_void) -> *mut c_void) };
    // SAFETY: `t` and `attr` are the program's (pthread_create's contract); the new thread gets
    // the trampoline and the leaked Box it takes back once.
    let r = unsafe { real::pthread_create(t, attr, tramp, p.cast()) };
    if r != 0 {
        // SAFETY: no thread was started: the Box is still only ours, taken back once.
        drop(unsafe { Box::from_raw(p) });
    }
    r
}
