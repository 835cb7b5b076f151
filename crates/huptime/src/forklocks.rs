//! Every lock of the shim, in one list for the fork hook: it holds them all across fork() so that
//! neither side starts with a table another thread was updating (see [`crate::spinlock`]). A new
//! lock goes here.

use crate::spinlock::{self, ForkLock};
use crate::{epollreg, fdtable, status};

fn all() -> [&'static dyn ForkLock; 3] {
    [&fdtable::SOCKETS, &epollreg::REGISTRATIONS, &status::LAST_ERROR]
}

/// Takes every lock before fork().
pub fn before_fork() {
    spinlock::for_fork(&all());
}

/// Releases them after fork(), in the parent and in the child.
pub fn after_fork() {
    spinlock::after_fork(&all());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether another thread could take each lock now (it tries for a while: other tests may
    /// hold one for a moment).
    fn free_from_another_thread(yields: u32) -> [bool; 3] {
        std::thread::spawn(move || {
            [
                fdtable::SOCKETS.lock_within(yields).is_some(),
                epollreg::REGISTRATIONS.lock_within(yields).is_some(),
                status::LAST_ERROR.lock_within(yields).is_some(),
            ]
        })
        .join()
        .unwrap()
    }

    /// One test: the locks are process-wide (others' tests wait for them meanwhile).
    #[test]
    fn fork_holds_every_lock_and_releases_them_all() {
        assert_eq!(all().len(), 3);
        before_fork();
        assert_eq!(free_from_another_thread(20), [false; 3], "every table is held across fork");
        after_fork();
        assert_eq!(free_from_another_thread(1_000_000), [true; 3]);
    }
}
