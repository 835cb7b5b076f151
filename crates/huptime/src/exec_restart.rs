//! Exec mode: the process drains (new connections wait in the kernel's queue), then execs the new
//! code in place: same pid, sockets kept open across the exec.

use crate::config::RECEIPT_VAR;
use crate::drain;
use crate::fdtable;
use crate::lifecycle::Step;
use crate::launch::{self, ExecPlan};
use crate::receipt::{self, Receipt, Text};
use crate::{handover, real, restart, status, sys};
use core::fmt::Write;
use core::sync::atomic::Ordering;
use std::ffi::CString;

/// Before an exec in place: no open file of ours may signal this pid any more. A file in
/// O_ASYNC mode (nginx's channels to its workers) sends SIGIO to its owner, and workers that
/// share it exit after the exec, before the new image has a handler: SIGIO's default kills.
fn stop_async_io_signals() {
    for fd in 3..sys::internal_base() {
        // SAFETY: fcntl on fd numbers; a closed one fails with EBADF.
        unsafe {
            let fl = real::fcntl(fd, libc::F_GETFL, 0);
            if fl >= 0 && fl & libc::O_ASYNC != 0 {
                real::fcntl(fd, libc::F_SETFL, (fl & !libc::O_ASYNC) as libc::c_long);
                real::fcntl(fd, libc::F_SETOWN, 0);
            }
        }
    }
}

/// Drains, then execs the next generation in this process. Returns only if the restart was
/// refused before draining (the program is gone from disk, the preload library changed). The
/// restart's receipt goes with the exec (see [`crate::receipt`]).
pub fn restart() {
    let hup_us = sys::now_us();
    let Some(launch) = launch::get() else {
        info!("can't restart: the launch was not captured at start-up");
        return;
    };
    // SAFETY: access() on a valid C string.
    if unsafe { libc::access(launch.exe.as_ptr(), libc::X_OK) } != 0 {
        let e = crate::log::OsError::last();
        return restart::refuse(&format!("{} is not executable now ({e})", launch.exe.to_string_lossy()));
    }
    if let Err(why) = crate::preload::check() {
        return restart::refuse(&why.to_string());
    }
    let gen = restart::next_generation();
    // SAFETY: getpid has no preconditions.
    let mut receipt = Receipt::begin(unsafe { libc::getpid() }, gen, hup_us, receipt::listen_drops_now());
    let mut out = handover::Outgoing::new();
    handover::prepare(gen, -1, false, &mut out);
    info!("restarting in place: draining before exec of generation {gen}");
    drain::begin_then(Step::Drain { exec_generation: Some(gen) }, || receipt.stopped(sys::now_us(), fdtable::CONNS.load(Ordering::SeqCst)));
    drain::wait_idle(None);
    let (_, at_boundary, reset) = status::closed();
    receipt.drained(sys::now_us(), at_boundary + reset, None);
    let mut carried = Text::new();
    let _ = write!(carried, "{RECEIPT_VAR}=");
    let _ = receipt.carry(&mut carried);
    let carried = CString::new(carried.as_str()).unwrap_or_default();
    // SAFETY: `out` and `carried` outlive the plan.
    let plan = unsafe { ExecPlan::new(launch, &[out.env_ptr(), carried.as_ptr()]) };
    info!("drained; exec'ing generation {gen}");
    // The receipt of an earlier restart must not pass for this one's until the new image writes it.
    status::withdraw_receipt();
    restart::unlink_pidfile();
    stop_async_io_signals();
    plan.exec_into(out.keep());
    info!("can't exec {}: {}; exiting", plan.exe(), crate::log::OsError::last());
    crate::lifecycle::ended();
    // SAFETY: nothing sensible is left to do in a drained process whose exec failed.
    unsafe {
        real::_exit(127);
        libc::abort()
    }
}
