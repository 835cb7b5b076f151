//! read, readv, recv, recvfrom, recvmsg (and the fortified __read_chk, __recv_chk), write,
//! writev, send, sendto, sendmsg, sendfile, sendfile64: on a client connection, which way data
//! moved is recorded ([`crate::connio`]), and while the process drains the requests read are
//! counted and the closing response is rewritten ([`crate::rewrite`]). On stderr, while a new
//! generation starts, what it writes is also copied to the generation that waits for it
//! ([`crate::readiness`]). Any other fd goes straight through after one or two atomic loads.

use super::keep_errno;
use crate::connio::{self, Conn, Way};
use crate::{guard, readiness, real, rewrite};
use libc::{c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

/// After a read of `r` bytes on `fd`: the direction, and while draining the requests in
/// the first `r` bytes of the buffer, `bytes(r)` (not for a peek, which leaves them to the next read).
#[inline]
fn received<'a>(fd: c_int, r: ssize_t, peek: bool, bytes: impl FnOnce(usize) -> &'a [u8]) -> ssize_t {
    if r > 0 {
        if let Some(c) = connio::conn(fd) {
            c.moved(Way::Read);
            if c.watched() && !peek {
                if let Some(_g) = guard::enter() {
                    c.read(bytes(r as usize));
                }
            }
        }
    }
    r
}

/// [`received`] for a vectored read into `n` iovecs at `iov`.
///
/// # Safety
/// `iov` points to `n` iovecs describing writable buffers, `r` bytes of which the read filled.
#[inline]
unsafe fn received_vectored(fd: c_int, r: ssize_t, peek: bool, iov: *const iovec, n: usize) -> ssize_t {
    if r > 0 {
        if let Some(c) = connio::conn(fd) {
            c.moved(Way::Read);
            if c.watched() && !peek && !iov.is_null() {
                if let Some(_g) = guard::enter() {
                    // SAFETY: the contract above.
                    unsafe { c.read_vectored(core::slice::from_raw_parts(iov, n.min(1024)), r as usize) };
                }
            }
        }
    }
    r
}

/// A write of `prog` on `fd` (`conn`: what [`connio::conn`] said before it), sent by `send`: the
/// slow path for a watched connection, then the direction recorded.
#[inline]
fn written(conn: Option<Conn>, prog: &[iovec], dontwait: bool, mut send: impl FnMut(&[iovec]) -> ssize_t) -> ssize_t {
    let r = match conn {
        Some(c) if c.watched() => match guard::enter() {
            Some(_g) => rewrite::write(c, prog, dontwait, send),
            None => send(prog),
        },
        _ => send(prog),
    };
    if r > 0 {
        if let Some(c) = conn {
            c.moved(Way::Write);
        }
    }
    r
}

fn one(buf: *const c_void, n: size_t) -> [iovec; 1] {
    [iovec { iov_base: buf as *mut c_void, iov_len: n }]
}

/// A sendmsg of `iov` with the rest of `msg` (or, none, only these iovecs).
///
/// # Safety
/// `msg` is null or a valid msghdr; `iov` describes readable memory (sendmsg's contract).
unsafe fn sendmsg_with(fd: c_int, msg: Option<&msghdr>, name: (*const sockaddr, socklen_t), iov: &[iovec], flags: c_int) -> ssize_t {
    // SAFETY: msghdr is plain data; an all-zero one is an empty message.
    let mut m: msghdr = msg.copied().unwrap_or(unsafe { core::mem::zeroed() });
    if msg.is_none() {
        m.msg_name = name.0 as *mut c_void;
        m.msg_namelen = name.1;
    }
    m.msg_iov = iov.as_ptr() as *mut iovec;
    m.msg_iovlen = iov.len() as _;
    // SAFETY: the program's message with our iovecs (the contract above).
    unsafe { real::sendmsg(fd, &m, flags) }
}

/// read().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    // SAFETY: the program's arguments, handed on unchanged; `r` bytes of `buf` were filled.
    unsafe { received(fd, real::read(fd, buf, n), false, |r| core::slice::from_raw_parts(buf.cast(), r.min(n))) }
}

/// __read_chk() (read() in a program built with _FORTIFY_SOURCE).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __read_chk(fd: c_int, buf: *mut c_void, n: size_t, size: size_t) -> ssize_t {
    // SAFETY: as read().
    unsafe { received(fd, real::__read_chk(fd, buf, n, size), false, |r| core::slice::from_raw_parts(buf.cast(), r.min(n))) }
}

/// readv().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    // SAFETY: the program's arguments, handed on unchanged (readv's contract).
    unsafe { received_vectored(fd, real::readv(fd, iov, n), false, iov, n.max(0) as usize) }
}

/// recv().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    let peek = flags & libc::MSG_PEEK != 0;
    // SAFETY: as read().
    unsafe { received(fd, real::recv(fd, buf, n, flags), peek, |r| core::slice::from_raw_parts(buf.cast(), r.min(n))) }
}

/// __recv_chk() (recv() in a program built with _FORTIFY_SOURCE).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn __recv_chk(fd: c_int, buf: *mut c_void, n: size_t, size: size_t, flags: c_int) -> ssize_t {
    let peek = flags & libc::MSG_PEEK != 0;
    // SAFETY: as read().
    unsafe { received(fd, real::__recv_chk(fd, buf, n, size, flags), peek, |r| core::slice::from_raw_parts(buf.cast(), r.min(n))) }
}

/// recvfrom().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t {
    let peek = flags & libc::MSG_PEEK != 0;
    // SAFETY: as read().
    unsafe { received(fd, real::recvfrom(fd, buf, n, flags, addr, len), peek, |r| core::slice::from_raw_parts(buf.cast(), r.min(n))) }
}

/// recvmsg().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: the program's arguments, handed on unchanged (recvmsg's contract: `msg` valid).
    unsafe {
        let r = real::recvmsg(fd, msg, flags);
        let (iov, n) = msg.as_ref().map_or((core::ptr::null(), 0), |m| (m.msg_iov as *const iovec, m.msg_iovlen as usize));
        received_vectored(fd, r, flags & libc::MSG_PEEK != 0, iov, n)
    }
}

/// write(): see the module doc.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    // SAFETY: the program's arguments; `buf` holds `n` readable bytes (write's contract), sent as
    // they are or spliced with static bytes.
    let r = written(connio::conn(fd), &one(buf, n), false, |out| unsafe {
        if out.len() == 1 && out[0].iov_base == buf as *mut c_void {
            real::write(fd, buf, out[0].iov_len)
        } else {
            real::writev(fd, out.as_ptr(), out.len() as c_int)
        }
    });
    if fd == 2 && r > 0 && readiness::pending() {
        // SAFETY: write's contract: `buf` holds `n` readable bytes, and `r` of them were written.
        let w = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), r as usize) };
        return keep_errno(r, |_| readiness::copy_stderr(w));
    }
    r
}

/// writev(): as write().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, n: c_int) -> ssize_t {
    let conn = connio::conn(fd).filter(|_| !iov.is_null() && n > 0);
    // SAFETY: the program's arguments (writev's contract: `iov` points to `n` iovecs), handed on
    // or spliced with static bytes.
    let r = unsafe {
        let prog = if conn.is_some() { core::slice::from_raw_parts(iov, n as usize) } else { &[] };
        written(conn, prog, false, |out| if conn.is_some() { real::writev(fd, out.as_ptr(), out.len() as c_int) } else { real::writev(fd, iov, n) })
    };
    if fd == 2 && r > 0 && n > 0 && !iov.is_null() && readiness::pending() {
        // SAFETY: writev's contract: `iov` points to `n` iovecs, each describing readable bytes.
        return keep_errno(r, |_| unsafe { readiness::copy_stderr_vectored(core::slice::from_raw_parts(iov, n as usize), r as usize) });
    }
    r
}

/// send().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    let conn = connio::conn(fd);
    // SAFETY: as write().
    written(conn, &one(buf, n), flags & libc::MSG_DONTWAIT != 0, |out| unsafe {
        if conn.is_some_and(Conn::watched) {
            sendmsg_with(fd, None, (core::ptr::null(), 0), out, flags)
        } else {
            real::send(fd, buf, n, flags)
        }
    })
}

/// sendto().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t) -> ssize_t {
    let conn = connio::conn(fd);
    // SAFETY: as write(); `addr` is the program's (null or `len` readable bytes).
    written(conn, &one(buf, n), flags & libc::MSG_DONTWAIT != 0, |out| unsafe {
        if conn.is_some_and(Conn::watched) {
            sendmsg_with(fd, None, (addr, len), out, flags)
        } else {
            real::sendto(fd, buf, n, flags, addr, len)
        }
    })
}

/// sendmsg().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    // SAFETY: sendmsg's contract: `msg` is valid, its iovecs readable.
    let m = unsafe { msg.as_ref() };
    let conn = connio::conn(fd).filter(|_| m.is_some_and(|m| !m.msg_iov.is_null()));
    let prog = match (conn, m) {
        // SAFETY: as above.
        (Some(_), Some(m)) => unsafe { core::slice::from_raw_parts(m.msg_iov as *const iovec, m.msg_iovlen as usize) },
        _ => &[],
    };
    // SAFETY: as above; the program's message is sent as it is or with spliced iovecs.
    written(conn, prog, flags & libc::MSG_DONTWAIT != 0, |out| unsafe {
        if conn.is_some() {
            sendmsg_with(fd, m, (core::ptr::null(), 0), out, flags)
        } else {
            real::sendmsg(fd, msg, flags)
        }
    })
}

/// A sendfile() on `fd`, made by `call`: inserted bytes still due go first.
fn sendfile_on(fd: c_int, call: impl FnOnce() -> ssize_t) -> ssize_t {
    let conn = connio::conn(fd);
    if let Some(c) = conn.filter(|c| c.watched()) {
        if let Some(_g) = guard::enter() {
            // SAFETY: a write of static bytes.
            if let Some(r) = rewrite::before_sendfile(c, false, |b| unsafe { real::write(fd, b.as_ptr().cast(), b.len()) }) {
                return r;
            }
        }
    }
    let r = call();
    if r > 0 {
        if let Some(c) = conn {
            c.moved(Way::Write);
        }
    }
    r
}

/// sendfile().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendfile(out: c_int, input: c_int, off: *mut libc::off_t, n: size_t) -> ssize_t {
    // SAFETY: the program's arguments, handed on unchanged (sendfile's contract).
    sendfile_on(out, || unsafe { real::sendfile(out, input, off, n) })
}

/// sendfile64().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendfile64(out: c_int, input: c_int, off: *mut libc::off64_t, n: size_t) -> ssize_t {
    // SAFETY: as sendfile().
    sendfile_on(out, || unsafe { real::sendfile64(out, input, off, n) })
}
