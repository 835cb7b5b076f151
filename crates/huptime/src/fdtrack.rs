//! Keeps the fd table ([`crate::fdtable`]) in step with the program's close(), close_range() and
//! dup() family: a closed or replaced fd is forgotten (with its epoll registrations), a copy of a
//! bound socket is tracked like the original, and the shim's own fds are never closed or
//! overwritten by the program.

use crate::epollreg::REGISTRATIONS;
use crate::fdtable::{self, FdState, SOCKETS};
use crate::{config, guard, sys};
use core::sync::atomic::Ordering;
use libc::{c_int, c_uint};

/// Whether `fd` is one of the shim's own fds, which the program must see as closed (EBADF):
/// only once the shim is on (a test binary, or a process where it is off, closes them for real).
pub fn hidden(fd: c_int) -> bool {
    fdtable::state(fd) == FdState::Internal && guard::ACTIVE.load(Ordering::Relaxed)
}

/// Forgets what we knew about `fd` after the program closed or replaced it. With `--revive`, a
/// serving socket the program closes is kept (privately) for the next generation.
pub fn forget(fd: c_int) {
    let st = fdtable::state(fd);
    if st == FdState::Bound || st == FdState::Epoll {
        REGISTRATIONS.lock().forget_fd(fd);
    }
    if st == FdState::Bound {
        let removed = SOCKETS.lock().remove_fd(fd);
        if let Some(mut s) = removed {
            if config::get().revive && sys::is_serving_socket(fd) {
                let copy = sys::dup_internal(fd);
                if copy >= 0 {
                    s.fd = copy;
                    s.kept = true;
                    SOCKETS.lock().add(s);
                    debug!("keeping {} (closed by the program) for the next generation", s.key);
                }
            }
        }
    }
    fdtable::set_state(fd, FdState::None);
}

/// The program is about to close `fd` (not one of the shim's): forgotten first, because once it
/// is closed another thread may get the number back from accept().
pub fn closing(fd: c_int) {
    let was = fdtable::state(fd);
    forget(fd);
    if was == FdState::Conn {
        debug!("connection fd {fd} closed ({} open)", fdtable::CONNS.load(Ordering::Relaxed));
    }
}

/// close_range(`first`, `last`, `flags`) that spares the shim's own fds: the range is closed in
/// segments between them with `close` (the real close_range of a segment, same flags), each fd
/// in it forgotten first. A range past the fd table is closed as one segment. Returns 0, or -1
/// when a segment failed. CLOSE_RANGE_CLOEXEC (nothing closes now) and an empty range go to
/// `close` as they are.
pub fn close_range(first: c_uint, last: c_uint, flags: c_int, mut close: impl FnMut(c_uint, c_uint) -> c_int) -> c_int {
    if flags & libc::CLOSE_RANGE_CLOEXEC as c_int != 0 || first > last {
        return close(first, last);
    }
    let top = (last as u64).min(fdtable::MAX_FDS as u64 - 1) as u32;
    let mut seg_start: Option<u32> = None;
    let mut result = 0;
    let mut fd = first;
    while fd <= top {
        if fdtable::state(fd as c_int) == FdState::Internal {
            if let Some(s) = seg_start.take() {
                result |= close(s, fd - 1);
            }
        } else {
            forget(fd as c_int);
            if seg_start.is_none() {
                seg_start = Some(fd);
            }
        }
        if fd == u32::MAX {
            break;
        }
        fd += 1;
    }
    if let Some(s) = seg_start {
        result |= close(s, top);
    }
    if last > top && (top as u64) < u32::MAX as u64 {
        result |= close(top.max(first.saturating_sub(1)) + 1, last);
    }
    if result != 0 {
        -1
    } else {
        0
    }
}

/// The program is about to dup2()/dup3() onto `new`: if a shim fd sits there, it moves away.
pub fn clear_way(new: c_int) {
    if fdtable::state(new) == FdState::Internal {
        sys::relocate_internal(new);
    }
}

/// After a successful dup2()/dup3() of `old` onto `new`: what `new` was is forgotten, and it is
/// another fd of `old`'s socket if that one is bound.
pub fn replaced(old: c_int, new: c_int) {
    forget(new);
    alias(old, new);
}

/// If `old` is a bound socket, records `new` (a successful dup of it; a failed one, -1, is
/// ignored) as another fd for it.
pub fn alias(old: c_int, new: c_int) {
    if new < 0 || fdtable::state(old) != FdState::Bound {
        return;
    }
    let mut t = SOCKETS.lock();
    if let Some(mut s) = t.find_fd(old) {
        s.fd = new;
        if t.add(s) {
            fdtable::set_state(new, FdState::Bound);
            fdtable::set_mode(new, fdtable::state_and_mode(old).1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_range_closes_around_the_shims_own_fds_and_forgets_the_rest() {
        let (first, last) = (2000, 2009);
        fdtable::set_state(2003, FdState::Internal);
        fdtable::set_state(2004, FdState::Internal);
        fdtable::set_state(2009, FdState::Internal);
        fdtable::set_state(2005, FdState::Epoll);
        fdtable::set_state(2010, FdState::Epoll);
        let mut segments = Vec::new();
        assert_eq!(close_range(first, last, 0, |a, b| {
            segments.push((a, b));
            0
        }), 0);
        assert_eq!(segments, vec![(2000, 2002), (2005, 2008)]);
        assert_eq!(fdtable::state(2005), FdState::None, "a closed epoll set is forgotten");
        assert_eq!(fdtable::state(2010), FdState::Epoll, "outside the range: untouched");
        assert_eq!(fdtable::state(2003), FdState::Internal);
        assert_eq!(close_range(2000, 2002, 0, |_, _| -1), -1, "a failed segment fails the call");
        for fd in [2003, 2004, 2009, 2010] {
            fdtable::set_state(fd, FdState::None);
        }
    }

    #[test]
    fn close_range_past_the_table_and_cloexec_go_through_whole() {
        let mut segments = Vec::new();
        close_range(fdtable::MAX_FDS as c_uint - 1, c_uint::MAX, 0, |a, b| {
            segments.push((a, b));
            0
        });
        assert_eq!(segments, vec![(fdtable::MAX_FDS as c_uint - 1, fdtable::MAX_FDS as c_uint - 1), (fdtable::MAX_FDS as c_uint, c_uint::MAX)]);
        segments.clear();
        close_range(3, 10, libc::CLOSE_RANGE_CLOEXEC as c_int, |a, b| {
            segments.push((a, b));
            0
        });
        assert_eq!(segments, vec![(3, 10)]);
    }
}
