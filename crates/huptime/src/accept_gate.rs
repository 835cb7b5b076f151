//! The accept gate: the program's accept() on a bound socket ([`accept`], all the accept hooks
//! call), which threads are inside it right now, and how the drain wakes them. A draining process
//! must never take one more connection from the queue its successor serves, and must not end
//! while a thread may be about to take one: threads hold a slot here while inside the hook, the
//! drain wakes the ones blocked in a real accept(), and from the Closing phase on they park
//! instead of accepting.
//!
//! In steady state the hook makes no system call beside the real accept: the socket's mode comes
//! from the fd table ([`crate::sockmode`]), the thread id is cached, the slot is an atomic word.
//!
//! # Waking a thread blocked in accept()
//!
//! A dedicated realtime signal, [`signals::wake_signal`], left unblocked in the program's threads
//! (where the program blocked it itself, the hook unblocks it around the real accept only:
//! [`signals::with_wake_unblocked`]). Its handler has no SA_RESTART, so a real accept() it
//! interrupts returns EINTR inside the hook, which then looks at the phase again (parks, or
//! accepts again). The drain sends it thread-directed (`rt_tgsigqueueinfo`, SI_QUEUE, this pid, a
//! magic value), so it is told apart from a signal of the program's (whose handler it chains to).
//!
//! A wake must never reach the program outside the hook, where it would cut one of its calls
//! short. A slot is one atomic word: free (0), or the thread id with a LEAVING bit, the wakes sent
//! and the wakes taken. The draining helper only sends to a slot that is occupied, not LEAVING and
//! has no wake in flight (taken == sent), and counts the wake (sent + 1, by compare-and-swap on
//! that very word) before sending it. A thread leaving the hook sets LEAVING (after which nothing
//! more is sent) and then, if a wake is still in flight, waits until its handler has counted it:
//! the signal is unblocked and directed at this thread, so it is delivered on the thread's next
//! return to user space (the `sched_yield` of the wait, bounded by [`LEAVE_WAIT_MS`]). Only then
//! is the slot freed and the thread back in the program. A wake that could not be sent is counted
//! as taken at once. So every wake is delivered between the slot's publication and its release,
//! both inside the hook; EINTR is ours exactly when the taken count moved across the real call.
//!
//! A wake can land between the thread's look at the phase and its entry into the real accept()
//! (the handler then runs before the call, which blocks): its slot then shows taken == sent while
//! the thread is still inside, and the drain, which asks every few milliseconds, sends another.
//! Until then the thread may take a connection: it is counted, served, and the drain waits for it.

use crate::fdtable::{self, FdState, SOCKETS};
use crate::{guard, handover, lifecycle, real, signals, sigrecord, sys};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use libc::c_int;

/// Slots: more threads than this blocked in accept() at once are counted but cannot be woken
/// (the drain then waits for them until its deadline).
const SLOTS: usize = 256;
/// A slot's word: thread id << 32 | LEAVING | sent << 16 | taken (0: free).
static SLOT: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
const LEAVING: u64 = 1 << 31;
const COUNT_MASK: u64 = 0x7fff;
/// Threads inside the hook that found no free slot.
static UNTRACKED: AtomicI32 = AtomicI32::new(0);
/// This image accepted at least one connection (a quick exit after serving is not a failure).
static ACCEPTED_ANY: AtomicBool = AtomicBool::new(false);
/// How long a thread leaving the hook waits for a wake already counted to be delivered.
const LEAVE_WAIT_MS: u64 = 2000;
/// The si_value of a wake ("huptime!").
const WAKE_MAGIC: usize = 0x6875_7074_696d_6521;

thread_local! {
    /// This thread's id (gettid is a system call; a forked child clears it, see [`after_fork`]).
    static TID: Cell<i32> = const { Cell::new(0) };
    /// The slot this thread holds, for the wake handler (usize::MAX: none).
    static HELD: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn sent(w: u64) -> u64 {
    (w >> 16) & COUNT_MASK
}

fn taken(w: u64) -> u64 {
    w & COUNT_MASK
}

fn my_tid() -> i32 {
    TID.try_with(|t| {
        if t.get() == 0 {
            // SAFETY: gettid has no preconditions.
            t.set(unsafe { libc::gettid() });
        }
        t.get()
    })
    .unwrap_or(0)
}

/// A slot in the registry, held while a thread may take a connection.
struct Slot(usize);

impl Slot {
    /// Marks the calling thread as inside the accept hook until [`Slot::leave`].
    fn enter() -> Slot {
        let tid = my_tid();
        let start = tid.unsigned_abs() as usize % SLOTS;
        for k in 0..SLOTS {
            let i = (start + k) % SLOTS;
            if SLOT[i].load(Ordering::Relaxed) == 0 && SLOT[i].compare_exchange(0, (tid as u64) << 32, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                let _ = HELD.try_with(|h| h.set(i));
                return Slot(i);
            }
        }
        UNTRACKED.fetch_add(1, Ordering::SeqCst);
        Slot(usize::MAX)
    }

    /// Wakes taken so far in this slot (0 for an untracked thread).
    fn taken(&self) -> u64 {
        SLOT.get(self.0).map(|s| taken(s.load(Ordering::Acquire))).unwrap_or(0)
    }

    /// Leaves the hook: no wake is sent from now on, and one already sent is taken first (see the
    /// module doc). Keeps errno.
    fn leave(self) {
        let Some(s) = SLOT.get(self.0) else {
            UNTRACKED.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let w = s.fetch_or(LEAVING, Ordering::AcqRel);
        if taken(w) != sent(w) {
            let e = sys::errno();
            let since = sys::now_ms();
            while taken(s.load(Ordering::Acquire)) != sent(w) && sys::now_ms().saturating_sub(since) < LEAVE_WAIT_MS {
                // SAFETY: sched_yield has no preconditions; its return delivers the pending wake.
                unsafe { libc::sched_yield() };
            }
            sys::set_errno(e);
        }
        let _ = HELD.try_with(|h| h.set(usize::MAX));
        s.store(0, Ordering::Release);
    }
}

/// The program's accept() or accept4() on `fd`; `raw` makes the real call on a given fd (the
/// hook's own arguments bound in). A bound, listening socket: counts the connection, and once the
/// process drains, a blocking call parks instead of accepting and a non-blocking one says EAGAIN.
/// Anything else goes straight to `raw`. errno is as the real call leaves it.
pub fn accept(fd: c_int, raw: &dyn Fn(c_int) -> c_int) -> c_int {
    let (st, mode) = fdtable::state_and_mode(fd);
    if !matches!(st, FdState::Bound | FdState::Drained) || !mode.listening {
        return raw(fd);
    }
    let Some(_g) = guard::enter() else { return raw(fd) };
    // A retry below (after a wake, a take-back) leaves the failed attempt's errno behind; a
    // successful accept restores the program's, as libc leaves it.
    let saved_errno = sys::errno();
    handover::mark_serving(fd);
    let mut slot = Slot::enter();
    loop {
        if lifecycle::draining() || fdtable::state(fd) == FdState::Drained {
            if mode.nonblocking {
                slot.leave();
                sys::set_errno(libc::EAGAIN);
                return -1;
            }
            match accept_while_draining(fd, slot, raw) {
                Some(r) => return r,
                None => {
                    // The drain was called off: this process serves again.
                    slot = Slot::enter();
                    continue;
                }
            }
        }
        let before = slot.taken();
        let r = signals::with_wake_unblocked(|| raw(fd));
        if r >= 0 {
            fdtable::set_state(r, FdState::Conn);
            ACCEPTED_ANY.store(true, Ordering::Relaxed);
            debug!("accepted fd {r} on fd {fd} ({} open)", fdtable::CONNS.load(Ordering::Relaxed));
            sys::set_errno(saved_errno);
        } else if sys::errno() == libc::EINTR && slot.taken() != before {
            continue; // our wake, not the program's signal: look at the phase again
        }
        slot.leave();
        return r;
    }
}

/// Whether this image has handed the program a connection yet.
pub fn accepted_any() -> bool {
    ACCEPTED_ANY.load(Ordering::Acquire)
}

/// Wakes every thread blocked in a real accept() that has no wake in flight; returns how many
/// threads are inside the accept hook (woken or not).
pub fn interrupt_all() -> usize {
    let mut n = UNTRACKED.load(Ordering::SeqCst).max(0) as usize;
    for s in SLOT.iter() {
        let w = s.load(Ordering::SeqCst);
        if w == 0 {
            continue;
        }
        n += 1;
        if w & LEAVING != 0 || taken(w) != sent(w) || sent(w) == COUNT_MASK {
            continue;
        }
        if s.compare_exchange(w, w + (1 << 16), Ordering::SeqCst, Ordering::Relaxed).is_ok() && !send_wake((w >> 32) as i32) {
            // Never delivered: count it as taken so that the thread does not wait for it.
            let _ = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v >> 32 == w >> 32 && taken(v) < sent(v)).then_some(v + 1));
        }
    }
    n
}

/// The forked child's only thread is the one that called fork(), outside the hook: no slot is
/// held, and its thread id is new.
pub fn after_fork() {
    for s in SLOT.iter() {
        s.store(0, Ordering::Relaxed);
    }
    UNTRACKED.store(0, Ordering::Relaxed);
    let _ = TID.try_with(|t| t.set(0));
    let _ = HELD.try_with(|h| h.set(usize::MAX));
}

/// siginfo as rt_tgsigqueueinfo reads it for SI_QUEUE (the `_rt` member of the union).
#[repr(C)]
struct QueueInfo {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: usize,
    _rest: [u64; 12],
}

/// Sends the wake signal to thread `tid` of this process; false if it could not be sent.
fn send_wake(tid: libc::pid_t) -> bool {
    let sig = signals::wake_signal();
    // SAFETY: getpid/getuid have no preconditions; the syscall reads a fully initialised struct.
    unsafe {
        let pid = libc::getpid();
        let info = QueueInfo { signo: sig, errno: 0, code: libc::SI_QUEUE, _pad: 0, pid, uid: libc::getuid(), value: WAKE_MAGIC, _rest: [0; 12] };
        real::syscall(libc::SYS_rt_tgsigqueueinfo, pid as libc::c_long, tid as libc::c_long, sig as libc::c_long, &info as *const QueueInfo as libc::c_long, 0, 0) == 0
    }
}

/// Whether `info` describes a wake this process sent (not a signal of the program's).
///
/// # Safety
/// `info` is the siginfo the kernel passed to an SA_SIGINFO handler.
unsafe fn is_wake(info: *const libc::siginfo_t) -> bool {
    // SAFETY: the kernel's siginfo (the contract above) is readable for the whole delivery; the
    // value and pid fields are set for SI_QUEUE, checked first; getpid has no preconditions.
    unsafe {
        !info.is_null()
            && (*info).si_code == libc::SI_QUEUE
            && (*info).si_value().sival_ptr as usize == WAKE_MAGIC
            && (*info).si_pid() == libc::getpid()
    }
}

extern "C" fn on_wake(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved = sys::errno();
    // SAFETY: the kernel's siginfo for this delivery.
    if unsafe { is_wake(info) } {
        // Count it in the slot this thread holds (a late one, after a bounded wait gave up, is
        // dropped: the slot is no longer this thread's).
        let tid = TID.try_with(|t| t.get()).unwrap_or(0) as u64;
        if let Some(s) = HELD.try_with(|h| h.get()).ok().and_then(|i| SLOT.get(i)) {
            let _ = s.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| (v >> 32 == tid && taken(v) < sent(v)).then_some(v + 1));
        }
    } else {
        // SAFETY: the kernel's arguments, handed on.
        unsafe { sigrecord::deliver(sig, info, ctx) };
    }
    sys::set_errno(saved);
}

/// Installs the wake signal's handler (constructor time): SA_SIGINFO to tell wakes from the
/// program's signals, no SA_RESTART so that a wake ends a real accept() with EINTR.
pub fn install_wake_handler() {
    // SAFETY: installing a handler that only touches atomics (or calls the program's handler).
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_wake as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        act.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut act.sa_mask);
        real::sigaction(signals::wake_signal(), &act, core::ptr::null_mut());
    }
}

/// A blocking accept() in a draining process, by a thread holding `slot`. If a connection is
/// pending right now (the program's poll/select saw it just before the drain), it is taken
/// without waiting and served here: a single-threaded event loop that called accept() must get
/// back to its open connections. Otherwise the thread parks until the process ends (from its
/// helper thread) or takes its listeners back; then `None` tells the caller to accept again.
fn accept_while_draining(fd: c_int, slot: Slot, accept: &dyn Fn(c_int) -> c_int) -> Option<c_int> {
    if lifecycle::closing() {
        slot.leave();
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
                slot.leave();
                return Some(r);
            }
        }
    }
    slot.leave();
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
