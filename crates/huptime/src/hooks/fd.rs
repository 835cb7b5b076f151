//! close, close_range, closefrom, dup, dup2, dup3, epoll_create(1), epoll_ctl, poll, ppoll, select, pselect.

use super::{enter, keep_errno};
use crate::fdtable::{self, FdState, SOCKETS};
use crate::epollreg::{Registration, REGISTRATIONS};
use crate::{handover, helper, real, sys};
use libc::{c_int, c_uint};

/// Forgets what we knew about `fd` after the program closed or replaced it. With `--revive`, a
/// serving socket the program closes is kept (privately) for the next generation.
fn forget(fd: c_int) {
    let st = fdtable::state(fd);
    if st == FdState::Bound || st == FdState::Epoll {
        REGISTRATIONS.lock().forget_fd(fd);
    }
    if st == FdState::Bound {
        let removed = SOCKETS.lock().remove_fd(fd);
        if let Some(mut s) = removed {
            if crate::config::get().revive && sys::is_serving_socket(fd) {
                let copy = sys::dup_internal(fd);
                if copy >= 0 {
                    s.fd = copy;
                    s.kept = true;
                    SOCKETS.lock().add(s);
                    crate::debug!("keeping {} (closed by the program) for the next generation", s.key);
                }
            }
        }
    }
    fdtable::set_state(fd, FdState::None);
}

/// If `old` is a bound socket, records `new` as another fd for it.
fn alias(old: c_int, new: c_int) {
    if new < 0 || fdtable::state(old) != FdState::Bound {
        return;
    }
    let mut t = SOCKETS.lock();
    if let Some(mut s) = t.find_fd(old) {
        s.fd = new;
        if t.add(s) {
            fdtable::set_state(new, FdState::Bound);
            fdtable::set_mode(new, fdtable::state_and_mode(old).1);
        }
    }
}

/// close(): keeps the counts right; the shim's own fds look closed already (EBADF).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    match fdtable::state(fd) {
        FdState::None => return real::close(fd),
        FdState::Internal if super::ACTIVE.load(core::sync::atomic::Ordering::Relaxed) => {
            sys::set_errno(libc::EBADF);
            return -1;
        }
        _ => {}
    }
    let Some(_g) = enter() else { return real::close(fd) };
    // Forget first: once closed, another thread may get this number back from accept().
    let was = fdtable::state(fd);
    forget(fd);
    if was == FdState::Conn {
        crate::debug!("connection fd {fd} closed ({} open)", fdtable::CONNS.load(core::sync::atomic::Ordering::Relaxed));
    }
    real::close(fd)
}

/// close_range(): closes what the program asked for except the shim's own fds.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let Some(_g) = enter() else { return real::close_range(first, last, flags) };
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 || first > last {
        return real::close_range(first, last, flags);
    }
    let top = (last as u64).min(fdtable::MAX_FDS as u64 - 1) as u32;
    let mut seg_start: Option<u32> = None;
    let mut result = 0;
    let mut fd = first;
    while fd <= top {
        let internal = fdtable::state(fd as c_int) == FdState::Internal;
        if internal {
            if let Some(s) = seg_start.take() {
                result |= real::close_range(s, fd - 1, flags);
            }
        } else {
            forget(fd as c_int);
            if seg_start.is_none() {
                seg_start = Some(fd);
            }
        }
        if fd == u32::MAX {
            break;
        }
        fd += 1;
    }
    if let Some(s) = seg_start {
        result |= real::close_range(s, top, flags);
    }
    if last > top && (top as u64) < u32::MAX as u64 {
        result |= real::close_range(top.max(first.saturating_sub(1)) + 1, last, flags);
    }
    if result != 0 {
        -1
    } else {
        0
    }
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
    keep_errno(r, |&r| alias(old, r))
}

fn do_dup3(old: c_int, new: c_int, flags: c_int, three: bool) -> c_int {
    let call = || if three { real::dup3(old, new, flags) } else { real::dup2(old, new) };
    let Some(_g) = enter() else { return call() };
    if old == new {
        return call();
    }
    if fdtable::state(new) == FdState::Internal {
        sys::relocate_internal(new);
    }
    let r = call();
    keep_errno(r, |&r| {
        if r >= 0 {
            forget(new);
            alias(old, new);
        }
    })
}

/// dup2(): moves a shim fd out of the way first; tracks copies of bound sockets.
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn dup2(old: c_int, new: c_int) -> c_int {
    do_dup3(old, new, 0, false)
}

/// dup3(): as dup2().
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn dup3(old: c_int, new: c_int, flags: c_int) -> c_int {
    do_dup3(old, new, flags, true)
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

/// epoll_ctl(): registering a bound socket means the program is serving (readiness), and the
/// registration is remembered (a draining process that takes its listeners back restores it). The
/// EPOLLEXCLUSIVE flag is dropped for bound sockets: with it the kernel wakes a single epoll
/// instance per connection, and when that one belongs to a draining generation (which no longer
/// accepts) the wakeup is lost and the connection waits until the next one arrives.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int {
    // SAFETY: the program's arguments, `ev` null or valid (epoll_ctl's contract), handed on
    // unchanged or, for a bound socket, `ev` replaced by the shim's copy of it.
    let call = |ev| unsafe { real::epoll_ctl(ep, op, fd, ev) };
    match fdtable::state(fd) {
        FdState::Bound => {}
        FdState::Drained => {
            // A worker forked by a draining master (nginx respawns those that drain away).
            if let Some(_g) = enter() {
                helper::start_if_wanted();
            }
            return call(ev);
        }
        _ => return call(ev),
    }
    let Some(_g) = enter() else { return call(ev) };
    if op == libc::EPOLL_CTL_DEL {
        let r = call(ev);
        return keep_errno(r, |&r| {
            if r == 0 {
                REGISTRATIONS.lock().remove(ep, fd);
            }
        });
    }
    if (op != libc::EPOLL_CTL_ADD && op != libc::EPOLL_CTL_MOD) || ev.is_null() {
        return call(ev);
    }
    // SAFETY: non-null, hence a valid event (epoll_ctl's contract).
    let mut shared = unsafe { *ev };
    shared.events &= !(libc::EPOLLEXCLUSIVE as u32);
    let r = call(&mut shared);
    keep_errno(r, |&r| {
        if r != 0 {
            return;
        }
        if op == libc::EPOLL_CTL_ADD {
            if fdtable::state(ep) != FdState::Epoll {
                fdtable::set_state(ep, FdState::Epoll);
            }
            handover::mark_serving(fd);
            helper::ensure();
        }
        let reg = Registration { ep, fd, events: shared.events, data: shared.u64 };
        if !REGISTRATIONS.lock().set(reg) {
            crate::limits::reached(crate::limits::Limit::EpollRegistrations, fd);
        }
    })
}

/// The program waits for connections on bound socket `fd` (poll, select): it serves.
fn waits_on_bound(fd: c_int) {
    helper::start_if_wanted();
    handover::mark_serving(fd);
}

/// Whether poll/select calls need scanning (cheap check for the hot path).
#[inline]
fn scans() -> bool {
    handover::awaiting() || helper::wanted()
}

/// Marks serving each bound socket in a poll set that waits for input.
///
/// # Safety
/// `fds` is null or points to `n` pollfds (poll's contract).
unsafe fn scan_pollfds(fds: *const libc::pollfd, n: libc::nfds_t) {
    if fds.is_null() {
        return;
    }
    // SAFETY: non-null, hence `n` pollfds (the contract above); the count is capped, not grown.
    for p in unsafe { core::slice::from_raw_parts(fds, n.min(65536) as usize) } {
        if p.events & libc::POLLIN != 0 && matches!(fdtable::state(p.fd), FdState::Bound | FdState::Drained) {
            waits_on_bound(p.fd);
        }
    }
}

/// Marks serving each bound socket in a select read set.
///
/// # Safety
/// `set` is null or points to an fd_set (select's contract).
unsafe fn scan_fdset(n: c_int, set: *const libc::fd_set) {
    if set.is_null() {
        return;
    }
    for fd in 0..n.clamp(0, libc::FD_SETSIZE as c_int) {
        // SAFETY: `set` is a valid fd_set (the contract above) and `fd` is below FD_SETSIZE.
        if unsafe { libc::FD_ISSET(fd, set) } && matches!(fdtable::state(fd), FdState::Bound | FdState::Drained) {
            waits_on_bound(fd);
        }
    }
}

/// poll(): waiting on a bound socket means the program is serving (readiness).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn poll(fds: *mut libc::pollfd, n: libc::nfds_t, timeout: c_int) -> c_int {
    // SAFETY: the program's arguments (poll's contract: `fds` holds `n` pollfds), read here and
    // handed on unchanged.
    unsafe {
        if scans() {
            if let Some(_g) = enter() {
                scan_pollfds(fds, n);
            }
        }
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
    let mut buf = crate::signals::empty_set();
    // SAFETY: the program's arguments (ppoll's contract: `fds` holds `n` pollfds, `ts` and `mask`
    // are null or valid), read here and handed on, `mask` as is or as its copy in `buf`, which
    // lives across the call.
    unsafe {
        if scans() {
            if let Some(_g) = enter() {
                scan_pollfds(fds, n);
            }
        }
        real::ppoll(fds, n, ts, crate::signals::keeping_hup_blocked(mask, &mut buf))
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
        if scans() {
            if let Some(_g) = enter() {
                scan_fdset(n, r);
            }
        }
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
    let mut buf = crate::signals::empty_set();
    // SAFETY: the program's arguments (pselect's contract: each set, `t` and `m` null or valid),
    // read here and handed on, `m` as is or as its copy in `buf`, which lives across the call.
    unsafe {
        if scans() {
            if let Some(_g) = enter() {
                scan_fdset(n, r);
            }
        }
        real::pselect(n, r, w, e, t, crate::signals::keeping_hup_blocked(m, &mut buf))
    }
}
