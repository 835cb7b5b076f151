//! The notification thread: one thread of the CLI process waits (poll) on the notification fd of
//! every running generation and answers each notification as it comes ([`super::answer`]), so an
//! answer never waits for JavaScript (a timer, a garbage collection). Started on first use.
//!
//! A generation is watched until every process under its filter is gone (the kernel then reports
//! POLLHUP), not just the one huptime started: the processes it started are answered too. The
//! thread alone closes notification fds (also those [`unwatch`] marks), so an fd number is never
//! reused under its poll.
//! If huptime dies, the fds close with it: the programs' pending and later bind()/listen() calls
//! then fail with ENOSYS (seccomp_unotify(2)), and they are sent SIGTERM (PR_SET_PDEATHSIG).

use super::{answer, held, steer};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock};

/// A generation's notification fd.
struct Watched {
    pid: i32,
    fd: OwnedFd,
    /// Let go of: to be closed by the thread.
    dropped: bool,
}

struct Supervisor {
    /// eventfd that wakes the thread when the list changes.
    wake: OwnedFd,
    watched: Mutex<Vec<Watched>>,
}

static SUPERVISOR: OnceLock<Result<Supervisor, String>> = OnceLock::new();

fn supervisor() -> Result<&'static Supervisor, String> {
    SUPERVISOR
        .get_or_init(|| {
            // SAFETY: eventfd with flags; the result is a new fd we own.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(format!("can't create an eventfd: {}", std::io::Error::last_os_error()));
            }
            // SAFETY: a fresh fd.
            let wake = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
            std::thread::Builder::new().name("huptime-seccomp".into()).spawn(run).map_err(|e| format!("can't start the seccomp thread: {e}"))?;
            Ok(Supervisor { wake, watched: Mutex::new(Vec::new()) })
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn wake(s: &Supervisor) {
    let one: u64 = 1;
    // SAFETY: an 8-byte write from a valid buffer.
    unsafe { libc::write(s.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

/// SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (linux/seccomp.h, Linux 6.6; not in the libc crate).
const SYNC_WAKE_UP: libc::c_ulong = 1;

/// Asks the kernel to wake the answering thread on the notifying thread's CPU, and the notifying
/// thread on the answering one's (SECCOMP_IOCTL_NOTIF_SET_FLAGS, Linux 6.6): the program's thread
/// waits for each answer anyway, so the hand-off is a switch on one CPU instead of a wake-up of
/// another (measured here: an accept() round trip took 12 µs instead of 55). Older kernels refuse
/// the ioctl; the notifications then work as before.
fn synchronous_wake_ups(fd: &OwnedFd) {
    // SAFETY: the ioctl takes the flags by value.
    unsafe { libc::ioctl(fd.as_raw_fd(), libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS, SYNC_WAKE_UP) };
}

/// Starts answering the notifications of generation `pid` on `fd`.
pub fn watch(pid: i32, fd: OwnedFd) -> Result<(), String> {
    let s = supervisor()?;
    synchronous_wake_ups(&fd);
    s.watched.lock().unwrap_or_else(|p| p.into_inner()).push(Watched { pid, fd, dropped: false });
    wake(s);
    Ok(())
}

/// Stops answering for generation `pid` and forgets what it did (its processes' later calls fail
/// with ENOSYS).
pub fn unwatch(pid: i32) {
    if let Some(Ok(s)) = SUPERVISOR.get() {
        for w in s.watched.lock().unwrap_or_else(|p| p.into_inner()).iter_mut().filter(|w| w.pid == pid) {
            w.dropped = true;
        }
        wake(s);
    }
    held::with(|t| t.forget(pid));
}

/// Refuses generation `pid` new connections from now on where its filter sends its accept()
/// calls (see [`held::Accepts`]; the new connections of its TCP sockets were steered to its
/// successor's already, [`steer::steer_to`]). Returns how many connections its own sockets still
/// have to take (queued, or in a handshake begun before they were steered away from).
pub fn refuse_accepts(pid: i32) -> u32 {
    held::with(|t| t.generation(pid).accepts = held::Accepts::Refused);
    steer::away_from(pid)
}

/// Answers generation `pid`'s held accept() calls (it was sent its stop signal).
pub fn release_accepts(pid: i32) {
    let Some(Ok(s)) = SUPERVISOR.get() else { return };
    let w = s.watched.lock().unwrap_or_else(|p| p.into_inner());
    // Under the lock: the thread cannot close the fd meanwhile.
    if let Some(x) = w.iter().find(|x| x.pid == pid && !x.dropped) {
        answer::release(x.fd.as_raw_fd(), pid);
    }
}

/// Whether notifications of generation `pid` are still answered (some process under its filter).
pub fn watching(pid: i32) -> bool {
    let Some(Ok(s)) = SUPERVISOR.get() else { return false };
    s.watched.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|w| w.pid == pid && !w.dropped)
}

/// Lets this thread run as soon as a notification wakes it, ahead of the program's and the load's
/// threads: real-time priority 1 (SCHED_FIFO) when allowed (root, or an RLIMIT_RTPRIO); else it
/// stays as it is. Each accept() of a static program waits for this thread; with both CPUs busy
/// serving, an ordinary thread waited for its turn (measured: a static Go server kept 0.80 of its
/// bare Connection: close throughput instead of 0.71). It runs briefly for each notification,
/// and the kernel's real-time throttling bounds it anyway.
fn answer_first() {
    let p = libc::sched_param { sched_priority: 1 };
    // SAFETY: pid 0 is the calling thread; `p` is valid.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &p) };
}

/// The thread's loop (never returns; it ends with the process).
fn run() {
    answer_first();
    let s = loop {
        match SUPERVISOR.get() {
            Some(Ok(s)) => break s,
            _ => std::thread::yield_now(), // get_or_init is still storing it
        }
    };
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut pids: Vec<i32> = Vec::new();
    loop {
        fds.clear();
        pids.clear();
        fds.push(libc::pollfd { fd: s.wake.as_raw_fd(), events: libc::POLLIN, revents: 0 });
        {
            let mut w = s.watched.lock().unwrap_or_else(|p| p.into_inner());
            w.retain(|x| !x.dropped); // closes them
            for x in w.iter() {
                fds.push(libc::pollfd { fd: x.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 });
                pids.push(x.pid);
            }
        }
        // SAFETY: a valid array of pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            let mut v: u64 = 0;
            // SAFETY: an 8-byte read into a valid buffer.
            unsafe { libc::read(s.wake.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        }
        for (p, &pid) in fds[1..].iter().zip(&pids) {
            let alive = if p.revents & libc::POLLIN != 0 {
                answer::one(p.fd, pid)
            } else {
                p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) == 0
            };
            if !alive {
                let mut w = s.watched.lock().unwrap_or_else(|p| p.into_inner());
                w.iter_mut().filter(|x| x.pid == pid).for_each(|x| x.dropped = true);
                held::with(|t| t.forget(pid));
            }
        }
    }
}
