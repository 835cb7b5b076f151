//! The program's epoll registrations of its bound sockets (which epoll set, which events, which
//! user data). Draining takes the sockets out of those sets; a draining process that takes its
//! listeners back (its successor died) puts them back exactly as the program had them.

use crate::spinlock::SpinLock;
use libc::c_int;

/// Registrations one process can remember (more are served, but not restored on a take-back).
pub const MAX_REGS: usize = 128;

/// One `epoll_ctl(ep, ADD, fd, {events, data})` the program made on a bound socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The epoll instance.
    pub ep: c_int,
    /// The bound socket's fd (the program's number).
    pub fd: c_int,
    /// Event mask as registered (EPOLLEXCLUSIVE already dropped by the hook).
    pub events: u32,
    /// The program's user data.
    pub data: u64,
}

/// Fixed-capacity table: no allocation, so it is safe in hooks and after fork.
pub struct Registrations {
    slots: [Option<Registration>; MAX_REGS],
}

impl Registrations {
    /// Records an ADD or a MOD (replacing the entry for the same `ep` and `fd`); false if full.
    pub fn set(&mut self, r: Registration) -> bool {
        if let Some(slot) = self.slots.iter_mut().flatten().find(|s| s.ep == r.ep && s.fd == r.fd) {
            *slot = r;
            return true;
        }
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some(r);
                true
            }
            None => false,
        }
    }
    /// Forgets the registration of `fd` in `ep` (EPOLL_CTL_DEL).
    pub fn remove(&mut self, ep: c_int, fd: c_int) {
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if s.ep == ep && s.fd == fd) {
                *slot = None;
            }
        }
    }
    /// Forgets every registration that involves `fd`, as socket or as epoll set (it was closed).
    pub fn forget_fd(&mut self, fd: c_int) {
        for slot in self.slots.iter_mut() {
            if matches!(slot, Some(s) if s.ep == fd || s.fd == fd) {
                *slot = None;
            }
        }
    }
    /// Calls `f` with each registration of socket `fd`.
    pub fn each_of_socket(&self, fd: c_int, f: impl FnMut(&Registration)) {
        self.slots.iter().flatten().filter(|r| r.fd == fd).for_each(f);
    }
}

/// The process's registrations.
pub static REGISTRATIONS: SpinLock<Registrations> = SpinLock::new(Registrations { slots: [None; MAX_REGS] });

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(ep: c_int, fd: c_int, data: u64) -> Registration {
        Registration { ep, fd, events: libc::EPOLLIN as u32, data }
    }

    fn of_socket(t: &Registrations, fd: c_int) -> Vec<Registration> {
        let mut v = Vec::new();
        t.each_of_socket(fd, |r| v.push(*r));
        v
    }

    #[test]
    fn add_modify_remove_forget() {
        let mut t = Registrations { slots: [None; MAX_REGS] };
        assert!(t.set(reg(5, 7, 1)));
        assert!(t.set(reg(6, 7, 2)));
        assert!(t.set(reg(5, 7, 3))); // MOD replaces
        assert_eq!(of_socket(&t, 7).len(), 2);
        assert_eq!(of_socket(&t, 7)[0].data, 3);
        t.remove(6, 7);
        assert_eq!(of_socket(&t, 7).len(), 1);
        t.forget_fd(5); // the epoll set was closed
        assert_eq!(of_socket(&t, 7).len(), 0);
    }

    #[test]
    fn full_table_refuses() {
        let mut t = Registrations { slots: [None; MAX_REGS] };
        for i in 0..MAX_REGS as c_int {
            assert!(t.set(reg(i, 1000, 0)));
        }
        assert!(!t.set(reg(-5, 1000, 0)));
        assert_eq!(of_socket(&t, 1000).len(), MAX_REGS); // every one, not a first few
    }
}
