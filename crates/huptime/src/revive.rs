//! `--revive`: the program that exits (not a forked worker, not a draining old generation, not
//! one asked to stop) is started again in place, keeping its sockets, with a back-off for a
//! program that keeps exiting at once.
//!
//! A program may call `_exit` from a signal handler, possibly one that interrupted malloc or a
//! hook holding a lock: the revival allocates nothing and waits for no lock. What needs
//! allocating (the exec plan) is prepared at start-up; the record and the streak entry are
//! written into fixed buffers that the one reviving thread owns.

use crate::handover::{self, Outgoing};
use crate::launch::{self, ExecPlan};
use crate::log::{LineBuf, OsError};
use crate::{accept_gate, config, lifecycle, lineage, restart, sys};
use core::cell::UnsafeCell;
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use libc::c_int;
use std::sync::OnceLock;

/// Bytes of the `HUPTIME_REVIVE_STREAK=N` entry with its NUL.
const STREAK_LEN: usize = 48;

/// What a revival writes before exec: owned by the thread in [`REVIVER`].
struct Scratch {
    out: Outgoing,
    streak: [u8; STREAK_LEN],
}

struct Shared(UnsafeCell<Scratch>);
// SAFETY: only the thread that won `REVIVER` touches the contents.
unsafe impl Sync for Shared {}

static SCRATCH: Shared = Shared(UnsafeCell::new(Scratch { out: Outgoing::new(), streak: [0; STREAK_LEN] }));
/// Thread id of the thread reviving the program (0: none).
static REVIVER: AtomicI32 = AtomicI32::new(0);
/// The exec plan of a revival, with the scratch buffers as extra environment entries.
static PLAN: OnceLock<ExecPlan> = OnceLock::new();

/// When this image started (monotonic ms), for the back-off.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// A stop was requested (SIGINT/SIGTERM reached the program's handler): exit for real.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Notes that a stop was requested (signal handler context: one atomic store).
pub fn stop_requested() {
    STOP_REQUESTED.store(true, Ordering::Release);
}

/// Records the start time and, with `--revive`, registers the exit handler (constructor). The
/// handler is registered before the program's own, so it runs after them, last of all.
pub fn mark_started() {
    STARTED_MS.store(sys::now_ms(), Ordering::Relaxed);
    if config::get().revive {
        extern "C" {
            fn on_exit(f: extern "C" fn(c_int, *mut libc::c_void), arg: *mut libc::c_void) -> c_int;
        }
        // SAFETY: registering a handler with a null argument.
        unsafe { on_exit(on_program_exit, core::ptr::null_mut()) };
        if let Some(launch) = launch::get() {
            let s = SCRATCH.0.get();
            // SAFETY: the entries live in a static; a revival writes them before exec_into.
            let _ = PLAN.set(unsafe { ExecPlan::new(launch, &[(*s).out.env_ptr(), (*s).streak.as_ptr().cast()]) });
        }
    }
}

extern "C" fn on_program_exit(status: c_int, _: *mut libc::c_void) {
    // SAFETY: flushing stdio before the image is replaced (exit() would do it after handlers).
    unsafe { libc::fflush(core::ptr::null_mut()) };
    instead_of_exit(status);
}

/// Exit hook: with `--revive`, the program is started again in place instead of exiting. Returns
/// only when the exit should really happen.
pub fn instead_of_exit(status: c_int) {
    let cfg = config::get();
    if !cfg.revive || lineage::is_forked_copy() || lifecycle::draining() || STOP_REQUESTED.load(Ordering::Acquire) {
        return;
    }
    // Only the program itself is revived, never a process it spawned (which inherits the shim):
    // the process huptime exec'd into, or a later generation of it.
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if me != cfg.root_pid && !lineage::started_by_generation() {
        return;
    }
    let Some(plan) = PLAN.get() else { return };
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    match REVIVER.compare_exchange(0, tid, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        // An exit from a handler that interrupted this very revival: exit for real.
        Err(t) if t == tid => return,
        // Another thread revives the program: its exec (or its failed one's exit) ends this one.
        Err(_) => loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        },
    }
    if let Err(why) = crate::preload::check() {
        info!("exited with status {status}; can't revive: {why}");
        return;
    }
    let uptime = sys::now_ms().saturating_sub(STARTED_MS.load(Ordering::Relaxed));
    // Only an exit soon after start without serving anyone counts towards the back-off.
    let quick = uptime < 1000 && !accept_gate::accepted_any();
    let streak = if quick { cfg.revive_streak + 1 } else { 0 };
    let backoff = if streak <= 1 { 0 } else { (100u64 << (streak - 2).min(6)).min(5000) };
    if backoff > 0 {
        info!("exited with status {status} after {uptime} ms without serving ({streak} times in a row); reviving in {backoff} ms");
        sys::sleep_ms(backoff);
    } else {
        info!("exited with status {status}; reviving");
    }
    // SAFETY: this thread owns the scratch buffers (REVIVER) until the exec replaces the image.
    let scratch = unsafe { &mut *SCRATCH.0.get() };
    handover::prepare(restart::next_generation(), -1, true, &mut scratch.out);
    let mut entry = LineBuf::new();
    let _ = write!(entry, "{}={streak}", crate::config::REVIVE_STREAK_VAR);
    let n = entry.as_bytes().len().min(STREAK_LEN - 1);
    scratch.streak[..n].copy_from_slice(&entry.as_bytes()[..n]);
    scratch.streak[n] = 0;
    plan.exec_into(scratch.out.keep());
    info!("can't revive {}: {}", plan.exe(), OsError::last());
}
