//! The program's bind() and listen() of its sockets: an address the previous generation had
//! bound gets that generation's socket back (the claim), any other bound socket is tracked in the
//! socket table ([`fdtable::SOCKETS`]), and listening on a tracked socket counts toward serving
//! ([`handover::mark_listening`]).

use crate::fdtable::{self, BoundSocket, FdState, SOCKETS};
use crate::sockkey::SockKey;
use crate::{config, handover, helper, lineage, real, sockmode, sys};
use libc::c_int;

/// What the program binds `fd` to, from the address it passes (`raw`: the sockaddr's bytes);
/// `None` for an address the shim does not track.
pub fn key(fd: c_int, raw: &[u8]) -> Option<SockKey> {
    SockKey::from_sockaddr(sys::socktype(fd), raw)
}

/// Before a real bind(): if an inherited (or, with `--revive`, kept) socket matches `key`, puts
/// it at `fd` (replacing the fresh socket the program made) and returns true: the bind is done.
pub fn claim(fd: c_int, key: &SockKey) -> bool {
    if !handover::has_pending() && !config::get().revive {
        return false;
    }
    let mut t = SOCKETS.lock();
    let Some(mut s) = t.take_pending(key) else { return false };
    s.kept = false;
    // Keep the program's choices for the fd: blocking mode and close-on-exec.
    // SAFETY: F_GETFL, F_SETFL and F_GETFD take integer arguments; `fd` is the program's (it is
    // binding it) and `s.fd` the shim's own.
    unsafe {
        let want = real::fcntl(fd, libc::F_GETFL, 0);
        let have = real::fcntl(s.fd, libc::F_GETFL, 0);
        if want >= 0 && have >= 0 && (want ^ have) & libc::O_NONBLOCK != 0 {
            real::fcntl(s.fd, libc::F_SETFL, ((have & !libc::O_NONBLOCK) | (want & libc::O_NONBLOCK)) as libc::c_long);
        }
    }
    // SAFETY: as above.
    let cloexec = unsafe { real::fcntl(fd, libc::F_GETFD, 0) };
    let flags = if cloexec >= 0 && cloexec & libc::FD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
    if real::dup3(s.fd, fd, flags) < 0 {
        let e = sys::errno();
        t.add(s);
        sys::set_errno(e);
        return false;
    }
    let old = s.fd;
    s.fd = fd;
    s.pending = false;
    t.add(s);
    drop(t);
    sys::close(old);
    fdtable::set_state(fd, FdState::Bound);
    sockmode::refresh(fd);
    lineage::note_bound();
    debug!("bind({fd}, {}) took over the inherited socket", s.key);
    if s.key.socktype == libc::SOCK_DGRAM {
        // A datagram server reads right after bind, with no accept or poll to watch for; its
        // datagrams queue in the shared socket meanwhile, so claiming it counts as serving.
        handover::mark_serving(fd);
    }
    helper::ensure();
    true
}

/// Before a real bind() of an internet socket: with `--reuseport`, SO_REUSEPORT, so that the
/// next generation can bind the same address while this one still serves it.
pub fn before_bind(fd: c_int, key: &SockKey) {
    if config::get().reuseport && (key.family == libc::AF_INET as u16 || key.family == libc::AF_INET6 as u16) {
        let one: c_int = 1;
        // SAFETY: setsockopt reads the 4-byte int `one` of ours.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const c_int).cast(), 4) };
    }
}

/// After a successful real bind() of `fd` to `key`: the socket is tracked (unless the table is
/// full: it then will not survive restarts, and says so).
pub fn bound(fd: c_int, key: SockKey) {
    if SOCKETS.lock().add(BoundSocket { fd, key, pending: false, inherited: false, shadow: -1, kept: false, waited: false }) {
        fdtable::set_state(fd, FdState::Bound);
        sockmode::refresh(fd);
        debug!("bind({fd}, {key}): tracking");
    } else {
        info!("too many bound sockets; {key} (fd {fd}) will not survive restarts");
    }
    lineage::note_bound();
    helper::ensure();
}

/// Before a real listen(): a socket inherited from the previous generation already listens, so
/// its listen is only noted and true returned (no real call: the backlog stays as it was).
pub fn listens_already(fd: c_int) -> bool {
    if fdtable::state(fd) != FdState::Bound {
        return false;
    }
    // Look up first, releasing the table lock: what follows may take it again.
    let inherited = SOCKETS.lock().find_fd(fd).map(|s| s.inherited).unwrap_or(false);
    if !(inherited && sys::is_serving_socket(fd)) {
        return false;
    }
    sockmode::refresh(fd);
    handover::mark_listening(fd);
    true
}

/// After a successful real listen() on `fd`: a tracked socket's mode is noted, and it counts
/// toward serving.
pub fn listening(fd: c_int) {
    if fdtable::state(fd) == FdState::Bound {
        sockmode::refresh(fd);
        handover::mark_listening(fd);
    }
}
