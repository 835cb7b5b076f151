//! The accept gate: which threads are inside a real accept() right now, and what a blocking
//! accept() does once the process drains. A draining process must never take one more
//! connection from the queue its successor serves, and must not end while a thread may be about
//! to take one: threads register here, the drain wakes them, and from the Closing phase on they
//! park instead of accepting.

use crate::fdtable::{self, FdState, SOCKETS};
use crate::{lifecycle, real, signals};
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use libc::c_int;

/// Thread ids currently blocked in a real accept() (0 = free slot). A draining process signals
/// them so that none is left holding the kernel's next connection when the process ends.
static IN_ACCEPT: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
/// Threads in a real accept() that found no free slot above.
static IN_ACCEPT_UNTRACKED: AtomicI32 = AtomicI32::new(0);
/// This image accepted at least one connection (a quick exit after serving is not a failure).
static ACCEPTED_ANY: AtomicBool = AtomicBool::new(false);

/// A slot in the registry, held while a thread may take a connection.
pub struct Slot(usize);

/// Marks the calling thread as inside a real accept() until the returned slot is released.
pub fn enter() -> Slot {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    for (i, s) in IN_ACCEPT.iter().enumerate() {
        if s.compare_exchange(0, tid, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            return Slot(i);
        }
    }
    IN_ACCEPT_UNTRACKED.fetch_add(1, Ordering::SeqCst);
    Slot(usize::MAX)
}

/// Releases a slot taken by [`enter`].
pub fn leave(slot: Slot) {
    match IN_ACCEPT.get(slot.0) {
        Some(s) => s.store(0, Ordering::Release),
        None => {
            IN_ACCEPT_UNTRACKED.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Notes that a connection was handed to the program.
pub fn accepted() {
    ACCEPTED_ANY.store(true, Ordering::Relaxed);
}

/// Whether this image has handed the program a connection yet.
pub fn accepted_any() -> bool {
    ACCEPTED_ANY.load(Ordering::Acquire)
}

/// Wakes every thread blocked in a real accept() ([`signals::wake`]); returns how many there are.
pub fn interrupt_all() -> usize {
    let mut n = IN_ACCEPT_UNTRACKED.load(Ordering::SeqCst).max(0) as usize;
    for s in IN_ACCEPT.iter() {
        let tid = s.load(Ordering::SeqCst);
        if tid != 0 {
            n += 1;
            signals::wake(tid);
        }
    }
    n
}

/// A blocking accept() in a draining process, by a thread holding `slot`. If a connection is
/// pending right now (the program's poll/select saw it just before the drain), it is taken
/// without waiting and served here: a single-threaded event loop that called accept() must get
/// back to its open connections. Otherwise the thread parks until the process ends (from its
/// helper thread) or takes its listeners back; then `None` tells the caller to accept again.
pub fn accept_while_draining(fd: c_int, slot: Slot, accept: &dyn Fn(c_int) -> c_int) -> Option<c_int> {
    if lifecycle::closing() {
        leave(slot);
        park();
        return None;
    }
    let shadow = SOCKETS.lock().find_fd(fd).map(|s| s.shadow).unwrap_or(-1);
    // The kept copy is set before the inert socket takes the fd's place, so prefer it.
    let real_fd = if shadow >= 0 { shadow } else if fdtable::state(fd) == FdState::Bound { fd } else { -1 };
    if real_fd >= 0 {
        let mut p = libc::pollfd { fd: real_fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        if unsafe { real::poll(&mut p, 1, 0) } == 1 && p.revents & libc::POLLIN != 0 {
            let r = accept(real_fd);
            if r >= 0 {
                fdtable::set_state(r, FdState::Conn);
                leave(slot);
                return Some(r);
            }
        }
    }
    leave(slot);
    park();
    None
}

/// Blocks the calling thread while the process drains: it ends from its helper thread, or takes
/// its listeners back (its successor failed) and the thread returns.
fn park() {
    while lifecycle::draining() {
        // SAFETY: poll with no fds just sleeps.
        unsafe { real::poll(core::ptr::null_mut(), 0, 100) };
    }
}
