//! Fork mode: the next generation starts beside this one (a sibling, not a child), gets the
//! listening sockets and a readiness pipe, and this generation keeps serving until it is ready;
//! then this one drains and exits. If the new one fails first, it is killed with everything it
//! left and this generation serves on (a rollback); if it fails after it was ready, while this one
//! still drains, this one takes its sockets back.

use crate::attempt::{Attempt, Outcome};
use crate::drain::{self, Drained};
use crate::launch::{self, ExecPlan};
use crate::lifecycle::{self, Step};
use crate::fdtable;
use crate::receipt::{self, Receipt};
use crate::{config, handover, real, restart, signals, status, sys};
use core::sync::atomic::Ordering;
use libc::c_int;

/// Starts the next generation and sees the restart through: rollback, or drain and exit. Fills
/// the restart's receipt as it goes and records it once the outcome is final (see
/// [`crate::receipt`]).
pub fn restart() {
    let hup_us = sys::now_us();
    let Some(launch) = launch::get() else {
        info!("can't restart: the launch was not captured at start-up");
        return;
    };
    if let Err(why) = crate::preload::check() {
        return restart::refuse(&why.to_string());
    }
    let gen = restart::next_generation();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let mut receipt = Receipt::begin(me, gen, hup_us, receipt::listen_drops_now());
    let mut ready = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        info!("can't restart: can't create the readiness pipe: {}", crate::log::OsError::last());
        return;
    }
    let (ready_r, ready_w) = (sys::move_internal(ready[0]), sys::move_internal(ready[1]));
    // The new generation must never block on it (its stderr copies are dropped when it is full).
    // SAFETY: plain fcntl on our own fd.
    unsafe { real::fcntl(ready_w, libc::F_SETFL, libc::O_NONBLOCK as libc::c_long) };
    let mut out = handover::Outgoing::new();
    handover::prepare(gen, ready_w, false, &mut out);
    // SAFETY: `out` outlives the plan.
    let plan = unsafe { ExecPlan::new(launch, &[out.env_ptr()]) };
    restart::unlink_pidfile();
    let started = sys::now_ms();
    let (pid, pidfd) = spawn(&plan, out.keep());
    for fd in out.socket_fds() {
        sys::close(fd);
    }
    sys::close(ready_w);
    if pid < 0 {
        info!("can't restart: can't start a new process: {}", crate::log::OsError::last());
        sys::close(ready_r);
        return;
    }
    info!("restarting: generation {gen} is pid {pid} ({})", plan.exe());
    lifecycle::enter(Step::RestartStarted { generation: gen });
    let timeout = config::get().ready_timeout_ms;
    let mut attempt = Attempt::new(pid, pidfd, ready_r);
    let what = match attempt.wait(timeout) {
        Outcome::Ready => {
            let ready_after_ms = sys::now_ms() - started;
            receipt.ready(pid, sys::now_us());
            drain::begin_then(Step::SuccessorReady { pid, generation: gen }, || {
                receipt.stopped(sys::now_us(), fdtable::CONNS.load(Ordering::SeqCst));
            });
            sys::close(ready_r);
            let stop_us = receipt.handover_us().unwrap_or(0);
            info!(
                "generation {gen} (pid {pid}) is ready after {ready_after_ms} ms; stopped accepting {}.{:03} ms later; draining",
                stop_us / 1000,
                stop_us % 1000
            );
            if signals::take_pending() {
                // SIGHUPs that came during this restart: one follow-up restart, by the new generation.
                info!("SIGHUP received during the restart; passing it on to generation {gen}");
                sys::pidfd_signal(pidfd, libc::SIGHUP);
            }
            match drain::wait_idle(Some(&mut attempt)) {
                Drained::Done => {
                    let (_, at_boundary, reset) = status::closed();
                    receipt.drained(sys::now_us(), at_boundary + reset, receipt::listen_drops_now());
                    lifecycle::record(&mut receipt);
                    sys::close(pidfd);
                    drain::exit_drained(Some("drained; exiting"))
                }
                Drained::SuccessorFailed(how) => {
                    sys::close(pidfd);
                    status::forget(pid);
                    let why = format!("generation {gen} (pid {pid}) {how} after it was ready");
                    drain::take_back(&why, gen);
                    receipt.rolled_back(me, &why, receipt::listen_drops_now());
                    lifecycle::record(&mut receipt);
                    return;
                }
            }
        }
        Outcome::Ended => format!("generation {gen} (pid {pid}) {} before it was ready", attempt.how_it_ended().unwrap_or_else(|| "ended".into())),
        Outcome::Timeout => format!("generation {gen} (pid {pid}) was not ready within {} s", timeout as f64 / 1000.0),
    };
    let killed = attempt.kill_all();
    status::forget(pid);
    sys::close(ready_r);
    sys::close(pidfd);
    let lines = attempt.reader.last_lines(10);
    let killed_note = if killed > 0 { format!("; killed {killed} process(es) it left") } else { String::new() };
    info!("rollback: {what}{killed_note}; generation {} keeps serving", gen - 1);
    if lines.is_empty() {
        info!("rollback: generation {gen} wrote nothing to stderr");
    } else {
        info!("rollback: the last lines generation {gen} wrote to stderr:");
        for l in &lines {
            info!("  | {l}");
        }
    }
    let last = lines.last().map(|l| format!(": {}", l.trim())).unwrap_or_default();
    let why = format!("{what}{last}");
    lifecycle::enter(Step::RolledBack { why: &why });
    receipt.rolled_back(me, &why, receipt::listen_drops_now());
    lifecycle::record(&mut receipt);
}

/// Starts the next generation as a sibling (CLONE_PARENT): it is never the program's own child,
/// so the program's waitpid() cannot reap it and its exit does not look like a worker's. Returns
/// the pid and a pidfd to watch it.
fn spawn(plan: &ExecPlan, keep: &[c_int]) -> (libc::pid_t, c_int) {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
    }
    let mut pidfd: c_int = -1;
    let args = CloneArgs {
        flags: (libc::CLONE_PARENT | libc::CLONE_PIDFD) as u64,
        pidfd: &mut pidfd as *mut c_int as u64,
        child_tid: 0,
        parent_tid: 0,
        // With CLONE_PARENT the kernel requires 0 here and uses the group leader's exit signal.
        exit_signal: 0,
        stack: 0,
        stack_size: 0,
        tls: 0,
    };
    // SAFETY: clone3 without a new stack behaves like fork for the calling thread; the child only
    // runs exec_into (async-signal-safe) and _exit.
    let pid = unsafe {
        real::syscall(libc::SYS_clone3, &args as *const CloneArgs as libc::c_long, core::mem::size_of::<CloneArgs>() as libc::c_long, 0, 0, 0, 0)
    } as libc::pid_t;
    if pid == 0 {
        plan.exec_into(keep);
        let msg = b"huptime: can't exec the new generation\n";
        // SAFETY: write + _exit in the child.
        unsafe {
            real::write(2, msg.as_ptr().cast(), msg.len());
            real::_exit(127);
        }
    }
    if pid > 0 && pidfd >= 0 {
        pidfd = sys::move_internal(pidfd);
    }
    (pid, pidfd)
}
