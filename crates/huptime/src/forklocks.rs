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
