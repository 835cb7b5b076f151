//! close, close_range, closefrom, dup, dup2, dup3, epoll_create(1), epoll_ctl, poll, ppoll, select,
//! pselect: the fd bookkeeping is [`crate::fdtrack`]'s, the waits on bound sockets [`crate::waits`]'.

use super::{enter, enter_if, keep_errno};
use crate::fdtable::{self, FdState};
use crate::waits::{self, EpollCall};
use crate::{fdtrack, real, signals, sys};
use libc::{c_int, c_uint};

/// close(): keeps the counts right; the shim's own fds look closed already (EBADF).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    if fdtrack::hidden(fd) {
        sys::set_errno(libc::EBADF);
        return -1;
    }
    let Some(_g) = enter_if(fdtable::state(fd) != FdState::None) else { return real::close(fd) };
    fdtrack::closing(fd);
    real::close(fd)
}

/// close_range(): closes what the program asked for except the shim's own fds.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(_g) = enter() else { return real::close_range(first, last, flags) };
    fdtrack::close_range(first, last, flags, |a, b| real::close_range(a, b, flags))
}

/// closefrom() (glibc 2.34+): glibc implements it with an internal close_range that no hook
/// sees, so it would close the shim's own fds and the inherited sockets; it goes through the
/// close_range hook instead. Like glibc's, it cannot fail: where close_range is missing (Linux
/// before 5.9) the fds are closed one by one through the close hook.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn closefrom(low: c_int) {
    let low = low.max(0) as c_uint;
    if close_range(low, c_uint::MAX, 0) == 0 {
        return;
    }
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit into ours.
    let top = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 { rl.rlim_cur.min(1 << 20) as c_uint } else { 65536 };
    for fd in low..top {
        close(fd as c_int);
    }
}

/// dup(): a copy of a bound socket is tracked too.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn dup(old: c_int) -> c_int {
    let Some(_g) = enter() else { return real::dup(old) };
    let r = real::dup(old);
    keep_errno(r, |&r| fdtrack::alias(old, r))
}

/// dup2() or dup3() of `old` onto `new`, made by `call`.
fn dup_onto(old: c_int, new: c_int, call: impl Fn() -> c_int) -> c_int {
    let Some(_g) = enter_if(old != new) else { return call() };
    fdtrack::clear_way(new);
    let r = call();
    keep_errno(r, |&r| {
        if r >= 0 {
            fdtrack::replaced(old, new);
        }
    })
}

/// dup2(): moves a shim fd out of the way first; tracks copies of bound sockets.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    dup_onto(old, new, || real::dup2(old, new))
}

/// dup3(): as dup2().
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    dup_onto(old, new, || real::dup3(old, new, flags))
}

/// epoll_create(): remembered, so draining can take bound sockets out of it.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn epoll_create(size: c_int) -> c_int {
    let r = real::epoll_create(size);
    if r >= 0 && super::active_here() {
        fdtable::set_state(r, FdState::Epoll);
    }
    r
}

/// epoll_create1(): as epoll_create().
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn epoll_create1(flags: c_int) -> c_int {
    let r = real::epoll_create1(flags);
    if r >= 0 && super::active_here() {
        fdtable::set_state(r, FdState::Epoll);
    }
    r
}

/// epoll_ctl(): on a bound socket, see [`EpollCall`] (registering it means the program serves;
/// the registration is remembered; EPOLLEXCLUSIVE is dropped).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: the program's arguments, `ev` null or valid (epoll_ctl's contract), handed on
    // unchanged or, for a bound socket, `ev` replaced by the shim's copy of it.
    let call = |ev| unsafe { real::epoll_ctl(ep, op, fd, ev) };
    let Some(_g) = enter_if(waits::on_bound(fd)) else { return call(ev) };
    // SAFETY: `ev` is null or points to the program's event (epoll_ctl's contract).
    let mut c = EpollCall::new(ep, op, fd, unsafe { ev.as_ref() });
    let r = call(c.event().map_or(ev, |e| e));
    keep_errno(r, |&r| c.done(r))
}

/// Tells [`waits`] about a poll set, when it wants to know.
///
/// # Safety
/// `fds` is null or points to `n` pollfds (poll's contract).
unsafe fn note_poll(fds: *const libc::pollfd, n: libc::nfds_t) {
    if let Some(_g) = enter_if(waits::scans() && !fds.is_null()) {
        // SAFETY: non-null, hence `n` pollfds (the contract above); the count is capped, not grown.
        waits::polls(unsafe { core::slice::from_raw_parts(fds, n.min(65536) as usize) });
    }
}

/// Tells [`waits`] about a select read set, when it wants to know.
///
/// # Safety
/// `read` is null or points to an fd_set (select's contract).
unsafe fn note_select(n: c_int, read: *const libc::fd_set) {
    if let Some(_g) = enter_if(waits::scans()) {
        // SAFETY: null or a valid fd_set (the contract above).
        if let Some(set) = unsafe { read.as_ref() } {
            waits::selects(n, set);
        }
    }
}

/// poll(): waiting on a bound socket means the program is serving (readiness).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the program's arguments (poll's contract: `fds` holds `n` pollfds), read here and
    // handed on unchanged.
    unsafe {
        note_poll(fds, n);
        real::poll(fds, n, timeout)
    }
}

/// ppoll(): as poll(); the temporary mask keeps SIGHUP blocked (see `signals`).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ppoll(
    fds: *mut libc::pollfd,
    n: libc::nfds_t,
    ts: *const libc::timespec,
    mask: *const libc::sigset_t,
) -> c_int {
    let mut buf = signals::empty_set();
    // SAFETY: the program's arguments (ppoll's contract: `fds` holds `n` pollfds, `ts` and `mask`
    // are null or valid), read here and handed on, `mask` as is or as its copy in `buf`, which
    // lives across the call.
    unsafe {
        note_poll(fds, n);
        real::ppoll(fds, n, ts, signals::keeping_hup_blocked(mask, &mut buf))
    }
}

/// select(): as poll().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn select(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *mut libc::timeval,
) -> c_int {
    // SAFETY: the program's arguments (select's contract: each set and `t` null or valid), read
    // here and handed on unchanged.
    unsafe {
        note_select(n, r);
        real::select(n, r, w, e, t)
    }
}

/// pselect(): as poll(); the temporary mask keeps SIGHUP blocked.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn pselect(
    n: c_int,
    r: *mut libc::fd_set,
    w: *mut libc::fd_set,
    e: *mut libc::fd_set,
    t: *const libc::timespec,
    m: *const libc::sigset_t,
) -> c_int {
    let mut buf = signals::empty_set();
    // SAFETY: the program's arguments (pselect's contract: each set, `t` and `m` null or valid),
    // read here and handed on, `m` as is or as its copy in `buf`, which lives across the call.
    unsafe {
        note_select(n, r);
        real::pselect(n, r, w, e, t, signals::keeping_hup_blocked(m, &mut buf))
    }
}
