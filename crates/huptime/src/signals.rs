//! huptime's signals, kept out of the program's way.
//!
//! SIGHUP is huptime's. So that it never cuts one of the program's calls short (nanosleep, poll,
//! epoll_wait and select are never restarted by the kernel, SA_RESTART or not), it is *blocked in
//! every program thread* from the constructor on (threads created later inherit the mask) and
//! taken only by the shim's helper thread, the one thread that unblocks it. Its handler stays
//! trivial (atomics and an eventfd write) and stays installed as a fallback: a SIGHUP that still
//! reaches a program thread (one that unblocked it with a raw system call) restarts as usual.
//!
//! The program keeps its own view of SIGHUP's blocking: `sigprocmask`/`pthread_sigmask` and the
//! temporary masks of `sigsuspend`, `ppoll`, `pselect`, `epoll_pwait` never unblock it for real,
//! while the old masks they return say what they would say without huptime (tracked per thread,
//! inherited by the threads it creates). Because masks survive execve and are inherited by
//! spawned processes, every exec or spawn the program makes runs with SIGHUP's blocking as the
//! program sees it (`as_program`); the shim's own execs restore the mask the program started with
//! (`launch::ExecPlan::exec_into`).
//!
//! The wake signal ([`wake_signal`]) is huptime's too: the drain sends it to threads blocked in a
//! real accept() (see [`crate::accept_gate`], which owns its handler). Unlike SIGHUP it is left
//! unblocked, and the program's own masks apply to it as set; what this module keeps is whether
//! the program blocked it in each thread ([`program_blocks`]), so that the accept hook opens a
//! window for it only in such a thread, and the action the program asked for it, which is
//! recorded and reported back but not installed (like SIGHUP's: see [`crate::sigrecord`]).

use crate::fdtable::internal;
use crate::{real, sys};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use libc::{c_int, sigset_t};

/// A user's SIGHUP arrived and is not handled yet (coalesces bursts into one restart).
static HUP_PENDING: AtomicBool = AtomicBool::new(false);
/// SIGHUP is blocked in this process's threads on huptime's behalf (see `take_sighup`).
static HELD: AtomicBool = AtomicBool::new(false);
/// Which of huptime's signals the mask the program started with blocked (bit `1 << Ours`).
static STARTED_BLOCKED: AtomicU8 = AtomicU8::new(0);
/// The start mask was looked at (STARTED_BLOCKED is meaningful).
static STARTED_KNOWN: AtomicBool = AtomicBool::new(false);

/// The signal that wakes a thread blocked in a real accept() when the process drains. A realtime
/// signal (queued, never merged) well away from both ends of the range: glibc reserves the two
/// below SIGRTMIN, programs that use realtime signals count up from SIGRTMIN, and debuggers and
/// valgrind take SIGRTMAX. A program that uses it anyway keeps its handler (chained).
pub fn wake_signal() -> c_int {
    libc::SIGRTMAX() - 3
}

/// One of huptime's signals, as the shift of its two bits in a thread's view byte.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ours {
    /// SIGHUP: blocked for real, the program sees its own choice.
    Hup = 0,
    /// The wake signal: as the program set it; tracked to know when the accept hook must unblock it.
    Wake = 2,
}

impl Ours {
    fn signo(self) -> c_int {
        match self {
            Ours::Hup => libc::SIGHUP,
            Ours::Wake => wake_signal(),
        }
    }
}

/// The program's view of one signal in one thread (two bits): not set by the thread (then as at
/// the start), unblocked, blocked.
const VIEW_START: u8 = 0;
const VIEW_UNBLOCKED: u8 = 1;
const VIEW_BLOCKED: u8 = 2;

thread_local! {
    /// Both signals' views in this thread (see [`Ours`]).
    static VIEW: Cell<u8> = const { Cell::new(0) };
}

/// The view set by a mask call made in a vfork child (which shares the parent thread's memory,
/// so it must not touch that thread's view): `pid << 2 | view`.
static VFORK_VIEW: AtomicU64 = AtomicU64::new(0);

fn view_of(blocked: bool) -> u8 {
    if blocked {
        VIEW_BLOCKED
    } else {
        VIEW_UNBLOCKED
    }
}

/// Whether the program believes SIGHUP is blocked in the calling thread. (Async-signal-safe.)
pub fn program_blocks_hup() -> bool {
    if !crate::guard::active_here() {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as u64;
        let v = VFORK_VIEW.load(Ordering::Acquire);
        if v >> 2 == me && v & 3 != 0 {
            return v & 3 == VIEW_BLOCKED as u64;
        }
    }
    program_blocks(Ours::Hup)
}

/// Whether the program has `which` blocked in the calling thread, as far as its mask calls
/// through libc say (no system call; async-signal-safe).
#[inline]
pub fn program_blocks(which: Ours) -> bool {
    let shift = which as u8;
    match (VIEW.try_with(|v| v.get()).unwrap_or(0) >> shift) & 3 {
        VIEW_START => STARTED_BLOCKED.load(Ordering::Relaxed) & (1 << shift) != 0,
        v => v == VIEW_BLOCKED,
    }
}

/// Records the program's view of `which` in the calling thread (in a vfork child: SIGHUP's, for
/// that child; the wake signal does not matter there).
pub fn set_program_view(which: Ours, blocked: bool) {
    let shift = which as u8;
    if crate::guard::active_here() {
        let _ = VIEW.try_with(|v| v.set(v.get() & !(3 << shift) | view_of(blocked) << shift));
    } else if which == Ours::Hup {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as u64;
        VFORK_VIEW.store(me << 2 | view_of(blocked) as u64, Ordering::Release);
    }
}

/// Takes on the views of the thread that created this one (see [`view_to_inherit`]).
pub fn adopt_view(view: u8) {
    let _ = VIEW.try_with(|v| v.set(view));
}

/// Runs `f` (a real accept() that a wake may have to interrupt) with the wake signal unblocked:
/// as it is, with no system call, unless the program blocked it in this thread. Keeps `f`'s errno.
pub fn with_wake_unblocked<T>(f: impl FnOnce() -> T) -> T {
    if !program_blocks(Ours::Wake) {
        return f();
    }
    let set = only(wake_signal());
    // SAFETY: sigset_t is plain data; the real calls only read `set`.
    unsafe { real::pthread_sigmask(libc::SIG_UNBLOCK, &set, core::ptr::null_mut()) };
    let r = f();
    let e = sys::errno();
    // SAFETY: as above.
    unsafe { real::pthread_sigmask(libc::SIG_BLOCK, &set, core::ptr::null_mut()) };
    sys::set_errno(e);
    r
}

/// Whether SIGHUP is held blocked in this process's threads (the mask hooks then keep it so).
pub fn held() -> bool {
    HELD.load(Ordering::Acquire)
}

/// An empty signal set (also the buffer the calls that take a temporary mask copy it into).
pub fn empty_set() -> sigset_t {
    // SAFETY: sigset_t is plain data (all-zero is valid), then initialised by sigemptyset.
    unsafe {
        let mut s: sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

/// A sigaction with no handler, no flags and an empty mask (to fill in, or for a call to fill).
pub fn empty_action() -> libc::sigaction {
    // SAFETY: sigaction is plain data: all zero is SIG_DFL, no flags, an empty mask.
    unsafe { core::mem::zeroed() }
}

fn only(sig: c_int) -> sigset_t {
    let mut s = empty_set();
    // SAFETY: `s` is a valid sigset_t of ours; `sig` is a signal number.
    unsafe { libc::sigaddset(&mut s, sig) };
    s
}

/// Blocks or unblocks SIGHUP in the calling thread, for real; returns the mask before.
fn block_here(block: bool) -> sigset_t {
    let set = only(libc::SIGHUP);
    // SAFETY: sigset_t is plain data; the real call only reads `set` and writes `old`.
    unsafe {
        let mut old: sigset_t = core::mem::zeroed();
        let how = if block { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        real::pthread_sigmask(how, &set, &mut old);
        old
    }
}

/// Takes SIGHUP away from the program's threads: blocks it in the calling thread (at constructor
/// time the only one; threads created later inherit the mask), after recording whether the
/// program had it (and the wake signal) blocked. Also called when the helper starts in a process
/// that did not take it at start (a process the program spawned, which inherits the shim, and
/// then binds a socket).
pub fn take_sighup(at_start: bool) {
    if HELD.swap(true, Ordering::AcqRel) {
        return;
    }
    let old = block_here(true);
    // SAFETY: `old` was filled by the kernel.
    let blocks = |w: Ours| unsafe { libc::sigismember(&old, w.signo()) == 1 };
    if !STARTED_KNOWN.swap(true, Ordering::AcqRel) {
        let bits = [Ours::Hup, Ours::Wake].iter().filter(|&&w| at_start || w == Ours::Wake).filter(|&&w| blocks(w)).fold(0, |b, &w| b | 1 << w as u8);
        STARTED_BLOCKED.store(bits, Ordering::Relaxed);
    }
    if !at_start {
        set_program_view(Ours::Hup, blocks(Ours::Hup));
    }
}

/// The helper thread's mask: SIGHUP only (every other signal stays the program's business).
pub fn helper_mask() {
    // SAFETY: mask manipulation on the calling thread.
    unsafe {
        let mut set: sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigdelset(&mut set, libc::SIGHUP);
        real::pthread_sigmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
    }
}

extern "C" fn on_sighup(_sig: c_int) {
    let saved = sys::errno();
    HUP_PENDING.store(true, Ordering::Release);
    sys::eventfd_signal(internal::get(internal::WAKE));
    sys::set_errno(saved);
}

/// Takes the pending SIGHUP, if any (the helper thread).
pub fn take_pending() -> bool {
    HUP_PENDING.swap(false, Ordering::AcqRel)
}

/// Marks a restart as asked for, as a SIGHUP would (a deferred restart whose time has come).
pub fn set_pending() {
    HUP_PENDING.store(true, Ordering::Release);
}

/// Whether `handler` (a sigaction's) is huptime's SIGHUP handler.
pub fn is_hup_handler(handler: libc::sighandler_t) -> bool {
    handler == on_sighup as extern "C" fn(c_int) as usize
}

/// Installs the SIGHUP handler (with SA_RESTART: a user's SIGHUP that reaches a program thread,
/// one that unblocked it with a raw system call, restarts its call as usual).
pub fn install_handler() {
    // SAFETY: installing a handler that only touches atomics and writes an eventfd.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_sighup as extern "C" fn(c_int) as usize;
        act.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut act.sa_mask);
        real::sigaction(libc::SIGHUP, &act, core::ptr::null_mut());
    }
}

/// Runs `f` (an exec or spawn) with SIGHUP blocked or not as the program sees it in this thread,
/// so that the program it starts gets the mask it would get without huptime. A SIGHUP pending
/// meanwhile is taken by our handler before the exec. Preserves `f`'s errno.
pub fn as_program<T>(f: impl FnOnce() -> T) -> T {
    if !held() || program_blocks_hup() {
        return f();
    }
    unblocked_during(f)
}

fn unblocked_during<T>(f: impl FnOnce() -> T) -> T {
    block_here(false);
    let r = f();
    let e = sys::errno();
    block_here(true);
    sys::set_errno(e);
    r
}

/// `mask` with SIGHUP added (into `buf`), for the calls that take a temporary mask; null stays null.
///
/// # Safety
/// `mask` is null or points to a valid sigset_t.
pub unsafe fn keeping_hup_blocked(mask: *const sigset_t, buf: &mut sigset_t) -> *const sigset_t {
    if mask.is_null() || !held() || !crate::guard::active_here() {
        return mask;
    }
    // SAFETY: `mask` is non-null, hence a valid sigset_t (the contract above).
    *buf = unsafe { *mask };
    // SAFETY: `buf` is a valid sigset_t of ours.
    unsafe { libc::sigaddset(buf, libc::SIGHUP) };
    buf
}

/// A sigprocmask/pthread_sigmask call, made by the program: SIGHUP stays blocked for real, `old`
/// reports the program's own view, and the view follows `how`/`set`. `call` is the real function
/// (returns 0 on success).
///
/// # Safety
/// As for pthread_sigmask: `set` and `old` are null or valid (they may be the same).
pub unsafe fn program_mask(how: c_int, set: *const sigset_t, old: *mut sigset_t, call: impl FnOnce(c_int, *const sigset_t, *mut sigset_t) -> c_int) -> c_int {
    // SAFETY: `set` is non-null here, hence a valid sigset_t (the contract above).
    let wanted = |w: Ours| if set.is_null() { None } else { Some(unsafe { libc::sigismember(set, w.signo()) } == 1) };
    let wake_wanted = wanted(Ours::Wake);
    if !held() {
        let r = call(how, set, old);
        if r == 0 {
            note_view(Ours::Wake, how, wake_wanted);
        }
        return r;
    }
    let wanted = wanted(Ours::Hup);
    let before = program_blocks_hup();
    let mut copy: sigset_t;
    // In a vfork child the mask is the child's own (it is about to exec): as asked.
    let set = if set.is_null() || !crate::guard::active_here() {
        set
    } else {
        // SAFETY: `set` is non-null, hence a valid sigset_t; `copy` is ours. (Read before the
        // call: `set` may be `old`.)
        unsafe {
            copy = *set;
            if how == libc::SIG_UNBLOCK {
                libc::sigdelset(&mut copy, libc::SIGHUP);
            } else {
                libc::sigaddset(&mut copy, libc::SIGHUP);
            }
        }
        &copy as *const sigset_t
    };
    let r = call(how, set, old);
    if r == 0 {
        if !old.is_null() {
            // SAFETY: `old` is non-null, hence a valid sigset_t the call just filled.
            unsafe {
                if before {
                    libc::sigaddset(old, libc::SIGHUP);
                } else {
                    libc::sigdelset(old, libc::SIGHUP);
                }
            }
        }
        note_view(Ours::Hup, how, wanted);
        note_view(Ours::Wake, how, wake_wanted);
    }
    r
}

fn note_view(which: Ours, how: c_int, wanted: Option<bool>) {
    match (how, wanted) {
        (libc::SIG_BLOCK, Some(true)) => set_program_view(which, true),
        (libc::SIG_UNBLOCK, Some(true)) => set_program_view(which, false),
        (libc::SIG_SETMASK, Some(w)) => set_program_view(which, w),
        _ => {}
    }
}

/// What a thread the program creates starts with: its creator's views, when it set any
/// (otherwise nothing to carry, and `None`: the new thread starts with the start's).
pub fn view_to_inherit() -> Option<u8> {
    let v = VIEW.try_with(|v| v.get()).unwrap_or(0);
    (v != 0).then_some(v)
}
