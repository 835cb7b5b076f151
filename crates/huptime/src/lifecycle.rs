//! The one owner of this process's [`Phase`]: it is held in a single atomic, read lock-free from
//! any hook or thread, and changed only by [`enter`], which also publishes the status file (for
//! `huptime --status` and `--restart`) and tells systemd (sd_notify) what changed. No other module
//! keeps phase flags of its own; the table of what may follow what is [`crate::phase`]. It also
//! publishes a restart's receipt ([`record`]).

use crate::phase::{Event, Phase};
use crate::receipt::{Outcome, Receipt, Text};
use crate::{log, notify, status};
use core::sync::atomic::{AtomicU8, Ordering};

static PHASE: AtomicU8 = AtomicU8::new(Phase::Starting as u8);

/// The current phase.
#[inline]
pub fn phase() -> Phase {
    Phase::from_u8(PHASE.load(Ordering::SeqCst))
}

/// Whether this process has stopped taking connections (draining or closing).
#[inline]
pub fn draining() -> bool {
    phase().is_draining()
}

/// Whether this process is past its drain: no thread may take a connection any more.
#[inline]
pub fn closing() -> bool {
    phase() == Phase::Closing
}

/// An event with what its notices need to say.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    /// The program serves. `announce`: tell systemd this process is ready (nobody else will: it
    /// was not started by a previous generation that reports for it).
    Listening { announce: bool },
    /// Fork mode: generation `generation` was started beside this one.
    RestartStarted { generation: u32 },
    /// Generation `generation`, pid `pid`, is ready and takes over.
    SuccessorReady { pid: libc::pid_t, generation: u32 },
    /// A restart failed (or could not be attempted) for the reason given; this generation serves on.
    RolledBack { why: &'a str },
    /// This process stops taking connections without a successor of its own. `exec_generation`:
    /// it is an exec restart to that generation (systemd hears "reloading").
    Drain { exec_generation: Option<u32> },
    /// Nothing left to finish.
    Idle,
    /// The successor failed after it was ready (`why`); this generation, `generation`, serves again.
    TakenBack { why: &'a str, generation: u32 },
}

impl Step<'_> {
    fn event(&self) -> Event {
        match self {
            Step::Listening { .. } => Event::Listening,
            Step::RestartStarted { .. } => Event::RestartStarted,
            Step::SuccessorReady { .. } => Event::SuccessorReady,
            Step::RolledBack { .. } => Event::RolledBack,
            Step::Drain { .. } => Event::Drain,
            Step::Idle => Event::Idle,
            Step::TakenBack { .. } => Event::TakenBack,
        }
    }
}

/// Makes the transition `step` stands for, if it applies to the current phase; returns whether
/// it did. In order: the phase changes (every thread sees it from then on), `between` runs (the
/// transition's own work that must follow the change, e.g. taking the sockets out of the
/// program's hands, before anything slower), then the status file and systemd hear of it.
/// Called from normal (not signal) context.
pub fn enter_with(step: Step<'_>, between: impl FnOnce()) -> bool {
    let event = step.event();
    let mut from = phase();
    let to = loop {
        let Some(to) = from.next(event) else {
            debug!("{event:?} does not apply while {from:?}");
            return false;
        };
        match PHASE.compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => break to,
            Err(now) => from = Phase::from_u8(now),
        }
    };
    between();
    announce(step, from, to);
    true
}

/// [`enter_with`] with nothing in between.
pub fn enter(step: Step<'_>) -> bool {
    enter_with(step, || {})
}

/// Publishes the current phase again: a daemonizing copy (fork + setsid) takes over its
/// generation's status file.
pub fn republish() {
    status::publish(phase().status_name());
}

/// The status file and systemd notice of a transition.
fn announce(step: Step<'_>, from: Phase, to: Phase) {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    match step {
        Step::RolledBack { why } | Step::TakenBack { why, .. } => status::record_rollback(why),
        _ => {}
    }
    if from.status_name() != to.status_name() || matches!(step, Step::RolledBack { .. } | Step::TakenBack { .. }) {
        status::publish(to.status_name());
    }
    match step {
        Step::Listening { announce } => {
            // An exec restart's new image: its receipt is due (recorded by the helper thread).
            crate::receipt::note_ready();
            if announce {
                notify::ready_here(log::GENERATION.load(Ordering::Relaxed));
            }
        }
        Step::RestartStarted { generation } | Step::Drain { exec_generation: Some(generation) } => notify::reloading(generation),
        Step::SuccessorReady { pid, generation } => {
            notify::handed_over(pid, generation);
            status::successor_ready(me, pid);
        }
        Step::RolledBack { why } => notify::rolled_back(why),
        Step::TakenBack { generation, .. } => notify::handed_over(me, generation),
        _ => {}
    }
}

/// A restart's outcome is final: its receipt is stamped, written for the CLI, logged in one line,
/// and (a successful one; a failure was told with its [`Step`]) told to systemd in short. Helper
/// thread only (it reads /proc and allocates).
pub fn record(receipt: &mut Receipt) {
    receipt.at_ms = crate::receipt::wall_ms();
    receipt.start = status::start_time(receipt.pid).parse().unwrap_or(0);
    let mut body = Text::new();
    let _ = receipt.write(&mut body);
    status::publish_receipt(receipt.pid, body.as_str());
    let mut line = Text::new();
    let _ = receipt.summary(&mut line);
    if receipt.outcome == Outcome::Ready {
        info!("restarted: {}", line.as_str());
        let mut short = Text::new();
        let _ = receipt.short(&mut short);
        notify::status(short.as_str());
    } else {
        info!("not restarted: {}", line.as_str());
    }
}

/// The process is about to end (drained, or its exec failed): its status file goes.
pub fn ended() {
    status::withdraw();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test: the phase is process-wide. No status directory is configured here, so the
    /// status file is not written (the notify tests may have configured a notify socket: what is
    /// sent there is not asserted here).
    #[test]
    fn transitions_follow_the_table_and_the_work_in_between_sees_the_new_phase() {
        assert_eq!(phase(), Phase::Starting);
        assert!(!enter(Step::Idle), "Idle does not apply while starting");
        assert_eq!(phase(), Phase::Starting);
        assert!(enter(Step::Listening { announce: false }));
        assert_eq!(phase(), Phase::Serving);
        let mut seen = None;
        assert!(enter_with(Step::RestartStarted { generation: 2 }, || seen = Some(phase())));
        assert_eq!(seen, Some(Phase::Restarting));
        assert!(enter(Step::RolledBack { why: "test" }));
        assert_eq!(phase(), Phase::Serving);
        let mut ran = false;
        assert!(enter_with(Step::Drain { exec_generation: None }, || ran = draining()));
        assert!(ran, "the work in between runs once every thread sees the drain");
        let mut again = false;
        assert!(!enter_with(Step::Drain { exec_generation: None }, || again = true), "a second drain changes nothing");
        assert!(!again);
        assert!(enter(Step::Idle));
        assert!(closing() && draining());
        assert!(enter(Step::TakenBack { why: "test", generation: 1 }));
        assert_eq!(phase(), Phase::Serving);
        assert!(!closing() && !draining());
    }
}
