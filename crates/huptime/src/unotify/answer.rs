//! Answering one notification (every one is answered: the calling thread waits until then).
//!
//! - `listen(fd)`: huptime takes a duplicate of the socket (pidfd_getfd) and holds it for the
//!   next generation, then lets the call go on (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
//! - `bind(fd, addr)` to a TCP address: SO_REUSEPORT is set on the program's socket, and the call
//!   goes on, when no socket at that address is held or when the program's socket can listen
//!   beside the held one, which another generation still has open ([`steer`]: the first
//!   generation's socket, and every successor's).
//! - `bind(fd, addr)` to another address huptime holds (same family, type and protocol): the held
//!   socket is installed at the program's fd number (SECCOMP_IOCTL_NOTIF_ADDFD with
//!   SECCOMP_ADDFD_FLAG_SETFD, which closes the fresh socket there) and the call returns 0.
//!   Not with SECCOMP_ADDFD_FLAG_SEND: that makes the call return the fd number, and bind()
//!   must return 0 (`if (bind(...) != 0)` is common C). Install and reply are two steps; the
//!   thread stays blocked in between, and a bind interrupted after the install is sent again and
//!   answered the same way.
//! - `accept`/`accept4` (sent by some generations only, see [`super::filter`]) of a generation
//!   being replaced (see [`held::Accepts`]): refused on a socket it shares with its successor, so
//!   that it takes no new connection before it is told to stop; otherwise let through.
//! - anything else, or a bind to another address: the call goes on unchanged, so huptime never
//!   binds anything itself: the kernel checks the program's own rights.
//!
//! The address is read from the program's memory (process_vm_readv), and the notification is
//! checked to be still pending (SECCOMP_IOCTL_NOTIF_ID_VALID) after the pid was pinned with a
//! pidfd and before anything is done with it, so that a reused pid is never acted on.

use super::held::{self, Accepts};
use super::memory;
use super::steer;
use crate::sockkey::SockKey;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How a notification is answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Let the system call run as the program made it.
    Continue,
    /// Return 0 without running it (the held socket was installed).
    Success,
    /// Fail with this errno without running it.
    Fail(i32),
    /// Not now: the call stays blocked until [`release`] answers it.
    Hold,
}

/// The thread-group id of thread `tid` (notifications name the calling thread).
fn tgid_of(tid: u32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("Tgid:")).and_then(|v| v.trim().parse().ok())
}

/// A pidfd for `pid`.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open with integer arguments; the result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh fd.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// A duplicate of the process's fd `target` (pidfd_getfd, close-on-exec).
fn take(pidfd: &OwnedFd, target: u64) -> Option<OwnedFd> {
    let target = i32::try_from(target).ok()?;
    // SAFETY: pidfd_getfd with integer arguments; the result is a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    // SAFETY: a fresh fd.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Whether notification `id` is still pending (its thread still waits for this answer).
fn still_pending(listener: libc::c_int, id: u64) -> bool {
    // SAFETY: the ioctl reads one u64.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0 }
}

/// (domain, type, protocol) of a socket: what must match for a held socket to stand in.
fn kind(fd: &OwnedFd) -> Option<(libc::c_int, libc::c_int, libc::c_int)> {
    let opt = |o| crate::sys::socket_option(fd.as_raw_fd(), o);
    Some((opt(libc::SO_DOMAIN)?, opt(libc::SO_TYPE)?, opt(libc::SO_PROTOCOL)?))
}

fn inode(fd: &OwnedFd) -> Option<u64> {
    // SAFETY: stat is plain data filled by fstat.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: valid out-pointer.
    (unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } == 0).then_some(st.st_ino)
}

/// The open flags of `pid`'s fd `fd` (the `flags:` line of /proc/PID/fdinfo/FD, octal).
fn fd_flags(pid: i32, fd: u64) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|v| i64::from_str_radix(v.trim(), 8).ok())
}

/// Whether `pid`'s fd `fd` is close-on-exec.
fn close_on_exec(pid: i32, fd: u64) -> bool {
    fd_flags(pid, fd).is_some_and(|f| f & libc::O_CLOEXEC as i64 != 0)
}

/// Answers a `listen(fd)` of generation `gen`: holds the socket, lets the call go on.
pub fn on_listen(listener: libc::c_int, req: &libc::seccomp_notif, gen: i32) -> Reply {
    let Some(pid) = tgid_of(req.pid) else { return Reply::Continue };
    let Some(pfd) = pidfd(pid) else { return Reply::Continue };
    if !still_pending(listener, req.id) {
        return Reply::Continue;
    }
    let Some(sock) = take(&pfd, req.data.args[0]) else { return Reply::Continue };
    let (Some(ino), Some((addr, len))) = (inode(&sock), crate::sys::local_address(sock.as_raw_fd())) else { return Reply::Continue };
    // SAFETY: getsockname filled `len` bytes of the storage.
    let raw = unsafe { core::slice::from_raw_parts((&addr as *const libc::sockaddr_storage).cast::<u8>(), len as usize) };
    let Some(key) = SockKey::from_sockaddr(crate::sys::socktype(sock.as_raw_fd()), raw) else { return Reply::Continue };
    held::with(|t| {
        t.listened(gen, key, ino);
        t.hold(key, ino, sock);
    });
    Reply::Continue
}

/// Whether `pid`'s fd `fd` is in non-blocking mode (the `flags:` line of its fdinfo).
fn nonblocking(pid: i32, fd: u64) -> bool {
    fd_flags(pid, fd).is_some_and(|f| f & libc::O_NONBLOCK as i64 != 0)
}

/// Answers an `accept(fd)` or `accept4(fd)` of generation `gen`. Refused on a socket it shares
/// with its successor; let through on one of its own whose new connections go to its successor
/// (it is to take what that socket still queues).
pub fn on_accept(req: &libc::seccomp_notif, gen: i32) -> Reply {
    let (accepts, steered) = held::with(|t| {
        let g = t.generation(gen);
        (g.accepts, g.steered.iter().map(|s| s.1).collect::<Vec<_>>())
    });
    if accepts == Accepts::Open {
        return Reply::Continue;
    }
    let fd = req.data.args[0];
    match tgid_of(req.pid) {
        Some(pid) if i32::try_from(fd).ok().and_then(|fd| super::ready::inode_of(pid, fd)).is_some_and(|i| steered.contains(&i)) => Reply::Continue,
        Some(pid) if nonblocking(pid, fd) => Reply::Fail(libc::EAGAIN),
        _ => Reply::Hold,
    }
}

/// Sends `reply` to notification `id` (ENOENT: its thread is gone or was interrupted, and an
/// interrupted call is restarted and sent again; nothing more to do).
fn send(listener: libc::c_int, id: u64, reply: &Reply) {
    let (error, flags) = match *reply {
        Reply::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Reply::Fail(e) => (-e, 0),
        Reply::Success | Reply::Hold => (0, 0),
    };
    let resp = libc::seccomp_notif_resp { id, val: 0, error, flags };
    // SAFETY: the ioctl reads `resp`.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
}

/// Answers the accept() calls of generation `gen` held on `listener` with EINTR: it was sent its
/// stop signal, which its handler (run as the call returns) is to see. A blocking accept() it
/// makes afterwards is held again (a program that ignores the signal waits, it does not spin).
pub fn release(listener: libc::c_int, gen: i32) {
    for id in held::with(|t| std::mem::take(&mut t.generation(gen).parked)) {
        send(listener, id, &Reply::Fail(libc::EINTR));
    }
}

/// Answers a `bind(fd, addr, len)` of generation `gen`: the held socket at that address, if any.
pub fn on_bind(listener: libc::c_int, req: &libc::seccomp_notif, gen: i32) -> Reply {
    let [fd, addr, len, ..] = req.data.args;
    let Some(pid) = tgid_of(req.pid) else { return Reply::Continue };
    let len = (len as usize).min(core::mem::size_of::<libc::sockaddr_storage>());
    let Some(raw) = memory::read(req.pid as i32, addr, len) else { return Reply::Continue };
    let Some(pfd) = pidfd(pid) else { return Reply::Continue };
    if !still_pending(listener, req.id) {
        return Reply::Continue;
    }
    let Some(fresh) = take(&pfd, fd) else { return Reply::Continue };
    let Some(fresh_kind) = kind(&fresh) else { return Reply::Continue };
    let Some(key) = SockKey::from_sockaddr(fresh_kind.1, &raw) else { return Reply::Continue };
    held::with(|t| {
        let tcp = steer::steerable(&key) && fresh_kind.2 == libc::IPPROTO_TCP;
        let Some(h) = t.find_for(gen, &key) else {
            // The first socket at this address: a successor can bind its own beside it. Not when
            // a held socket has the port at another address: a successor binding elsewhere on
            // it fails as without huptime, instead of listening on both.
            if tcp && key.port() != Some(0) && !t.holds_port(&key) {
                steer::share_port(&fresh);
            }
            return Reply::Continue;
        };
        if kind(&h.fd) != Some(fresh_kind) {
            return Reply::Continue; // another protocol at that address: the kernel decides
        }
        if t.has_listened(gen, h.inode) {
            // Its own socket. Still open in it: a pool of its own at one address (SO_REUSEPORT),
            // which the kernel judges. Closed (a probe, say): it gets that socket back below.
            if super::ready::open_sockets(pid).contains(&h.inode) {
                return Reply::Continue;
            }
        } else if tcp && t.in_use_by_another(gen, h.inode) && steer::make_room(&key, &h.fd, h.inode) {
            // Its own socket beside the held one, bound by the kernel with the program's rights.
            steer::share_port(&fresh);
            t.generation(gen).joined += 1;
            return Reply::Continue;
        }
        // O_NONBLOCK lives in the shared file description: the program that binds now is the
        // one that will serve, so the socket gets its mode (a blocking accept loop must block).
        // SAFETY: fcntl on fds we own.
        unsafe {
            let want = libc::fcntl(fresh.as_raw_fd(), libc::F_GETFL) & libc::O_NONBLOCK;
            let now = libc::fcntl(h.fd.as_raw_fd(), libc::F_GETFL);
            if now >= 0 && now & libc::O_NONBLOCK != want {
                libc::fcntl(h.fd.as_raw_fd(), libc::F_SETFL, (now & !libc::O_NONBLOCK) | want);
            }
        }
        let add = libc::seccomp_notif_addfd {
            id: req.id,
            flags: libc::SECCOMP_ADDFD_FLAG_SETFD as u32,
            srcfd: h.fd.as_raw_fd() as u32,
            newfd: fd as u32,
            newfd_flags: if close_on_exec(pid, fd) { libc::O_CLOEXEC as u32 } else { 0 },
        };
        if !still_pending(listener, req.id) {
            return Reply::Continue;
        }
        // SAFETY: the ioctl reads `add`.
        if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ADDFD, &add) } < 0 {
            return Reply::Continue; // the real bind then says why (EADDRINUSE)
        }
        let ino = h.inode;
        t.listened(gen, key, ino);
        t.generation(gen).taken_over += 1;
        Reply::Success
    })
}

/// Receives one pending notification on `listener` (generation `gen`), answers it, and returns
/// false when the listener is unusable (every process under the filter is gone).
pub fn one(listener: libc::c_int, gen: i32) -> bool {
    // SAFETY: seccomp_notif is plain data; RECV needs it zeroed.
    let mut req: libc::seccomp_notif = unsafe { core::mem::zeroed() };
    // SAFETY: the ioctl fills `req`.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
        // ENOENT: the caller was interrupted or died before we took it; nothing to answer.
        return matches!(crate::sys::errno(), libc::ENOENT | libc::EINTR | libc::EAGAIN);
    }
    let reply = match req.data.nr as libc::c_long {
        libc::SYS_accept | libc::SYS_accept4 => on_accept(&req, gen),
        libc::SYS_bind => on_bind(listener, &req, gen),
        libc::SYS_listen => on_listen(listener, &req, gen),
        _ => Reply::Continue,
    };
    held::with(|t| {
        let g = t.generation(gen);
        g.answered += 1;
        if reply == Reply::Hold {
            g.parked.push(req.id);
        }
    });
    if reply != Reply::Hold {
        send(listener, req.id, &reply);
    }
    true
}
