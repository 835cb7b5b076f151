//! write, writev: while a new generation starts, what it writes to stderr is also copied to the
//! generation that waits for it (see [`crate::ready_channel`]), which logs the last lines if the start
//! fails. Any other write goes straight through: one compare and one atomic load.

use super::keep_errno;
use crate::{readiness, real};
use libc::c_int;

/// write(): the program's write, then (stderr only, while starting) a copy for the previous
/// generation.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const libc::c_void, n: usize) -> isize {
    // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
    let r = unsafe { real::write(fd, buf, n) };
    if fd == 2 && r > 0 && readiness::pending() {
        // SAFETY: write's contract: `buf` holds `n` readable bytes, and `r` of them were written.
        let written = unsafe { core::slice::from_raw_parts(buf.cast::<u8>(), r as usize) };
        return keep_errno(r, |_| readiness::copy_stderr(written));
    }
    r
}

/// writev(): as write().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize {
    // SAFETY: the program's arguments, handed on unchanged: its contract with libc holds.
    let r = unsafe { real::writev(fd, iov, n) };
    if fd == 2 && r > 0 && n > 0 && !iov.is_null() && readiness::pending() {
        // SAFETY: writev's contract: `iov` points to `n` iovecs, each describing readable bytes.
        return keep_errno(r, |_| unsafe { readiness::copy_stderr_vectored(core::slice::from_raw_parts(iov, n as usize), r as usize) });
    }
    r
}
