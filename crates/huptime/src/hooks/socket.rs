//! bind, listen, accept, accept4 (also reached through syscall()), unlink and unlinkat.

use super::{enter, keep_errno};
use crate::fdtable::{self, BoundSocket, FdState, SOCKETS};
use crate::sockkey::SockKey;
use crate::{accept_gate, handover, helper, real, sockmode, sys};
use core::sync::atomic::Ordering;
use libc::{c_char, c_int, c_long, sockaddr, socklen_t};

/// bind(): hands back the inherited socket for an address the previous generation had bound;
/// otherwise binds for real and remembers the socket.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
    let call = || unsafe { real::bind(fd, addr, len) };
    let Some(_g) = enter() else { return call() };
    if addr.is_null() || len < 2 {
        return call();
    }
    // SAFETY: bind's contract: a non-null `addr` points to `len` readable bytes.
    let raw = unsafe { core::slice::from_raw_parts(addr as *const u8, len as usize) };
    let Some(key) = SockKey::from_sockaddr(sys::socktype(fd), raw) else {
        return call();
    };
    if handover::claim(fd, &key) {
        helper::ensure();
        return 0;
    }
    if crate::config::get().reuseport && (key.family == libc::AF_INET as u16 || key.family == libc::AF_INET6 as u16) {
        let one: c_int = 1;
        // SAFETY: reads the 4-byte int `one` of ours.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const c_int).cast(), 4) };
    }
    let r = call();
    keep_errno(r, |&r| {
        if r == 0 {
            if SOCKETS.lock().add(BoundSocket { fd, key, pending: false, inherited: false, shadow: -1, kept: false, waited: false }) {
                fdtable::set_state(fd, FdState::Bound);
                sockmode::refresh(fd);
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
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(_g) = enter() else { return real::listen(fd, backlog) };
    if fdtable::state(fd) == FdState::Bound {
        // Look up first: the table lock must be released before mark_serving takes it again.
        let inherited = SOCKETS.lock().find_fd(fd).map(|s| s.inherited).unwrap_or(false);
        if inherited && sys::is_serving_socket(fd) {
            sockmode::refresh(fd);
            handover::mark_listening(fd);
            return 0;
        }
    }
    let r = real::listen(fd, backlog);
    if r == 0 && fdtable::state(fd) == FdState::Bound {
        sockmode::refresh(fd);
        handover::mark_listening(fd);
    }
    r
}

/// accept(): see [`accept_gate::accept`] (counts the connection; parks once the process drains).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    helper::start_if_wanted();
    // SAFETY: the program's `addr` and `len` (accept's contract), handed on with the fd the gate
    // accepts from: the program's, or the real socket behind it while draining.
    accept_gate::accept(fd, &|fd| unsafe { real::accept(fd, addr, len) })
}

/// accept4(): as accept().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int {
    helper::start_if_wanted();
    // SAFETY: as in accept() above.
    accept_gate::accept(fd, &|fd| unsafe { real::accept4(fd, addr, len, flags) })
}

/// syscall(): routes the calls the shim tracks, made through the generic entry point (libuv
/// closes fds with `syscall(SYS_close)`), to the same hooks as the libc functions.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long {
    if super::ACTIVE.load(Ordering::Relaxed) {
        use super::fd;
        let r = match n {
            // SAFETY: the kernel's calling convention for these calls is libc's: the program's
            // integers are the same pointers its contract with syscall() makes valid.
            libc::SYS_accept4 => unsafe { accept4(a as c_int, b as *mut sockaddr, c as *mut socklen_t, d as c_int) },
            // SAFETY: as for accept4 above.
            libc::SYS_accept => unsafe { accept(a as c_int, b as *mut sockaddr, c as *mut socklen_t) },
            libc::SYS_close => fd::close(a as c_int),
            libc::SYS_dup2 => fd::dup2(a as c_int, b as c_int),
            libc::SYS_dup3 => fd::dup3(a as c_int, b as c_int, c as c_int),
            libc::SYS_close_range => fd::close_range(a as libc::c_uint, b as libc::c_uint, c as c_int),
            // SAFETY: as for accept4 above.
            libc::SYS_bind => unsafe { bind(a as c_int, b as *const sockaddr, c as socklen_t) },
            libc::SYS_listen => listen(a as c_int, b as c_int),
            // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
            _ => return unsafe { real::syscall(n, a, b, c, d, e, f) },
        };
        return r as c_long;
    }
    // SAFETY: as above.
    unsafe { real::syscall(n, a, b, c, d, e, f) }
}

/// Whether `path` is the path of a unix socket the shim holds (one a generation still serves).
///
/// # Safety
/// `path` is null or NUL-terminated (unlink's contract).
unsafe fn held_unix_path(path: *const c_char) -> bool {
    if path.is_null() {
        return false;
    }
    // SAFETY: non-null, hence NUL-terminated (the contract above).
    let p = unsafe { core::ffi::CStr::from_ptr(path) }.to_bytes();
    SOCKETS.lock().holds_unix_path(p)
}

/// unlink(): keeps the path of a unix socket another generation still serves.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    // SAFETY: the program's `path`, null or NUL-terminated (unlink's contract), read here and
    // handed on unchanged.
    unsafe {
        let Some(_g) = enter() else { return real::unlink(path) };
        if held_unix_path(path) {
            debug!("unlink of a served unix socket path skipped");
            return 0;
        }
        real::unlink(path)
    }
}

/// unlinkat(): as unlink() for paths relative to the working directory or absolute.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    // SAFETY: as in unlink() above (unlinkat's contract).
    unsafe {
        let Some(_g) = enter() else { return real::unlinkat(dirfd, path, flags) };
        let plain = dirfd == libc::AT_FDCWD || (!path.is_null() && *path == b'/' as c_char);
        if plain && flags & libc::AT_REMOVEDIR == 0 && held_unix_path(path) {
            debug!("unlinkat of a served unix socket path skipped");
            return 0;
        }
        real::unlinkat(dirfd, path, flags)
    }
}
