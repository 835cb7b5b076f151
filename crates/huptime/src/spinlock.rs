//! The shim's one kind of lock, and the list of every lock fork() must hold.
//!
//! A spinlock has no futex and no owner, so a fork can neither inherit a held pthread mutex nor
//! deadlock on one: the fork hook takes every lock of the shim ([`for_fork`]), forks, and releases
//! them on both sides ([`after_fork`]), so the child never starts with a table half updated by a
//! thread that does not exist in it. Critical sections are a few loads and stores (and, at most,
//! a few system calls), never an allocation or another lock.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

/// A spinlock around `T`.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialized by `locked`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

/// Guard returned by `SpinLock::lock`.
pub struct Guard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> SpinLock<T> {
    /// A new unlocked lock.
    pub const fn new(v: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(v) }
    }
    fn try_once(&self) -> bool {
        self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_ok()
    }
    /// Takes the lock, spinning (and yielding) while another thread holds it.
    pub fn lock(&self) -> Guard<'_, T> {
        let mut spins = 0u32;
        while !self.try_once() {
            spins = spins.saturating_add(1);
            if spins > 64 {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            } else {
                core::hint::spin_loop();
            }
        }
        Guard { lock: self }
    }
    /// Takes the lock unless it stays held through `yields` yields: for a caller that may have
    /// interrupted the holder (a signal handler), which would otherwise wait for itself forever.
    pub fn lock_within(&self, yields: u32) -> Option<Guard<'_, T>> {
        for _ in 0..=yields {
            if self.try_once() {
                return Some(Guard { lock: self });
            }
            // SAFETY: sched_yield has no preconditions.
            unsafe { libc::sched_yield() };
        }
        None
    }
    /// The value without the lock, for a caller that could not take it (see
    /// [`SpinLock::lock_within`]) and is about to replace the process image: a writer may change
    /// it meanwhile, so whatever is read must be checked again (the next generation checks every
    /// socket it is handed).
    ///
    /// # Safety
    /// Only where a torn read of `T` cannot break memory safety (plain data), and never to write.
    pub unsafe fn unguarded(&self) -> &T {
        // SAFETY: the pointer is to our own live value; the caller accepts a torn read of plain
        // data and never writes through it (the contract above).
        unsafe { &*self.value.get() }
    }
    /// Holds the lock across fork: call before fork, then `unlock_after_fork` on both sides.
    pub fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }
    /// Releases a lock taken by `lock_for_fork` (in the parent and in the child).
    pub fn unlock_after_fork(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

impl<T> core::ops::Deref for Guard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: we hold the lock.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// A lock fork() holds: taken in list order before, released after.
pub trait ForkLock: Sync {
    /// See [`SpinLock::lock_for_fork`].
    fn hold(&self);
    /// See [`SpinLock::unlock_after_fork`].
    fn release(&self);
}

impl<T: Send> ForkLock for SpinLock<T> {
    fn hold(&self) {
        self.lock_for_fork();
    }
    fn release(&self) {
        self.unlock_after_fork();
    }
}

/// Takes every lock in `locks` (in order; no code path holds two of them at once, so any order
/// is free of deadlock) before a fork.
pub fn for_fork(locks: &[&dyn ForkLock]) {
    for l in locks {
        l.hold();
    }
}

/// Releases the locks [`for_fork`] took, in the parent and in the child.
pub fn after_fork(locks: &[&dyn ForkLock]) {
    for l in locks.iter().rev() {
        l.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_within_gives_up_on_a_held_lock_and_unguarded_still_reads() {
        let l = SpinLock::new(7u32);
        let g = l.lock();
        assert!(l.lock_within(3).is_none());
        // SAFETY: u32 is plain data.
        assert_eq!(unsafe { *l.unguarded() }, 7);
        drop(g);
        assert_eq!(*l.lock_within(0).unwrap(), 7);
    }

    #[test]
    fn fork_list_holds_and_releases_every_lock() {
        let (a, b) = (SpinLock::new(1u8), SpinLock::new(2u8));
        let list: [&dyn ForkLock; 2] = [&a, &b];
        for_fork(&list);
        assert!(a.lock_within(0).is_none() && b.lock_within(0).is_none());
        after_fork(&list);
        assert!(a.lock_within(0).is_some() && b.lock_within(0).is_some());
    }
}
