//! While the process drains, the next final response the program writes on each connection says
//! `Connection: close` (see [`crate::httphead`] for what is recognised, [`crate::splice`] for the
//! arithmetic): the client closes after it, and the program sees an ordinary client close. The
//! response chosen is the one that answers the last request read (pipelined requests still
//! queued get their answers first), and only when nothing unread waits on the connection.
//!
//! The program's bytes are never copied: its iovecs go to the kernel split around the patch's
//! text. Its call returns the count of its own bytes; when the kernel took only inserted bytes,
//! a non-blocking write fails with EAGAIN (the program waits for POLLOUT and calls again) and a
//! blocking one goes on.

use crate::connio::Conn;
use crate::httphead::{self, Start};
use crate::splice::{self, Patch, MAX_IOVECS, MAX_PROGRAM_IOVECS};
use crate::{sockq, sys};
use libc::{c_int, iovec};

/// Bytes of a response's start looked at for its head (copied to the stack).
const HEAD_SEEN: usize = 2048;

/// Copies the first bytes of `prog` into `buf`; returns how many.
fn head_of(prog: &[iovec], buf: &mut [u8; HEAD_SEEN]) -> usize {
    let mut n = 0;
    for v in prog {
        let k = v.iov_len.min(HEAD_SEEN - n);
        if k > 0 {
            // SAFETY: the program's iovec describes at least `k` readable bytes (its write's
            // contract), and `buf` has room for them.
            unsafe { core::ptr::copy_nonoverlapping(v.iov_base as *const u8, buf.as_mut_ptr().add(n), k) };
        }
        n += k;
        if n == HEAD_SEEN {
            break;
        }
    }
    n
}

/// Looks at a write that may start a final response, and chooses it to close the connection when
/// it answers the last request read and nothing unread waits.
fn choose(c: Conn, prog: &[iovec]) {
    // Most writes (bodies, other protocols) are told apart by their first byte, before any copy.
    let Some(first) = prog.iter().find(|v| v.iov_len > 0) else { return };
    // SAFETY: the program's iovec describes at least one readable byte (its write's contract).
    if unsafe { *(first.iov_base as *const u8) } != b'H' {
        return;
    }
    let mut buf = [0u8; HEAD_SEEN];
    let n = head_of(prog, &mut buf);
    let head = &buf[..n];
    if httphead::response_start(head) != Start::Final {
        return;
    }
    let started = c.response_started();
    if started < c.requests() || sockq::unread(c.fd()) != Some(0) {
        return;
    }
    let patch = Patch::of(httphead::plan(head));
    debug!("fd {}: response {started} closes the connection ({})", c.fd(), if patch.is_some() { "Connection: close" } else { "it says so already" });
    c.decide(patch);
}

/// Whether a write on `fd` with these flags may not wait.
fn nonblocking(fd: c_int, dontwait: bool) -> bool {
    dontwait || sys::nonblocking(fd)
}

/// A write of `prog` by the program on watched connection `c`, sent by `send` (the real call
/// with the program's flags, given the iovecs to send); `dontwait` when the call's flags say
/// MSG_DONTWAIT. Returns what the program's call returns, errno set as it expects.
pub fn write(c: Conn, prog: &[iovec], dontwait: bool, mut send: impl FnMut(&[iovec]) -> isize) -> isize {
    let errno = sys::errno();
    if !c.decided() && prog.len() <= MAX_PROGRAM_IOVECS {
        choose(c, prog);
    }
    loop {
        let Some(p) = c.patch() else {
            sys::set_errno(errno);
            return send(prog);
        };
        let prog = &prog[..prog.len().min(MAX_PROGRAM_IOVECS)];
        let total: usize = prog.iter().map(|v| v.iov_len).sum();
        let mut out = [iovec { iov_base: core::ptr::null_mut(), iov_len: 0 }; MAX_IOVECS];
        let n = splice::splice(prog, &p, &mut out);
        sys::set_errno(errno);
        let sent = send(&out[..n]);
        if sent < 0 {
            return sent;
        }
        let (mine, next) = splice::advance(&p, total, sent as usize);
        c.set_patch(next);
        if mine > 0 || total == 0 || sent == 0 {
            return mine as isize;
        }
        // Only inserted bytes went out: a blocking write goes on.
        if nonblocking(c.fd(), dontwait) {
            sys::set_errno(libc::EAGAIN);
            return -1;
        }
    }
}

/// Before a sendfile() on watched connection `c`: inserted bytes still unsent go first (by
/// `send`, a write of them), as a write would send them. Returns None to go on with the
/// sendfile, or what the program's call returns now. A change due inside the file's bytes cannot
/// be made: it is dropped.
pub fn before_sendfile(c: Conn, dontwait: bool, mut send: impl FnMut(&[u8]) -> isize) -> Option<isize> {
    let errno = sys::errno();
    loop {
        let p = c.patch()?;
        if p.at > 0 || p.replaced > 0 {
            debug!("fd {}: the response's head goes by sendfile; left as it is", c.fd());
            c.set_patch(None);
            return None;
        }
        let rest = p.rest();
        let sent = send(rest);
        if sent < 0 {
            return Some(sent);
        }
        let (_, next) = splice::advance(&p, 0, sent as usize);
        c.set_patch(next);
        if next.is_none() {
            sys::set_errno(errno);
            return None;
        }
        if nonblocking(c.fd(), dontwait) {
            sys::set_errno(libc::EAGAIN);
            return Some(-1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connio;
    use crate::fdtable::{self, FdState};
    use std::os::fd::AsRawFd;

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    const CLOSING: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";

    /// Writes RESPONSE as a program would (calling again with what is left, and again after
    /// EAGAIN) on a connection that read one request, through a kernel that takes at most
    /// `rooms` bytes call after call; returns the bytes sent and the count of EAGAINs.
    fn write_through(dontwait: bool, rooms: &[usize]) -> (Vec<u8>, usize) {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fd = a.as_raw_fd();
        connio::accepted(fd);
        fdtable::set_state(fd, FdState::Conn);
        let c = connio::conn(fd).unwrap();
        c.read(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
        let (mut wire, mut eagain, mut pos, mut call) = (Vec::new(), 0, 0, 0);
        while pos < RESPONSE.len() {
            let rest = &RESPONSE[pos..];
            let prog = [iovec { iov_base: rest.as_ptr() as *mut libc::c_void, iov_len: rest.len() }];
            let r = write(c, &prog, dontwait, |out| {
                let room = rooms.get(call).copied().unwrap_or(usize::MAX);
                call += 1;
                let mut took = 0;
                for v in out {
                    // SAFETY: the iovecs point into RESPONSE or the patch's static text.
                    let bytes = unsafe { core::slice::from_raw_parts(v.iov_base as *const u8, v.iov_len) };
                    let k = bytes.len().min(room - took);
                    wire.extend_from_slice(&bytes[..k]);
                    took += k;
                }
                took as isize
            });
            if r < 0 {
                assert_eq!(sys::errno(), libc::EAGAIN);
                eagain += 1;
                continue;
            }
            assert!(r as usize <= rest.len(), "returned {r} for {} bytes", rest.len());
            pos += r as usize;
        }
        fdtable::set_state(fd, FdState::None);
        (wire, eagain)
    }

    #[test]
    fn a_non_blocking_write_that_sent_only_inserted_bytes_fails_with_eagain() {
        let _t = connio::TEST_TABLES.lock().unwrap_or_else(|e| e.into_inner());
        // The status line, then 5 bytes of the inserted header only, then the rest.
        assert_eq!(write_through(true, &[17, 5]), (CLOSING.to_vec(), 1));
        assert_eq!(write_through(true, &[17, 19]), (CLOSING.to_vec(), 1), "exactly the header");
        assert_eq!(write_through(true, &[]), (CLOSING.to_vec(), 0));
        for room in 1..CLOSING.len() {
            let rooms = vec![room; CLOSING.len()];
            assert_eq!(write_through(true, &rooms).0, CLOSING.to_vec(), "{room} bytes a call");
        }
    }

    #[test]
    fn a_blocking_write_goes_on_until_a_byte_of_the_program_s_is_sent() {
        let _t = connio::TEST_TABLES.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(write_through(false, &[17, 5, 3]), (CLOSING.to_vec(), 0));
    }
}
