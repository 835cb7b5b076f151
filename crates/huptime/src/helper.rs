//! The helper thread: one per process that holds bound sockets. It waits for a SIGHUP (see
//! [`crate::signals`]), for its generation's drain notice (a forked worker), and for a previous
//! generation that still drains; and it carries out what follows in normal context:
//!
//! - a *master* (the process that bound the sockets, or one whose parent is gone) restarts the
//!   configured way ([`crate::fork_restart`], [`crate::exec_restart`]); a SIGHUP that comes while
//!   the previous generation still drains is passed on to it (it hurries: closes its idle
//!   connections at once) and the restart deferred until that one has ended, so that never more
//!   than two generations run at once. The deferral lasts at most `--ready-timeout` (the time a
//!   restart has to produce a ready copy); a predecessor still running then gets the restart
//!   refused ([`crate::restart::refuse`]), and a later SIGHUP tries again;
//! - a *worker* (a process the master forked: prefork pools, fork-per-connection) drains and exits
//!   when its master restarts, so no old code keeps taking connections.

use crate::config::{self, Mode};
use crate::fdtable::{internal, SOCKETS};
use crate::{drain, exec_restart, fork_restart, lifecycle, lineage, log, procnet, readiness, real, receipt, restart, signals, sys};
use core::sync::atomic::{AtomicBool, Ordering};
use libc::c_int;

/// The helper thread runs in this process.
static RUNNING: AtomicBool = AtomicBool::new(false);
/// A forked copy whose helper has not started yet (see [`after_fork_child`]).
static WANTED: AtomicBool = AtomicBool::new(false);

/// Whether this is a forked copy whose helper starts at its first wait on a bound socket.
#[inline]
pub fn wanted() -> bool {
    WANTED.load(Ordering::Relaxed)
}

/// A forked copy that waits for connections runs the program: its helper starts now (it follows
/// its master's restarts, or its draining generation, from here on). One load otherwise.
#[inline]
pub fn start_if_wanted() {
    if wanted() {
        ensure();
    }
}

/// Starts the helper thread if this process does not have one yet. Called from normal (not
/// signal) context: bind, accept, epoll registration, and after fork in a child.
pub fn ensure() {
    WANTED.store(false, Ordering::Relaxed);
    if RUNNING.swap(true, Ordering::AcqRel) {
        return;
    }
    // A process that did not take SIGHUP at start (one the program spawned) does now: from here
    // on only the helper takes it.
    signals::take_sighup(false);
    if internal::get(internal::WAKE) < 0 {
        internal::set(internal::WAKE, sys::eventfd());
    }
    if internal::get(internal::LINEAGE_W) < 0 {
        drain::open_notice_pipe();
    }
    // SAFETY: standard pthread creation with a detached attribute.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 512 * 1024);
        let mut t: libc::pthread_t = 0;
        let r = libc::pthread_create(&mut t, &attr, main, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            RUNNING.store(false, Ordering::Release);
            info!("can't start the restart thread (error {r}); SIGHUP will not restart this process");
        }
    }
}

/// Fork hook, child side: this process is a copy of its parent's generation. It gets its own
/// eventfd (the inherited one is shared with the parent) and an empty accept gate. Only async-signal-safe calls: the
/// child of a multithreaded program may not create a thread before exec, so the helper of a
/// child that holds sockets starts once it is seen to go on running the program: when it serves
/// (accept, bind, epoll_ctl, poll/select on a bound socket) or forks workers of its own (a
/// daemon's master), see [`wanted`].
pub fn after_fork_child(parent: libc::pid_t) {
    lineage::set_forked_from(parent);
    RUNNING.store(false, Ordering::Release);
    WANTED.store(!SOCKETS.lock().is_empty(), Ordering::Relaxed);
    crate::accept_gate::after_fork();
    let old = internal::get(internal::WAKE);
    if old >= 0 {
        // SAFETY: plain eventfd/dup3 on our own fd numbers.
        unsafe {
            let e = libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
            if e >= 0 {
                real::dup3(e, old, libc::O_CLOEXEC);
                real::close(e);
            }
        }
    }
}

/// Constructor time, in a generation started by a fork-mode restart (`awaited`: the previous one
/// handed over a working readiness pipe): watches the previous generation's process (a pidfd) so
/// that a restart waits until it has finished draining. A record naming some other live pid must
/// not hold restarts back, hence `awaited`.
pub fn watch_predecessor(awaited: bool) {
    let pid = lineage::previous_generation_pid();
    // SAFETY: getpid has no preconditions.
    if pid <= 0 || pid == unsafe { libc::getpid() } || !awaited || internal::get(internal::PREDECESSOR) >= 0 {
        return;
    }
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { real::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0, 0, 0, 0, 0) } as c_int;
    if fd >= 0 {
        internal::set(internal::PREDECESSOR, sys::move_internal(fd));
    }
}

/// A restart held back because the previous generation still drains (fork mode). Owner: the
/// helper thread.
struct Deferral {
    /// When the SIGHUP that started the wait came (monotonic ms); None: no restart waits.
    since: Option<u64>,
}

/// What a restart that waits for the previous generation does next.
#[derive(Debug, PartialEq, Eq)]
enum Wait {
    /// Nothing waits.
    Idle,
    /// Keep waiting, at most this many ms more.
    Until(u64),
    /// The previous generation has ended: restart now.
    Restart,
    /// `--ready-timeout` passed with the previous generation still running: refuse.
    Refuse,
}

impl Deferral {
    /// Ms left at `now` (monotonic ms) of the `limit` ms a waiting restart has from its SIGHUP;
    /// None when nothing waits.
    fn left(&self, now: u64, limit: u64) -> Option<u64> {
        self.since.map(|since| (since + limit).saturating_sub(now))
    }

    /// Where the wait stands at `now`, with `limit` ms allowed from the SIGHUP and whether the
    /// previous generation still runs (asked only while a restart waits).
    fn next(&self, now: u64, limit: u64, running: impl FnOnce() -> bool) -> Wait {
        match self.left(now, limit) {
            None => Wait::Idle,
            Some(_) if !running() => Wait::Restart,
            Some(0) => Wait::Refuse,
            Some(left) => Wait::Until(left),
        }
    }
}

/// Whether the previous generation's process (watched by [`watch_predecessor`]) still runs; its
/// pidfd is closed once it has ended.
fn predecessor_running() -> bool {
    let fd = internal::get(internal::PREDECESSOR);
    if fd < 0 {
        return false;
    }
    if !sys::pidfd_exited(fd) {
        return true;
    }
    sys::close(internal::take(internal::PREDECESSOR));
    false
}

/// Why a restart is refused: generation `generation` (`pid`) still drains `limit_ms` after the
/// SIGHUP, with `open` client connections if they could be counted.
fn still_draining(generation: u32, pid: libc::pid_t, limit_ms: u64, open: Option<u32>) -> String {
    let held = match open {
        Some(1) => " (1 connection in progress)".to_string(),
        Some(n) if n > 0 => format!(" ({n} connections in progress)"),
        _ => String::new(),
    };
    format!("generation {generation} (pid {pid}) is still draining {} s after the SIGHUP{held}; SIGHUP again once it has ended", limit_ms as f64 / 1000.0)
}

/// Refuses the restart that waited `limit_ms` for the previous generation (helper thread: reads
/// /proc for its connections).
fn refuse_still_draining(limit_ms: u64) {
    let pid = lineage::previous_generation_pid();
    let generation = log::GENERATION.load(Ordering::Relaxed).saturating_sub(1);
    // Its client connections from the kernel's socket tables (it keeps its listening sockets
    // while it drains); none counted: its workers or children may hold what keeps it running.
    let open = procnet::of_pid(pid).map(|s| s.connections);
    restart::refuse(&still_draining(generation, pid, limit_ms, open));
}

extern "C" fn main(_: *mut libc::c_void) -> *mut libc::c_void {
    // The one thread that takes SIGHUP (blocked in every program thread).
    signals::helper_mask();
    debug!("restart thread started");
    let mut deferral = Deferral { since: None };
    loop {
        if crate::stopsig::drain_requested() {
            info!("stop signal: draining, then exiting");
            drain::drain_and_exit();
        }
        if signals::take_pending() {
            on_hup(&mut deferral);
            continue;
        }
        let hup = internal::get(internal::WAKE);
        // Every forked copy listens for its generation's drain notice, even once its master has
        // exited (the master may well be gone by the time the notice is read).
        let notice = if lineage::is_forked_copy() { internal::get(internal::LINEAGE_R) } else { -1 };
        let previous = if deferral.since.is_some() { internal::get(internal::PREDECESSOR) } else { -1 };
        // A waiting restart is refused on time: the poll ends at its deadline.
        let limit = config::get().ready_timeout_ms;
        let wait_ms = deferral.left(sys::now_ms(), limit).map_or(1000, |left| left.min(1000));
        let mut fds = [
            libc::pollfd { fd: hup, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: notice, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: previous, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: valid pollfd array; a negative fd is ignored by poll.
        let r = unsafe { real::poll(fds.as_mut_ptr(), 3, wait_ms as c_int) };
        if r > 0 && fds[0].revents != 0 {
            sys::eventfd_clear(hup);
        }
        if let Some(mut receipt) = receipt::due() {
            lifecycle::record(&mut receipt);
        }
        if readiness::send_if_due() {
            // The previous generation has the message: this one serves (its program waited for
            // connections on every inherited socket, see handover::mark_serving).
            lifecycle::enter(lifecycle::Step::Listening { announce: false });
        }
        match deferral.next(sys::now_ms(), limit, predecessor_running) {
            Wait::Restart => {
                deferral.since = None;
                info!("the previous generation has ended; restarting as SIGHUP asked");
                signals::set_pending();
                continue;
            }
            Wait::Refuse => {
                deferral.since = None;
                refuse_still_draining(limit);
            }
            Wait::Idle | Wait::Until(_) => {}
        }
        if r > 0 && fds[1].revents != 0 {
            // Also when this process was forked by an already draining one (nginx's master
            // respawns the workers that drain away): it belongs to the old generation too.
            debug!("this generation is draining; so does this worker");
            drain::drain_and_exit();
        }
    }
}

fn on_hup(deferral: &mut Deferral) {
    if lifecycle::draining() {
        debug!("SIGHUP ignored: already draining");
        return;
    }
    if lineage::is_worker() {
        debug!("SIGHUP in a worker: draining");
        drain::drain_and_exit();
    }
    if config::get().mode == Mode::Fork && predecessor_running() {
        // A draining generation that gets SIGHUP hurries: it closes its idle connections now and
        // ends as soon as the requests in progress are answered (see drain::wait_idle).
        sys::pidfd_signal(internal::get(internal::PREDECESSOR), libc::SIGHUP);
        if deferral.since.is_none() {
            deferral.since = Some(sys::now_ms());
            let pid = lineage::previous_generation_pid();
            info!(
                "SIGHUP: generation {} (pid {pid}) is still draining; told it to close its idle connections now, restarting once it has ended (refused if it still runs in {} s)",
                log::GENERATION.load(Ordering::Relaxed).saturating_sub(1),
                config::get().ready_timeout_ms as f64 / 1000.0
            );
        }
        return;
    }
    match config::get().mode {
        Mode::Fork => fork_restart::restart(),
        Mode::Exec => exec_restart::restart(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_restart_waits_for_its_predecessor_at_most_the_limit() {
        let none = Deferral { since: None };
        assert_eq!(none.next(5_000, 2_000, || panic!("nothing waits: the predecessor is not asked")), Wait::Idle);
        assert_eq!(none.left(5_000, 2_000), None);
        let d = Deferral { since: Some(1_000) };
        assert_eq!(d.next(1_500, 2_000, || true), Wait::Until(1_500));
        assert_eq!(d.next(2_999, 2_000, || true), Wait::Until(1));
        assert_eq!(d.next(3_000, 2_000, || true), Wait::Refuse);
        assert_eq!(d.next(9_000, 2_000, || true), Wait::Refuse);
        assert_eq!(d.next(1_500, 2_000, || false), Wait::Restart);
        assert_eq!(d.next(9_000, 2_000, || false), Wait::Restart, "ended by the deadline: the restart goes ahead");
        assert_eq!(d.left(1_500, 2_000), Some(1_500));
        assert_eq!(d.left(9_000, 2_000), Some(0));
    }

    #[test]
    fn a_refusal_names_the_predecessor_and_what_holds_it() {
        assert_eq!(
            still_draining(1, 4242, 2_000, Some(1)),
            "generation 1 (pid 4242) is still draining 2 s after the SIGHUP (1 connection in progress); SIGHUP again once it has ended"
        );
        assert_eq!(
            still_draining(3, 7, 1_500, Some(4)),
            "generation 3 (pid 7) is still draining 1.5 s after the SIGHUP (4 connections in progress); SIGHUP again once it has ended"
        );
        for unknown in [None, Some(0)] {
            assert_eq!(still_draining(1, 42, 60_000, unknown), "generation 1 (pid 42) is still draining 60 s after the SIGHUP; SIGHUP again once it has ended");
        }
    }
}
