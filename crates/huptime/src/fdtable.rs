//! What the shim knows about the process's file descriptors: a state byte per fd (lock-free, read
//! on every hooked call), the count of open client connections, and a small table of bound
//! sockets guarded by a spinlock (see [`crate::spinlock`]).

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

/// State of `fd` (None for fds out of range).
#[inline]
pub fn state(fd: c_int) -> FdState {
    match slot(fd).map(|s| s.load(Ordering::Acquire)).unwrap_or(0) {
        1 => FdState::Bound,
        2 => FdState::Conn,
        3 => FdState::Epoll,
        4 => FdState::Internal,
        5 => FdState::Drained,
        _ => FdState::None,
    }
}

/// Sets the state of `fd`, keeping the connection count in step (an fd past [`MAX_FDS`] is
/// announced once: see [`crate::limits`]).
pub fn set_state(fd: c_int, st: FdState) {
    if fd >= MAX_FDS as c_int && st != FdState::None {
        limits::reached(Limit::Fds, fd);
    }
    if let Some(s) = slot(fd) {
        let old = s.swap(st as u8, Ordering::AcqRel);
        if old == FdState::Conn as u8 && st != FdState::Conn {
            let _ = CONNS.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        } else if old != FdState::Conn as u8 && st == FdState::Conn {
            CONNS.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Calls `f` with every fd currently in state `st`.
pub fn each_in_state(st: FdState, mut f: impl FnMut(c_int)) {
    for (fd, s) in STATES.iter().enumerate() {
        if s.load(Ordering::Relaxed) == st as u8 {
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
    /// Eventfd written once when this process starts draining (wakes parked accept calls).
    pub const DRAIN: usize = 1;
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
    fn an_fd_past_the_table_is_announced_not_tracked() {
        assert!(!limits::was_reached(Limit::Fds));
        set_state(MAX_FDS as c_int - 1, FdState::None);
        assert!(!limits::was_reached(Limit::Fds));
        set_state(70000, FdState::Bound);
        assert_eq!(state(70000), FdState::None);
        assert!(limits::was_reached(Limit::Fds));
    }
}
