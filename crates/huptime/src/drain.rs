//! Draining: a process stops taking connections (its forked workers are told to do the same),
//! finishes the open ones, then ends — or, when the generation it handed over to fails after it
//! was ready, takes its sockets back and serves again.
//!
//! Stopping = bound fds are removed from the program's epoll sets and swapped for inert sockets
//! (so poll and select loops stop seeing them while they keep serving their open connections),
//! parked accept() calls wake (see [`crate::accept_gate`]), and the connections are watched: the
//! next HTTP/1.x response on each says `Connection: close` (see [`crate::rewrite`]).

use crate::attempt::Attempt;
use crate::epollreg::REGISTRATIONS;
use crate::fdtable::{self, internal, FdState, MAX_SOCKETS, SOCKETS};
use crate::lifecycle::{self, Step};
use crate::keepalive::{self, Cut, IdleCloser};
use crate::{accept_gate, config, connio, lineage, log, real, signals, status, sys};
use core::sync::atomic::Ordering;
use libc::c_int;

/// Opens the pipe a master writes to tell the processes it forks to drain (they inherit the read
/// end) into its internal slots: the drain notice of this generation.
pub fn open_notice_pipe() {
    let mut p = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0 {
        internal::set(internal::LINEAGE_R, sys::move_internal(p[0]));
        internal::set(internal::LINEAGE_W, sys::move_internal(p[1]));
    }
}

/// Makes the transition `step` (one that leads to Draining) and, right after the phase changed,
/// stops taking connections. Returns false if the process was draining already.
pub fn begin(step: Step<'_>) -> bool {
    begin_then(step, || {})
}

/// [`begin`], running `then` once the process has stopped taking connections (before the status
/// file and systemd hear of it).
pub fn begin_then(step: Step<'_>, then: impl FnOnce()) -> bool {
    lifecycle::enter_with(step, || {
        stop_accepting();
        then();
    })
}

/// Stops taking connections: tells forked workers, wakes parked accept() calls, removes bound
/// sockets from the process's epoll sets and puts inert sockets at their fd numbers.
fn stop_accepting() {
    // From now on the next response on each connection says `Connection: close`.
    connio::watch_all();
    if !lineage::is_worker() {
        let w = internal::get(internal::LINEAGE_W);
        if w >= 0 {
            // SAFETY: one-byte write.
            unsafe { real::write(w, b"D".as_ptr().cast(), 1) };
        }
    }
    let mut sockets = [-1 as c_int; MAX_SOCKETS];
    let mut n = 0;
    for s in SOCKETS.lock().iter().filter(|s| !s.pending) {
        sockets[n] = s.fd;
        n += 1;
    }
    // Out of every epoll set the process has, however many.
    fdtable::each_in_state(FdState::Epoll, |ep| {
        for &fd in &sockets[..n] {
            // SAFETY: epoll_ctl on fds this process owns.
            unsafe { real::epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd, core::ptr::null_mut()) };
        }
    });
    for &fd in &sockets[..n] {
        let shadow = sys::dup_internal(fd);
        if let Some(e) = SOCKETS.lock().iter_mut().find(|e| e.fd == fd && !e.pending) {
            e.shadow = shadow;
        }
        put_inert_socket(fd);
        fdtable::set_state(fd, FdState::Drained);
    }
    debug!("stopped accepting; {} connection(s) open", fdtable::CONNS.load(Ordering::Acquire));
}

/// Puts an inert socket of the same type at `fd`: an AF_UNIX socket that nobody connects to, so
/// that it is never readable (a listening one) and keeps the program's blocking mode.
fn put_inert_socket(fd: c_int) {
    let ty = sys::socktype(fd);
    // SAFETY: socket/bind/listen/fcntl/close on a socket this function owns; the bind address is
    // a valid two-byte sockaddr of just the family.
    unsafe {
        let dummy = libc::socket(libc::AF_UNIX, if ty > 0 { ty } else { libc::SOCK_STREAM } | libc::SOCK_CLOEXEC, 0);
        if dummy < 0 {
            return;
        }
        if ty == libc::SOCK_STREAM || ty == libc::SOCK_SEQPACKET {
            // An AF_UNIX socket must be bound before listen(); an address of just the family
            // autobinds it to a unique abstract name. A listening socket nobody connects to is
            // never readable, unlike an unconnected one (POLLHUP).
            let family = libc::AF_UNIX as libc::sa_family_t;
            real::bind(dummy, (&family as *const libc::sa_family_t).cast(), 2);
            if real::listen(dummy, 1) != 0 {
                info!("can't make an inert socket for fd {fd}: {}", crate::log::OsError::last());
            }
        }
        if sys::nonblocking(fd) {
            real::fcntl(dummy, libc::F_SETFL, libc::O_NONBLOCK as libc::c_long);
        }
        replace_keeping_cloexec(dummy, fd);
        real::close(dummy);
    }
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
        n += list.split_whitespace().filter_map(|pid| pid.parse().ok()).filter(|&pid| sys::running(pid)).count();
    }
    n
}

/// How a drain ended.
pub enum Drained {
    /// Idle, or the deadline passed: the process may end (or exec).
    Done,
    /// The successor this process handed over to failed while this one still drained: it takes
    /// its listeners back. Carries how the successor ended.
    SuccessorFailed(String),
}

/// Waits until the process has no open client connections (and, with `--wait` or before an exec,
/// no running children), or the drain deadline passes. Idle connections are closed on the way
/// (see [`crate::keepalive`]); a SIGHUP meanwhile closes them at once, with no grace. With `successor`, also watches the
/// generation that took over: if it fails before this one is done, the drain is called off.
pub fn wait_idle(mut successor: Option<&mut Attempt>) -> Drained {
    let cfg = config::get();
    let limit = cfg.drain_timeout_ms;
    let start = sys::now_ms();
    // This drain's counts (a drain taken back may have left counts of its own).
    status::record_closed(0, 0, 0);
    let mut idle = IdleCloser::new(cfg.drain_idle_ms);
    let done = |idle: &IdleCloser| {
        if idle.closed > 0 {
            info!("closed {} idle connection(s) while draining", idle.closed);
        }
        Drained::Done
    };
    let publish = |idle: usize, cut: Cut| {
        status::record_closed(idle, cut.at_boundary, cut.reset);
        lifecycle::republish();
    };
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
        if signals::take_pending() && idle.grace_ms > 0 {
            // SIGHUP while draining: the next generation wants to restart (or a user does).
            let (generation, open) = (log::GENERATION.load(Ordering::Relaxed), fdtable::CONNS.load(Ordering::SeqCst));
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            info!("SIGHUP: generation {generation} (pid {pid}) is draining {open} keep-alive connection(s); closing the idle ones");
            idle.hurry();
        }
        let accepting = accept_gate::interrupt_all();
        if fdtable::CONNS.load(Ordering::SeqCst) > 0 && idle.tick(sys::now_ms()) > 0 {
            publish(idle.closed, Cut::default());
        }
        let open = fdtable::CONNS.load(Ordering::SeqCst);
        let waited = sys::now_ms().saturating_sub(start);
        if waited / 1000 != waited.saturating_sub(5) / 1000 {
            debug!("draining for {} s: {open} connection(s) open, {accepting} thread(s) in accept", waited / 1000);
        }
        if open == 0 && accepting == 0 {
            // Looks idle: close the door, then look again for a thread that got in meanwhile.
            lifecycle::enter(Step::Idle);
            if accept_gate::interrupt_all() == 0 && fdtable::CONNS.load(Ordering::SeqCst) == 0 {
                return done(&idle);
            }
        }
        if limit > 0 && sys::now_ms().saturating_sub(start) >= limit {
            info!("drain deadline ({} s) passed with {open} connection(s) still open; cutting them", limit as f64 / 1000.0);
            let cut = keepalive::cut_at_deadline(limit, |cut| publish(idle.closed, cut));
            info!("drain deadline: {} closed at a request boundary, {} reset", cut.at_boundary, cut.reset);
            return done(&idle);
        }
        sys::sleep_ms(5);
    }
}

/// Drains without a successor of its own (a worker following its master, a SIGHUP in a worker),
/// then ends.
pub fn drain_and_exit() -> ! {
    begin(Step::Drain { exec_generation: None });
    wait_idle(None);
    exit_drained(None)
}

/// Ends a drained process without running the program's exit path (which could close or unlink
/// sockets the next generation now serves). `reason` is logged; none: a debug line.
pub fn exit_drained(reason: Option<&str>) -> ! {
    lifecycle::ended();
    if let Some(r) = reason {
        info!("{r}");
    } else {
        debug!("drained; exiting");
    }
    // SAFETY: _exit ends the process at once; abort only if it somehow returned.
    unsafe {
        real::_exit(0);
        libc::abort()
    }
}

/// Calls off the drain (the successor, generation `failed_generation`, failed after it was ready
/// with `why`): the real sockets go back to their fd numbers and into the program's epoll sets,
/// the processes forked from now on get a fresh drain notice pipe (the old one says "drain"),
/// then the phase goes back to Serving and parked accept() calls resume.
pub fn take_back(why: &str, failed_generation: u32) {
    let sockets: Vec<_> = SOCKETS.lock().iter().filter(|s| !s.pending && s.shadow >= 0).collect();
    for s in sockets {
        if replace_keeping_cloexec(s.shadow, s.fd) < 0 {
            info!("can't take back {} (fd {}): {}", s.key, s.fd, crate::log::OsError::last());
            continue;
        }
        sys::close(s.shadow);
        fdtable::set_state(s.fd, FdState::Bound);
        crate::sockmode::refresh(s.fd);
        // Every registration the program made (a syscall each, under the registrations' lock).
        REGISTRATIONS.lock().each_of_socket(s.fd, |r| {
            let mut ev = libc::epoll_event { events: r.events, u64: r.data };
            // SAFETY: epoll_ctl with a valid event on fds this process owns.
            unsafe { real::epoll_ctl(r.ep, libc::EPOLL_CTL_ADD, r.fd, &mut ev) };
        });
        if let Some(e) = SOCKETS.lock().iter_mut().find(|e| e.fd == s.fd && !e.pending) {
            e.shadow = -1;
        }
    }
    for slot in [internal::LINEAGE_R, internal::LINEAGE_W] {
        sys::close(internal::take(slot));
    }
    open_notice_pipe();
    connio::unwatch_all();
    let generation = failed_generation.saturating_sub(1);
    info!("{why}; generation {generation} takes its sockets back and serves again");
    lifecycle::enter(Step::TakenBack { why, generation });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn readable(fd: c_int) -> bool {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents != 0 }
    }

    /// Waits (up to a minute) until `fd` is readable.
    fn wait_readable(fd: c_int) {
        let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 60_000) }, 1, "fd {fd} never became readable");
    }

    fn cloexec(fd: c_int) -> bool {
        // SAFETY: plain fcntl.
        unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
    }

    fn family(fd: c_int) -> c_int {
        sys::local_address(fd).map(|(ss, _)| ss.ss_family as c_int).unwrap_or(-1)
    }

    /// Drains a listening socket at `fd` (with `nonblocking` and `cloexec` as the program set
    /// them) while a connection waits, then takes it back.
    fn drain_and_take_back_listener(nonblocking: bool, keep_cloexec: bool) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = listener.as_raw_fd();
        listener.set_nonblocking(nonblocking).unwrap();
        if !keep_cloexec {
            // SAFETY: plain fcntl on our own fd.
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        wait_readable(fd);
        let shadow = sys::dup_internal(fd);

        put_inert_socket(fd);
        assert_eq!(family(fd), libc::AF_UNIX, "an inert socket sits at the fd");
        assert!(sys::is_listening(fd) && sys::socktype(fd) == libc::SOCK_STREAM);
        assert_eq!(sys::nonblocking(fd), nonblocking, "the program's blocking mode is kept");
        assert_eq!(cloexec(fd), keep_cloexec, "the program's close-on-exec flag is kept");
        assert!(!readable(fd), "never readable, though a connection waits on the real socket");
        assert!(readable(shadow));
        if nonblocking {
            // SAFETY: accept on our own fd, no address wanted.
            assert_eq!(unsafe { libc::accept(fd, core::ptr::null_mut(), core::ptr::null_mut()) }, -1);
            assert_eq!(sys::errno(), libc::EAGAIN);
        }

        assert_eq!(replace_keeping_cloexec(shadow, fd), fd);
        sys::close(shadow);
        assert_eq!(family(fd), libc::AF_INET, "the real socket is back");
        assert_eq!(cloexec(fd), keep_cloexec);
        assert!(readable(fd));
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_ok(), "the waiting connection is served");
    }

    #[test]
    fn an_inert_listener_keeps_the_fd_flags_and_a_take_back_restores_the_socket() {
        drain_and_take_back_listener(false, true);
        drain_and_take_back_listener(true, false);
    }

    #[test]
    fn an_inert_datagram_socket_never_sees_the_real_one_s_datagrams() {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = udp.as_raw_fd();
        let to = udp.local_addr().unwrap();
        let shadow = sys::dup_internal(fd);
        put_inert_socket(fd);
        assert_eq!(family(fd), libc::AF_UNIX);
        assert_eq!(sys::socktype(fd), libc::SOCK_DGRAM);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sender.send_to(b"hello", to).unwrap();
        wait_readable(shadow);
        assert!(!readable(fd));
        assert_eq!(replace_keeping_cloexec(shadow, fd), fd);
        sys::close(shadow);
        let mut buf = [0u8; 8];
        assert_eq!(udp.recv(&mut buf).unwrap(), 5, "the datagram waits on the socket taken back");
    }

    /// One test: the notice pipe's slots are process-wide.
    #[test]
    fn the_notice_pipe_is_private_and_carries_the_drain_notice() {
        open_notice_pipe();
        let (r, w) = (internal::get(internal::LINEAGE_R), internal::get(internal::LINEAGE_W));
        assert!(r >= sys::internal_base() && w >= sys::internal_base());
        assert!(cloexec(r) && cloexec(w), "workers inherit it through fork, not exec");
        assert!(sys::nonblocking(w), "a master never blocks on it");
        assert_eq!(fdtable::state(r), FdState::Internal);
        assert!(!readable(r));
        // SAFETY: one-byte write to our own pipe.
        assert_eq!(unsafe { libc::write(w, b"D".as_ptr().cast(), 1) }, 1);
        assert!(readable(r));
        for slot in [internal::LINEAGE_R, internal::LINEAGE_W] {
            sys::close(internal::take(slot));
        }
    }

    #[test]
    fn a_running_child_is_counted() {
        let mut child = std::process::Command::new("sleep").arg("120").spawn().unwrap();
        assert!(live_children() >= 1);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
