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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fdtable::BoundSocket;
    use crate::sockkey::SockKey;
    use std::os::fd::AsRawFd;

    fn bound(fd: c_int, key: SockKey) {
        fdtable::set_state(fd, FdState::Bound);
        let s = BoundSocket { fd, key, pending: false, inherited: false, shadow: -1, kept: false, waited: false };
        assert!(SOCKETS.lock().add(s));
    }

    fn forget(fd: c_int) {
        SOCKETS.lock().remove_fd(fd);
        fdtable::set_state(fd, FdState::None);
    }

    fn mode(fd: c_int) -> Mode {
        fdtable::state_and_mode(fd).1
    }

    #[test]
    fn the_mode_is_read_from_the_kernel_and_follows_every_copy_of_the_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let (ss, len) = sys::local_address(fd).unwrap();
        // SAFETY: getsockname filled `len` bytes of `ss`.
        let raw = unsafe { core::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), len as usize) };
        let key = SockKey::from_sockaddr(libc::SOCK_STREAM, raw).unwrap();
        // SAFETY: dup of our own fd.
        let copy = unsafe { libc::dup(fd) };
        bound(fd, key);
        bound(copy, key);
        sys::set_errno(libc::ENOTCONN);
        refresh(fd);
        assert_eq!(sys::errno(), libc::ENOTCONN, "errno is kept");
        assert_eq!(mode(fd), Mode { listening: true, nonblocking: false });
        assert_eq!(mode(copy), Mode::default(), "only the fd asked about");

        listener.set_nonblocking(true).unwrap();
        changed(fd);
        let both = Mode { listening: true, nonblocking: true };
        assert_eq!((mode(fd), mode(copy)), (both, both), "a dup shares O_NONBLOCK");
        listener.set_nonblocking(false).unwrap();
        changed(copy);
        assert_eq!(mode(fd), Mode { listening: true, nonblocking: false });

        // A socket that is not (or no longer) bound here is left alone.
        forget(copy);
        listener.set_nonblocking(true).unwrap();
        changed(copy);
        assert_eq!(fdtable::state_and_mode(copy), (FdState::None, Mode::default()));
        assert!(!mode(fd).nonblocking, "nothing asked on behalf of an fd that is not bound");
        forget(fd);
        // SAFETY: closing our own fd.
        unsafe { libc::close(copy) };
    }

    #[test]
    fn an_unconnected_datagram_socket_does_not_listen() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        udp.set_nonblocking(true).unwrap();
        let fd = udp.as_raw_fd();
        fdtable::set_state(fd, FdState::Bound);
        refresh(fd);
        assert_eq!(mode(fd), Mode { listening: false, nonblocking: true });
        fdtable::set_state(fd, FdState::None);
    }
}
