//! Connections a generation accepted but has not read from yet: what must be read before it is
//! told to stop. A graceful stop commonly drops such a connection (Go's http.Server.Shutdown
//! closes a connection whose first request it reads after the stop began), so once a generation
//! is refused new connections, huptime waits until it has none of these before the stop signal.
//!
//! A connection counts as fresh while it is established and either nothing has arrived on it
//! yet or what arrived is still unread (TCP_INFO's bytes received, SIOCINQ). Only TCP connections
//! whose local port is one the generation listens on are looked at.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `tcpi_state` of an established connection (linux/tcp_states.h; not in libc).
const TCP_ESTABLISHED: u8 = 1;

/// Whether a connection with these counters is fresh: established, and nothing received yet, or
/// bytes waiting to be read.
pub fn is_fresh(established: bool, bytes_received: u64, unread: i32) -> bool {
    established && (bytes_received == 0 || unread > 0)
}

/// The local port of an inet socket.
fn local_port(fd: &OwnedFd) -> Option<u16> {
    let (ss, _) = crate::sys::local_address(fd.as_raw_fd())?;
    match ss.ss_family as i32 {
        // SAFETY: the family says which sockaddr it is; both fit in the storage.
        libc::AF_INET => Some(u16::from_be(unsafe { (*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()).sin_port })),
        // SAFETY: as above.
        libc::AF_INET6 => Some(u16::from_be(unsafe { (*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()).sin6_port })),
        _ => None,
    }
}

/// Whether the TCP connection `fd` is fresh (see [`is_fresh`]).
fn fresh(fd: &OwnedFd) -> bool {
    // SAFETY: tcp_info is plain data filled by getsockopt; SIOCINQ writes one int.
    unsafe {
        let mut info: libc::tcp_info = core::mem::zeroed();
        let mut len = core::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        if libc::getsockopt(fd.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&mut info as *mut libc::tcp_info).cast(), &mut len) != 0 {
            return false;
        }
        let mut unread: libc::c_int = 0;
        libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut unread);
        is_fresh(info.tcpi_state == TCP_ESTABLISHED, info.tcpi_bytes_received, unread)
    }
}

/// How many of `pid`'s connections on `ports` are fresh.
pub fn count(pid: i32, ports: &[u16]) -> u32 {
    // SAFETY: pidfd_open with integers; the result is a new fd we own.
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pfd < 0 {
        return 0;
    }
    // SAFETY: a fresh fd.
    let pfd = unsafe { OwnedFd::from_raw_fd(pfd as i32) };
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    let mut n = 0;
    for f in fds.flatten() {
        let is_socket = std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"));
        let Some(num) = f.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        if !is_socket {
            continue;
        }
        // SAFETY: pidfd_getfd with integers; the result is a new fd we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pfd.as_raw_fd(), num, 0) };
        if fd < 0 {
            continue;
        }
        // SAFETY: a fresh fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let tcp_stream = crate::sys::socktype(fd.as_raw_fd()) == libc::SOCK_STREAM && !crate::sys::is_listening(fd.as_raw_fd());
        if tcp_stream && local_port(&fd).is_some_and(|p| ports.contains(&p)) && fresh(&fd) {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_fresh_until_what_arrived_was_read() {
        assert!(is_fresh(true, 0, 0), "nothing arrived yet");
        assert!(is_fresh(true, 78, 78), "the request waits unread");
        assert!(!is_fresh(true, 78, 0), "read");
        assert!(!is_fresh(false, 0, 0), "closing or closed");
    }

    #[test]
    fn this_process_connections_are_counted_until_read() {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let me = std::process::id() as i32;
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (mut accepted, _) = l.accept().unwrap();
        // The client side's local port is not ours: only the accepted end counts.
        assert_eq!(count(me, &[port]), 1, "accepted, nothing sent");
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(count(me, &[port]), 1, "sent, unread");
        let mut buf = [0u8; 18];
        accepted.read_exact(&mut buf).unwrap();
        assert_eq!(count(me, &[port]), 0, "read");
        assert_eq!(count(me, &[port + 1]), 0, "another port");
    }
}
