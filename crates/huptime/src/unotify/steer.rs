//! Steering new TCP connections from an old generation to its successor without looking at a
//! single accept(): each generation listens on its own socket, and the sockets of one address
//! form one SO_REUSEPORT group, in which a classic BPF program (SO_ATTACH_REUSEPORT_CBPF) picks
//! the socket every new connection goes to.
//!
//! - A `bind()` to a TCP address no held socket has the port of gets SO_REUSEPORT set on the
//!   program's socket before the kernel binds it, so that a successor can bind the same address
//!   while it still listens.
//! - A successor's `bind()` to that address, while the group holds that one socket and a process
//!   of the old generation still has it, is let through with SO_REUSEPORT set too ([`make_room`]):
//!   its socket joins the group at its `listen()`, after the old one (the kernel keeps a group's
//!   sockets in the order they started listening, and fills a closed socket's slot with the last
//!   one). Before that, the group is told to send everything to index 0, the old socket: a
//!   successor that is never ready takes no connection, and its socket closes with it.
//! - Once the successor serves ([`steer_to`]), the group sends everything to the successor's
//!   sockets (index 1, or spread over 1..n when it has several). Nothing new reaches the old
//!   socket; the old generation accepts what its queue holds and what handshakes begun before
//!   complete into it ([`away_from`]), and only then is it told to stop.
//! - Once the old generation has ended, the program is taken off the group ([`settle`]): the
//!   kernel's own choice among the serving generation's sockets.
//!
//! Where the group holds other sockets (the old program's own SO_REUSEPORT pool, another process
//! on the port), indexes can't be known: the successor is then handed the old socket itself, as
//! for a unix socket, and its own successor has its accept() calls sent ([`sends_after`]).

use super::filter::Sends;
use super::{held, sockdiag};
use crate::sockkey::SockKey;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long after the hand-over handshakes begun before it are waited for: a SYN-ACK is sent
/// again after 1 s and 3 s, and a handshake that takes longer is most likely never completed
/// (a client gone, a forged SYN), while the old generation waits for its stop signal meanwhile.
pub const HANDSHAKE_WAIT: Duration = Duration::from_secs(3);

/// Whether connections to `key` can be steered: a stream socket over IPv4 or IPv6 (TCP: see
/// [`is_tcp`] for the protocol).
pub fn steerable(key: &SockKey) -> bool {
    key.port().is_some() && key.socktype == libc::SOCK_STREAM
}

/// Whether `sock` is a TCP socket (not SCTP or MPTCP, also of type SOCK_STREAM).
pub fn is_tcp(sock: &OwnedFd) -> bool {
    crate::sys::socket_option(sock.as_raw_fd(), libc::SO_PROTOCOL) == Some(libc::IPPROTO_TCP)
}

/// Sets SO_REUSEPORT on `sock` (a duplicate of the program's socket: the option is the socket's),
/// so that a successor can bind the same address beside it.
pub fn share_port(sock: &OwnedFd) -> bool {
    let one: libc::c_int = 1;
    // SAFETY: an int-sized option value.
    unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, (&one as *const libc::c_int).cast(), 4) == 0 }
}

/// Whether `sock` has SO_REUSEPORT set.
pub fn shares_port(sock: &OwnedFd) -> bool {
    crate::sys::socket_option(sock.as_raw_fd(), libc::SO_REUSEPORT).is_some_and(|v| v != 0)
}

/// The address family of an inet key.
fn family(key: &SockKey) -> i32 {
    key.family as i32
}

/// `key`'s IP address bytes (4 for IPv4, 16 for IPv6).
fn ip(key: &SockKey) -> &[u8] {
    match key.family as i32 {
        libc::AF_INET => &key.addr[4..8],
        _ => &key.addr[8..24],
    }
}

/// Whether a listed socket's local address is `key`'s.
fn same_address(key: &SockKey, s: &sockdiag::Seen) -> bool {
    s.local[..ip(key).len()] == *ip(key)
}

/// Whether a connection to local address `s.local` reaches a socket bound to `key`'s address
/// (the same address, or `key`'s is the wildcard).
fn covers(key: &SockKey, s: &sockdiag::Seen) -> bool {
    ip(key).iter().all(|&b| b == 0) || same_address(key, s)
}

/// The inodes of the sockets listening on `key`'s address and port (the SO_REUSEPORT group, in
/// no particular order), or None when they could not be listed.
pub fn group(key: &SockKey) -> Option<Vec<u64>> {
    let port = key.port()?;
    Some(sockdiag::listeners(family(key), port)?.iter().filter(|s| same_address(key, s)).map(|s| s.inode as u64).collect())
}

/// Replaces the program of `sock`'s group with `prog`.
fn attach(sock: &OwnedFd, prog: &[libc::sock_filter]) -> bool {
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    // SAFETY: the kernel copies the program; both live for the call.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            core::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        ) == 0
    }
}

const fn insn(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

/// The program that sends every new connection to the socket at `index` (out of range: the
/// kernel's own choice).
pub fn only(index: u32) -> [libc::sock_filter; 1] {
    [insn(libc::BPF_RET | libc::BPF_K, index)]
}

/// The program that spreads new connections at random over the sockets at `first..first + n`.
pub fn spread(first: u32, n: u32) -> [libc::sock_filter; 4] {
    use libc::{BPF_ABS, BPF_ADD, BPF_ALU, BPF_K, BPF_LD, BPF_MOD, BPF_RET, BPF_W};
    [
        insn(BPF_LD | BPF_W | BPF_ABS, (libc::SKF_AD_OFF + libc::SKF_AD_RANDOM) as u32),
        insn(BPF_ALU | BPF_MOD | BPF_K, n.max(1)),
        insn(BPF_ALU | BPF_ADD | BPF_K, first),
        insn(BPF_RET | libc::BPF_A, 0),
    ]
}

/// Takes any program off `sock`'s group (SO_DETACH_REUSEPORT_BPF, Linux 5.3; before, a program
/// whose index is always out of range): the kernel's own choice again.
pub fn release(sock: &OwnedFd) -> bool {
    let zero: libc::c_int = 0;
    // SAFETY: an int-sized option value (ignored by the kernel).
    let detached = unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_DETACH_REUSEPORT_BPF, (&zero as *const libc::c_int).cast(), 4) == 0 };
    detached || crate::sys::errno() == libc::ENOENT || attach(sock, &only(u32::MAX))
}

/// Whether a successor binding `key`, where huptime holds `held` (inode `inode`), can have a
/// socket of its own beside it: a TCP socket with SO_REUSEPORT, alone in its group.
pub fn room(key: &SockKey, held: &OwnedFd, inode: u64) -> bool {
    steerable(key) && is_tcp(held) && shares_port(held) && group(key).is_some_and(|g| g == [inode])
}

/// [`room`], and the group told to keep sending new connections to `held` meanwhile.
pub fn make_room(key: &SockKey, held: &OwnedFd, inode: u64) -> bool {
    room(key, held, inode) && attach(held, &only(0))
}

/// Sends the new connections of `key`'s group to the successor's sockets `successor` (their
/// inodes; `sock` is any socket of the group) and away from the old socket `old`, which must be
/// at index 0 ([`make_room`] saw to that). Where the group holds a socket of neither, the kernel's
/// own choice is restored instead. True when the old socket gets nothing new from now on.
pub fn hand_over(key: &SockKey, sock: &OwnedFd, old: u64, successor: &[u64]) -> bool {
    let Some(g) = group(key) else { return false };
    let others: Vec<u64> = g.iter().copied().filter(|&i| i != old).collect();
    let all_successors = !others.is_empty() && others.iter().all(|i| successor.contains(i));
    match (g.contains(&old), all_successors) {
        (true, true) if others.len() == 1 => attach(sock, &only(1)),
        (true, true) => attach(sock, &spread(1, others.len() as u32)),
        (false, true) => release(sock),
        _ => {
            release(sock);
            false
        }
    }
}

/// A handshake in progress: remote address and port.
pub type Peer = ([u8; 16], u16);

/// The handshakes in progress now to `key`'s address and port (None: they could not be listed).
pub fn handshakes(key: &SockKey) -> Option<Vec<Peer>> {
    Some(sockdiag::handshakes(family(key), key.port()?)?.iter().filter(|s| covers(key, s)).map(|s| s.remote).collect())
}

/// The connections waiting in the accept queue of listener `inode` on `key` (None when the kernel
/// could not be asked).
pub fn queued(key: &SockKey, inode: u64) -> Option<u32> {
    Some(sockdiag::listeners(family(key), key.port()?)?.iter().filter(|s| s.inode as u64 == inode).map(|s| s.queued).sum())
}

/// How many of the handshakes in `begun` are among those in progress `now`.
fn still_in_progress(begun: &[Peer], now: &[Peer]) -> u32 {
    now.iter().filter(|p| begun.contains(p)).count() as u32
}

/// What the successor of generation `previous` is to send to huptime: accept() as well when one
/// of `previous`'s sockets can't be steered (a unix or UDP socket, or a TCP socket a successor
/// can't listen beside: see [`room`]), since then only refusing `previous`'s successor's accept()
/// calls will stop it from taking new connections when its own turn comes.
pub fn sends_after(t: &held::Table, previous: i32) -> Sends {
    let steerable_all = t.listened_by(previous).iter().all(|&(key, inode)| t.held_inode(inode).is_some_and(|fd| room(&key, fd, inode)));
    if steerable_all { Sends::BindListen } else { Sends::BindListenAccept }
}

/// Generation `next` serves: every address where it listens on a socket of its own beside one
/// huptime holds for another generation is handed over to it ([`hand_over`]). Each old socket
/// handed over is recorded with the generation that listens on it, for [`away_from`].
pub fn steer_to(t: &mut held::Table, next: i32) {
    let mine = t.listened_by(next);
    for &(key, _) in &mine {
        let successor: Vec<u64> = mine.iter().filter(|(k, _)| *k == key).map(|&(_, i)| i).collect();
        let olds = t.held_at(&key).into_iter().filter(|i| !successor.contains(i)).collect::<Vec<_>>();
        let [old] = olds[..] else { continue };
        if t.steered_inode(old) {
            continue;
        }
        let Some(fd) = t.held_inode(successor[0]) else { continue };
        if hand_over(&key, fd, old, &successor) {
            t.mark_steered(key, old, Instant::now());
        }
    }
}

/// What generation `pid`'s sockets still have to take since they were handed over: for each, its
/// accept queue and the handshakes to it begun before (looked at on the first two calls, for a
/// SYN the kernel was routing meanwhile, and waited for at most [`HANDSHAKE_WAIT`]). A socket it
/// shares with its successor has nothing to wait for (the successor takes what is queued). Netlink
/// is asked with the table unlocked.
pub fn away_from(pid: i32) -> u32 {
    let (early, sockets) = held::with(|t| {
        let g = t.generation(pid);
        g.looks += 1;
        (g.looks <= 2, g.steered.clone())
    });
    let mut left = 0;
    let mut seen = Vec::new();
    for (key, inode, at, begun) in &sockets {
        let mut begun = begun.clone();
        let waiting = at.elapsed() < HANDSHAKE_WAIT;
        // One listing of the handshakes per look, when they are to be recorded or waited for.
        let now = if early || (waiting && !begun.is_empty()) { handshakes(key) } else { Some(Vec::new()) };
        if early {
            for p in now.iter().flatten() {
                if !begun.contains(p) {
                    begun.push(*p);
                }
            }
        }
        let still = match (&now, waiting) {
            (_, false) => Some(0),
            (Some(now), true) => Some(still_in_progress(&begun, now)),
            (None, true) => None,
        };
        // Not listed: asked again on the next look.
        left += queued(key, *inode).zip(still).map_or(1, |(q, s)| q + s);
        seen.push(begun);
    }
    if early {
        held::with(|t| {
            for (s, begun) in t.generation(pid).steered.iter_mut().zip(seen) {
                s.3 = begun;
            }
        });
    }
    left
}

/// The old generation has ended: each address of generation `current` is left to the kernel's
/// own choice among its sockets, if they alone listen there.
pub fn settle(t: &held::Table, current: i32) {
    let mine = t.listened_by(current);
    for &(key, inode) in &mine {
        if !steerable(&key) {
            continue;
        }
        let ours: Vec<u64> = mine.iter().filter(|(k, _)| *k == key).map(|&(_, i)| i).collect();
        if let (Some(fd), Some(g)) = (t.held_inode(inode), group(&key)) {
            if !g.is_empty() && g.iter().all(|i| ours.contains(i)) {
                release(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::FromRawFd;

    /// What an old listener `inode` still has to take: its queue and the handshakes of `begun`
    /// still in progress (as [`away_from`] counts them).
    fn pending(key: &SockKey, inode: u64, begun: &[Peer]) -> Option<u32> {
        Some(queued(key, inode)? + still_in_progress(begun, &handshakes(key)?))
    }

    /// A TCP socket with SO_REUSEPORT bound to `port` (0: any) and listening; returns it, its
    /// inode and its key.
    fn listener(port: u16) -> (TcpListener, u64, SockKey) {
        // SAFETY: a fresh socket we own.
        let fd = unsafe { OwnedFd::from_raw_fd(libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0)) };
        assert!(share_port(&fd) && shares_port(&fd));
        let mut sa: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_port = port.to_be();
        sa.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        // SAFETY: a sockaddr_in of its size.
        assert_eq!(unsafe { libc::bind(fd.as_raw_fd(), (&sa as *const libc::sockaddr_in).cast(), 16) }, 0);
        // SAFETY: listen on our socket.
        assert_eq!(unsafe { libc::listen(fd.as_raw_fd(), 64) }, 0);
        let l = TcpListener::from(fd);
        let port = l.local_addr().unwrap().port();
        sa.sin_port = port.to_be();
        // SAFETY: sockaddr_in is plain bytes.
        let raw = unsafe { core::slice::from_raw_parts((&sa as *const libc::sockaddr_in).cast::<u8>(), 16) };
        let key = SockKey::from_sockaddr(libc::SOCK_STREAM, raw).unwrap();
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid out-pointer.
        unsafe { libc::fstat(l.as_raw_fd(), &mut st) };
        (l, st.st_ino, key)
    }


    #[test]
    fn connections_go_to_the_old_socket_until_handed_over_then_all_to_the_new_one() {
        let (old, old_ino, key) = listener(0);
        let port = key.port().unwrap();
        let old_fd: OwnedFd = old.try_clone().unwrap().into();
        assert_eq!(group(&key).unwrap(), vec![old_ino]);
        assert!(make_room(&key, &old_fd, old_ino), "one socket in the group: room for a successor");
        let (new, new_ino, _) = listener(port);
        assert!(!make_room(&key, &old_fd, old_ino), "two sockets: no room for a third");
        let conns: Vec<_> = (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        assert_eq!((queued(&key, old_ino).unwrap(), queued(&key, new_ino).unwrap()), (8, 0), "before the handover: all to the old socket");
        let new_fd: OwnedFd = new.try_clone().unwrap().into();
        assert!(hand_over(&key, &new_fd, old_ino, &[new_ino]));
        let more: Vec<_> = (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        assert_eq!((queued(&key, old_ino).unwrap(), queued(&key, new_ino).unwrap()), (8, 8), "after: all to the new one");
        for _ in 0..8 {
            old.accept().unwrap();
        }
        assert_eq!(queued(&key, old_ino).unwrap(), 0);
        // The old socket closes: the group holds the new one only, which takes everything.
        drop(old);
        drop(old_fd);
        // (A child another test forks may hold a copy of it until its exec.)
        let start = std::time::Instant::now();
        while group(&key).unwrap() != [new_ino] {
            assert!(start.elapsed().as_secs() < 10, "the old socket still listens: {:?}", group(&key));
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let last = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(queued(&key, new_ino).unwrap(), 9);
        assert!(release(&new_fd), "the program taken off");
        assert!(release(&new_fd), "none to take off: nothing to do");
        // And a next successor finds room again, with everything kept on the serving socket.
        assert!(make_room(&key, &new_fd, new_ino));
        let (_third, third_ino, _) = listener(port);
        let _one = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!((queued(&key, new_ino).unwrap(), queued(&key, third_ino).unwrap()), (10, 0));
        drop((conns, more, last));
    }

    #[test]
    fn a_successor_with_several_sockets_gets_all_new_connections_spread_over_them() {
        let (_old, old_ino, key) = listener(0);
        let port = key.port().unwrap();
        let old_fd: OwnedFd = _old.try_clone().unwrap().into();
        assert!(make_room(&key, &old_fd, old_ino));
        let (a, a_ino, _) = listener(port);
        let (_b, b_ino, _) = listener(port);
        let fd: OwnedFd = a.try_clone().unwrap().into();
        assert!(hand_over(&key, &fd, old_ino, &[a_ino, b_ino]));
        let conns: Vec<_> = (0..64).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        let (qa, qb) = (queued(&key, a_ino).unwrap(), queued(&key, b_ino).unwrap());
        assert_eq!((queued(&key, old_ino).unwrap(), qa + qb), (0, 64), "none to the old socket");
        assert!(qa > 0 && qb > 0, "spread over both: {qa} and {qb}");
        // A socket of neither: the old one is not kept from new connections (hashing decides).
        let (_c, _, _) = listener(port);
        assert!(!hand_over(&key, &fd, old_ino, &[a_ino, b_ino]));
        drop(conns);
    }

    /// A handshake begun before the handover completes into the old socket (the kernel keeps it
    /// with the listener that answered its SYN), so it is waited for. TCP_DEFER_ACCEPT keeps it
    /// in progress on loopback: the listener takes the client's ACK for a handshake only once
    /// data comes with it.
    #[test]
    fn a_handshake_begun_before_the_handover_is_waited_for_until_the_old_socket_took_it() {
        use std::io::Write;
        let (old, old_ino, key) = listener(0);
        let port = key.port().unwrap();
        let secs: libc::c_int = 30;
        // SAFETY: an int-sized option value.
        assert_eq!(unsafe { libc::setsockopt(old.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, (&secs as *const libc::c_int).cast(), 4) }, 0);
        let old_fd: OwnedFd = old.try_clone().unwrap().into();
        assert!(make_room(&key, &old_fd, old_ino));
        let (new, new_ino, _) = listener(port);
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let begun = handshakes(&key).unwrap();
        assert_eq!(begun.len(), 1, "the handshake is in progress");
        assert_eq!(begun[0].1, client.local_addr().unwrap().port());
        assert!(hand_over(&key, &new.try_clone().unwrap().into(), old_ino, &[new_ino]));
        assert_eq!(pending(&key, old_ino, &begun), Some(1), "in progress: waited for");
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let start = std::time::Instant::now();
        while queued(&key, old_ino).unwrap() == 0 {
            assert!(start.elapsed().as_secs() < 10, "the connection never completed");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!((pending(&key, old_ino, &begun), queued(&key, new_ino).unwrap()), (Some(1), 0), "complete, in the old socket's queue");
        old.accept().unwrap();
        assert_eq!(pending(&key, old_ino, &begun), Some(0));
    }

    #[test]
    fn a_successor_sends_accept_too_when_its_predecessor_had_a_socket_that_cannot_be_steered() {
        let (tcp, tcp_ino, tcp_key) = listener(0);
        let mut t = held::Table::default();
        t.hold(tcp_key, tcp_ino, tcp.try_clone().unwrap().into());
        t.listened(1, tcp_key, tcp_ino);
        assert_eq!(sends_after(&t, 1), Sends::BindListen);
        // A unix socket.
        let unix = SockKey::from_sockaddr(libc::SOCK_STREAM, b"\x01\x00/tmp/x").unwrap();
        t.hold(unix, 99, std::fs::File::open("/dev/null").unwrap().into());
        t.listened(2, tcp_key, tcp_ino);
        t.listened(2, unix, 99);
        assert_eq!(sends_after(&t, 2), Sends::BindListenAccept, "a unix socket");
        // A TCP socket that another one shares the group with (its own pool, say).
        let (_pool, pool_ino, _) = listener(tcp_key.port().unwrap());
        assert_eq!(sends_after(&t, 1), Sends::BindListenAccept, "no room beside it");
        let _ = pool_ino;
    }

    #[test]
    fn a_socket_without_so_reuseport_or_another_protocol_is_not_steered() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd: OwnedFd = l.try_clone().unwrap().into();
        assert!(!shares_port(&fd));
        let (_, ino, key) = {
            let mut st: libc::stat = unsafe { core::mem::zeroed() };
            // SAFETY: valid out-pointer.
            unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
            let mut raw = [0u8; 16];
            raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            raw[2..4].copy_from_slice(&l.local_addr().unwrap().port().to_be_bytes());
            raw[4..8].copy_from_slice(&[127, 0, 0, 1]);
            ((), st.st_ino, SockKey::from_sockaddr(libc::SOCK_STREAM, &raw).unwrap())
        };
        assert!(!make_room(&key, &fd, ino), "no SO_REUSEPORT: a successor could not bind beside it");
        let mut raw = [0u8; 16];
        raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        assert!(!steerable(&SockKey::from_sockaddr(libc::SOCK_DGRAM, &raw).unwrap()), "UDP");
        let unix = SockKey::from_sockaddr(libc::SOCK_STREAM, b"\x01\x00/tmp/x").unwrap();
        assert!(!steerable(&unix));
    }
}
