//! bind, listen, accept, accept4 (also reached through syscall()), unlink and unlinkat.

use super::{enter, keep_errno};
use crate::fdtable::{self, BoundSocket, FdState, SOCKETS};
use crate::sockkey::SockKey;
use crate::{debug, handover, info, real, restart, sys};
use core::sync::atomic::Ordering;
use libc::{c_char, c_int, c_long, sockaddr, socklen_t};

/// bind(): hands back the inherited socket for an address the previous generation had bound;
/// otherwise binds for real and remembers the socket.
#[no_mangle]
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
        restart::ensure_helper();
        return 0;
    }
    let r = real::bind(fd, addr, len);
    keep_errno(r, |&r| {
        if r == 0 {
            if SOCKETS.lock().add(BoundSocket { fd, key, pending: false, inherited: false }) {
                fdtable::set_state(fd, FdState::Bound);
                debug!("bind({fd}, {key}): tracking");
            } else {
                info!("too many bound sockets; {key} (fd {fd}) will not survive restarts");
            }
            restart::ensure_helper();
        }
    })
}

/// listen(): a no-op on a socket inherited from the previous generation (it already listens).
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(_g) = enter() else { return real::listen(fd, backlog) };
    if fdtable::state(fd) == FdState::Bound {
        if let Some(s) = SOCKETS.lock().find_fd(fd) {
            if s.inherited && sys::is_serving_socket(fd) {
                return 0;
            }
        }
    }
    real::listen(fd, backlog)
}

unsafe fn do_accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int, four: bool) -> c_int {
    let call = || if four { real::accept4(fd, addr, len, flags) } else { real::accept(fd, addr, len) };
    let st = fdtable::state(fd);
    if st != FdState::Bound && st != FdState::Drained {
        return call();
    }
    let Some(_g) = enter() else { return call() };
    handover::mark_serving(fd);
    restart::ensure_helper();
    let blocking = !sys::nonblocking(fd);
    loop {
        if restart::draining() || fdtable::state(fd) == FdState::Drained {
            if !blocking {
                sys::set_errno(libc::EAGAIN);
                return -1;
            }
            restart::park();
        }
        if blocking {
            // Wait for a connection or for the drain signal, so a draining process never takes
            // one more connection from the queue its successor is serving.
            let hups = restart::HUP_COUNT.load(Ordering::Acquire);
            let mut p = [
                libc::pollfd { fd, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: fdtable::internal::get(fdtable::internal::DRAIN), events: libc::POLLIN, revents: 0 },
            ];
            let r = real::poll(p.as_mut_ptr(), 2, -1);
            if r < 0 {
                if sys::errno() == libc::EINTR && restart::HUP_COUNT.load(Ordering::Acquire) != hups {
                    continue; // our SIGHUP, not the program's signal
                }
                return -1;
            }
            if p[1].revents != 0 {
                continue;
            }
        }
        let r = call();
        if r >= 0 {
            fdtable::set_state(r, FdState::Conn);
        }
        return r;
    }
}

/// accept(): counts the connection; parks instead of accepting once the process drains.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    do_accept(fd, addr, len, 0, false)
}

/// accept4(): as accept().
#[no_mangle]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    do_accept(fd, addr, len, flags, true)
}

/// syscall(): routes accept/accept4 made through the generic entry point to the hooks above.
#[no_mangle]
pub unsafe extern "C" fn syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long {
    if n == libc::SYS_accept4 || n == libc::SYS_accept {
        if super::ACTIVE.load(Ordering::Relaxed) {
            let flags = if n == libc::SYS_accept4 { d as c_int } else { 0 };
            return do_accept(a as c_int, b as *mut sockaddr, c as *mut socklen_t, flags, true) as c_long;
        }
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
#[no_mangle]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    let Some(_g) = enter() else { return real::unlink(path) };
    if held_unix_path(path) {
        debug!("unlink of a served unix socket path skipped");
        return 0;
    }
    real::unlink(path)
}

/// unlinkat(): as unlink() for paths relative to the working directory or absolute.
#[no_mangle]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let Some(_g) = enter() else { return real::unlinkat(dirfd, path, flags) };
    let plain = dirfd == libc::AT_FDCWD || (!path.is_null() && *path == b'/' as c_char);
    if plain && flags & libc::AT_REMOVEDIR == 0 && held_unix_path(path) {
        debug!("unlinkat of a served unix socket path skipped");
        return 0;
    }
    real::unlinkat(dirfd, path, flags)
}
