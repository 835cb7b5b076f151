//! SIGHUP and what follows. The signal handler (`signals`) only records the signal and writes an
//! eventfd; a helper thread (one per process that holds bound sockets) does the rest:
//!
//! - a *master* (the process that bound the sockets, or one whose parent is gone) restarts: in
//!   fork mode it starts the next generation beside itself, waits until that one serves, then
//!   drains and exits (or, if the new one fails, keeps serving); in exec mode it drains, then
//!   execs the new code in place;
//! - a *worker* (a process the master forked: prefork pools, fork-per-connection) drains and exits
//!   when its master restarts, so no old code keeps taking connections.
//!
//! Draining = stop accepting (bound fds are removed from epoll sets and swapped for inert sockets,
//! parked accept() calls wake), then wait until the open client connections are finished.

use crate::config::{Config, Mode};
use crate::fdtable::{self, internal, FdState, SOCKETS};
use crate::launch::{self, ExecPlan};
use crate::attempt::{Attempt, Outcome};
use crate::signals::{self, HUP_PENDING};
use crate::{handover, log, real, sys};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use libc::c_int;
use std::sync::OnceLock;

static CONFIG: OnceLock<Config> = OnceLock::new();
/// The helper thread runs in this process.
static HELPER: AtomicBool = AtomicBool::new(false);
/// This process stopped accepting and is finishing its connections.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// Pid this process was forked from (0 when this image was exec'd).
static FORK_PARENT: AtomicI32 = AtomicI32::new(0);
/// Thread ids currently blocked in a real accept() (0 = free slot). A draining process signals
/// them so that none is left holding the kernel's next connection when the process ends.
static IN_ACCEPT: [AtomicI32; 64] = [const { AtomicI32::new(0) }; 64];
/// Threads in a real accept() that found no free slot above.
static IN_ACCEPT_UNTRACKED: AtomicI32 = AtomicI32::new(0);
/// Set once a draining process found itself idle and is about to end or exec: from then on no
/// thread may take a connection (it could not be served). Paired with the accept registry in a
/// store-then-load handshake (SeqCst on both sides), so either the helper sees a thread that
/// registered, or that thread sees this flag.
static CLOSING: AtomicBool = AtomicBool::new(false);

/// Marks the calling thread as inside a real accept() until the returned slot is released.
pub fn enter_accept() -> usize {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    for (i, s) in IN_ACCEPT.iter().enumerate() {
        if s.compare_exchange(0, tid, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
            return i;
        }
    }
    IN_ACCEPT_UNTRACKED.fetch_add(1, Ordering::SeqCst);
    usize::MAX
}

/// Releases a slot taken by `enter_accept`.
pub fn leave_accept(slot: usize) {
    match IN_ACCEPT.get(slot) {
        Some(s) => s.store(0, Ordering::Release),
        None => {
            IN_ACCEPT_UNTRACKED.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Wakes every thread blocked in a real accept() (`signals::wake`); returns how many there are.
fn interrupt_accepts() -> usize {
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

/// A SIGHUP came while the previous generation still drained: restart once it has ended, so that
/// never more than two generations run at once.
static DEFERRED: AtomicBool = AtomicBool::new(false);

/// Constructor time, in a generation started by a fork-mode restart: watches the previous
/// generation's process (a pidfd) so that a restart waits until it has finished draining.
pub fn watch_predecessor() {
    let pid = handover::PARENT_GENERATION_PID.load(Ordering::Relaxed);
    // Only a predecessor that handed over a working readiness pipe is one (a record naming some
    // other live pid must not hold restarts back).
    // SAFETY: getpid has no preconditions.
    if pid <= 0 || pid == unsafe { libc::getpid() } || !handover::started_by_previous() || internal::get(internal::PREDECESSOR) >= 0 {
        return;
    }
    // SAFETY: pidfd_open with integer arguments.
    let fd = unsafe { real::syscall(libc::SYS_pidfd_open, pid as libc::c_long, 0, 0, 0, 0, 0) } as c_int;
    if fd >= 0 {
        internal::set(internal::PREDECESSOR, sys::move_internal(fd));
    }
}

/// When the first deferred SIGHUP came (monotonic ms; 0 = none).
static DEFERRED_SINCE: AtomicU64 = AtomicU64::new(0);

/// Whether the previous generation's process is still running (draining). A predecessor that
/// outlives its drain deadline by 10 s (it should have cut its connections by then) no longer
/// holds restarts back.
fn predecessor_running() -> bool {
    let fd = internal::get(internal::PREDECESSOR);
    if fd < 0 {
        return false;
    }
    let since = DEFERRED_SINCE.load(Ordering::Acquire);
    let limit = config().drain_timeout_ms;
    if since > 0 && limit > 0 && sys::now_ms().saturating_sub(since) > limit + 10_000 {
        info!("the previous generation is still running {} s after a SIGHUP; restarting anyway", (limit + 10_000) / 1000);
        sys::close(internal::take(internal::PREDECESSOR));
        return false;
    }
    if !sys::pidfd_exited(fd) {
        return true;
    }
    sys::close(internal::take(internal::PREDECESSOR));
    false
}

/// Stores the configuration (constructor time).
pub fn configure(c: Config) {
    log::DEBUG.store(c.debug, Ordering::Relaxed);
    let _ = CONFIG.set(c);
}

fn config() -> Config {
    CONFIG.get().cloned().unwrap_or_default()
}

/// With `--revive`, sockets the program closes are kept for the next generation.
pub fn keeps_closed_sockets() -> bool {
    CONFIG.get().is_some_and(|c| c.revive)
}

/// With `--multi`, every socket gets SO_REUSEPORT before bind.
pub fn wants_reuseport() -> bool {
    CONFIG.get().is_some_and(|c| c.reuseport)
}

/// When this image started (monotonic ms), for the revive back-off.
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
/// This image accepted at least one connection (a quick exit after serving is not a failure).
pub static ACCEPTED_ANY: AtomicBool = AtomicBool::new(false);
/// A stop was requested (SIGINT/SIGTERM reached the program's handler): exit for real.
pub static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

/// Records the start time and, with `--revive`, registers the exit handler (constructor). The
/// handler is registered before the program's own, so it runs after them, last of all.
pub fn mark_started() {
    STARTED_MS.store(sys::now_ms(), Ordering::Relaxed);
    if keeps_closed_sockets() {
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
    revive_instead_of_exit(status);
}

/// Exit hook: with `--revive`, the program that exits (not a forked worker, not a draining old
/// generation, not one asked to stop) is started again in place, keeping its sockets. Returns only
/// when the exit should really happen.
pub fn revive_instead_of_exit(status: c_int) {
    let cfg = config();
    if !cfg.revive || FORK_PARENT.load(Ordering::Acquire) != 0 || draining() || STOP_REQUESTED.load(Ordering::Acquire) {
        return;
    }
    // Only the program itself is revived, never a process it spawned (which inherits the shim):
    // the process huptime exec'd into, or a later generation of it.
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if me != cfg.root_pid && !handover::IS_GENERATION.load(Ordering::Acquire) {
        return;
    }
    let Some(launch) = launch::get() else { return };
    if let Err(why) = crate::preload::check() {
        info!("exited with status {status}; can't revive: {why}");
        return;
    }
    let uptime = sys::now_ms().saturating_sub(STARTED_MS.load(Ordering::Relaxed));
    // Only an exit soon after start without serving anyone counts towards the back-off.
    let quick = uptime < 1000 && !ACCEPTED_ANY.load(Ordering::Acquire);
    let streak = if quick { cfg.revive_streak + 1 } else { 0 };
    let backoff = if streak <= 1 { 0 } else { (100u64 << (streak - 2).min(6)).min(5000) };
    if backoff > 0 {
        info!("exited with status {status} after {uptime} ms without serving ({streak} times in a row); reviving in {backoff} ms");
        sys::sleep_ms(backoff);
    } else {
        info!("exited with status {status}; reviving");
    }
    let gen = next_generation();
    let out = handover::prepare(gen, -1);
    let streak_env = std::ffi::CString::new(format!("HUPTIME_REVIVE_STREAK={streak}")).unwrap_or_default();
    let plan = ExecPlan::new(launch, vec![out.env.clone(), streak_env], out.fds.clone());
    plan.exec_into(launch);
    info!("can't revive {}: {}", plan.exe().to_string_lossy(), std::io::Error::last_os_error());
}

/// Whether this process is draining.
#[inline]
pub fn draining() -> bool {
    DRAINING.load(Ordering::Acquire)
}

/// Whether this process is a forked copy (not an image exec'd by huptime or a restart).
pub fn is_forked_copy() -> bool {
    FORK_PARENT.load(Ordering::Acquire) != 0
}

/// A worker is a forked copy whose forking process is still its parent: it follows its master.
/// (Async-signal-safe.)
pub fn is_worker() -> bool {
    let p = FORK_PARENT.load(Ordering::Acquire);
    // SAFETY: getppid has no preconditions.
    p != 0 && unsafe { libc::getppid() } == p
}

/// Starts the helper thread if this process does not have one yet. Called from normal (not
/// signal) context: bind, accept, epoll registration, and after fork in a child.
pub fn ensure_helper() {
    if HELPER.swap(true, Ordering::AcqRel) {
        return;
    }
    // A process that did not take SIGHUP at start (one the program spawned) does now: from here
    // on only the helper takes it.
    signals::take_sighup(false);
    if internal::get(internal::HUP) < 0 {
        internal::set(internal::HUP, sys::eventfd());
    }
    if internal::get(internal::DRAIN) < 0 {
        internal::set(internal::DRAIN, sys::eventfd());
    }
    if internal::get(internal::LINEAGE_W) < 0 {
        open_lineage_pipe();
    }
    // SAFETY: standard pthread creation with a detached attribute.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, 512 * 1024);
        let mut t: libc::pthread_t = 0;
        let r = libc::pthread_create(&mut t, &attr, helper_main, core::ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            HELPER.store(false, Ordering::Release);
            info!("can't start the restart thread (error {r}); SIGHUP will not restart this process");
        }
    }
}

/// Opens the pipe a master writes to tell the processes it forks to drain (they inherit the read
/// end) into its internal slots.
fn open_lineage_pipe() {
    let mut p = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
        internal::set(internal::LINEAGE_R, sys::move_internal(p[0]));
        internal::set(internal::LINEAGE_W, sys::move_internal(p[1]));
    }
}

/// Fork hook, child side: this process is a copy of its parent's generation. It gets its own
/// eventfds (the inherited ones are shared with the parent) and its own helper if it holds sockets.
pub fn after_fork_child(parent: libc::pid_t) {
    FORK_PARENT.store(parent, Ordering::Release);
    HELPER.store(false, Ordering::Release);
    for slot in [internal::HUP, internal::DRAIN] {
        let old = internal::get(slot);
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
    if !SOCKETS.lock().is_empty() {
        ensure_helper();
    }
}

extern "C" fn helper_main(_: *mut libc::c_void) -> *mut libc::c_void {
    // The one thread that takes SIGHUP (blocked in every program thread).
    signals::helper_mask();
    debug!("restart thread started");
    loop {
        if HUP_PENDING.swap(false, Ordering::AcqRel) {
            on_hup();
            continue;
        }
        let hup = internal::get(internal::HUP);
        // Every forked copy listens for its generation's drain notice, even once its master has
        // exited (the master may well be gone by the time the notice is read).
        let forked = FORK_PARENT.load(Ordering::Acquire) != 0;
        let lineage = if forked { internal::get(internal::LINEAGE_R) } else { -1 };
        let previous = if DEFERRED.load(Ordering::Acquire) { internal::get(internal::PREDECESSOR) } else { -1 };
        let mut fds = [
            libc::pollfd { fd: hup, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: lineage, events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: previous, events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: valid pollfd array; a negative fd is ignored by poll.
        let r = unsafe { real::poll(fds.as_mut_ptr(), 3, 1000) };
        if r > 0 && fds[0].revents != 0 {
            sys::eventfd_clear(hup);
        }
        if DEFERRED.load(Ordering::Acquire) && !predecessor_running() && DEFERRED.swap(false, Ordering::AcqRel) {
            info!("the previous generation has ended; restarting as SIGHUP asked");
            HUP_PENDING.store(true, Ordering::Release);
            continue;
        }
        if r > 0 && fds[1].revents != 0 {
            // Also when this process was forked by an already draining one (nginx's master
            // respawns the workers that drain away): it belongs to the old generation too.
            debug!("this generation is draining; so does this worker");
            drain_and_exit(None);
        }
    }
}

fn on_hup() {
    if draining() {
        debug!("SIGHUP ignored: already draining");
        return;
    }
    if is_worker() {
        debug!("SIGHUP in a worker: draining");
        drain_and_exit(None);
    }
    if config().mode == Mode::Fork && predecessor_running() {
        if !DEFERRED.swap(true, Ordering::AcqRel) {
            DEFERRED_SINCE.store(sys::now_ms(), Ordering::Release);
            let pid = handover::PARENT_GENERATION_PID.load(Ordering::Relaxed);
            info!("SIGHUP: generation {} (pid {pid}) is still draining; restarting once it has ended", log::GENERATION.load(Ordering::Relaxed).saturating_sub(1));
        }
        return;
    }
    match config().mode {
        Mode::Fork => fork_restart(),
        Mode::Exec => exec_restart(),
    }
}

/// Stops taking connections: tells forked workers, wakes parked accept() calls, removes bound
/// sockets from the process's epoll sets and puts inert sockets at their fd numbers (so poll and
/// select loops stop seeing them while they keep serving their open connections).
fn begin_drain() {
    if DRAINING.swap(true, Ordering::AcqRel) {
        return;
    }
    // From now on a wake interrupts a blocked accept() instead of restarting it (see wait_idle).
    signals::install_handler(false);
    sys::eventfd_signal(internal::get(internal::DRAIN));
    if !is_worker() {
        let w = internal::get(internal::LINEAGE_W);
        if w >= 0 {
            // SAFETY: one-byte write.
            unsafe { real::write(w, b"D".as_ptr().cast(), 1) };
        }
    }
    let mut epolls = [0 as c_int; 256];
    let n_ep = fdtable::fds_in_state(FdState::Epoll, &mut epolls);
    let sockets: Vec<_> = SOCKETS.lock().iter().filter(|s| !s.pending).collect();
    for s in sockets {
        let shadow = sys::dup_internal(s.fd);
        if let Some(e) = SOCKETS.lock().iter_mut().find(|e| e.fd == s.fd && !e.pending) {
            e.shadow = shadow;
        }
        // SAFETY: epoll_ctl/socket/listen/dup3 on fds this process owns.
        unsafe {
            for &ep in &epolls[..n_ep] {
                real::epoll_ctl(ep, libc::EPOLL_CTL_DEL, s.fd, core::ptr::null_mut());
            }
            let ty = sys::socktype(s.fd);
            let dummy = libc::socket(libc::AF_UNIX, if ty > 0 { ty } else { libc::SOCK_STREAM } | libc::SOCK_CLOEXEC, 0);
            if dummy >= 0 {
                if ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET {
                    // An AF_UNIX socket must be bound before listen(); an address of just the
                    // family autobinds it to a unique abstract name. A listening socket nobody
                    // connects to is never readable, unlike an unconnected one (POLLHUP).
                    let family = libc::AF_UNIX as libc::sa_family_t;
                    real::bind(dummy, (&family as *const libc::sa_family_t).cast(), 2);
                    if real::listen(dummy, 1) != 0 {
                        info!("can't make an inert socket for fd {}: {}", s.fd, std::io::Error::last_os_error());
                    }
                }
                // Keep the program's blocking mode on the inert socket.
                if sys::nonblocking(s.fd) {
                    real::fcntl(dummy, libc::F_SETFL, libc::O_NONBLOCK as libc::c_long);
                }
                replace_keeping_cloexec(dummy, s.fd);
                real::close(dummy);
            }
        }
        fdtable::set_state(s.fd, FdState::Drained);
    }
    debug!("stopped accepting; {} connection(s) open", fdtable::CONNS.load(Ordering::Acquire));
}

/// Puts (a duplicate of) `src` at fd number `dst`, keeping the close-on-exec flag the program gave
/// `dst` (dup3 would otherwise set it from its own argument). Returns what dup3 returned.
fn replace_keeping_cloexec(src: c_int, dst: c_int) -> c_int {
    // SAFETY: fcntl/dup3 on fds this process owns.
    unsafe {
        let fdflags = real::fcntl(dst, libc::F_GETFD, 0);
        let flags = if fdflags >= 0 && fdflags & libc::FD_CLOEXEC != 0 { libc::O_CLOEXEC } else { 0 };
        real::dup3(src, dst, flags)
    }
}

/// Running (not zombie) children of this process, from /proc/self/task/*/children.
fn live_children() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0 };
    let mut n = 0;
    for t in tasks.flatten() {
        let Ok(list) = std::fs::read_to_string(t.path().join("children")) else { continue };
        for pid in list.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)).unwrap_or("Z");
            if state != "Z" && state != "X" {
                n += 1;
            }
        }
    }
    n
}

/// Removes the `--unlink` file (a pidfile) before a new generation starts.
fn unlink_pidfile() {
    if let Some(path) = config().unlink {
        match std::fs::remove_file(&path) {
            Ok(()) => debug!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => info!("can't remove {} before the restart: {e}", path.display()),
        }
    }
}

/// How a drain ended.
enum Drained {
    /// Idle, or the deadline passed: the process may end (or exec).
    Done,
    /// The successor this process handed over to failed while this one still drained: it takes
    /// its listeners back. Carries how the successor ended.
    SuccessorFailed(String),
}

/// Waits until the process has no open client connections (and, with `--wait` or before an exec,
/// no running children), or the drain deadline passes. With `successor`, also watches the
/// generation that took over: if it fails before this one is done, the drain is called off.
fn wait_idle(mut successor: Option<&mut Attempt>) -> Drained {
    let cfg = config();
    let limit = cfg.drain_timeout_ms;
    let start = sys::now_ms();
    loop {
        if let Some(a) = successor.as_deref_mut() {
            if a.has_ended() {
                if a.failed() {
                    return Drained::SuccessorFailed(a.how_it_ended().unwrap_or_else(|| "ended".into()));
                }
                debug!("generation {} (pid {}) stopped; going on draining", log::GENERATION.load(Ordering::Relaxed) + 1, a.pid);
                successor = None;
            }
        }
        if cfg.wait_children && fdtable::CONNS.load(Ordering::SeqCst) == 0 {
            let kids = live_children();
            if kids > 0 {
                if limit > 0 && sys::now_ms().saturating_sub(start) >= limit {
                    info!("drain deadline passed with {kids} child process(es) still running");
                } else {
                    sys::sleep_ms(10);
                    continue;
                }
            }
        }
        let accepting = interrupt_accepts();
        let open = fdtable::CONNS.load(Ordering::SeqCst);
        let waited = sys::now_ms().saturating_sub(start);
        if waited / 1000 != waited.saturating_sub(5) / 1000 {
            debug!("draining for {} s: {open} connection(s) open, {accepting} thread(s) in accept", waited / 1000);
        }
        if open == 0 && accepting == 0 {
            // Looks idle: close the door, then look again for a thread that got in meanwhile.
            CLOSING.store(true, Ordering::SeqCst);
            if interrupt_accepts() == 0 && fdtable::CONNS.load(Ordering::SeqCst) == 0 {
                return Drained::Done;
            }
        }
        if limit > 0 && sys::now_ms().saturating_sub(start) >= limit {
            info!("drain deadline ({} s) passed with {open} connection(s) still open; cutting them", limit as f64 / 1000.0);
            return Drained::Done;
        }
        sys::sleep_ms(5);
    }
}

fn drain_and_exit(reason: Option<&str>) -> ! {
    begin_drain();
    crate::status::publish("draining");
    wait_idle(None);
    exit_drained(reason)
}

fn exit_drained(reason: Option<&str>) -> ! {
    crate::status::withdraw();
    if let Some(r) = reason {
        info!("{r}");
    } else {
        debug!("drained; exiting");
    }
    // SAFETY: ending the process without running the program's exit path (which could close or
    // unlink sockets the next generation now serves).
    unsafe {
        real::_exit(0);
        libc::abort()
    }
}

/// A blocking accept() in a draining process, by a thread registered with `enter_accept`. If a
/// connection is pending right now (the program's poll/select saw it just before the drain), it is
/// taken without waiting and served here: a single-threaded event loop that called accept() must
/// get back to its open connections. Otherwise the thread parks until the process ends (from its
/// helper thread) or takes its listeners back; then `None` tells the caller to accept again.
pub fn accept_while_draining(fd: c_int, slot: usize, accept: &dyn Fn(c_int) -> c_int) -> Option<c_int> {
    if CLOSING.load(Ordering::SeqCst) {
        leave_accept(slot);
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
                leave_accept(slot);
                return Some(r);
            }
        }
    }
    leave_accept(slot);
    park();
    None
}

/// Blocks the calling thread while the process drains: it ends from its helper thread, or takes
/// its listeners back (its successor failed) and the thread returns.
fn park() {
    while draining() || CLOSING.load(Ordering::SeqCst) {
        // SAFETY: poll with no fds just sleeps.
        unsafe { real::poll(core::ptr::null_mut(), 0, 100) };
    }
}

/// Calls off the drain (the successor failed after it was ready): the real sockets go back to
/// their fd numbers and into the program's epoll sets, parked accept() calls resume, and the
/// processes forked from now on get a fresh drain notice pipe (the old one says "drain").
fn take_back() {
    let sockets: Vec<_> = SOCKETS.lock().iter().filter(|s| !s.pending && s.shadow >= 0).collect();
    let mut regs = [crate::epollreg::Registration { ep: -1, fd: -1, events: 0, data: 0 }; 16];
    for s in sockets {
        // SAFETY: fcntl/dup3/epoll_ctl on fds this process owns.
        unsafe {
            if replace_keeping_cloexec(s.shadow, s.fd) < 0 {
                info!("can't take back {} (fd {}): {}", s.key, s.fd, std::io::Error::last_os_error());
                continue;
            }
            sys::close(s.shadow);
            fdtable::set_state(s.fd, FdState::Bound);
            let n = crate::epollreg::REGISTRATIONS.lock().of_socket(s.fd, &mut regs);
            for r in &regs[..n] {
                let mut ev = libc::epoll_event { events: r.events, u64: r.data };
                real::epoll_ctl(r.ep, libc::EPOLL_CTL_ADD, r.fd, &mut ev);
            }
        }
        if let Some(e) = SOCKETS.lock().iter_mut().find(|e| e.fd == s.fd && !e.pending) {
            e.shadow = -1;
        }
    }
    for slot in [internal::LINEAGE_R, internal::LINEAGE_W] {
        sys::close(internal::take(slot));
    }
    open_lineage_pipe();
    sys::eventfd_clear(internal::get(internal::DRAIN));
    CLOSING.store(false, Ordering::SeqCst);
    signals::install_handler(true);
    DRAINING.store(false, Ordering::Release);
}

fn next_generation() -> u32 {
    log::GENERATION.load(Ordering::Relaxed).saturating_add(1)
}

/// A restart that cannot be attempted: said once, recorded as a failed restart (for `huptime
/// --restart` and systemd), and this generation goes on serving.
fn refuse_restart(why: &str) {
    info!("can't restart: {why}; this generation keeps serving");
    crate::status::record_rollback(why);
    crate::notify::rolled_back(why);
    crate::status::publish("serving");
}

fn fork_restart() {
    let Some(launch) = launch::get() else {
        info!("can't restart: the launch was not captured at start-up");
        return;
    };
    if let Err(why) = crate::preload::check() {
        return refuse_restart(&why);
    }
    let gen = next_generation();
    let mut ready = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(ready.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        info!("can't restart: can't create the readiness pipe: {}", std::io::Error::last_os_error());
        return;
    }
    let (ready_r, ready_w) = (sys::move_internal(ready[0]), sys::move_internal(ready[1]));
    // The new generation must never block on it (its stderr copies are dropped when it is full).
    // SAFETY: plain fcntl on our own fd.
    unsafe { real::fcntl(ready_w, libc::F_SETFL, libc::O_NONBLOCK as libc::c_long) };
    let out = handover::prepare(gen, ready_w);
    let mut keep = out.fds.clone();
    keep.push(ready_w);
    let plan = ExecPlan::new(launch, vec![out.env.clone()], keep);
    unlink_pidfile();
    let started = sys::now_ms();
    let (pid, pidfd) = spawn(&plan, launch);
    for &fd in &out.fds {
        sys::close(fd);
    }
    sys::close(ready_w);
    if pid < 0 {
        info!("can't restart: can't start a new process: {}", std::io::Error::last_os_error());
        sys::close(ready_r);
        return;
    }
    info!("restarting: generation {gen} is pid {pid} ({})", plan.exe().to_string_lossy());
    crate::notify::reloading(gen);
    crate::status::publish("restarting");
    let timeout = config().ready_timeout_ms;
    let mut attempt = Attempt::new(pid, pidfd, ready_r);
    let outcome = attempt.wait(timeout);
    let what = match outcome {
        Outcome::Ready => {
            let ready_at = sys::now_us();
            begin_drain();
            let stop_us = sys::now_us() - ready_at;
            crate::status::publish("draining");
            sys::close(ready_r);
            info!(
                "generation {gen} (pid {pid}) is ready after {} ms; stopped accepting {}.{:03} ms later; draining",
                sys::now_ms() - started,
                stop_us / 1000,
                stop_us % 1000
            );
            if HUP_PENDING.swap(false, Ordering::AcqRel) {
                // SIGHUPs that came during this restart: one follow-up restart, by the new generation.
                info!("SIGHUP received during the restart; passing it on to generation {gen}");
                sys::pidfd_signal(pidfd, libc::SIGHUP);
            }
            crate::notify::handed_over(pid, gen);
            // SAFETY: getpid has no preconditions.
            crate::status::successor_ready(unsafe { libc::getpid() });
            match wait_idle(Some(&mut attempt)) {
                Drained::Done => {
                    sys::close(pidfd);
                    exit_drained(Some("drained; exiting"))
                }
                Drained::SuccessorFailed(how) => {
                    take_back();
                    sys::close(pidfd);
                    crate::status::forget(pid);
                    let why = format!("generation {gen} (pid {pid}) {how} after it was ready");
                    info!("{why}; generation {} takes its sockets back and serves again", gen - 1);
                    crate::status::record_rollback(&why);
                    // SAFETY: getpid has no preconditions.
                    crate::notify::handed_over(unsafe { libc::getpid() }, gen - 1);
                    crate::status::publish("serving");
                    return;
                }
            }
        }
        Outcome::Ended => format!("generation {gen} (pid {pid}) {} before it was ready", attempt.how_it_ended().unwrap_or_else(|| "ended".into())),
        Outcome::Timeout => format!("generation {gen} (pid {pid}) was not ready within {} s", timeout as f64 / 1000.0),
    };
    let killed = attempt.kill_all();
    crate::status::forget(pid);
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
    crate::status::record_rollback(&format!("{what}{last}"));
    crate::notify::rolled_back(&format!("{what}{last}"));
    crate::status::publish("serving");
}

/// Starts the next generation as a sibling (CLONE_PARENT): it is never the program's own child,
/// so the program's waitpid() cannot reap it and its exit does not look like a worker's. Returns
/// the pid and a pidfd to watch it.
fn spawn(plan: &ExecPlan, launch: &launch::Launch) -> (libc::pid_t, c_int) {
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
        real::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs as libc::c_long,
            core::mem::size_of::<CloneArgs>() as libc::c_long,
            0,
            0,
            0,
            0,
        )
    } as libc::pid_t;
    if pid == 0 {
        plan.exec_into(launch);
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

fn exec_restart() {
    let Some(launch) = launch::get() else {
        info!("can't restart: the launch was not captured at start-up");
        return;
    };
    // SAFETY: access() on a valid C string.
    if unsafe { libc::access(launch.exe.as_ptr(), libc::X_OK) } != 0 {
        let e = std::io::Error::last_os_error();
        return refuse_restart(&format!("{} is not executable now ({e})", launch.exe.to_string_lossy()));
    }
    if let Err(why) = crate::preload::check() {
        return refuse_restart(&why);
    }
    let gen = next_generation();
    let out = handover::prepare(gen, -1);
    let plan = ExecPlan::new(launch, vec![out.env.clone()], out.fds.clone());
    info!("restarting in place: draining before exec of generation {gen}");
    crate::notify::reloading(gen);
    begin_drain();
    crate::status::publish("draining");
    wait_idle(None);
    info!("drained; exec'ing generation {gen}");
    unlink_pidfile();
    stop_async_io_signals();
    plan.exec_into(launch);
    info!("can't exec {}: {}; exiting", plan.exe().to_string_lossy(), std::io::Error::last_os_error());
    // SAFETY: nothing sensible is left to do in a drained process whose exec failed.
    unsafe {
        real::_exit(127);
        libc::abort()
    }
}
