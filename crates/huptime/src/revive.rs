//! `--revive`: the program that exits (not a forked worker, not a draining old generation, not
//! one asked to stop) is started again in place, keeping its sockets, with a back-off for a
//! program that keeps exiting at once.

use crate::launch::{self, ExecPlan};
use crate::{accept_gate, config, handover, lifecycle, lineage, restart, sys};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use libc::c_int;

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
    let Some(launch) = launch::get() else { return };
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
    let out = handover::prepare(restart::next_generation(), -1);
    let streak_env = std::ffi::CString::new(format!("{}={streak}", crate::config::REVIVE_STREAK_VAR)).unwrap_or_default();
    let plan = ExecPlan::new(launch, vec![out.env.clone(), streak_env], out.fds.clone());
    plan.exec_into(launch);
    info!("can't revive {}: {}", plan.exe().to_string_lossy(), std::io::Error::last_os_error());
}
