//! One-line log messages, `huptime[pid] gen=N: message`, written with a single `write(2)` from a
//! stack buffer: no allocation and no locks, so they are safe from any hook or thread.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

/// Where messages go: the program's original stderr, saved at start-up (the program may later
/// point its own fd 2 elsewhere).
pub static LOG_FD: AtomicI32 = AtomicI32::new(2);
/// Whether `debug!` messages are printed.
pub static DEBUG: AtomicBool = AtomicBool::new(false);
/// This process's generation number, shown in every line.
pub static GENERATION: AtomicU32 = AtomicU32::new(1);

/// Fixed-size text buffer of `N` bytes; text past its end is cut, never allocated (one byte is
/// kept for a line's newline).
pub struct TextBuf<const N: usize> {
    data: [u8; N],
    len: usize,
}

/// A log line's buffer.
pub type LineBuf = TextBuf<1024>;

impl<const N: usize> TextBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        TextBuf { data: [0; N], len: 0 }
    }
    /// What has been written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
    /// What has been written so far as text, without a character the cut split.
    pub fn as_str(&self) -> &str {
        match core::str::from_utf8(self.as_bytes()) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.data[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> Default for TextBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for TextBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.data.len() - 1 - self.len; // keep one byte for the newline
        let n = s.len().min(room);
        self.data[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// An OS error as shown in messages, `No such file or directory (os error 2)` like std's, but
/// without allocating or locking (std's Display allocates, strerror may take the locale lock): safe
/// in a signal handler. Less common errors read `os error N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OsError(pub i32);

impl OsError {
    /// The calling thread's errno.
    pub fn last() -> Self {
        // SAFETY: errno location is always valid for the calling thread.
        OsError(unsafe { *libc::__errno_location() })
    }
    fn text(self) -> Option<&'static str> {
        Some(match self.0 {
            libc::EPERM => "Operation not permitted",
            libc::ENOENT => "No such file or directory",
            libc::ESRCH => "No such process",
            libc::EINTR => "Interrupted system call",
            libc::EIO => "Input/output error",
            libc::E2BIG => "Argument list too long",
            libc::ENOEXEC => "Exec format error",
            libc::EBADF => "Bad file descriptor",
            libc::ECHILD => "No child processes",
            libc::EAGAIN => "Resource temporarily unavailable",
            libc::ENOMEM => "Cannot allocate memory",
            libc::EACCES => "Permission denied",
            libc::EFAULT => "Bad address",
            libc::EEXIST => "File exists",
            libc::ENOTDIR => "Not a directory",
            libc::EISDIR => "Is a directory",
            libc::EINVAL => "Invalid argument",
            libc::ENFILE => "Too many open files in system",
            libc::EMFILE => "Too many open files",
            libc::ETXTBSY => "Text file busy",
            libc::ENOSPC => "No space left on device",
            libc::ENAMETOOLONG => "File name too long",
            libc::ELOOP => "Too many levels of symbolic links",
            libc::ENOTSOCK => "Socket operation on non-socket",
            libc::EADDRINUSE => "Address already in use",
            libc::EOPNOTSUPP => "Operation not supported",
            _ => return None,
        })
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(t) => write!(f, "{t} (os error {})", self.0),
            None => write!(f, "os error {}", self.0),
        }
    }
}

/// Bytes (a path, a C string) shown as text without allocating: invalid UTF-8 becomes U+FFFD.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{fffd}")?;
            }
        }
        Ok(())
    }
}

/// Formats and writes one line; errno is preserved.
pub fn emit(args: fmt::Arguments<'_>) {
    // SAFETY: errno location is always valid for the calling thread.
    let saved = unsafe { *libc::__errno_location() };
    let mut b = LineBuf::new();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let _ = write!(b, "huptime[{pid}] gen={}: ", GENERATION.load(Ordering::Relaxed));
    let _ = b.write_fmt(args);
    b.data[b.len] = b'\n';
    b.len += 1;
    // SAFETY: buffer is valid for len bytes.
    unsafe {
        crate::real::write(LOG_FD.load(Ordering::Relaxed), b.data.as_ptr().cast(), b.len);
        *libc::__errno_location() = saved;
    }
}

/// Always printed: errors, restarts, rollbacks.
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::emit(format_args!($($t)*)) };
}

/// Printed only with `--debug`.
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => {
        if $crate::log::DEBUG.load(core::sync::atomic::Ordering::Relaxed) {
            $crate::log::emit(format_args!($($t)*))
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_bytes_show_like_std_without_allocating() {
        let mut b = LineBuf::new();
        let _ = write!(b, "{}|{}|{}", OsError(libc::ENOENT), OsError(libc::EHWPOISON), Lossy(b"a\xffb"));
        let e = std::io::Error::from_raw_os_error(libc::ENOENT).to_string();
        assert_eq!(b.as_bytes(), format!("{e}|os error {}|a\u{fffd}b", libc::EHWPOISON).as_bytes());
    }

    #[test]
    fn line_buffer_truncates_without_panicking() {
        let mut b = LineBuf::new();
        for _ in 0..100 {
            let _ = write!(b, "0123456789abcdefghij");
        }
        assert_eq!(b.as_bytes().len(), 1023);
    }
}
