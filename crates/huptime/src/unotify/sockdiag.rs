//! TCP sockets of this network namespace as the kernel lists them over netlink (sock_diag,
//! linux/inet_diag.h): listening sockets with their accept queues, and handshakes not yet
//! complete. Only the states asked for are returned (established connections and TIME_WAIT,
//! which can be hundreds of thousands, are skipped in the kernel), so a look costs well under a
//! millisecond where reading /proc/net/tcp would cost many. Read-only, unprivileged.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// SOCK_DIAG_BY_FAMILY (linux/sock_diag.h; not in the libc crate).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// TCP states (linux/tcp_states.h): a handshake in progress, a listener. Asking for SYN_RECV
/// lists request sockets too (TCP_NEW_SYN_RECV inside the kernel: a SYN answered, the final ACK
/// awaited), with state SYN_RECV.
const TCP_SYN_RECV: u8 = 3;
const TCP_LISTEN: u8 = 10;

/// `struct inet_diag_sockid`: ports (big-endian), addresses, interface, cookie.
const SOCKID_LEN: usize = 48;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, then the sockid.
const REQ_LEN: usize = 8 + SOCKID_LEN;
/// `struct inet_diag_msg`: family, state, timer, retrans, sockid, expires, rqueue, wqueue, uid, inode.
const MSG_LEN: usize = 4 + SOCKID_LEN + 20;
const NLMSG_HDRLEN: usize = 16;

/// One socket of a dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// TCP state (TCP_LISTEN, or TCP_SYN_RECV for a handshake in progress).
    pub state: u8,
    /// Local port.
    pub port: u16,
    /// Local address (IPv4 in the first 4 bytes).
    pub local: [u8; 16],
    /// Remote address and port (zero for a listener).
    pub remote: ([u8; 16], u16),
    /// For a listener, the connections waiting in its accept queue.
    pub queued: u32,
    /// The socket's inode (0 for a handshake in progress: it has no file yet).
    pub inode: u32,
}

impl Seen {
    /// Whether this is a listening socket.
    pub fn listening(&self) -> bool {
        self.state == TCP_LISTEN
    }
}

/// The request: one `inet_diag_req_v2` for `family`, the states in `states` (a bit mask of
/// 1 << state) and local port `port` (which the kernel filters on) behind a netlink header asking
/// for a dump.
fn request(family: u8, states: u32, port: u16) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + REQ_LEN];
    b[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    b[16] = family;
    b[17] = libc::IPPROTO_TCP as u8;
    b[20..24].copy_from_slice(&states.to_ne_bytes());
    b[24..26].copy_from_slice(&port.to_be_bytes());
    b
}

/// One `inet_diag_msg` (the payload of a netlink message), or None when it is too short.
pub fn parse_msg(m: &[u8]) -> Option<Seen> {
    if m.len() < MSG_LEN {
        return None;
    }
    let id = &m[4..4 + SOCKID_LEN];
    let word = |at: usize| u32::from_ne_bytes([m[at], m[at + 1], m[at + 2], m[at + 3]]);
    let mut local = [0u8; 16];
    local.copy_from_slice(&id[4..20]);
    let mut remote = [0u8; 16];
    remote.copy_from_slice(&id[20..36]);
    Some(Seen {
        state: m[1],
        port: u16::from_be_bytes([id[0], id[1]]),
        local,
        remote: (remote, u16::from_be_bytes([id[2], id[3]])),
        queued: word(4 + SOCKID_LEN + 4),
        inode: word(4 + SOCKID_LEN + 16),
    })
}

/// Walks the netlink messages in `buf`, appending each socket to `out`. Returns Some(true) at
/// the end of the dump (NLMSG_DONE), Some(false) when more is to come, None on an error message.
pub fn parse_batch(buf: &[u8], out: &mut Vec<Seen>) -> Option<bool> {
    let mut at = 0;
    while at + NLMSG_HDRLEN <= buf.len() {
        let len = u32::from_ne_bytes(buf[at..at + 4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().ok()?);
        if len < NLMSG_HDRLEN || at + len > buf.len() {
            return None;
        }
        match kind as i32 {
            libc::NLMSG_DONE => return Some(true),
            libc::NLMSG_ERROR => return None,
            _ if kind == SOCK_DIAG_BY_FAMILY => out.extend(parse_msg(&buf[at + NLMSG_HDRLEN..at + len])),
            _ => {}
        }
        at += (len + 3) & !3;
    }
    Some(false)
}

/// The TCP sockets of `family` (AF_INET or AF_INET6) in the states of `states` on local `port`,
/// or None when the kernel could not be asked.
fn dump(family: i32, states: u32, port: u16) -> Option<Vec<Seen>> {
    // SAFETY: socket with integer arguments; the result is a new fd we own.
    let fd = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, libc::NETLINK_SOCK_DIAG) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let req = request(family as u8, states, port);
    // SAFETY: sending a local buffer to the kernel (a netlink socket with no address: the kernel).
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } != req.len() as isize {
        return None;
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: receiving into a buffer we own, of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && crate::sys::errno() == libc::EINTR {
            continue;
        }
        if n <= 0 {
            return None;
        }
        if parse_batch(&buf[..n as usize], &mut out)? {
            out.retain(|s| s.port == port);
            return Some(out);
        }
    }
}

/// The listening TCP sockets of `family` on `port`.
pub fn listeners(family: i32, port: u16) -> Option<Vec<Seen>> {
    dump(family, 1 << TCP_LISTEN, port)
}

/// The TCP handshakes of `family` to local `port` still in progress (SYN received and answered,
/// the final ACK awaited): connections a listener will have in its accept queue once they
/// complete. The kernel lists them when SYN_RECV is asked for.
pub fn handshakes(family: i32, port: u16) -> Option<Vec<Seen>> {
    Some(dump(family, 1 << TCP_SYN_RECV, port)?.into_iter().filter(|s| !s.listening()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn inode_of(fd: i32) -> u32 {
        // SAFETY: stat is plain data filled by fstat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid out-pointer.
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        st.st_ino as u32
    }

    #[test]
    fn a_listener_is_listed_with_its_inode_and_accept_queue() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mine = |v: Vec<Seen>| v.into_iter().find(|s| s.inode == inode_of(l.as_raw_fd()));
        let s = mine(listeners(libc::AF_INET, port).unwrap()).expect("our listener is listed");
        assert!(s.listening());
        assert_eq!((s.port, s.queued, &s.local[..4]), (port, 0, &[127, 0, 0, 1][..]));
        let _a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(mine(listeners(libc::AF_INET, port).unwrap()).unwrap().queued, 2, "two connections wait to be accepted");
        let _ = l.accept().unwrap();
        assert_eq!(mine(listeners(libc::AF_INET, port).unwrap()).unwrap().queued, 1);
        assert!(listeners(libc::AF_INET, port + 1).unwrap().iter().all(|s| s.inode != inode_of(l.as_raw_fd())), "another port");
        // On loopback a handshake completes at once: none stays in progress.
        assert_eq!(handshakes(libc::AF_INET, port).unwrap(), vec![]);
    }

    #[test]
    fn messages_are_read_up_to_done_and_errors_are_none() {
        let mut msg = [0u8; NLMSG_HDRLEN + MSG_LEN];
        msg[0..4].copy_from_slice(&((NLMSG_HDRLEN + MSG_LEN) as u32).to_ne_bytes());
        msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let p = NLMSG_HDRLEN;
        msg[p + 1] = TCP_SYN_RECV;
        msg[p + 4..p + 6].copy_from_slice(&8080u16.to_be_bytes());
        msg[p + 6..p + 8].copy_from_slice(&40000u16.to_be_bytes());
        msg[p + 24] = 10; // remote 10.0.0.0
        msg[p + 4 + SOCKID_LEN + 4..p + 4 + SOCKID_LEN + 8].copy_from_slice(&3u32.to_ne_bytes());
        let mut done = [0u8; NLMSG_HDRLEN + 4];
        done[0..4].copy_from_slice(&((NLMSG_HDRLEN + 4) as u32).to_ne_bytes());
        done[4..6].copy_from_slice(&(libc::NLMSG_DONE as u16).to_ne_bytes());
        let mut out = Vec::new();
        assert_eq!(parse_batch(&msg, &mut out), Some(false));
        let both = [&msg[..], &done[..]].concat();
        assert_eq!(parse_batch(&both, &mut out), Some(true));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].state, out[0].port, out[0].remote.1, out[0].remote.0[0], out[0].queued), (TCP_SYN_RECV, 8080, 40000, 10, 3));
        let mut err = done;
        err[4..6].copy_from_slice(&(libc::NLMSG_ERROR as u16).to_ne_bytes());
        assert_eq!(parse_batch(&err, &mut out), None);
        assert_eq!(parse_batch(&msg[..20], &mut Vec::new()), None, "a message cut short");
    }
}
