//! Small wrappers over the real syscalls that the rest of the shim shares: errno handling, the
//! shim's private fd range, eventfds, sleeping. Everything here calls `real::*`, never a hook.

use crate::fdtable::{self, internal, FdState};
use crate::real;
use core::sync::atomic::{AtomicI32, Ordering};
use libc::c_int;

/// The calling thread's errno.
#[inline]
pub fn errno() -> c_int {
    // SAFETY: always valid for the calling thread.
    unsafe { *libc::__errno_location() }
}

/// Sets the calling thread's errno.
#[inline]
pub fn set_errno(e: c_int) {
    // SAFETY: always valid for the calling thread.
    unsafe { *libc::__errno_location() = e }
}

/// write() on a pipe whose reader may be gone, without SIGPIPE: the program (which may not
/// ignore SIGPIPE) must never die of a write the shim makes. SIGPIPE is blocked in the calling
/// thread around the write, and the one the write raised, if any, is taken back (a SIGPIPE that
/// was already pending for the program is left alone). Returns what write returned (EPIPE when the
/// reader is gone); errno as the write left it.
pub fn write_no_sigpipe(fd: c_int, buf: &[u8]) -> isize {
    // SAFETY: signal-set manipulation on local sets; write of a valid buffer; sigtimedwait with a
    // zero timeout only takes a pending SIGPIPE.
    unsafe {
        let mut pipe: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut old: libc::sigset_t = core::mem::zeroed();
        crate::real::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let mut pending: libc::sigset_t = core::mem::zeroed();
        libc::sigpending(&mut pending);
        let already = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let n = real::write(fd, buf.as_ptr().cast(), buf.len());
        let e = errno();
        if n < 0 && e == libc::EPIPE && !already {
            let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
            libc::sigtimedwait(&pipe, core::ptr::null_mut(), &zero);
        }
        crate::real::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        set_errno(e);
        n
    }
}

static BASE: AtomicI32 = AtomicI32::new(0);

/// Lowest fd number the shim uses for its own fds: high enough to stay out of the way of the
/// program's (which are allocated from the bottom), low enough to keep the kernel's fd table small.
pub fn internal_base() -> c_int {
    let b = BASE.load(Ordering::Relaxed);
    if b > 0 {
        return b;
    }
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: valid out-pointer.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 { rl.rlim_cur } else { 1024 };
    let top = soft.min(4096) as c_int;
    let b = if top > 256 { top - 128 } else { (top / 2).max(3) };
    BASE.store(b, Ordering::Relaxed);
    b
}

/// Duplicates `fd` into the shim's range, close-on-exec, and marks it internal. -1 on failure.
pub fn dup_internal(fd: c_int) -> c_int {
    // SAFETY: plain fcntl.
    let mut n = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, internal_base() as libc::c_long) };
    if n < 0 {
        // SAFETY: plain fcntl.
        n = unsafe { real::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    }
    if n >= 0 {
        fdtable::set_state(n, FdState::Internal);
    }
    n
}

/// Moves `fd` into the shim's range (dup + close), returning the new number.
pub fn move_internal(fd: c_int) -> c_int {
    let n = dup_internal(fd);
    if n >= 0 {
        close(fd);
    }
    n
}

/// Closes an fd with the real close, clearing its state first.
pub fn close(fd: c_int) {
    if fd >= 0 {
        fdtable::set_state(fd, FdState::None);
        real::close(fd);
    }
}

/// A new close-on-exec, non-blocking eventfd in the shim's range.
pub fn eventfd() -> c_int {
    // SAFETY: plain eventfd.
    let e = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if e < 0 {
        return -1;
    }
    move_internal(e)
}

/// Adds one to an eventfd (async-signal-safe).
pub fn eventfd_signal(fd: c_int) {
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: 8-byte write from a valid buffer.
        unsafe { real::write(fd, (&one as *const u64).cast(), 8) };
    }
}

/// Reads and discards an eventfd's counter.
pub fn eventfd_clear(fd: c_int) {
    let mut v: u64 = 0;
    // SAFETY: 8-byte read into a valid buffer.
    unsafe { real::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// Whether `fd` is in non-blocking mode.
pub fn nonblocking(fd: c_int) -> bool {
    // SAFETY: plain fcntl.
    let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    fl >= 0 && fl & libc::O_NONBLOCK != 0
}

/// Sleeps for `ms` milliseconds.
pub fn sleep_ms(ms: u64) {
    let ts = libc::timespec { tv_sec: (ms / 1000) as _, tv_nsec: ((ms % 1000) * 1_000_000) as _ };
    // SAFETY: valid timespec.
    unsafe { libc::nanosleep(&ts, core::ptr::null_mut()) };
}

/// Microseconds on the monotonic clock.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// Milliseconds on the monotonic clock.
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// Moves a shim fd out of the way when the program dup2()s onto its number: every slot and
/// pending socket that referred to `fd` is updated to the new number.
pub fn relocate_internal(fd: c_int) {
    let n = dup_internal(fd);
    if n < 0 {
        return;
    }
    for s in internal::SLOTS.iter() {
        let _ = s.compare_exchange(fd, n, Ordering::AcqRel, Ordering::Acquire);
    }
    {
        let mut t = fdtable::SOCKETS.lock();
        for s in t.iter_mut() {
            if s.pending && s.fd == fd {
                s.fd = n;
            }
        }
    }
    if crate::log::LOG_FD.load(Ordering::Relaxed) == fd {
        crate::log::LOG_FD.store(n, Ordering::Relaxed);
    }
    close(fd);
}

/// An integer socket option of `fd` at SOL_SOCKET level, or None (not a socket, bad fd).
fn socket_option(fd: c_int, opt: c_int) -> Option<c_int> {
    let mut v: c_int = 0;
    let mut l = core::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: valid out-pointers.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, (&mut v as *mut c_int).cast(), &mut l) };
    (r == 0).then_some(v)
}

/// Whether `fd` is a listening stream socket or a datagram socket: the kinds worth handing over.
pub fn is_serving_socket(fd: c_int) -> bool {
    match socket_option(fd, libc::SO_TYPE) {
        Some(libc::SOCK_DGRAM) => true,
        Some(_) => is_listening(fd),
        None => false,
    }
}

/// Whether `fd` is a socket in the listening state (the only kind accept() takes from).
pub fn is_listening(fd: c_int) -> bool {
    socket_option(fd, libc::SO_ACCEPTCONN) == Some(1)
}

/// The socket type of `fd` (SO_TYPE), or -1.
pub fn socktype(fd: c_int) -> c_int {
    socket_option(fd, libc::SO_TYPE).unwrap_or(-1)
}

/// The local address `fd` is bound to (getsockname), with its length.
pub fn local_address(fd: c_int) -> Option<(libc::sockaddr_storage, libc::socklen_t)> {
    // SAFETY: sockaddr_storage is plain data; getsockname fills at most its size.
    let mut ss: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: valid out-pointers.
    let ok = unsafe { libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) } == 0;
    ok.then_some((ss, len))
}

/// Whether the process behind `pidfd` has exited (the pidfd is readable), checked without
/// waiting. False for a negative fd.
pub fn pidfd_exited(pidfd: c_int) -> bool {
    let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd, no wait.
    pidfd >= 0 && unsafe { real::poll(&mut p, 1, 0) } == 1
}

/// Sends `sig` through a pidfd (safe against pid reuse); true if it was sent.
pub fn pidfd_signal(pidfd: c_int, sig: c_int) -> bool {
    // SAFETY: pidfd_send_signal with no siginfo and no flags.
    pidfd >= 0 && unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, 0usize, 0u32) } == 0
}
