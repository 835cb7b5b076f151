//! What the shim knows about the traffic on each client connection (the one owner of it): which
//! way data last moved (a read: a request is in progress; a write: it was answered), and, while
//! the process drains, the request heads read and the final responses started since the drain
//! began, whether the response that closes the connection was chosen, the change still to make
//! to it (a [`Patch`]) and whether the shim shut the connection down. Fixed tables of atomics, one
//! entry per fd number: nothing is allocated or locked, so the I/O hooks may use it from any
//! thread (the fd's role comes from [`crate::fdtable`]; an fd number is reset when accept()
//! returns it).
//!
//! The hooks' fast path, for an fd that is not a connection and for a process that serves, is
//! [`conn`]: two atomic loads (the fd's role, then this table's byte); a store follows only when
//! the direction changes.

use crate::fdtable::{self, FdState, MAX_FDS};
use crate::httphead;
use crate::splice::Patch;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use libc::c_int;

/// Data moved on the connection at least once.
const MOVED: u8 = 0x01;
/// The last data moved was written (the program answered).
const WROTE: u8 = 0x02;
/// The process drains: the I/O hooks take their slow path for it.
const WATCH: u8 = 0x04;
/// The response that closes the connection was chosen (no later response is changed).
const DECIDED: u8 = 0x08;
/// The shim shut the connection down (FIN); the program closes it when it reads the end.
const SHUT: u8 = 0x10;
/// Bytes of a request head's end ("\r\n\r\n") matched at the end of the last read (2 bits).
const CARRY_SHIFT: u8 = 5;
const CARRY: u8 = 0x3 << CARRY_SHIFT;

static ACT: [AtomicU8; MAX_FDS] = [const { AtomicU8::new(0) }; MAX_FDS];
static REQUESTS: [AtomicU32; MAX_FDS] = [const { AtomicU32::new(0) }; MAX_FDS];
static RESPONSES: [AtomicU32; MAX_FDS] = [const { AtomicU32::new(0) }; MAX_FDS];
static PATCH: [AtomicU32; MAX_FDS] = [const { AtomicU32::new(0) }; MAX_FDS];
/// The process drains: connections accepted from now on are watched from the start.
static WATCHING: AtomicBool = AtomicBool::new(false);

/// Which way data moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// The program read bytes from the connection.
    Read,
    /// The program wrote bytes to it.
    Write,
}

/// A client connection as one hooked call saw it (its table byte, loaded once).
#[derive(Clone, Copy, Debug)]
pub struct Conn {
    fd: usize,
    seen: u8,
}

/// `fd` as a client connection, or None (not one, or out of the table): the hooks' fast path.
#[inline]
pub fn conn(fd: c_int) -> Option<Conn> {
    if fdtable::state(fd) != FdState::Conn {
        return None;
    }
    let i = fd as usize;
    Some(Conn { fd: i, seen: ACT[i].load(Ordering::Relaxed) })
}

/// Resets the entry of `fd`, which accept() just returned.
pub fn accepted(fd: c_int) {
    if let Some(a) = ACT.get(fd as usize) {
        reset(fd as usize);
        a.store(if WATCHING.load(Ordering::Acquire) { WATCH } else { 0 }, Ordering::Release);
    }
}

fn reset(i: usize) {
    REQUESTS[i].store(0, Ordering::Relaxed);
    RESPONSES[i].store(0, Ordering::Relaxed);
    PATCH[i].store(0, Ordering::Relaxed);
}

/// The drain begins: every open connection is watched, its counts from zero.
pub fn watch_all() {
    WATCHING.store(true, Ordering::Release);
    fdtable::each_in_state(FdState::Conn, |fd| {
        let i = fd as usize;
        reset(i);
        let _ = ACT[i].fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some(b & (MOVED | WROTE) | WATCH));
    });
}

/// The drain was called off: connections are no longer watched (a patch under way is finished).
pub fn unwatch_all() {
    WATCHING.store(false, Ordering::Release);
    fdtable::each_in_state(FdState::Conn, |fd| {
        let i = fd as usize;
        if PATCH[i].load(Ordering::Acquire) == 0 {
            let _ = ACT[i].fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| Some(b & (MOVED | WROTE | SHUT)));
        }
    });
}

impl Conn {
    /// The fd.
    pub fn fd(self) -> c_int {
        self.fd as c_int
    }

    /// Whether the process drains and this connection is watched (the hooks' slow path).
    #[inline]
    pub fn watched(self) -> bool {
        self.seen & WATCH != 0
    }

    /// Records that data moved `way` (a store only when the direction changed).
    #[inline]
    pub fn moved(self, way: Way) {
        let want = MOVED | if way == Way::Write { WROTE } else { 0 };
        if self.seen & (MOVED | WROTE) != want {
            let _ = ACT[self.fd].fetch_update(Ordering::AcqRel, Ordering::Relaxed, |b| Some(b & !(MOVED | WROTE) | want));
        }
    }

    /// Counts the request heads that end in `bytes`, read from the connection (slow path).
    pub fn read(self, bytes: &[u8]) {
        let carry = (ACT[self.fd].load(Ordering::Acquire) & CARRY) >> CARRY_SHIFT;
        let (n, carry) = httphead::count_heads(carry, bytes);
        let _ = ACT[self.fd].fetch_update(Ordering::AcqRel, Ordering::Relaxed, |b| Some(b & !CARRY | carry << CARRY_SHIFT));
        if n > 0 {
            REQUESTS[self.fd].fetch_add(n, Ordering::AcqRel);
        }
    }

    /// [`Conn::read`] for the first `n` bytes of the buffers `iov` describes.
    ///
    /// # Safety
    /// Each iovec describes readable memory, and `n` bytes of them were filled by the read.
    pub unsafe fn read_vectored(self, iov: &[libc::iovec], mut n: usize) {
        for v in iov {
            if n == 0 {
                break;
            }
            let k = v.iov_len.min(n);
            // SAFETY: the caller's contract: `k` bytes of this buffer were read into.
            self.read(unsafe { core::slice::from_raw_parts(v.iov_base as *const u8, k) });
            n -= k;
        }
    }

    /// Request heads read since the drain began.
    pub fn requests(self) -> u32 {
        REQUESTS[self.fd].load(Ordering::Acquire)
    }

    /// Counts a final response the program starts; returns how many it has started since the
    /// drain began, this one included.
    pub fn response_started(self) -> u32 {
        RESPONSES[self.fd].fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Whether the response that closes this connection was chosen already.
    pub fn decided(self) -> bool {
        ACT[self.fd].load(Ordering::Acquire) & DECIDED != 0
    }

    /// Marks the closing response as chosen, with the change still to make to it.
    pub fn decide(self, patch: Option<Patch>) {
        PATCH[self.fd].store(Patch::pack(patch), Ordering::Release);
        ACT[self.fd].fetch_or(DECIDED, Ordering::AcqRel);
    }

    /// The change still to make to what the program writes next.
    pub fn patch(self) -> Option<Patch> {
        Patch::unpack(PATCH[self.fd].load(Ordering::Acquire))
    }

    /// Replaces what [`Conn::patch`] returns.
    pub fn set_patch(self, patch: Option<Patch>) {
        PATCH[self.fd].store(Patch::pack(patch), Ordering::Release);
    }
}

/// What the drain needs to know of a connection fd: whether the last data moved on it was
/// written (or none moved), whether a patch is still under way, and whether the shim shut it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quiet {
    /// No data moved on it yet (its first request has not come).
    pub fresh: bool,
    /// No request in progress as far as the program's reads and writes tell.
    pub answered: bool,
    /// Part of a changed response head is still to be written.
    pub patching: bool,
    /// Already shut down by the shim.
    pub shut: bool,
}

/// [`Quiet`] for connection fd `fd`.
pub fn quiet(fd: c_int) -> Quiet {
    let i = (fd as usize).min(MAX_FDS - 1);
    let b = ACT[i].load(Ordering::Acquire);
    Quiet { fresh: b & MOVED == 0, answered: b & MOVED == 0 || b & WROTE != 0, patching: PATCH[i].load(Ordering::Acquire) != 0, shut: b & SHUT != 0 }
}

/// Records that the shim shut connection `fd` down (it is not shut twice).
pub fn shut(fd: c_int) {
    if let Some(a) = ACT.get(fd as usize) {
        a.fetch_or(SHUT, Ordering::AcqRel);
    }
}

/// Held by the tests that use these process-wide tables (they run in parallel threads).
#[cfg(test)]
pub static TEST_TABLES: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_counts_and_watching_follow_the_connection() {
        let _t = TEST_TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let fd = 3000;
        fdtable::set_state(fd, FdState::Conn);
        accepted(fd);
        let c = conn(fd).unwrap();
        assert!(!c.watched());
        assert!(quiet(fd).answered, "no data yet: nothing in progress");
        c.moved(Way::Read);
        assert!(!quiet(fd).answered);
        conn(fd).unwrap().moved(Way::Write);
        assert!(quiet(fd).answered);
        watch_all();
        let c = conn(fd).unwrap();
        assert!(c.watched());
        c.read(b"GET / HTTP/1.1\r\n\r");
        c.read(b"\nGET /2 HTTP/1.1\r\n\r\n");
        assert_eq!(c.requests(), 2);
        assert_eq!(c.response_started(), 1);
        assert!(!c.decided());
        let p = Patch { at: 17, replaced: 0, done: 0 };
        c.decide(Some(p));
        assert!(c.decided() && c.patch() == Some(p) && quiet(fd).patching);
        c.set_patch(None);
        shut(fd);
        assert!(quiet(fd).shut);
        fdtable::set_state(fd + 1, FdState::Conn);
        accepted(fd + 1);
        assert!(conn(fd + 1).unwrap().watched(), "accepted while draining: watched from the start");
        unwatch_all();
        assert!(!conn(fd).unwrap().watched());
        assert!(conn(fd + 2).is_none(), "not a connection");
        for f in [fd, fd + 1] {
            fdtable::set_state(f, FdState::None);
        }
    }
}
