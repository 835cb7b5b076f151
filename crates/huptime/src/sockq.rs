//! What the kernel holds for a connection, asked without touching it: bytes received and not yet
//! read (SIOCINQ), bytes written and not yet acknowledged (SIOCOUTQ) or not yet sent (SIOCOUTQNSD,
//! TCP only), and for TCP how long ago
//! data last moved each way (TCP_INFO). The drain uses them to tell an idle connection from one
//! with a request in progress, for any protocol.

use crate::real;
use libc::c_int;

/// SIOCINQ and SIOCOUTQ (linux/sockios.h: FIONREAD and TIOCOUTQ), SIOCOUTQNSD (linux/sockios.h).
const SIOCINQ: libc::c_ulong = libc::FIONREAD;
const SIOCOUTQ: libc::c_ulong = libc::TIOCOUTQ;
const SIOCOUTQNSD: libc::c_ulong = 0x894B;

fn queued(fd: c_int, req: libc::c_ulong) -> Option<usize> {
    let mut n: c_int = 0;
    // SAFETY: both requests write one int into `n`.
    let r = unsafe { real::ioctl(fd, req, (&mut n as *mut c_int) as libc::c_long) };
    (r == 0 && n >= 0).then_some(n as usize)
}

/// Bytes received on `fd` that the program has not read (None: not a socket, or closed).
pub fn unread(fd: c_int) -> Option<usize> {
    queued(fd, SIOCINQ)
}

/// Bytes written on `fd` that the peer has not acknowledged (TCP), or the buffer space held by
/// what the peer has not read yet (AF_UNIX): 0 when everything written is through.
pub fn unsent(fd: c_int) -> Option<usize> {
    queued(fd, SIOCOUTQ)
}

/// Bytes written on `fd` that the kernel has not sent yet (TCP); for another kind of socket, as
/// [`unsent`].
pub fn not_yet_sent(fd: c_int) -> Option<usize> {
    queued(fd, SIOCOUTQNSD).or_else(|| queued(fd, SIOCOUTQ))
}

/// For a TCP socket: milliseconds since data was last received and last sent on it (None for
/// another kind of socket).
pub fn last_data_ms(fd: c_int) -> Option<(u32, u32)> {
    // SAFETY: tcp_info is plain data; getsockopt fills at most `len` bytes of it.
    let mut info: libc::tcp_info = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid out-pointers of the sizes given.
    let r = unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len) };
    (r == 0).then_some((info.tcpi_last_data_recv, info.tcpi_last_data_sent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn queues_and_times_are_read_from_the_kernel() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut server, _) = l.accept().unwrap();
        let fd = server.as_raw_fd();
        assert_eq!(unread(fd), Some(0));
        client.write_all(b"hello").unwrap();
        let t0 = std::time::Instant::now();
        while unread(fd) != Some(5) {
            assert!(t0.elapsed().as_secs() < 60, "the bytes never arrived");
            std::thread::yield_now();
        }
        let mut buf = [0u8; 5];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(unread(fd), Some(0));
        assert!(unsent(fd).is_some());
        assert!(last_data_ms(fd).is_some());
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(last_data_ms(a.as_raw_fd()), None, "not TCP");
        (&b).write_all(b"xy").unwrap();
        assert_eq!(unread(a.as_raw_fd()), Some(2));
        assert!(unsent(b.as_raw_fd()).unwrap() > 0, "AF_UNIX: written, not yet read (counted in buffer space)");
        let mut two = [0u8; 2];
        (&a).read_exact(&mut two).unwrap();
        assert_eq!(unsent(b.as_raw_fd()), Some(0), "read by the peer");
        assert_eq!(unread(-1), None);
    }
}
