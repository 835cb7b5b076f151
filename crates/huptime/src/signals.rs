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
//! Waking the threads parked in a real accept() when draining: SIGHUP itself, queued to one
//! thread with `rt_tgsigqueueinfo` (SI_QUEUE, this pid, a magic value), and unblocked only inside
//! the accept hook around the real accept (`with_wake_window`). A wake is never counted as a
//! user's SIGHUP. One sent after the thread left the window stays pending in that thread (SIGHUP
//! is blocked there) until its next window, where it interrupts only the shim's own accept, or
//! until an exec, where `as_program` lets our handler take it before the image is replaced; it can
//! never interrupt a call of the program.

use crate::fdtable::internal;
use crate::{real, sys};
use core::cell::Cell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libc::{c_int, sigset_t};

/// A user's SIGHUP arrived and is not handled yet (coalesces bursts into one restart).
static HUP_PENDING: AtomicBool = AtomicBool::new(false);
/// SIGHUPs the handler ran for, users' and wakes alike: lets a hooked call tell an EINTR of ours
/// from one of the program's signals.
static HUP_COUNT: AtomicU64 = AtomicU64::new(0);
/// SIGHUP is blocked in this process's threads on huptime's behalf (see `take_sighup`).
static HELD: AtomicBool = AtomicBool::new(false);
/// SIGHUP was blocked in the mask the program started with.
static STARTED_BLOCKED: AtomicBool = AtomicBool::new(false);
/// The si_value of a wake ("huptime!").
const WAKE_MAGIC: usize = 0x6875_7074_696d_6521;

/// The program's view of SIGHUP in one thread: not set by the thread (then as at the start).
const VIEW_START: u8 = 0;
const VIEW_UNBLOCKED: u8 = 1;
const VIEW_BLOCKED: u8 = 2;

thread_local! {
    static VIEW: Cell<u8> = const { Cell::new(VIEW_START) };
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
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() } as u64;
    if !crate::guard::active_here() {
        let v = VFORK_VIEW.load(Ordering::Acquire);
        if v >> 2 == me && v & 3 != 0 {
            return v & 3 == VIEW_BLOCKED as u64;
        }
    }
    match VIEW.try_with(|v| v.get()).unwrap_or(VIEW_START) {
        VIEW_START => STARTED_BLOCKED.load(Ordering::Relaxed),
        v => v == VIEW_BLOCKED,
    }
}

/// Records the program's view of SIGHUP in the calling thread (in a vfork child: for that child).
pub fn set_program_view(blocked: bool) {
    if crate::guard::active_here() {
        let _ = VIEW.try_with(|v| v.set(view_of(blocked)));
    } else {
        // SAFETY: getpid has no preconditions.
        let me = unsafe { libc::getpid() } as u64;
        VFORK_VIEW.store(me << 2 | view_of(blocked) as u64, Ordering::Release);
    }
}

/// Whether SIGHUP is held blocked in this process's threads (the mask hooks then keep it so).
pub fn held() -> bool {
    HELD.load(Ordering::Acquire)
}

fn hup_set() -> sigset_t {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset.
    unsafe {
        let mut s: sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut s);
        libc::sigaddset(&mut s, libc::SIGHUP);
        s
    }
}

/// Blocks or unblocks SIGHUP in the calling thread, for real; returns whether it was blocked.
fn block_here(block: bool) -> bool {
    let set = hup_set();
    // SAFETY: sigset_t is plain data; the real call only reads `set` and writes `old`.
    unsafe {
        let mut old: sigset_t = core::mem::zeroed();
        let how = if block { libc::SIG_BLOCK } else { libc::SIG_UNBLOCK };
        real::pthread_sigmask(how, &set, &mut old);
        libc::sigismember(&old, libc::SIGHUP) == 1
    }
}

/// Takes SIGHUP away from the program's threads: blocks it in the calling thread (at constructor
/// time the only one; threads created later inherit the mask), after recording whether the
/// program had it blocked. Also called when the helper starts in a process that did not take it
/// at start (a process the program spawned, which inherits the shim, and then binds a socket).
pub fn take_sighup(at_start: bool) {
    if HELD.swap(true, Ordering::AcqRel) {
        return;
    }
    let was = block_here(true);
    if at_start {
        STARTED_BLOCKED.store(was, Ordering::Relaxed);
    } else {
        set_program_view(was);
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

/// Whether `info` describes a wake this process sent (not a user's SIGHUP).
///
/// # Safety
/// `info` is the siginfo the kernel passed to an SA_SIGINFO handler.
unsafe fn is_wake(info: *const libc::siginfo_t) -> bool {
    !info.is_null()
        && (*info).si_code == libc::SI_QUEUE
        && (*info).si_pid() == libc::getpid()
        && (*info).si_value().sival_ptr as usize == WAKE_MAGIC
}

extern "C" fn on_sighup(_sig: c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    let saved = sys::errno();
    HUP_COUNT.fetch_add(1, Ordering::AcqRel);
    // SAFETY: the kernel's siginfo for this delivery.
    if !unsafe { is_wake(info) } {
        HUP_PENDING.store(true, Ordering::Release);
        sys::eventfd_signal(internal::get(internal::WAKE));
    }
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

/// How many times the SIGHUP handler has run (users' signals and wakes alike).
pub fn count() -> u64 {
    HUP_COUNT.load(Ordering::Acquire)
}

/// Installs the SIGHUP handler. `restart`: with SA_RESTART (serving); without it (draining), so
/// that a wake interrupts a real accept() inside the accept hook.
pub fn install_handler(restart: bool) {
    // SAFETY: installing a handler that only touches atomics and writes an eventfd.
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_sighup as extern "C" fn(c_int, *mut libc::siginfo_t, *mut libc::c_void) as usize;
        act.sa_flags = libc::SA_SIGINFO | if restart { libc::SA_RESTART } else { 0 };
        libc::sigemptyset(&mut act.sa_mask);
        real::sigaction(libc::SIGHUP, &act, core::ptr::null_mut());
    }
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

/// Wakes thread `tid` of this process if it is inside a real accept() (see the module doc).
pub fn wake(tid: libc::pid_t) {
    // SAFETY: getpid/getuid have no preconditions; the syscall reads a fully initialised struct.
    unsafe {
        let pid = libc::getpid();
        let info = QueueInfo { signo: libc::SIGHUP, errno: 0, code: libc::SI_QUEUE, _pad: 0, pid, uid: libc::getuid(), value: WAKE_MAGIC, _rest: [0; 12] };
        real::syscall(libc::SYS_rt_tgsigqueueinfo, pid as libc::c_long, tid as libc::c_long, libc::SIGHUP as libc::c_long, &info as *const QueueInfo as libc::c_long, 0, 0);
    }
}

/// Runs `f` (a real blocking accept) with SIGHUP unblocked in the calling thread, so that a wake
/// (or a user's SIGHUP, which then restarts as usual) interrupts it. Preserves `f`'s errno.
pub fn with_wake_window<T>(f: impl FnOnce() -> T) -> T {
    if !held() {
        return f();
    }
    unblocked_during(f)
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
    *buf = *mask;
    libc::sigaddset(buf, libc::SIGHUP);
    buf
}

/// A sigprocmask/pthread_sigmask call, made by the program: SIGHUP stays blocked for real, `old`
/// reports the program's own view, and the view follows `how`/`set`. `call` is the real function
/// (returns 0 on success).
///
/// # Safety
/// As for pthread_sigmask: `set` and `old` are null or valid (they may be the same).
pub unsafe fn program_mask(how: c_int, set: *const sigset_t, old: *mut sigset_t, call: impl FnOnce(c_int, *const sigset_t, *mut sigset_t) -> c_int) -> c_int {
    if !held() {
        return call(how, set, old);
    }
    let wanted = if set.is_null() { None } else { Some(libc::sigismember(set, libc::SIGHUP) == 1) };
    let before = program_blocks_hup();
    let mut copy: sigset_t;
    // In a vfork child the mask is the child's own (it is about to exec): as asked.
    let set = if set.is_null() || !crate::guard::active_here() {
        set
    } else {
        copy = *set;
        if how == libc::SIG_UNBLOCK {
            libc::sigdelset(&mut copy, libc::SIGHUP);
        } else {
            libc::sigaddset(&mut copy, libc::SIGHUP);
        }
        &copy as *const sigset_t
    };
    let r = call(how, set, old);
    if r == 0 {
        if !old.is_null() {
            if before {
                libc::sigaddset(old, libc::SIGHUP);
            } else {
                libc::sigdelset(old, libc::SIGHUP);
            }
        }
        note_view(how, wanted);
    }
    r
}

fn note_view(how: c_int, wanted: Option<bool>) {
    match (how, wanted) {
        (libc::SIG_BLOCK, Some(true)) => set_program_view(true),
        (libc::SIG_UNBLOCK, Some(true)) => set_program_view(false),
        (libc::SIG_SETMASK, Some(w)) => set_program_view(w),
        _ => {}
    }
}

/// What a thread the program creates starts with: its creator's view, when that differs from
/// the start (otherwise nothing to carry, and `None`).
pub fn view_to_inherit() -> Option<bool> {
    let v = program_blocks_hup();
    (held() && v != STARTED_BLOCKED.load(Ordering::Relaxed)).then_some(v)
}
