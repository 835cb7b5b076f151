//! What each generation tells the CLI about itself: one small file per process in the private
//! directory named by `HUPTIME_STATUS_DIR`, replaced atomically on every change. `huptime
//! --restart` waits on it; `--status` reads it. Written only from normal (not signal) context.
//!
//! Format: `PID.status` ([`SUFFIX`]), one `key=value` per line, the keys in [`field`], the
//! `mode` values in [`mode`], the `state` values [`crate::phase::Phase::status_name`]. The CLI's
//! copies of these names are generated from them (src/generated/protocol.ts).

use crate::config::{self, Config, STATUS_DIR_VAR};
use crate::log;
use crate::phase::Phase;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::io::Write;
use std::path::PathBuf;
use crate::spinlock::SpinLock;
use std::sync::OnceLock;

/// The keys of a status file ([`publish`] writes them in this order).
pub mod field {
    /// The process's pid.
    pub const PID: &str = "pid";
    /// Its start time from /proc/PID/stat, so that a reader can tell a reused pid.
    pub const START: &str = "start";
    /// Its generation number (the first program started by the CLI is 1).
    pub const GENERATION: &str = "generation";
    /// How it runs (one of [`super::mode`]).
    pub const MODE: &str = "mode";
    /// Its phase (a [`crate::phase::Phase::status_name`]).
    pub const STATE: &str = "state";
    /// Pid of the generation this one replaced (0 if none; its own pid after an exec restart).
    pub const PREVIOUS: &str = "previous";
    /// Restarts that failed and were rolled back.
    pub const ROLLBACKS: &str = "rollbacks";
    /// Its --ready-timeout (ms), which bounds how long the CLI waits for a restart.
    pub const READY_TIMEOUT_MS: &str = "ready_timeout_ms";
    /// Its --drain-timeout (ms, 0: no limit), which bounds it too.
    pub const DRAIN_TIMEOUT_MS: &str = "drain_timeout_ms";
    /// While draining: idle connections closed (FIN) so far.
    pub const CLOSED_IDLE: &str = "closed_idle";
    /// While draining, past the deadline: connections closed (FIN) at a request boundary.
    pub const CLOSED_AT_BOUNDARY: &str = "closed_at_boundary";
    /// While draining, past the deadline: connections reset (RST), still busy at the end.
    pub const CLOSED_RESET: &str = "closed_reset";
    /// Why the last restart failed (last: it may be long).
    pub const LAST_ERROR: &str = "last_error";
    /// Every key.
    pub const ALL: [&str; 13] =
        [PID, START, GENERATION, MODE, STATE, PREVIOUS, ROLLBACKS, READY_TIMEOUT_MS, DRAIN_TIMEOUT_MS, CLOSED_IDLE, CLOSED_AT_BOUNDARY, CLOSED_RESET, LAST_ERROR];
}

/// The values of the `mode` key: how the program runs.
pub mod mode {
    /// Restarts fork the next generation beside this one.
    pub const FORK: &str = crate::config::Mode::Fork.name();
    /// Restarts exec the new code in the same process.
    pub const EXEC: &str = crate::config::Mode::Exec.name();
    /// An instance of a `--multi` pool.
    pub const MULTI: &str = "multi";
    /// Revived when it exits (`--revive`).
    pub const REVIVE: &str = "revive";
    /// Every value.
    pub const ALL: [&str; 4] = [FORK, EXEC, MULTI, REVIVE];
}

/// Ending of a status file's name, after the pid.
pub const SUFFIX: &str = ".status";
/// Ending of a receipt file's name, after the pid (the receipt of a restart, see
/// [`crate::receipt`]; it lives and goes with the status file).
pub const RECEIPT_SUFFIX: &str = ".receipt";

static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
static ROLLBACKS: AtomicU32 = AtomicU32::new(0);
/// Connections the drain closed: idle, at a request boundary past the deadline, reset.
static CLOSED: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
/// Why the last restart failed, as shown in the status file (fixed size: set from hooks' paths
/// without allocating; a longer reason is cut).
pub static LAST_ERROR: SpinLock<LastError> = SpinLock::new(LastError::empty());

/// Longest `last_error` kept, in bytes.
pub const LAST_ERROR_MAX: usize = 512;

/// The reason text, one line.
#[derive(Clone, Copy)]
pub struct LastError {
    text: [u8; LAST_ERROR_MAX],
    len: usize,
}

impl LastError {
    /// No text.
    pub const fn empty() -> LastError {
        LastError { text: [0; LAST_ERROR_MAX], len: 0 }
    }
    /// Replaces the text with `why` (newlines become spaces; cut at a character boundary).
    pub fn set(&mut self, why: &str) {
        let mut end = why.len().min(LAST_ERROR_MAX);
        while !why.is_char_boundary(end) {
            end -= 1;
        }
        for (d, &b) in self.text.iter_mut().zip(&why.as_bytes()[..end]) {
            *d = if b == b'\n' { b' ' } else { b };
        }
        self.len = end;
    }
    /// The text.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.text[..self.len]).unwrap_or("")
    }
}

/// How the program runs, as the status file says: `revive`, `multi` (an instance of a pool),
/// else the restart mode, `fork` or `exec`.
fn mode_name(cfg: &Config) -> &'static str {
    match cfg.mode {
        _ if cfg.revive => mode::REVIVE,
        _ if cfg.reuseport => mode::MULTI,
        m => m.name(),
    }
}

/// Notes the directory (constructor time), which must exist: the CLI made it.
pub fn configure(cfg: &Config) {
    let dir = cfg.status_dir.clone().filter(|d| match std::fs::metadata(d) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            info!("{STATUS_DIR_VAR}={} is not a directory; not publishing state", config::shown(&d.to_string_lossy()));
            false
        }
        Err(e) => {
            info!("can't use {STATUS_DIR_VAR}={}: {e}; not publishing state", config::shown(&d.to_string_lossy()));
            false
        }
    });
    let _ = DIR.set(dir);
}

/// The start time of `pid` (/proc/PID/stat field 22), "0" when it is gone.
pub fn start_time(pid: libc::pid_t) -> String {
    let fields = crate::sys::proc_stat_fields(pid).unwrap_or_default();
    fields.split(' ').nth(19).unwrap_or("0").to_string()
}

/// Records that a restart failed and why (shown by the CLI).
pub fn record_rollback(why: &str) {
    ROLLBACKS.fetch_add(1, Ordering::AcqRel);
    LAST_ERROR.lock().set(why);
}

/// Records how many connections the drain has closed so far (published with the next
/// [`publish`]): idle ones, and past the deadline, at a request boundary and reset.
pub fn record_closed(idle: usize, at_boundary: usize, reset: usize) {
    for (c, n) in CLOSED.iter().zip([idle, at_boundary, reset]) {
        c.store(n, Ordering::Release);
    }
}

/// The drain's counts so far: idle connections closed, and past the deadline, those closed at a
/// request boundary and those reset (see [`record_closed`]).
pub fn closed() -> (usize, usize, usize) {
    let [idle, at_boundary, reset] = &CLOSED;
    (idle.load(Ordering::Acquire), at_boundary.load(Ordering::Acquire), reset.load(Ordering::Acquire))
}

/// Writes `body`, the receipt of a restart (see [`crate::receipt`]), as the receipt of `pid`
/// (only [`crate::lifecycle`] calls this; helper thread: it allocates).
pub fn publish_receipt(pid: libc::pid_t, body: &str) {
    let Some(Some(dir)) = DIR.get() else { return };
    let tmp = dir.join(format!(".{pid}.receipt.tmp"));
    replace(&tmp, &dir.join(format!("{pid}{}", RECEIPT_SUFFIX)), body);
}

/// Publishes this process's state (only [`crate::lifecycle`] calls this: a phase change).
pub fn publish(state: &str) {
    let Some(Some(dir)) = DIR.get() else { return };
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let cfg = config::get();
    // A copy, so that the lock is not held while formatting (which allocates).
    let last_error = *LAST_ERROR.lock();
    write(
        dir,
        &Record {
            pid,
            generation: log::GENERATION.load(Ordering::Relaxed),
            mode: mode_name(cfg),
            state,
            previous: crate::lineage::previous_generation_pid(),
            rollbacks: ROLLBACKS.load(Ordering::Acquire),
            ready_timeout_ms: cfg.ready_timeout_ms,
            drain_timeout_ms: cfg.drain_timeout_ms,
            closed: core::array::from_fn(|i| CLOSED[i].load(Ordering::Acquire)),
            last_error: last_error.as_str(),
        },
    );
}

/// One process's state, as a status file holds it (see [`field`]).
pub struct Record<'a> {
    /// The process.
    pub pid: libc::pid_t,
    /// Its generation number.
    pub generation: u32,
    /// One of [`mode`].
    pub mode: &'a str,
    /// A [`crate::phase::Phase::status_name`].
    pub state: &'a str,
    /// The generation it replaced (0: none).
    pub previous: libc::pid_t,
    /// Failed restarts.
    pub rollbacks: u32,
    /// Its --ready-timeout in ms.
    pub ready_timeout_ms: u64,
    /// Its --drain-timeout in ms (0: no limit).
    pub drain_timeout_ms: u64,
    /// Connections the drain closed: idle, at a request boundary, reset (see [`record_closed`]).
    pub closed: [usize; 3],
    /// Why the last restart failed.
    pub last_error: &'a str,
}

/// Writes `r` as `dir/PID.status` (atomically). Also used by the CLI for the static programs it
/// supervises (src/commands/seccomp.ts), which cannot publish their own.
pub fn write(dir: &std::path::Path, r: &Record) {
    let mut last_error = LastError { text: [0; LAST_ERROR_MAX], len: 0 };
    last_error.set(r.last_error);
    let fields = [
        (field::PID, r.pid.to_string()),
        (field::START, start_time(r.pid)),
        (field::GENERATION, r.generation.to_string()),
        (field::MODE, r.mode.to_string()),
        (field::STATE, r.state.to_string()),
        (field::PREVIOUS, r.previous.to_string()),
        (field::ROLLBACKS, r.rollbacks.to_string()),
        (field::READY_TIMEOUT_MS, r.ready_timeout_ms.to_string()),
        (field::DRAIN_TIMEOUT_MS, r.drain_timeout_ms.to_string()),
        (field::CLOSED_IDLE, r.closed[0].to_string()),
        (field::CLOSED_AT_BOUNDARY, r.closed[1].to_string()),
        (field::CLOSED_RESET, r.closed[2].to_string()),
        (field::LAST_ERROR, last_error.as_str().to_string()),
    ];
    let body: String = fields.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let pid = r.pid;
    let tmp = dir.join(format!(".{pid}.tmp"));
    let path = dir.join(format!("{pid}{SUFFIX}"));
    replace(&tmp, &path, &body);
}

/// Writes `body` to `tmp` (created afresh: never through a link someone left there) and renames
/// it over `path`.
fn replace(tmp: &std::path::Path, path: &std::path::Path, body: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(tmp);
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp);
    let written = created.and_then(|mut f| f.write_all(body.as_bytes()));
    if written.is_ok() {
        let _ = std::fs::rename(tmp, path);
    } else {
        let _ = std::fs::remove_file(tmp);
    }
}

/// The generation this process started (`successor`, the process it forked) is ready: a
/// successor still marked `starting` (a daemon master, whose workers reported readiness and which
/// cannot know it) is marked `serving`. The successor's own file is looked at first, if it still
/// runs. A daemon's first process has exited by the time its master is ready (maybe unreaped,
/// its file behind), and its master is a process of its own: then the other files are read,
/// those of running processes only. The directory keeps the files of every process killed
/// before it could remove its own (thousands on a test machine), and reading them all took
/// 100 ms of CPU at every handover, beside the new generation starting to serve.
pub fn successor_ready(me: libc::pid_t, successor: libc::pid_t) {
    let Some(Some(dir)) = DIR.get() else { return };
    if crate::sys::running(successor) && mark_serving(&dir.join(format!("{successor}{SUFFIX}")), me) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)).and_then(|p| p.parse::<libc::pid_t>().ok()) else { continue };
        if pid != successor && crate::sys::running(pid) {
            mark_serving(&e.path(), me);
        }
    }
}

/// If the status file at `path` names `me` as its previous generation, marks it `serving` when it
/// still says `starting`, and returns true.
fn mark_serving(path: &std::path::Path, me: libc::pid_t) -> bool {
    let Ok(body) = std::fs::read_to_string(path) else { return false };
    if !body.contains(&format!("\n{}={me}\n", field::PREVIOUS)) {
        return false;
    }
    let (starting, serving) = (Phase::Starting.status_name(), Phase::Serving.status_name());
    let (was, now) = (format!("\n{}={starting}\n", field::STATE), format!("\n{}={serving}\n", field::STATE));
    if body.contains(&was) {
        replace(&path.with_extension("tmp"), path, &body.replace(&was, &now));
    }
    true
}

/// Removes this process's file (it is about to end).
pub fn withdraw() {
    // SAFETY: getpid has no preconditions.
    forget(unsafe { libc::getpid() });
}

/// Removes this process's receipt: an exec restart, which records none yet, must not leave the
/// receipt of an earlier restart looking like its own.
pub fn withdraw_receipt() {
    let Some(Some(dir)) = DIR.get() else { return };
    // SAFETY: getpid has no preconditions.
    let _ = std::fs::remove_file(dir.join(format!("{}{RECEIPT_SUFFIX}", unsafe { libc::getpid() })));
}

/// Removes the files of `pid`, its status and its receipt (a generation that failed to start
/// and was killed).
pub fn forget(pid: libc::pid_t) {
    let Some(Some(dir)) = DIR.get() else { return };
    for suffix in [SUFFIX, RECEIPT_SUFFIX] {
        let _ = std::fs::remove_file(dir.join(format!("{pid}{suffix}")));
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_error_is_one_line_cut_at_a_character_boundary() {
        let mut e = LastError::empty();
        e.set("no\nway");
        assert_eq!(e.as_str(), "no way");
        let long = "é".repeat(LAST_ERROR_MAX);
        e.set(&long);
        assert_eq!(e.as_str().len(), LAST_ERROR_MAX);
        e.set(&format!("x{long}"));
        assert_eq!(e.as_str().len(), LAST_ERROR_MAX - 1);
    }
}
