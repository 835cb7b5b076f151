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

/// Every signal disposition back to its default and an empty signal mask, for a child about to
/// exec a program (which must not inherit the CLI runtime's signal setup). Async-signal-safe.
pub fn default_signals() {
    // SAFETY: signal and sigprocmask on integers, SIG_DFL and a local sigset_t.
    unsafe {
        for sig in 1..65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
    }
}

/// A message header over one buffer and a control buffer (empty: none), for sendmsg/recvmsg.
/// The header points into `iov` and `control`, which must outlive its use. Async-signal-safe.
pub fn msghdr(iov: &mut libc::iovec, control: &mut [u64]) -> libc::msghdr {
    // SAFETY: msghdr is plain data.
    let mut msg: libc::msghdr = unsafe { core::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    if !control.is_empty() {
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = core::mem::size_of_val(control);
    }
    msg
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

/// Whether process `pid` runs: it exists and is not a zombie (kill() first: a cheap no for a pid
/// long gone, then its state in /proc/PID/stat).
pub fn running(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) == 0 || errno() == libc::EPERM };
    exists && proc_stat_fields(pid).and_then(|f| f.chars().next()).is_some_and(|s| s != 'Z' && s != 'X')
}

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses):
/// the state first, then the rest in the order of proc(5), field 3 onward. None if PID is gone.
pub fn proc_stat_fields(pid: libc::pid_t) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat.get(stat.rfind(')')? + 2..)?.to_string())
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
pub fn socket_option(fd: c_int, opt: c_int) -> Option<c_int> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::ExitStatusExt;

    fn pipe() -> [c_int; 2] {
        let mut p = [-1; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        p
    }

    fn fd_flags(fd: c_int) -> c_int {
        // SAFETY: plain fcntl.
        unsafe { libc::fcntl(fd, libc::F_GETFD) }
    }

    /// (device, inode) of what `fd` refers to, None if it is not open.
    fn identity(fd: c_int) -> Option<(u64, u64)> {
        // SAFETY: plain data filled by fstat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid out-pointer.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    }

    fn sigpipe_pending() -> bool {
        // SAFETY: a query into a local set.
        unsafe {
            let mut pending: libc::sigset_t = core::mem::zeroed();
            libc::sigpending(&mut pending);
            libc::sigismember(&pending, libc::SIGPIPE) == 1
        }
    }

    fn pidfd_open(pid: u32) -> c_int {
        // SAFETY: pidfd_open with no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as c_int;
        assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
        fd
    }

    #[test]
    fn errno_round_trips() {
        set_errno(libc::EAGAIN);
        assert_eq!(errno(), libc::EAGAIN);
        set_errno(0);
        assert_eq!(errno(), 0);
    }

    #[test]
    fn internal_fds_sit_at_or_above_the_base_and_close_on_exec() {
        let base = internal_base();
        assert!(base >= 3 && base == internal_base());
        let [r, w] = pipe();
        // SAFETY: clearing close-on-exec on our own fd.
        unsafe { libc::fcntl(r, libc::F_SETFD, 0) };
        let d = dup_internal(r);
        assert!(d >= base, "{d} below {base}");
        assert_ne!(fd_flags(d) & libc::FD_CLOEXEC, 0, "a copy is close-on-exec whatever the original");
        assert_eq!(fdtable::state(d), FdState::Internal);
        assert_eq!(identity(d), identity(r));
        let pipe_id = identity(w);
        let m = move_internal(w);
        assert!(m >= base && m != d);
        assert_eq!(identity(m), pipe_id);
        assert_ne!(identity(w), pipe_id, "the original number no longer holds the pipe");
        assert_eq!(fdtable::state(m), FdState::Internal);
        close(d);
        close(m);
        assert_eq!(fdtable::state(d), FdState::None, "close clears the state");
        assert_eq!(fdtable::state(m), FdState::None);
        // SAFETY: closing our own fd.
        unsafe { libc::close(r) };
        assert_eq!(dup_internal(-1), -1);
    }

    #[test]
    fn relocating_an_internal_fd_updates_its_slot_and_pending_socket() {
        // Slot 6 has no named role: no other code or test uses it.
        const SLOT: usize = 6;
        let [r, w] = pipe();
        let fd = move_internal(r);
        internal::set(SLOT, fd);
        let mut raw = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        raw.extend_from_slice(b"/huptime-sys-relocate-test");
        let key = crate::sockkey::SockKey::from_sockaddr(libc::SOCK_STREAM, &raw).unwrap();
        let pending = fdtable::BoundSocket { fd, key, pending: true, inherited: true, shadow: -1, kept: false, waited: false };
        assert!(fdtable::SOCKETS.lock().add(pending));
        let id = identity(fd);
        relocate_internal(fd);
        let moved = internal::get(SLOT);
        assert!(moved >= internal_base() && moved != fd);
        assert_eq!(identity(moved), id);
        assert_eq!(fdtable::state(moved), FdState::Internal);
        assert_eq!(fdtable::state(fd), FdState::None, "the old number is the program's now");
        let entry = fdtable::SOCKETS.lock().take_pending(&key).expect("the pending socket is still held");
        assert_eq!(entry.fd, moved);
        close(internal::take(SLOT));
        // SAFETY: closing our own fd.
        unsafe { libc::close(w) };
    }

    #[test]
    fn eventfd_counts_signals_until_cleared() {
        let e = eventfd();
        assert!(e >= internal_base());
        assert_ne!(fd_flags(e) & libc::FD_CLOEXEC, 0);
        assert!(nonblocking(e));
        eventfd_signal(e);
        eventfd_signal(e);
        let mut v: u64 = 0;
        // SAFETY: 8-byte read into a valid buffer.
        assert_eq!(unsafe { libc::read(e, (&mut v as *mut u64).cast(), 8) }, 8);
        assert_eq!(v, 2);
        eventfd_signal(e);
        eventfd_clear(e);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::read(e, (&mut v as *mut u64).cast(), 8) }, -1, "cleared: nothing to read");
        assert_eq!(errno(), libc::EAGAIN);
        eventfd_signal(-1); // no fd: nothing happens
        close(e);
    }

    #[test]
    fn blocking_mode_and_clocks() {
        let [r, w] = pipe();
        assert!(!nonblocking(r));
        // SAFETY: plain fcntl on our own fd.
        unsafe { libc::fcntl(r, libc::F_SETFL, libc::O_NONBLOCK) };
        assert!(nonblocking(r));
        assert!(!nonblocking(-1));
        let (us, ms) = (now_us(), now_ms());
        sleep_ms(20);
        assert!(now_us() >= us + 20_000, "slept at least 20 ms");
        assert!(now_ms() >= ms + 20);
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }

    /// The test harness ignores SIGPIPE, but a signal blocked in the writing thread stays pending
    /// whatever its disposition: a thread that blocks it shows what the write left behind.
    #[test]
    fn write_without_sigpipe_takes_back_only_its_own_signal() {
        std::thread::spawn(|| {
            let [r, w] = pipe();
            // SAFETY: closing our own fd; blocking SIGPIPE in this thread only.
            unsafe {
                libc::close(r);
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGPIPE);
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
            }
            assert!(!sigpipe_pending());
            assert_eq!(write_no_sigpipe(w, b"x"), -1);
            assert_eq!(errno(), libc::EPIPE);
            assert!(!sigpipe_pending(), "the SIGPIPE the write raised was taken back");
            // SAFETY: a SIGPIPE of the program's own, for this thread.
            unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGPIPE) };
            assert!(sigpipe_pending());
            assert_eq!(write_no_sigpipe(w, b"x"), -1);
            assert!(sigpipe_pending(), "a SIGPIPE pending before the write is the program's: left alone");
            // SAFETY: taking the pending signal with a zero timeout; closing our fd.
            unsafe {
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGPIPE);
                let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                libc::sigtimedwait(&set, core::ptr::null_mut(), &zero);
                libc::close(w);
            }
        })
        .join()
        .unwrap();
    }

    /// A forked child with SIGPIPE at its default action: a plain write to a broken pipe kills
    /// it, write_no_sigpipe does not. The child only makes async-signal-safe calls.
    #[test]
    fn write_without_sigpipe_does_not_kill_a_process_that_keeps_the_default_action() {
        real::resolve_all(); // no dlsym in the child
        for plain in [true, false] {
            let [r, w] = pipe();
            // SAFETY: closing our fd; fork in a test whose child only calls async-signal-safe
            // functions and _exit.
            let pid = unsafe {
                libc::close(r);
                libc::fork()
            };
            assert!(pid >= 0);
            if pid == 0 {
                // SAFETY: async-signal-safe calls only, then _exit.
                unsafe {
                    let mut act: libc::sigaction = core::mem::zeroed();
                    act.sa_sigaction = libc::SIG_DFL;
                    real::sigaction(libc::SIGPIPE, &act, core::ptr::null_mut());
                    let n = if plain { real::write(w, b"x".as_ptr().cast(), 1) } else { write_no_sigpipe(w, b"x") };
                    libc::_exit(if n == -1 && errno() == libc::EPIPE { 7 } else { 1 });
                }
            }
            let mut status = 0;
            // SAFETY: reaping our own child; closing our fd.
            unsafe {
                assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
                libc::close(w);
            }
            let status = std::process::ExitStatus::from_raw(status);
            if plain {
                assert_eq!(status.signal(), Some(libc::SIGPIPE), "the plain write kills: {status}");
            } else {
                assert_eq!(status.code(), Some(7), "write_no_sigpipe returns EPIPE: {status}");
            }
        }
    }

    #[test]
    fn a_pidfd_tells_when_its_process_exited_and_signals_it() {
        assert!(!pidfd_exited(-1) && !pidfd_signal(-1, libc::SIGKILL));
        let mut child = std::process::Command::new("sh").args(["-c", "read x; exit 7"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
        let pidfd = pidfd_open(child.id());
        assert!(!pidfd_exited(pidfd));
        drop(child.stdin.take()); // EOF: `read` returns, the shell exits
        let mut p = libc::pollfd { fd: pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 60_000) }, 1, "the child did not exit");
        assert!(pidfd_exited(pidfd));
        assert_eq!(child.wait().unwrap().code(), Some(7));
        close(pidfd);

        let mut child = std::process::Command::new("sh").args(["-c", "read x"]).stdin(std::process::Stdio::piped()).spawn().unwrap();
        let pidfd = pidfd_open(child.id());
        assert!(pidfd_signal(pidfd, libc::SIGKILL));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        close(pidfd);
    }

    #[test]
    fn socket_kinds_and_addresses() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let l = listener.as_raw_fd();
        assert!(is_listening(l) && is_serving_socket(l));
        assert_eq!(socktype(l), libc::SOCK_STREAM);
        let (ss, len) = local_address(l).unwrap();
        assert_eq!(len as usize, core::mem::size_of::<libc::sockaddr_in>());
        // SAFETY: an AF_INET address of that length.
        let sin = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
        assert_eq!(sin.sin_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(u16::from_be(sin.sin_port), listener.local_addr().unwrap().port());

        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let c = client.as_raw_fd();
        assert!(!is_listening(c) && !is_serving_socket(c), "a connection is not handed over");
        assert_eq!(socktype(c), libc::SOCK_STREAM);

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let u = udp.as_raw_fd();
        assert!(is_serving_socket(u) && !is_listening(u));
        assert_eq!(socktype(u), libc::SOCK_DGRAM);

        let [r, w] = pipe();
        assert!(!is_serving_socket(r) && !is_listening(r));
        assert_eq!(socktype(r), -1);
        assert!(local_address(r).is_none());
        // SAFETY: closing our own fds.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
    }
}
