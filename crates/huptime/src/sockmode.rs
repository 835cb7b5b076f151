//! A bound socket's mode (listening, non-blocking) as the fd table keeps it ([`fdtable::Mode`]):
//! asked from the kernel when it may have changed (bind, listen, the claim of an inherited socket,
//! a take-back, the program's fcntl(F_SETFL)/ioctl(FIONBIO)), so that accept() reads one byte
//! instead of making system calls.

use crate::fdtable::{self, FdState, Mode, SOCKETS};
use crate::{real, sys};
use libc::c_int;

/// Asks the kernel for `fd`'s mode and records it (for a bound or drained fd). errno is kept.
pub fn refresh(fd: c_int) {
    let e = sys::errno();
    // SAFETY: plain fcntl on an fd of the program's.
    let fl = unsafe { real::fcntl(fd, libc::F_GETFL, 0) };
    let mode = Mode { listening: sys::is_listening(fd), nonblocking: fl >= 0 && fl & libc::O_NONBLOCK != 0 };
    fdtable::set_mode(fd, mode);
    sys::set_errno(e);
}

/// The program may have changed the blocking mode of `fd` (a successful fcntl F_SETFL or ioctl
/// FIONBIO): records it for `fd` and for every other fd of the same bound address (a dup shares
/// the open file, and with it O_NONBLOCK). Nothing for fds that are not bound sockets.
pub fn changed(fd: c_int) {
    if !matches!(fdtable::state(fd), FdState::Bound | FdState::Drained) {
        return;
    }
    let mut same = [-1 as c_int; fdtable::MAX_SOCKETS];
    let mut n = 0;
    {
        let t = SOCKETS.lock();
        if let Some(me) = t.find_fd(fd) {
            for s in t.iter().filter(|s| s.key == me.key && s.fd != fd && !s.pending && !s.kept) {
                same[n] = s.fd;
                n += 1;
            }
        }
    }
    refresh(fd);
    for &other in &same[..n] {
        refresh(other);
    }
}
