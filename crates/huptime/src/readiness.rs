//! The writing side of the readiness channel (codec: [`crate::ready_channel`]): a generation that
//! a previous one started in fork mode tells it when it is ready, and until then copies what the
//! program writes to stderr into the channel. Program threads never block or wait here: they only
//! note that the generation is ready and wake the helper thread, which sends the message.

use crate::fdtable::internal;
use crate::{ready_channel, sys};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use libc::c_int;

/// A previous generation started this one and waits for its readiness (ever, this image).
static AWAITED: AtomicBool = AtomicBool::new(false);
/// ... and this generation is not ready yet: stderr is copied into the channel.
static PENDING: AtomicBool = AtomicBool::new(false);
/// The generation is ready; the helper thread has yet to send the message.
static DUE: AtomicBool = AtomicBool::new(false);
/// Threads copying stderr into the channel right now.
static COPYING: AtomicI32 = AtomicI32::new(0);

/// Constructor time: `fd` (already in the shim's range) is the channel's write end.
pub fn adopt(fd: c_int) {
    internal::set(internal::READY, fd);
    AWAITED.store(true, Ordering::Release);
    PENDING.store(true, Ordering::Release);
}

/// Whether a previous generation started this one and waits (or waited) for its readiness: it
/// reports this generation to systemd, not this one itself.
pub fn awaited() -> bool {
    AWAITED.load(Ordering::Acquire)
}

/// Whether this generation has yet to report its readiness (cheap check for the hot paths).
#[inline]
pub fn pending() -> bool {
    PENDING.load(Ordering::Relaxed)
}

/// The generation is ready (any thread, never blocks): the helper thread sends the message.
/// Returns false if it had been reported already.
pub fn report_ready() -> bool {
    if !PENDING.swap(false, Ordering::AcqRel) {
        return false;
    }
    DUE.store(true, Ordering::Release);
    sys::eventfd_signal(internal::get(internal::WAKE));
    true
}

/// Whether the previous generation has yet to be told that this one is ready (not reported, or
/// reported and not sent yet). Until then this generation does not count as serving: the status
/// file says `serving` only once the previous generation has the message.
pub fn unsent() -> bool {
    pending() || DUE.load(Ordering::Acquire)
}

/// Helper thread: sends the ready message if one is due, once no program thread is still
/// copying stderr into the channel (so none writes to a closed, possibly reused, fd number), and
/// closes the channel. Returns whether one was due.
pub fn send_if_due() -> bool {
    if DUE.load(Ordering::Acquire) {
        send_due();
        DUE.store(false, Ordering::Release);
        return true;
    }
    false
}

fn send_due() {
    while COPYING.load(Ordering::SeqCst) != 0 {
        sys::sleep_ms(1);
    }
    let w = internal::take(internal::READY);
    if w < 0 {
        return;
    }
    // The pipe is non-blocking: if it is full of stderr copies, give the reader a moment.
    for _ in 0..2000 {
        let n = sys::write_no_sigpipe(w, b"R");
        if n == 1 || (n < 0 && sys::errno() != libc::EAGAIN && sys::errno() != libc::EINTR) {
            break;
        }
        sys::sleep_ms(1);
    }
    sys::close(w);
    debug!("ready: told the previous generation");
}

/// [`copy_stderr`] for a writev() to stderr that wrote `written` bytes from `iov`: the bytes
/// written, piece by piece as they lie in the buffers.
///
/// # Safety
/// Each iovec describes `iov_len` readable bytes at `iov_base` (writev's contract).
pub unsafe fn copy_stderr_vectored(iov: &[libc::iovec], written: usize) {
    let mut left = written;
    for v in iov {
        if left == 0 {
            break;
        }
        let len = v.iov_len.min(left);
        if len > 0 && !v.iov_base.is_null() {
            // SAFETY: `iov_len` readable bytes at `iov_base` (the contract above); `len` is at
            // most that.
            copy_stderr(unsafe { core::slice::from_raw_parts(v.iov_base.cast::<u8>(), len) });
        }
        left -= len;
    }
}

/// Copies a piece of what the program writes to stderr to the previous generation while it waits
/// for this one (so that a failed start can be reported with its last lines). Never blocks: a
/// piece that does not fit is dropped.
#[inline]
pub fn copy_stderr(buf: &[u8]) {
    if !PENDING.load(Ordering::Relaxed) {
        return;
    }
    COPYING.fetch_add(1, Ordering::SeqCst);
    let fd = internal::get(internal::READY);
    if PENDING.load(Ordering::SeqCst) && fd >= 0 {
        let mut msg = [0u8; ready_channel::MAX_CHUNK + 3];
        for piece in buf.chunks(ready_channel::MAX_CHUNK) {
            let n = ready_channel::encode_stderr(piece, &mut msg);
            if sys::write_no_sigpipe(fd, &msg[..n]) != n as isize {
                if sys::errno() == libc::EPIPE {
                    // Nobody reads any more (the previous generation is gone, or this is a worker
                    // forked before the ready message and the channel was closed since).
                    PENDING.store(false, Ordering::SeqCst);
                }
                break; // full (or gone): the copy is dropped, the program is never delayed
            }
        }
    }
    COPYING.fetch_sub(1, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ready_channel::Reader;

    fn read_all(fd: c_int) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reading into a valid buffer.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
    }

    /// One test: the channel is process-wide.
    #[test]
    fn stderr_copies_then_one_ready_message_then_the_channel_closes() {
        let mut p = [-1; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) }, 0);
        assert!(!awaited() && !pending());
        copy_stderr(b"not copied: nobody waits yet\n");
        adopt(p[1]);
        assert!(awaited() && pending());
        copy_stderr(b"starting up\n");
        copy_stderr(&[b'x'; ready_channel::MAX_CHUNK + 10]);
        copy_stderr(b"\nlast line\n");
        assert!(report_ready());
        assert!(!report_ready(), "reported once");
        // The program's thread wrote no ready message (it never waits for the pipe): the helper
        // thread sends it.
        let copies = read_all(p[0]);
        assert!(!copies.is_empty());
        let mut r = Reader::default();
        r.feed(&copies);
        assert!(!r.ready, "the ready message comes from send_if_due, not report_ready");
        assert!(!pending() && awaited());
        copy_stderr(b"after ready: not copied\n");
        assert!(unsent(), "reported, not sent yet");
        assert!(send_if_due());
        assert!(!unsent());
        assert!(!send_if_due(), "nothing more is due");
        r.feed(&read_all(p[0]));
        assert!(r.ready && !r.garbled);
        assert_eq!(r.last_lines(1), ["last line"]);
        assert!(!r.last_lines(10).iter().any(|l| l.contains("not copied")));
        // The write end is closed: the reader sees EOF (read returns 0, not EAGAIN).
        let mut b = [0u8; 1];
        // SAFETY: reading into a valid buffer.
        assert_eq!(unsafe { libc::read(p[0], b.as_mut_ptr().cast(), 1) }, 0);
        // SAFETY: closing our own fd.
        unsafe { libc::close(p[0]) };
    }
}
