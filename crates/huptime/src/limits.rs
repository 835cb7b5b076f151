//! The shim's fixed limits that a program can reach, each announced once, on one line naming the
//! limit and what it costs, when first hit (hooks cannot grow tables without allocating). The
//! README lists them under "Guarantees and limits".

use core::sync::atomic::{AtomicBool, Ordering};

/// A fixed limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// Fds at or above fdtable's `MAX_FDS` are not tracked.
    Fds,
    /// At most fdtable's `MAX_SOCKETS` bound sockets are tracked.
    Sockets,
    /// At most epollreg's `MAX_REGS` epoll registrations of bound sockets are remembered.
    EpollRegistrations,
}

const COUNT: usize = 3;
static HIT: [AtomicBool; COUNT] = [const { AtomicBool::new(false) }; COUNT];

impl Limit {
    /// What the line says.
    fn text(self) -> &'static str {
        match self {
            Limit::Fds => "fds from 65536 up are not tracked: a connection there is not waited for when draining (it may be cut), and a socket bound there is not handed over",
            Limit::Sockets => "more than 64 bound sockets: the others are not handed over at a restart (their addresses are bound afresh)",
            Limit::EpollRegistrations => "more than 128 epoll registrations of bound sockets: the others are not restored if this generation takes its sockets back",
        }
    }
}

/// Notes that `limit` was hit by `fd` (-1 if none); the first time, says so on one line.
/// Allocation- and lock-free.
pub fn reached(limit: Limit, fd: libc::c_int) {
    if HIT[limit as usize].swap(true, Ordering::AcqRel) {
        return;
    }
    if fd >= 0 {
        info!("limit reached at fd {fd}: {}", limit.text());
    } else {
        info!("limit reached: {}", limit.text());
    }
}

/// Whether `limit` was hit.
pub fn was_reached(limit: Limit) -> bool {
    HIT[limit as usize].load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_name_the_real_limits() {
        assert!(Limit::Fds.text().contains(&format!("from {} up", crate::fdtable::MAX_FDS)));
        assert!(Limit::Sockets.text().contains(&format!("more than {} bound", crate::fdtable::MAX_SOCKETS)));
        assert!(Limit::EpollRegistrations.text().contains(&format!("more than {} epoll", crate::epollreg::MAX_REGS)));
    }
}
