//! What both restart modes ([`crate::fork_restart`], [`crate::exec_restart`]) and `--revive`
//! share: the next generation's number, the `--unlink` file, and a restart refused before it
//! started.

use crate::config;
use crate::lifecycle::{self, Step};
use crate::log;
use crate::receipt::Receipt;
use core::sync::atomic::Ordering;

/// The number of the generation a restart of this one starts.
pub fn next_generation() -> u32 {
    log::GENERATION.load(Ordering::Relaxed).saturating_add(1)
}

/// A restart that cannot be attempted: said once, recorded as a failed restart (for `huptime
/// --restart` and systemd) with a `refused` receipt, and this generation goes on serving.
pub fn refuse(why: &str) {
    info!("can't restart: {why}; this generation keeps serving");
    lifecycle::enter(Step::RolledBack { why });
    // SAFETY: getpid has no preconditions.
    let mut receipt = Receipt::begin(unsafe { libc::getpid() }, next_generation(), 0, None);
    receipt.refused(why);
    lifecycle::record(&mut receipt);
}

/// Removes the `--unlink` file (a pidfile) before a new generation starts.
pub fn unlink_pidfile() {
    if let Some(path) = &config::get().unlink {
        match std::fs::remove_file(path) {
            Ok(()) => debug!("removed {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => info!("can't remove {} before the restart: {e}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the generation number is process-wide.
    #[test]
    fn the_next_generation_follows_this_one() {
        let was = log::GENERATION.load(Ordering::Relaxed);
        assert_eq!(next_generation(), was + 1);
        log::GENERATION.store(41, Ordering::Relaxed);
        assert_eq!(next_generation(), 42);
        log::GENERATION.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(next_generation(), u32::MAX, "saturates rather than wrapping to 0");
        log::GENERATION.store(was, Ordering::Relaxed);
    }

    /// One test: the settings are process-wide. They are the defaults but for `--unlink` (no other
    /// test reads it).
    #[test]
    fn the_unlink_file_is_removed_and_a_missing_one_is_fine() {
        // SAFETY: getpid has no preconditions.
        let path = std::env::temp_dir().join(format!("huptime-restart-test-{}.pid", unsafe { libc::getpid() }));
        std::fs::write(&path, "1234\n").unwrap();
        assert!(config::get().unlink.is_none());
        unlink_pidfile();
        assert!(path.exists(), "without --unlink nothing is removed");
        config::install(config::Config { unlink: Some(path.clone()), ..config::Config::default() });
        assert_eq!(config::get().unlink.as_deref(), Some(path.as_path()));
        unlink_pidfile();
        assert!(!path.exists());
        unlink_pidfile(); // already gone: nothing to say
        assert!(!path.exists());
    }
}
