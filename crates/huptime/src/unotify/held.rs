//! The one owner of what the supervisor knows: the listening sockets it holds for the next
//! generation (a duplicate of each, so that they stay open and keep queueing connections while
//! generations come and go), and per generation the sockets it listened on or was handed.
//! Behind one mutex, taken briefly by the notification thread and by the CLI's queries.

use super::filter::Sends;
use crate::sockkey::SockKey;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;

/// A listening socket huptime holds.
pub struct Held {
    /// Its address (and type), as a `bind()` names it.
    pub key: SockKey,
    /// The socket's inode (the same in every process that has it).
    pub inode: u64,
    /// huptime's duplicate.
    pub fd: OwnedFd,
}

/// How a generation's accept() calls are answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accepts {
    /// Let through: it serves.
    #[default]
    Open,
    /// It is being replaced: no new connection for it. On a non-blocking socket accept() fails
    /// with EAGAIN (the program waits for readiness again); on a blocking one the call is held,
    /// as if no connection came, until the program ends. When it is sent its stop signal, the
    /// calls held then fail once with EINTR, so that its signal handler runs
    /// ([`super::answer::release`]). A blocking accept() already running in the kernel (let
    /// through before) still takes one more connection.
    Refused,
}

/// What one generation did with its sockets.
pub struct Generation {
    /// Its pid (the process huptime started).
    pub pid: i32,
    /// The listening sockets it set up (listen()) or was handed (bind() answered), with inodes.
    pub listened: Vec<(SockKey, u64)>,
    /// How many of its bind() calls were answered with a held socket.
    pub taken_over: u32,
    /// Notifications answered for it (and its children).
    pub answered: u64,
    /// How its accept() calls are answered.
    pub accepts: Accepts,
    /// Blocking accept() calls held while [`Accepts::Refused`] and not yet released
    /// (notification ids).
    pub parked: Vec<u64>,
    /// Which of its calls its filter sends (without accept(), it is stopped from taking new
    /// connections by steering them away: [`super::steer`]).
    pub sends: Sends,
    /// How many of its bind() calls were let through beside a held socket of the same address
    /// (its own socket, in the same SO_REUSEPORT group).
    pub joined: u32,
    /// Its sockets whose new connections were steered to a successor's ([`super::steer`]): the
    /// address, the socket's inode, when, and the handshakes to it in progress then.
    pub steered: Vec<(SockKey, u64, std::time::Instant, Vec<super::steer::Peer>)>,
    /// How many times what it still has to take was asked ([`super::steer::away_from`]).
    pub looks: u32,
}

impl Default for Generation {
    fn default() -> Self {
        Generation {
            pid: 0,
            listened: Vec::new(),
            taken_over: 0,
            answered: 0,
            accepts: Accepts::Open,
            parked: Vec::new(),
            sends: Sends::BindListenAccept,
            joined: 0,
            steered: Vec::new(),
            looks: 0,
        }
    }
}

/// Everything the supervisor knows.
#[derive(Default)]
pub struct Table {
    held: Vec<Held>,
    generations: Vec<Generation>,
}

static TABLE: Mutex<Table> = Mutex::new(Table { held: Vec::new(), generations: Vec::new() });

/// Runs `f` with the table locked (never held across a wait).
pub fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut t)
}

impl Table {
    /// The held socket bound to `key` for generation `gen`: the one it listened on there, if any,
    /// else the newest (while a successor's is held beside its predecessor's).
    pub fn find_for(&self, gen: i32, key: &SockKey) -> Option<&Held> {
        let at = |h: &&Held| h.key == *key;
        self.held.iter().filter(at).find(|h| self.has_listened(gen, h.inode)).or_else(|| self.held.iter().rev().find(at))
    }

    /// Whether socket `inode` is open in a process of a generation other than `gen` that listened
    /// on it (a generation that serves or drains, not one that has ended).
    pub fn in_use_by_another(&self, gen: i32, inode: u64) -> bool {
        let owners = self.generations.iter().filter(|g| g.pid != gen && g.listened.iter().any(|&(_, i)| i == inode));
        owners.into_iter().any(|g| super::ready::open_sockets(g.pid).contains(&inode))
    }

    /// Whether a held socket has the family, type and port of `key` (at any address).
    pub fn holds_port(&self, key: &SockKey) -> bool {
        self.held.iter().any(|h| h.key.family == key.family && h.key.socktype == key.socktype && h.key.port() == key.port())
    }

    /// The held socket with inode `inode`.
    pub fn held_inode(&self, inode: u64) -> Option<&OwnedFd> {
        self.held.iter().find(|h| h.inode == inode).map(|h| &h.fd)
    }

    /// The inodes of the sockets held at `key`, oldest first.
    pub fn held_at(&self, key: &SockKey) -> Vec<u64> {
        self.held.iter().filter(|h| h.key == *key).map(|h| h.inode).collect()
    }

    /// The sockets generation `pid` listened on or was handed (none for an unknown pid).
    pub fn listened_by(&self, pid: i32) -> Vec<(SockKey, u64)> {
        self.generations.iter().find(|g| g.pid == pid).map(|g| g.listened.clone()).unwrap_or_default()
    }

    /// Whether the new connections of socket `inode` were steered away already.
    pub fn steered_inode(&self, inode: u64) -> bool {
        self.generations.iter().any(|g| g.steered.iter().any(|s| s.1 == inode))
    }

    /// Records that the new connections of socket `inode` (at `key`) were steered away at `at`,
    /// with the generation that listens on it.
    pub fn mark_steered(&mut self, key: SockKey, inode: u64, at: std::time::Instant) {
        if let Some(g) = self.generations.iter_mut().find(|g| g.listened.iter().any(|&(_, i)| i == inode)) {
            g.steered.push((key, inode, at, Vec::new()));
        }
    }

    /// Whether a socket with this inode is held.
    pub fn holds_inode(&self, inode: u64) -> bool {
        self.held_inode(inode).is_some()
    }

    /// Holds `fd` (bound to `key`) unless that socket is held already (then `fd` is closed). A
    /// successor's own socket at an address held already is held beside the old one.
    pub fn hold(&mut self, key: SockKey, inode: u64, fd: OwnedFd) {
        if !self.holds_inode(inode) {
            self.held.push(Held { key, inode, fd });
        }
    }

    /// Lets go of every held socket that generation `pid` does not use (the generation that now
    /// serves: an address the old code listened on and the new code does not is closed, so that
    /// its queued connections are refused rather than left waiting forever).
    pub fn keep_only_those_of(&mut self, pid: i32) {
        let used: Vec<u64> = self.generation(pid).listened.iter().map(|&(_, i)| i).collect();
        self.held.retain(|h| used.contains(&h.inode));
    }

    /// The addresses held, as text.
    pub fn held_addresses(&self) -> Vec<String> {
        self.held.iter().map(|h| format!("{} (fd {})", h.key, h.fd.as_raw_fd())).collect()
    }

    /// The record of generation `pid` (created on first use).
    pub fn generation(&mut self, pid: i32) -> &mut Generation {
        let i = match self.generations.iter().position(|g| g.pid == pid) {
            Some(i) => i,
            None => {
                self.generations.push(Generation { pid, ..Default::default() });
                self.generations.len() - 1
            }
        };
        &mut self.generations[i]
    }

    /// Notes that generation `pid` listens on (or was handed) the socket `key`/`inode`.
    pub fn listened(&mut self, pid: i32, key: SockKey, inode: u64) {
        let g = self.generation(pid);
        if !g.listened.iter().any(|&(_, i)| i == inode) {
            g.listened.push((key, inode));
        }
    }

    /// Whether generation `pid` listened on (or was handed) the socket `inode`.
    pub fn has_listened(&self, pid: i32, inode: u64) -> bool {
        self.generations.iter().any(|g| g.pid == pid && g.listened.iter().any(|&(_, i)| i == inode))
    }

    /// The inodes of the sockets generation `pid` listened on or was handed.
    pub fn listened_inodes(&mut self, pid: i32) -> Vec<u64> {
        self.generation(pid).listened.iter().map(|&(_, i)| i).collect()
    }

    /// Forgets the sockets of generation `pid` that are no longer open in it (`open`: the socket
    /// inodes /proc showed; empty when it could not be read, then nothing is forgotten). Only
    /// those recorded before /proc was read (`before`) can be judged: one the notification thread
    /// recorded meanwhile (a bind answered with a held socket, a listen) may be newer than that
    /// reading, and forgetting it would leave the generation never ready.
    pub fn forget_closed(&mut self, pid: i32, before: &[u64], open: &[u64]) {
        if !open.is_empty() {
            self.generation(pid).listened.retain(|(_, i)| open.contains(i) || !before.contains(i));
        }
    }

    /// Forgets generation `pid` (it ended).
    pub fn forget(&mut self, pid: i32) {
        self.generations.retain(|g| g.pid != pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> SockKey {
        let mut raw = [0u8; 16];
        raw[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        raw[2..4].copy_from_slice(&port.to_be_bytes());
        raw[4..8].copy_from_slice(&[127, 0, 0, 1]);
        SockKey::from_sockaddr(libc::SOCK_STREAM, &raw).unwrap()
    }

    fn some_fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn an_address_is_held_once_and_let_go_when_the_serving_generation_does_not_use_it() {
        let mut t = Table::default();
        t.hold(key(80), 1, some_fd());
        t.hold(key(81), 1, some_fd()); // same socket: not twice
        t.hold(key(443), 3, some_fd());
        assert_eq!(t.held.len(), 2);
        assert_eq!(t.find_for(7, &key(80)).map(|h| h.inode), Some(1));
        t.hold(key(80), 2, some_fd()); // a successor's own socket at that address: held beside
        assert_eq!(t.held.len(), 3);
        assert_eq!(t.find_for(7, &key(80)).map(|h| h.inode), Some(2), "the newest");
        t.listened(6, key(80), 1);
        assert_eq!(t.find_for(6, &key(80)).map(|h| h.inode), Some(1), "the one it listened on");
        t.listened(7, key(80), 2);
        t.listened(7, key(80), 2);
        assert_eq!(t.generation(7).listened.len(), 1);
        t.keep_only_those_of(7);
        assert!(t.find_for(7, &key(443)).is_none() && t.find_for(7, &key(80)).map(|h| h.inode) == Some(2));
        assert!(!t.holds_inode(1), "the predecessor's socket is let go");
        t.forget(7);
        assert!(t.generation(7).listened.is_empty(), "a fresh record");
    }

    #[test]
    fn a_socket_recorded_after_proc_was_read_is_not_taken_for_closed() {
        let mut t = Table::default();
        t.listened(7, key(80), 1); // a probe it listened on, then closed
        let before = t.listened_inodes(7);
        let open = [5]; // /proc, read now: some other socket, not yet the held one
        t.listened(7, key(81), 2); // the held socket installed and recorded meanwhile
        t.forget_closed(7, &before, &open);
        assert_eq!(t.listened_inodes(7), vec![2]);
        t.forget_closed(7, &[2], &[]); // /proc unreadable: nothing judged
        assert_eq!(t.listened_inodes(7), vec![2]);
    }
}
