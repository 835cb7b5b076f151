//! What the shim knows about the process's file descriptors: a state byte per fd (lock-free, read
//! on every hooked call: the fd's role and, for bound sockets, whether it listens and whether it
//! is non-blocking, so that accept() never asks the kernel), the count of open client
//! connections, and a small table of bound sockets guarded by a spinlock (see
//! [`crate::spinlock`]).

use crate::limits::{self, Limit};
use crate::sockkey::SockKey;
use crate::spinlock::SpinLock;
use core::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use libc::c_int;

/// Fds at or above this number are never tracked (they pass through untouched).
pub const MAX_FDS: usize = 65536;
/// Bound sockets one process can track.
pub const MAX_SOCKETS: usize = crate::wire::MAX_SOCKETS;

/// The role an fd plays for the shim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FdState {
    /// Not of interest.
    None = 0,
    /// A socket the program bound (listening or datagram).
    Bound = 1,
    /// A client connection returned by accept(): counted until closed.
    Conn = 2,
    /// An epoll instance: bound sockets are removed from it when draining.
    Epoll = 3,
    /// One of the shim's own fds: hidden from the program's close/dup2.
    Internal = 4,
    /// A bound fd number whose socket was swapped for an inert one while draining.
    Drained = 5,
}

/// The state byte: the role in the low bits, mode flags above (see [`Mode`]).
const ROLE_BITS: u8 = 0x07;
/// Flag: the socket listens (accept() takes from it).
const LISTENING: u8 = 0x08;
/// Flag: the socket is in non-blocking mode (O_NONBLOCK).
const NONBLOCKING: u8 = 0x10;

static STATES: [AtomicU8; MAX_FDS] = [const { AtomicU8::new(0) }; MAX_FDS];

/// Open client connections accepted by this process.
pub static CONNS: AtomicUsize = AtomicUsize::new(0);

fn slot(fd: c_int) -> Option<&'static AtomicU8> {
    if fd >= 0 && (fd as usize) < MAX_FDS {
        Some(&STATES[fd as usize])
    } else {
        None
    }
}

fn role_of(byte: u8) -> FdState {
    match byte & ROLE_BITS {
        1 => FdState::Bound,
        2 => FdState::Conn,
        3 => FdState::Epoll,
        4 => FdState::Internal,
        5 => FdState::Drained,
        _ => FdState::None,
    }
}

/// A bound socket's mode as last seen by the shim: kept up to date when the program binds,
/// listens, claims an inherited socket or changes the blocking mode (fcntl, ioctl), so that the
/// accept hook reads it instead of asking the kernel on every call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mode {
    /// The socket listens.
    pub listening: bool,
    /// O_NONBLOCK is set on it.
    pub nonblocking: bool,
}

impl Mode {
    fn bits(self) -> u8 {
        (if self.listening { LISTENING } else { 0 }) | (if self.nonblocking { NONBLOCKING } else { 0 })
    }
    fn of(byte: u8) -> Mode {
        Mode { listening: byte & LISTENING != 0, nonblocking: byte & NONBLOCKING != 0 }
    }
}

/// State of `fd` (None for fds out of range).
#[inline]
pub fn state(fd: c_int) -> FdState {
    role_of(slot(fd).map(|s| s.load(Ordering::Acquire)).unwrap_or(0))
}

/// State and mode of `fd`, read at once (one atomic load).
#[inline]
pub fn state_and_mode(fd: c_int) -> (FdState, Mode) {
    let b = slot(fd).map(|s| s.load(Ordering::Acquire)).unwrap_or(0);
    (role_of(b), Mode::of(b))
}

/// Whether an fd in this state holds a bound socket (the real one, or an inert stand-in).
fn is_socket(st: FdState) -> bool {
    matches!(st, FdState::Bound | FdState::Drained)
}

/// Sets the state of `fd`, keeping the connection count in step. The mode stays when a bound
/// socket becomes drained or back (same socket, same mode), and is cleared otherwise. An fd past
/// [`MAX_FDS`] is announced once (see [`crate::limits`]).
pub fn set_state(fd: c_int, st: FdState) {
    if fd >= MAX_FDS as c_int && st != FdState::None {
        limits::reached(Limit::Fds, fd);
    }
    if let Some(s) = slot(fd) {
        let Ok(old) = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
            let keep = if is_socket(role_of(b)) && is_socket(st) { b & !ROLE_BITS } else { 0 };
            Some(st as u8 | keep)
        }) else {
            return;
        };
        let was = role_of(old);
        if was == FdState::Conn && st != FdState::Conn {
            let _ = CONNS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        } else if was != FdState::Conn && st == FdState::Conn {
            CONNS.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Records the mode of bound socket `fd` (nothing for an fd in another state).
pub fn set_mode(fd: c_int, mode: Mode) {
    if let Some(s) = slot(fd) {
        let _ = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| is_socket(role_of(b)).then_some(b & ROLE_BITS | mode.bits()));
    }
}

/// Calls `f` with every fd currently in state `st`.
pub fn each_in_state(st: FdState, mut f: impl FnMut(c_int)) {
    for (fd, s) in STATES.iter().enumerate() {
        if role_of(s.load(Ordering::Relaxed)) == st {
            f(fd as c_int);
        }
    }
}

/// A bound socket the process holds.
#[derive(Clone, Copy, Debug)]
pub struct BoundSocket {
    /// Fd number: the program's fd once claimed, or the shim's internal fd while pending.
    pub fd: c_int,
    /// What it is bound to.
    pub key: SockKey,
    /// Inherited from the previous generation but not yet claimed by a bind() here.
    pub pending: bool,
    /// Came from the previous generation (claimed or not).
    pub inherited: bool,
    /// While draining: a private copy of the real socket (the program's fd holds an inert one).
    pub shadow: c_int,
    /// The program closed it, but the shim keeps it (at `fd`, a private fd) for the next
    /// generation (`--revive`: a listener closed before exit must not refuse connections).
    pub kept: bool,
    /// Inherited and claimed, and the program has waited for connections on it (readiness).
    pub waited: bool,
}

/// Fixed-capacity table of bound sockets.
pub struct Sockets {
    slots: [Option<BoundSocket>; MAX_SOCKETS],
}

impl Sockets {
    /// Adds a socket; false when the table is full (announced once: see [`crate::limits`]).
    pub fn add(&mut self, s: BoundSocket) -> bool {
        for slot in self.slots.iter_mut() {
            if slot.is_none() {
                *slot = Some(s);
                return true;
            }
        }
        limits::reached(Limit::Sockets, s.fd);
        false
    }
    /// Removes the entry for program fd `fd` (not pending or kept ones); returns it.
    pub fn remove_fd(&mut self, fd: c_int) -> Option<BoundSocket> {
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if s.fd == fd && !s.pending && !s.kept) {
                return slot.take();
            }
        }
        None
    }
    /// The entry for program fd `fd`.
    pub fn find_fd(&self, fd: c_int) -> Option<BoundSocket> {
        self.iter().find(|s| s.fd == fd && !s.pending && !s.kept)
    }
    /// Takes the pending (inherited, unclaimed) or kept socket with this key, if any.
    pub fn take_pending(&mut self, key: &SockKey) -> Option<BoundSocket> {
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if (s.pending || s.kept) && s.key == *key) {
                return slot.take();
            }
        }
        None
    }
    /// Whether a socket with this key is held (pending or claimed).
    pub fn holds_unix_path(&self, path: &[u8]) -> bool {
        self.iter().any(|s| s.key.unix_path() == Some(path))
    }
    /// The entry in slot `i` (slots run from 0 to [`MAX_SOCKETS`]).
    pub fn get(&self, i: usize) -> Option<BoundSocket> {
        self.slots.get(i).copied().flatten()
    }
    /// All entries.
    pub fn iter(&self) -> impl Iterator<Item = BoundSocket> + '_ {
        self.slots.iter().flatten().copied()
    }
    /// Mutable access to all entries.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut BoundSocket> + '_ {
        self.slots.iter_mut().flatten()
    }
    /// Removes every pending entry, returning them through `f`.
    pub fn drain_pending(&mut self, mut f: impl FnMut(BoundSocket)) {
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if s.pending) {
                if let Some(s) = slot.take() {
                    f(s);
                }
            }
        }
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.iter().count()
    }
    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The bound-socket table.
pub static SOCKETS: SpinLock<Sockets> = SpinLock::new(Sockets { slots: [None; MAX_SOCKETS] });

/// Named slots for the shim's own fds, so that a program's dup2() onto one of them can move it.
pub mod internal {
    use super::*;

    /// Eventfd that wakes the helper thread: the SIGHUP handler writes it, and a program thread
    /// that found the generation ready (the helper sends the ready message).
    pub const WAKE: usize = 0;
    /// Read end of the pipe a master writes to tell the processes it forked to drain.
    pub const LINEAGE_R: usize = 2;
    /// Write end of that pipe.
    pub const LINEAGE_W: usize = 3;
    /// Write end of the readiness pipe to the previous generation.
    pub const READY: usize = 4;
    /// Pidfd of the previous generation's process while it drains (fork mode).
    pub const PREDECESSOR: usize = 5;
    /// First of the saved original fds (stdio and anything else given at start).
    pub const ORIG_BASE: usize = 8;
    /// Number of slots.
    pub const COUNT: usize = 40;

    /// Current fd of each slot (-1 when empty).
    pub static SLOTS: [AtomicI32; COUNT] = [const { AtomicI32::new(-1) }; COUNT];
    /// For ORIG slots: the fd number the program originally had it at.
    pub static ORIG_NUM: [AtomicI32; COUNT] = [const { AtomicI32::new(-1) }; COUNT];

    /// The fd in slot `i`, or -1.
    #[inline]
    pub fn get(i: usize) -> c_int {
        SLOTS[i].load(Ordering::Acquire)
    }

    /// Puts `fd` in slot `i` and marks it internal.
    pub fn set(i: usize, fd: c_int) {
        SLOTS[i].store(fd, Ordering::Release);
        if fd >= 0 {
            set_state(fd, FdState::Internal);
        }
    }

    /// Empties slot `i`, returning the fd it held (not closed).
    pub fn take(i: usize) -> c_int {
        let fd = SLOTS[i].swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            set_state(fd, FdState::None);
        }
        fd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_follows_a_socket_into_drained_and_back_but_not_into_a_new_role() {
        let fd = 1000;
        set_state(fd, FdState::Bound);
        assert_eq!(state_and_mode(fd), (FdState::Bound, Mode::default()));
        let m = Mode { listening: true, nonblocking: true };
        set_mode(fd, m);
        assert_eq!(state_and_mode(fd), (FdState::Bound, m));
        set_state(fd, FdState::Drained);
        assert_eq!(state_and_mode(fd), (FdState::Drained, m));
        set_state(fd, FdState::Bound);
        assert_eq!(state_and_mode(fd), (FdState::Bound, m));
        set_state(fd, FdState::None);
        assert_eq!(state_and_mode(fd), (FdState::None, Mode::default()));
        set_state(fd, FdState::Bound);
        assert_eq!(state_and_mode(fd), (FdState::Bound, Mode::default()));
        set_state(fd, FdState::None);
    }

    #[test]
    fn mode_is_only_kept_for_sockets_and_connections_are_counted() {
        let fd = 1001;
        set_mode(fd, Mode { listening: true, nonblocking: false });
        assert_eq!(state_and_mode(fd), (FdState::None, Mode::default()));
        let before = CONNS.load(Ordering::SeqCst);
        set_state(fd, FdState::Conn);
        set_mode(fd, Mode { listening: true, nonblocking: true });
        assert_eq!(state_and_mode(fd), (FdState::Conn, Mode::default()));
        assert!(CONNS.load(Ordering::SeqCst) > before);
        set_state(fd, FdState::None);
    }

    #[test]
    fn a_socket_with_a_mode_is_still_found_by_its_state() {
        let fd = 1002;
        set_state(fd, FdState::Drained);
        set_mode(fd, Mode { listening: true, nonblocking: true });
        let mut found = false;
        each_in_state(FdState::Drained, |f| found |= f == fd);
        assert!(found);
        set_state(fd, FdState::None);
    }

    #[test]
    fn an_fd_past_the_table_is_announced_not_tracked() {
        assert!(!limits::was_reached(Limit::Fds));
        set_state(MAX_FDS as c_int - 1, FdState::None);
        assert!(!limits::was_reached(Limit::Fds));
        set_state(70000, FdState::Bound);
        assert_eq!(state(70000), FdState::None);
        assert!(limits::was_reached(Limit::Fds));
    }
}
