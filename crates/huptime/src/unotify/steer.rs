//! Steering new TCP connections from an old generation to its successor without looking at a
//! single accept(): each generation listens on its own socket, and the sockets of one address
//! form one SO_REUSEPORT group, in which a one-instruction classic BPF program
//! (SO_ATTACH_REUSEPORT_CBPF) picks the socket every new connection goes to.
//!
//! - The first generation's `bind()` gets SO_REUSEPORT set on its socket before the kernel binds
//!   it, so that a successor can bind the same address while it still listens.
//! - A successor's `bind()` to that address, while the group has that one socket, is let through
//!   with SO_REUSEPORT set too: its socket joins the group at its `listen()`, at index 1 (the
//!   kernel keeps a group's sockets in the order they started listening). Before that, the group
//!   is told to send everything to index 0, the old socket: a successor that is never ready takes
//!   no connection, and its socket closes with it.
//! - Once the successor serves, the group sends everything to index 1. Nothing new reaches the
//!   old socket; the old generation accepts what its queue holds and what handshakes begun before
//!   complete into it ([`pending`]), and only then is it told to stop.
//! - When the old socket closes, the kernel fills its slot with the last one: the group holds one
//!   socket, and index 1, now out of range, falls back to the kernel's choice among one.
//!
//! Where the group holds other sockets (the program's own SO_REUSEPORT pool, another process on
//! the port), indexes can't be known: the successor is then handed the old socket itself, as for
//! a unix socket.

use super::filter::Sends;
use super::{held, sockdiag};
use crate::sockkey::SockKey;
use std::os::fd::{AsRawFd, OwnedFd};

/// Whether connections to `key` can be steered: TCP over IPv4 or IPv6.
pub fn steerable(key: &SockKey) -> bool {
    key.port().is_some() && key.socktype == libc::SOCK_STREAM
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
    let mut v: libc::c_int = 0;
    let mut len = 4 as libc::socklen_t;
    // SAFETY: an int-sized out-value.
    let r = unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEPORT, (&mut v as *mut libc::c_int).cast(), &mut len) };
    r == 0 && v != 0
}

/// The address family of an inet key.
fn family(key: &SockKey) -> i32 {
    key.family as i32
}

/// Whether a listed socket's local address is `key`'s.
fn same_address(key: &SockKey, s: &sockdiag::Seen) -> bool {
    match key.family as i32 {
        libc::AF_INET => s.local[..4] == key.addr[4..8],
        _ => s.local[..] == key.addr[8..24],
    }
}

/// The inodes of the sockets listening on `key`'s address and port (the SO_REUSEPORT group), or
/// None when they could not be listed.
pub fn group(key: &SockKey) -> Option<Vec<u64>> {
    let port = key.port()?;
    Some(sockdiag::listeners(family(key), port)?.iter().filter(|s| same_address(key, s)).map(|s| s.inode as u64).collect())
}

/// Sends every new connection of `sock`'s group to the socket at `index` (out of range: the
/// kernel's own choice). Replaces the group's program, if any.
pub fn to(sock: &OwnedFd, index: u32) -> bool {
    let prog = [libc::sock_filter { code: (libc::BPF_RET | libc::BPF_K) as u16, jt: 0, jf: 0, k: index }];
    let fprog = libc::sock_fprog { len: 1, filter: prog.as_ptr() as *mut libc::sock_filter };
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

/// A successor binding `key`, where huptime holds `held` (inode `inode`): whether it can have a
/// socket of its own beside it. True once the group was told to keep sending new connections to
/// `held` (the group holds that socket only, and it has SO_REUSEPORT).
pub fn make_room(key: &SockKey, held: &OwnedFd, inode: u64) -> bool {
    steerable(key) && shares_port(held) && group(key).is_some_and(|g| g == [inode]) && to(held, 0)
}

/// Once a successor serves on `new` (inode `new_inode`) beside the old socket `old_inode`:
/// sends every new connection to it. False (nothing changed) unless the group is exactly the
/// two sockets, the old one first.
pub fn hand_over(key: &SockKey, new: &OwnedFd, new_inode: u64, old_inode: u64) -> bool {
    group(key).is_some_and(|g| g.len() == 2 && g.contains(&old_inode) && g.contains(&new_inode)) && to(new, 1)
}

/// A handshake in progress: remote address and port.
pub type Peer = ([u8; 16], u16);

/// The handshakes to `key`'s port in progress now (None: they could not be listed).
pub fn handshakes(key: &SockKey) -> Option<Vec<Peer>> {
    Some(sockdiag::handshakes(family(key), key.port()?)?.iter().map(|s| s.remote).collect())
}

/// What an old listener `inode` on `key` still has to take: the connections in its accept queue,
/// plus those of the handshakes in `begun` (in progress when new connections were steered away)
/// that are still in progress. None when the kernel could not be asked.
pub fn pending(key: &SockKey, inode: u64, begun: &[Peer]) -> Option<u32> {
    let port = key.port()?;
    let queued: u32 = sockdiag::listeners(family(key), port)?.iter().filter(|s| s.inode as u64 == inode).map(|s| s.queued).sum();
    let still = if begun.is_empty() { 0 } else { handshakes(key)?.iter().filter(|p| begun.contains(p)).count() as u32 };
    Some(queued + still)
}

/// What the successor of generation `previous` is to send to huptime: accept() as well when one
/// of `previous`'s sockets could not be steered (a unix or UDP socket, or a socket it was handed
/// instead of binding its own), since its successor will likely be handed the same, and then only
/// refusing its accept() calls can stop it from taking new connections.
pub fn sends_after(previous: &held::Generation) -> Sends {
    let unsteerable = previous.listened.iter().any(|(k, _)| !steerable(k)) || previous.taken_over > 0;
    if unsteerable { Sends::BindListenAccept } else { Sends::BindListen }
}

/// What generation `pid`'s sockets still have to take since it was refused new connections. The
/// first call steers the new connections of each of its TCP sockets with a successor's own socket
/// beside it to that one ([`hand_over`]); handshakes in progress at the first two calls are
/// waited for. A socket it shares with its successor has nothing to wait for (its successor
/// takes what is queued).
pub fn away_from(t: &mut held::Table, pid: i32) -> u32 {
    if t.generation(pid).steered.is_none() {
        let mine = t.generation(pid).listened.clone();
        let mut steered = Vec::new();
        for (key, inode) in mine {
            let Some(h) = t.find(&key) else { continue };
            if h.inode != inode && hand_over(&key, &h.fd, h.inode, inode) {
                steered.push((key, inode, Vec::new()));
            }
        }
        t.generation(pid).steered = Some(steered);
    }
    let g = t.generation(pid);
    let early = g.looks < 2;
    g.looks += 1;
    let mut left = 0;
    for (key, inode, begun) in g.steered.iter_mut().flatten() {
        if early {
            // A connection whose SYN the kernel was routing while the program was replaced may
            // still have gone to the old socket: looked at once more.
            for p in handshakes(key).unwrap_or_default() {
                if !begun.contains(&p) {
                    begun.push(p);
                }
            }
        }
        left += pending(key, *inode, begun).unwrap_or(0);
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::FromRawFd;

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

    /// What listener `inode` has queued.
    fn queued(key: &SockKey, inode: u64) -> u32 {
        pending(key, inode, &[]).unwrap()
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
        assert_eq!((queued(&key, old_ino), queued(&key, new_ino)), (8, 0), "before the handover: all to the old socket");
        let new_fd: OwnedFd = new.try_clone().unwrap().into();
        assert!(hand_over(&key, &new_fd, new_ino, old_ino));
        let more: Vec<_> = (0..8).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
        assert_eq!((queued(&key, old_ino), queued(&key, new_ino)), (8, 8), "after: all to the new one");
        for _ in 0..8 {
            old.accept().unwrap();
        }
        assert_eq!(queued(&key, old_ino), 0);
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
        assert_eq!(queued(&key, new_ino), 9);
        // And a next successor finds room again, with everything kept on the serving socket.
        assert!(make_room(&key, &new_fd, new_ino));
        drop((conns, more, last));
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
        assert!(hand_over(&key, &new.try_clone().unwrap().into(), new_ino, old_ino));
        assert_eq!(pending(&key, old_ino, &begun), Some(1), "in progress: waited for");
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let start = std::time::Instant::now();
        while queued(&key, old_ino) == 0 {
            assert!(start.elapsed().as_secs() < 10, "the connection never completed");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!((pending(&key, old_ino, &begun), queued(&key, new_ino)), (Some(1), 0), "complete, in the old socket's queue");
        old.accept().unwrap();
        assert_eq!(pending(&key, old_ino, &begun), Some(0));
    }

    #[test]
    fn a_successor_sends_accept_too_when_its_predecessor_had_a_socket_that_cannot_be_steered() {
        let mut raw = [0u8; 16];
        raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        raw[2..4].copy_from_slice(&8080u16.to_be_bytes());
        let tcp = SockKey::from_sockaddr(libc::SOCK_STREAM, &raw).unwrap();
        let unix = SockKey::from_sockaddr(libc::SOCK_STREAM, b"\x01\x00/tmp/x").unwrap();
        let mut g = held::Generation { listened: vec![(tcp, 1)], ..Default::default() };
        assert_eq!(sends_after(&g), Sends::BindListen);
        g.listened.push((unix, 2));
        assert_eq!(sends_after(&g), Sends::BindListenAccept, "a unix socket");
        g.listened.pop();
        g.taken_over = 1;
        assert_eq!(sends_after(&g), Sends::BindListenAccept, "it was handed its socket");
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
