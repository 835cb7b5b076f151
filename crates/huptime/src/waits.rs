//! The program waiting for connections on its bound sockets, seen from its epoll_ctl(), poll()
//! and select() calls. Waiting on a bound socket means the program serves (readiness, see
//! [`handover::mark_serving`]); an epoll registration of one is also remembered
//! ([`crate::epollreg`]), so that a draining process that takes its listeners back restores it.

use crate::epollreg::{Registration, REGISTRATIONS};
use crate::fdtable::{self, FdState};
use crate::limits::{self, Limit};
use crate::{handover, helper};
use libc::c_int;

/// Whether `fd` holds a bound socket (the program's, or its inert stand-in while the process
/// drains): the only fds whose waits the shim looks at.
#[inline]
pub fn on_bound(fd: c_int) -> bool {
    matches!(fdtable::state(fd), FdState::Bound | FdState::Drained)
}

/// What the shim does around one epoll_ctl() on a bound socket.
enum Kind {
    /// The call goes through as the program made it.
    Pass,
    /// EPOLL_CTL_DEL: the registration is forgotten once it succeeded.
    Delete,
    /// EPOLL_CTL_ADD or MOD: this event (the program's, without EPOLLEXCLUSIVE) is registered
    /// instead, and remembered once it succeeded.
    Register(libc::epoll_event),
}

/// One epoll_ctl(`ep`, `op`, `fd`, ...) of the program on a bound socket (see [`on_bound`]).
///
/// The EPOLLEXCLUSIVE flag is dropped for bound sockets: with it the kernel wakes a single epoll
/// instance per connection, and when that one belongs to a draining generation (which no longer
/// accepts) the wakeup is lost and the connection waits until the next one arrives.
pub struct EpollCall {
    ep: c_int,
    op: c_int,
    fd: c_int,
    kind: Kind,
}

impl EpollCall {
    /// Before the real call, with the program's event (`None` for a null pointer).
    pub fn new(ep: c_int, op: c_int, fd: c_int, ev: Option<&libc::epoll_event>) -> EpollCall {
        let kind = match fdtable::state(fd) {
            FdState::Drained => {
                // A worker forked by a draining master (nginx respawns those that drain away).
                helper::start_if_wanted();
                Kind::Pass
            }
            FdState::Bound if op == libc::EPOLL_CTL_DEL => Kind::Delete,
            FdState::Bound if op == libc::EPOLL_CTL_ADD || op == libc::EPOLL_CTL_MOD => match ev {
                Some(&e) => {
                    let mut shared = e;
                    shared.events &= !(libc::EPOLLEXCLUSIVE as u32);
                    Kind::Register(shared)
                }
                None => Kind::Pass,
            },
            _ => Kind::Pass,
        };
        EpollCall { ep, op, fd, kind }
    }

    /// The event to hand the real call instead of the program's, if any.
    pub fn event(&mut self) -> Option<&mut libc::epoll_event> {
        match &mut self.kind {
            Kind::Register(e) => Some(e),
            _ => None,
        }
    }

    /// After the real call, which returned `r`: on success, the registration is remembered or
    /// forgotten, and adding a bound socket to an epoll set counts as waiting on it (serving).
    pub fn done(&self, r: c_int) {
        if r != 0 {
            return;
        }
        match self.kind {
            Kind::Pass => {}
            Kind::Delete => REGISTRATIONS.lock().remove(self.ep, self.fd),
            Kind::Register(e) => {
                if self.op == libc::EPOLL_CTL_ADD {
                    if fdtable::state(self.ep) != FdState::Epoll {
                        fdtable::set_state(self.ep, FdState::Epoll);
                    }
                    handover::mark_serving(self.fd);
                    helper::ensure();
                }
                let reg = Registration { ep: self.ep, fd: self.fd, events: e.events, data: e.u64 };
                if !REGISTRATIONS.lock().set(reg) {
                    limits::reached(Limit::EpollRegistrations, self.fd);
                }
            }
        }
    }
}

/// Whether poll/select calls need looking into (cheap check for the hot path): while this
/// generation is not known to serve yet, or its helper thread is still to start.
#[inline]
pub fn scans() -> bool {
    handover::awaiting() || helper::wanted()
}

/// The program waits for connections on bound socket `fd` (poll, select): it serves.
fn waits_on_bound(fd: c_int) {
    helper::start_if_wanted();
    handover::mark_serving(fd);
}

/// The program polls `fds`: each bound socket it waits on for input counts as waited on.
pub fn polls(fds: &[libc::pollfd]) {
    for p in fds {
        if p.events & libc::POLLIN != 0 && on_bound(p.fd) {
            waits_on_bound(p.fd);
        }
    }
}

/// The program selects on `read` (fds below `n`): each bound socket in it counts as waited on.
pub fn selects(n: c_int, read: &libc::fd_set) {
    for fd in 0..n.clamp(0, libc::FD_SETSIZE as c_int) {
        // SAFETY: a valid fd_set (a reference) and an fd below FD_SETSIZE.
        if unsafe { libc::FD_ISSET(fd, read) } && on_bound(fd) {
            waits_on_bound(fd);
        }
    }
}
