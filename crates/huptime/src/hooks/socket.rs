//! bind, listen, accept, accept4 (also reached through syscall()), unlink and unlinkat: the
//! bookkeeping is [`binding`]'s and [`accept_gate`]'s.

use super::{enter, enter_if, keep_errno};
use crate::fdtable::SOCKETS;
use crate::{accept_gate, binding, helper, real};
use core::sync::atomic::Ordering;
use libc::{c_char, c_int, c_long, sockaddr, socklen_t};

/// bind(): hands back the inherited socket for an address the previous generation had bound;
/// otherwise binds for real and remembers the socket (see [`binding`]).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
    let call = || unsafe { real::bind(fd, addr, len) };
    let Some(_g) = enter_if(!addr.is_null() && len >= 2) else { return call() };
    // SAFETY: bind's contract: a non-null `addr` points to `len` readable bytes.
    let Some(key) = binding::key(fd, unsafe { core::slice::from_raw_parts(addr.cast::<u8>(), len as usize) }) else { return call() };
    if binding::claim(fd, &key) {
        return 0;
    }
    binding::before_bind(fd, &key);
    let r = call();
    keep_errno(r, |&r| if r == 0 { binding::bound(fd, key) })
}

/// listen(): a no-op on a socket inherited from the previous generation (it already listens).
#[cfg_attr(not(test), no_mangle)]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    let Some(_g) = enter() else { return real::listen(fd, backlog) };
    if binding::listens_already(fd) {
        return 0;
    }
    let r = real::listen(fd, backlog);
    keep_errno(r, |&r| if r == 0 { binding::listening(fd) })
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
            #[cfg(target_arch = "x86_64")] // aarch64 has dup3 only
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
