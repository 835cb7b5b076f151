//! What both restart modes ([`crate::fork_restart`], [`crate::exec_restart`]) and `--revive`
//! share: the next generation's number, the `--unlink` file, and a restart refused before it
//! started.

use crate::config;
use crate::lifecycle::{self, Step};
use crate::log;
use core::sync::atomic::Ordering;

/// The number of the generation a restart of this one starts.
pub fn next_generation() -> u32 {
    log::GENERATION.load(Ordering::Relaxed).saturating_add(1)
}

/// A restart that cannot be attempted: said once, recorded as a failed restart (for `huptime
/// --restart` and systemd), and this generation goes on serving.
pub fn refuse(why: &str) {
    info!("can't restart: {why}; this generation keeps serving");
    lifecycle::enter(Step::RolledBack { why });
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
