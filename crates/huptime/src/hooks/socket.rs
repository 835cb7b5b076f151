//! bind, listen, accept, accept4 (also reached through syscall()), unlink and unlinkat.

use super::{enter, keep_errno};
use crate::fdtable::{self, BoundSocket, FdState, SOCKETS};
use crate::sockkey::SockKey;
use crate::{accept_gate, handover, helper, lifecycle, real, signals, sys};
use core::sync::atomic::Ordering;
use libc::{c_char, c_int, c_long, sockaddr, socklen_t};

/// bind(): hands back the inherited socket for an address the previous generation had bound;
/// otherwise binds for real and remembers the socket.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(_g) = enter() else { return real::bind(fd, addr, len) };
    if addr.is_null() || len < 2 {
        return real::bind(fd, addr, len);
    }
    let raw = core::slice::from_raw_parts(addr as *const u8, len as usize);
    let Some(key) = SockKey::from_sockaddr(sys::socktype(fd), raw) else {
        return real::bind(fd, addr, len);
    };
    if handover::claim(fd, &key) {
        helper::ensure();
        return 0;
    }
    if crate::config::get().reuseport && (key.family == libc::AF_INET as u16 || key.family == libc::AF_INET6 as u16) {
        let one: c_int = 1;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const c_int).cast(), 4);
    }
    let r = real::bind(fd, addr, len);
    keep_errno(r, |&r| {
        if r == 0 {
            if SOCKETS.lock().add(BoundSocket { fd, key, pending: false, inherited: false, shadow: -1, kept: false, waited: false }) {
                fdtable::set_state(fd, FdState::Bound);
                debug!("bind({fd}, {key}): tracking");
            } else {
                info!("too many bound sockets; {key} (fd {fd}) will not survive restarts");
            }
            helper::ensure();
        }
    })
}

/// listen(): a no-op on a socket inherited from the previous generation (it already listens).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(_g) = enter() else { return real::listen(fd, backlog) };
    if fdtable::state(fd) == FdState::Bound {
        // Look up first: the table lock must be released before mark_serving takes it again.
        let inherited = SOCKETS.lock().find_fd(fd).map(|s| s.inherited).unwrap_or(false);
        if inherited && sys::is_serving_socket(fd) {
            handover::mark_listening(fd);
            return 0;
        }
    }
    let r = real::listen(fd, backlog);
    if r == 0 && fdtable::state(fd) == FdState::Bound {
        handover::mark_listening(fd);
    }
    r
}

unsafe fn do_accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int, four: bool) -> c_int {
    let raw = |fd: c_int| if four { real::accept4(fd, addr, len, flags) } else { real::accept(fd, addr, len) };
    let st = fdtable::state(fd);
    if st != FdState::Bound && st != FdState::Drained {
        return raw(fd);
    }
    let Some(_g) = enter() else { return raw(fd) };
    // A retry below (after our own SIGHUP, a restartable signal, a lost race) leaves the failed
    // attempt's errno behind; a successful accept restores the program's, as libc leaves it.
    let saved_errno = sys::errno();
    helper::ensure();
    handover::mark_serving(fd);
    let blocking = !sys::nonblocking(fd);
    // A blocking accept can be woken by the drain (see `signals`); a non-blocking one returns.
    let call_on = |fd: c_int| if blocking { signals::with_wake_window(|| raw(fd)) } else { raw(fd) };
    // From here until a connection is handed to the program (and counted), or the thread parks,
    // a draining process must not end: this thread may be about to take a connection.
    let mut slot = accept_gate::enter();
    loop {
        if lifecycle::draining() || fdtable::state(fd) == FdState::Drained {
            if !blocking {
                accept_gate::leave(slot);
                sys::set_errno(libc::EAGAIN);
                return -1;
            }
            match accept_gate::accept_while_draining(fd, slot, &|real_fd| call_on(real_fd)) {
                Some(r) => return r,
                None => {
                    // The drain was called off: this process serves again.
                    slot = accept_gate::enter();
                    continue;
                }
            }
        }
        if blocking {
            if !sys::is_listening(fd) {
                // A datagram socket, or one not listening yet: accept() fails at once (EINVAL,
                // EOPNOTSUPP), where poll() below would wait forever.
                accept_gate::leave(slot);
                return call_on(fd);
            }
            // Wait for a connection or for the drain signal, so a draining process never takes
            // one more connection from the queue its successor is serving.
            let hups = signals::count();
            let mut p = [
                libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: fdtable::internal::get(fdtable::internal::DRAIN), events: libc::POLLIN, revents: 0 },
            ];
            let r = real::poll(p.as_mut_ptr(), 2, -1);
            if r < 0 {
                if sys::errno() == libc::EINTR && signals::count() != hups {
                    continue; // our SIGHUP, not the program's signal
                }
                if sys::errno() == libc::EINTR && sys::every_handler_restarts() {
                    continue; // the kernel would have restarted the program's accept()
                }
                accept_gate::leave(slot);
                return -1;
            }
            if p[1].revents != 0 {
                continue;
            }
        }
        let r = call_on(fd);
        if r >= 0 {
            fdtable::set_state(r, FdState::Conn);
            accept_gate::accepted();
            debug!("accepted fd {r} on fd {fd} ({} open)", fdtable::CONNS.load(Ordering::Relaxed));
            sys::set_errno(saved_errno);
        } else if sys::errno() == libc::EINTR && lifecycle::draining() {
            continue; // interrupted by the drain: never take a connection now
        } else if blocking && sys::errno() == libc::EAGAIN {
            continue; // another process took it between poll and accept
        }
        accept_gate::leave(slot);
        return r;
    }
}

/// accept(): counts the connection; parks instead of accepting once the process drains.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    do_accept(fd, addr, len, 0, false)
}

/// accept4(): as accept().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    do_accept(fd, addr, len, flags, true)
}

/// syscall(): routes the calls the shim tracks, made through the generic entry point (libuv
/// closes fds with `syscall(SYS_close)`), to the same hooks as the libc functions.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long {
    if super::ACTIVE.load(Ordering::Relaxed) {
        use super::fd;
        let r = match n {
            libc::SYS_accept4 => do_accept(a as c_int, b as *mut sockaddr, c as *mut socklen_t, d as c_int, true),
            libc::SYS_accept => do_accept(a as c_int, b as *mut sockaddr, c as *mut socklen_t, 0, true),
            libc::SYS_close => fd::close(a as c_int),
            libc::SYS_dup2 => fd::dup2(a as c_int, b as c_int),
            libc::SYS_dup3 => fd::dup3(a as c_int, b as c_int, c as c_int),
            libc::SYS_close_range => fd::close_range(a as libc::c_uint, b as libc::c_uint, c as c_int),
            libc::SYS_bind => bind(a as c_int, b as *const sockaddr, c as socklen_t),
            libc::SYS_listen => listen(a as c_int, b as c_int),
            _ => return real::syscall(n, a, b, c, d, e, f),
        };
        return r as c_long;
    }
    real::syscall(n, a, b, c, d, e, f)
}

fn held_unix_path(path: *const c_char) -> bool {
    if path.is_null() {
        return false;
    }
    // SAFETY: the caller passes a NUL-terminated path.
    let p = unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes();
    SOCKETS.lock().holds_unix_path(p)
}

/// unlink(): keeps the path of a unix socket another generation still serves.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    let Some(_g) = enter() else { return real::unlink(path) };
    if held_unix_path(path) {
        debug!("unlink of a served unix socket path skipped");
        return 0;
    }
    real::unlink(path)
}

/// unlinkat(): as unlink() for paths relative to the working directory or absolute.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let Some(_g) = enter() else { return real::unlinkat(dirfd, path, flags) };
    let plain = dirfd == libc::AT_FDCWD || (!path.is_null() && *path == b'/' as c_char);
    if plain && flags & libc::AT_REMOVEDIR == 0 && held_unix_path(path) {
        debug!("unlinkat of a served unix socket path skipped");
        return 0;
    }
    real::unlinkat(dirfd, path, flags)
}
