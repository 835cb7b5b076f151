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
use crate::{connio, guard, handover, lifecycle, real, signals, sigrecord, sys};
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
            connio::accepted(r);
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
                connio::accepted(r);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::sync::mpsc;

    /// Calls `interrupt_all` every few milliseconds (as the drain does) until `done` has a value.
    fn interrupt_until<T>(done: &mpsc::Receiver<T>) -> T {
        let until = sys::now_ms() + 60_000;
        loop {
            interrupt_all();
            if let Ok(v) = done.recv_timeout(std::time::Duration::from_millis(5)) {
                return v;
            }
            assert!(sys::now_ms() < until, "the threads in the gate were never woken");
        }
    }

    #[test]
    fn anything_but_a_bound_listening_socket_goes_straight_to_the_real_call() {
        // Fd numbers no other test uses, never opened.
        let (plain, bound_not_listening) = (61000, 61001);
        assert_eq!(accept(plain, &|fd| fd + 1), plain + 1);
        fdtable::set_state(bound_not_listening, FdState::Bound);
        assert_eq!(accept(bound_not_listening, &|fd| fd + 1), bound_not_listening + 1);
        fdtable::set_state(bound_not_listening, FdState::None);
        assert!(!accepted_any(), "nothing was accepted through the gate");
    }

    /// One test: the slots and the wake handler are process-wide.
    #[test]
    fn slots_count_the_threads_inside_and_a_wake_ends_a_blocked_accept() {
        install_wake_handler();
        assert_eq!(interrupt_all(), 0, "nobody inside");

        // A thread blocked in a real accept() is woken: EINTR, and its slot counted the wake.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        let (tx, rx) = mpsc::channel();
        let t = std::thread::spawn(move || {
            let slot = Slot::enter();
            let before = slot.taken();
            // SAFETY: accept on a listening socket, no address wanted.
            let r = signals::with_wake_unblocked(|| unsafe { libc::accept(fd, core::ptr::null_mut(), core::ptr::null_mut()) });
            let e = sys::errno();
            let after = slot.taken();
            slot.leave();
            tx.send((r, e, before, after)).unwrap();
        });
        let (r, e, before, after) = interrupt_until(&rx);
        t.join().unwrap();
        assert_eq!((r, e), (-1, libc::EINTR), "the wake interrupted the accept");
        assert!(after > before, "the handler counted the wake in the thread's slot");
        assert_eq!(interrupt_all(), 0, "the slot was freed on leaving");

        // More threads than slots: every one is counted, the untracked one too; each tracked one
        // gets a wake (counted by its handler before it leaves), and leaving frees them all.
        let threads = SLOTS + 1;
        let (entered_tx, entered) = mpsc::channel();
        let mut go = Vec::new();
        let mut handles = Vec::new();
        for _ in 0..threads {
            let entered_tx = entered_tx.clone();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            go.push(go_tx);
            handles.push(std::thread::Builder::new().stack_size(64 * 1024).spawn(move || {
                let slot = Slot::enter();
                entered_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                let tracked = slot.0 != usize::MAX;
                let woken = slot.taken();
                slot.leave();
                (tracked, woken)
            }).unwrap());
        }
        for _ in 0..threads {
            entered.recv().unwrap();
        }
        assert_eq!(interrupt_all(), threads);
        for g in go {
            g.send(()).unwrap();
        }
        let results: Vec<(bool, u64)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(results.iter().filter(|(tracked, _)| *tracked).count(), SLOTS);
        assert!(results.iter().all(|&(tracked, woken)| woken == u64::from(tracked)), "one wake per tracked thread: {results:?}");
        assert_eq!(interrupt_all(), 0);

        // A wake still in flight (the thread blocks the signal for now) is not sent again, and
        // the thread takes it before its slot is free.
        let (tx, rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            // SAFETY: a signal set built by sigemptyset/sigaddset; this thread's mask only.
            let set = unsafe {
                let mut set: libc::sigset_t = core::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signals::wake_signal());
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut());
                set
            };
            let slot = Slot::enter();
            tx.send(slot.0).unwrap();
            go_rx.recv().unwrap();
            // SAFETY: as above; the pending wake is delivered on the way back from this call.
            unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut()) };
            let woken = slot.taken();
            slot.leave();
            woken
        });
        let i = rx.recv().unwrap();
        assert_eq!(interrupt_all(), 1);
        let w = SLOT[i].load(Ordering::SeqCst);
        assert_eq!((sent(w), taken(w)), (1, 0), "sent, not yet taken");
        assert_eq!(interrupt_all(), 1, "still inside, counted");
        assert_eq!(sent(SLOT[i].load(Ordering::SeqCst)), 1, "no second wake while one is in flight");
        go_tx.send(()).unwrap();
        assert_eq!(t.join().unwrap(), 1);
        assert_eq!(interrupt_all(), 0);

        // A forked child holds no slot: whatever its parent's threads held is cleared.
        let held = Slot::enter();
        let untracked = (0..SLOTS).map(|_| Slot::enter()).collect::<Vec<_>>();
        assert!(untracked.iter().any(|s| s.0 == usize::MAX));
        after_fork();
        assert_eq!(interrupt_all(), 0, "no slot held and nobody untracked after fork");
        assert_eq!(held.taken(), 0);
        drop((held, untracked)); // a child never leaves the slots its parent's threads held
    }
}
