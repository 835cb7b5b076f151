//! A draining process's persistent connections. One is *idle* when no request is in progress on
//! it: the last data the program moved on it was written (or none moved), nothing waits unread,
//! everything written is acknowledged, and (TCP) no data moved either way for a grace
//! (`--drain-idle`; at least [`FRESH_GRACE_MS`] for one whose first request has not come yet).
//! An idle connection is shut down (FIN, both ways: the program's read returns
//! 0 and it closes the fd itself; the shim never closes the program's fds), the moment a
//! keep-alive timeout would pick, which clients already retry. This holds for any protocol: the
//! kernel tells (see [`crate::sockq`]).
//!
//! At the drain deadline the same test with no grace finds the connections at a request
//! boundary; [`Deadline`] shuts them as they reach one, and resets (RST) the last ones still
//! busy after a bounded extra time. There a response counts as through once the kernel has sent
//! it, acknowledged or not: a client that paces its requests acknowledges a response only with
//! its next request (delayed ACK), so "acknowledged and nothing unread" almost never holds
//! between two of them, while the FIN queues behind the response and reaches the client after
//! all of it.

use crate::connio;
use crate::fdtable::{self, FdState};
use crate::{real, sockq, sys};
use core::sync::atomic::Ordering;
use libc::c_int;

/// Least time a connection on which no data moved yet must have been open to count as idle,
/// unless the drain is hurried or past its deadline (ms). A client that has just connected is
/// about to send its first request, and a FIN before it fails that request (a client retries a
/// request on a reused connection, not on a new one); Go's Server.Shutdown waits 5 s too.
pub const FRESH_GRACE_MS: u64 = 5000;

/// When what the program wrote counts as through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Through {
    /// The peer acknowledged all of it (an idle connection during the drain).
    Acknowledged,
    /// The kernel sent all of it (a request boundary at the drain deadline).
    Sent,
}

/// Whether connection `fd` is idle: no request in progress, what was written is `through`, and
/// no data moved for `grace_ms` (`fresh_grace_ms` if none moved on it yet).
pub fn idle(fd: c_int, through: Through, grace_ms: u64, fresh_grace_ms: u64) -> bool {
    let q = connio::quiet(fd);
    if !q.answered || q.patching || q.shut {
        return false;
    }
    let grace_ms = if q.fresh { fresh_grace_ms } else { grace_ms };
    let pending = match through {
        Through::Acknowledged => sockq::unsent(fd),
        Through::Sent => sockq::not_yet_sent(fd),
    };
    if sockq::unread(fd) != Some(0) || pending != Some(0) {
        return false;
    }
    match sockq::last_data_ms(fd) {
        Some((recv, sent)) => u64::from(recv.min(sent)) >= grace_ms,
        None => true,
    }
}

/// Shuts connection `fd` down both ways (FIN). True if the kernel did.
fn shut_down(fd: c_int) -> bool {
    connio::shut(fd);
    real::shutdown(fd, libc::SHUT_RDWR) == 0
}

/// Shuts down every open connection that is idle (see [`idle`]); returns how many.
pub fn close_idle(through: Through, grace_ms: u64, fresh_grace_ms: u64) -> usize {
    let mut n = 0;
    fdtable::each_in_state(FdState::Conn, |fd| {
        if idle(fd, through, grace_ms, fresh_grace_ms) && shut_down(fd) {
            debug!("fd {fd}: idle for {grace_ms} ms; shut down (FIN)");
            n += 1;
        }
    });
    n
}

/// How often the drain looks for idle connections (ms): a few system calls per connection each
/// time.
const IDLE_CHECK_MS: u64 = 20;

/// The drain's closing of idle connections: every [`IDLE_CHECK_MS`], those idle for the grace.
pub struct IdleCloser {
    /// The grace (ms): `--drain-idle`, 0 once the drain is hurried.
    pub grace_ms: u64,
    /// The grace of a connection that has carried nothing yet (kept when hurried).
    fresh_grace_ms: u64,
    /// Connections shut so far.
    pub closed: usize,
    next_at: u64,
}

impl IdleCloser {
    /// Closes connections idle for `grace_ms`.
    pub fn new(grace_ms: u64) -> IdleCloser {
        let fresh_grace_ms = if grace_ms == 0 { 0 } else { grace_ms.max(FRESH_GRACE_MS) };
        IdleCloser { grace_ms, fresh_grace_ms, closed: 0, next_at: 0 }
    }

    /// Closes the idle connections if it is time (`now`, monotonic ms) to look; returns how
    /// many it closed.
    pub fn tick(&mut self, now: u64) -> usize {
        if now < self.next_at {
            return 0;
        }
        self.next_at = now + IDLE_CHECK_MS;
        let n = close_idle(Through::Acknowledged, self.grace_ms, self.fresh_grace_ms);
        self.closed += n;
        n
    }

    /// Looks at once from now on with no grace (a SIGHUP came during the drain), except for a
    /// connection that has carried nothing yet: its first request may be on its way (a FIN then
    /// fails it; a SIGHUP storm showed it once the handover no longer took 100 ms).
    pub fn hurry(&mut self) {
        self.grace_ms = 0;
        self.next_at = 0;
    }
}

/// Connections still open and not shut down by the shim.
pub fn open_unshut() -> usize {
    let mut n = 0;
    fdtable::each_in_state(FdState::Conn, |fd| n += usize::from(!connio::quiet(fd).shut));
    n
}

/// How the connections still open at the drain deadline were closed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cut {
    /// Shut down (FIN) at a request boundary.
    pub at_boundary: usize,
    /// Reset (RST): still busy when the extra time ran out.
    pub reset: usize,
}

/// Longest extra time the busy connections get, once the drain deadline has passed, to reach a
/// request boundary before they are reset (ms): `min(--drain-timeout, this)`.
pub const DEADLINE_EXTRA_MS: u64 = 1000;

/// Closes the connections still open when the drain deadline (`limit_ms`) passed: each as soon as
/// it is at a request boundary, within `min(limit_ms, DEADLINE_EXTRA_MS)`; those still busy then
/// are reset. `progress` hears the counts each time they change. Returns them.
pub fn cut_at_deadline(limit_ms: u64, mut progress: impl FnMut(Cut)) -> Cut {
    let mut d = Deadline::new(sys::now_ms());
    let extra = limit_ms.min(DEADLINE_EXTRA_MS);
    loop {
        let before = d.cut;
        let busy = d.step();
        if d.cut != before {
            progress(d.cut);
        }
        if busy == 0 || fdtable::CONNS.load(Ordering::SeqCst) == 0 {
            return d.cut;
        }
        if sys::now_ms().saturating_sub(d.since) >= extra {
            d.reset_the_rest();
            progress(d.cut);
            return d.cut;
        }
        sys::sleep_ms(5);
    }
}

/// The drain deadline has passed: connections are shut as they reach a request boundary.
pub struct Deadline {
    /// When the deadline passed (monotonic ms).
    pub since: u64,
    /// What was done so far.
    pub cut: Cut,
}

impl Deadline {
    /// The deadline passes at `now`.
    pub fn new(now: u64) -> Deadline {
        Deadline { since: now, cut: Cut::default() }
    }

    /// Shuts the connections at a request boundary now; returns how many are still busy.
    pub fn step(&mut self) -> usize {
        self.cut.at_boundary += close_idle(Through::Sent, 0, 0);
        open_unshut()
    }

    /// The extra time ran out: the connections still busy are reset (SO_LINGER 0, so that the
    /// process's exit sends RST), and counted.
    pub fn reset_the_rest(&mut self) {
        fdtable::each_in_state(FdState::Conn, |fd| {
            if connio::quiet(fd).shut {
                return;
            }
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: setsockopt with a valid linger of the size given.
            unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_LINGER, (&linger as *const libc::linger).cast(), core::mem::size_of::<libc::linger>() as libc::socklen_t) };
            connio::shut(fd);
            self.cut.reset += 1;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn an_answered_quiet_connection_is_shut_with_a_fin_and_a_busy_one_is_not() {
        let _t = connio::TEST_TABLES.lock().unwrap_or_else(|e| e.into_inner());
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        let fd = server.as_raw_fd();
        connio::accepted(fd);
        fdtable::set_state(fd, FdState::Conn);
        assert!(idle(fd, Through::Acknowledged, 0, 0), "no data yet, nothing queued");
        assert!(!idle(fd, Through::Acknowledged, 0, 60_000), "not for a minute yet");
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let t0 = std::time::Instant::now();
        while sockq::unread(fd) == Some(0) {
            assert!(t0.elapsed().as_secs() < 60);
            std::thread::yield_now();
        }
        assert!(!idle(fd, Through::Acknowledged, 0, 0), "a request waits unread");
        let mut buf = [0u8; 64];
        let n = (&server).read(&mut buf).unwrap();
        connio::conn(fd).unwrap().moved(connio::Way::Read);
        assert_eq!(sockq::unread(fd), Some(0));
        assert!(!idle(fd, Through::Acknowledged, 0, 0), "read, not answered");
        (&server).write_all(&buf[..n]).unwrap();
        connio::conn(fd).unwrap().moved(connio::Way::Write);
        let mut back = vec![0u8; n];
        client.read_exact(&mut back).unwrap();
        let t0 = std::time::Instant::now();
        while sockq::unsent(fd) != Some(0) {
            assert!(t0.elapsed().as_secs() < 60, "never acknowledged");
            std::thread::yield_now();
        }
        let mut d = Deadline::new(0);
        assert_eq!(d.step(), 0, "answered and acknowledged: a request boundary");
        assert_eq!(d.cut, Cut { at_boundary: 1, reset: 0 });
        assert_eq!(client.read(&mut buf).unwrap(), 0, "the client sees a FIN");
        assert!(!idle(fd, Through::Acknowledged, 0, 0), "shut once");
        fdtable::set_state(fd, FdState::None);
    }
}
