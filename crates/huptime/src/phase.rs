//! The phases of one process under huptime and the transitions between them, as pure data: which
//! event moves which phase where, and what each phase is called in the status file. The process's
//! current phase and the one function that changes it live in [`crate::lifecycle`].
//!
//! ```text
//!            Listening                 RestartStarted (fork; also from Starting)
//!  Starting ───────────► Serving ─────────────────────────► Restarting
//!     │                   ▲  │  ▲                              │   │
//!     │ Drain             │  │  └──────── RolledBack ──────────┘   │ SuccessorReady
//!     │                   │  │ Drain (exec restart, worker)        ▼
//!     └──────────────────►│──┴─────────────────────────────────► Draining
//!                         │                                        │  ▲
//!                         └─────────────── TakenBack ──────────────┤
//!                                                           Idle   ▼
//!                                                               Closing ──► exit / exec
//! ```

/// Where a process is in its life under huptime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Started; the program has not yet listened on (or, if a previous generation waits for it,
    /// waited for connections on) a bound socket.
    Starting = 0,
    /// Taking connections.
    Serving = 1,
    /// Fork mode: the next generation runs beside this one, which still serves until that one
    /// is ready (or fails and is rolled back).
    Restarting = 2,
    /// Stopped taking connections; finishing the open ones.
    Draining = 3,
    /// Looked idle once: from then on no thread may take a connection (one that got in just
    /// before is still finished); the process ends or execs as soon as nothing is open.
    Closing = 4,
}

/// What happens to a process, as the lifecycle sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The program serves: it listens (or, awaited by a previous generation, waits for
    /// connections) on a bound socket.
    Listening,
    /// Fork mode: the next generation was started beside this one.
    RestartStarted,
    /// The next generation is ready: this one stops taking connections.
    SuccessorReady,
    /// A restart failed before the next generation was ready (or could not be attempted).
    RolledBack,
    /// This process stops taking connections without a successor of its own: an exec restart,
    /// a worker following its master, a SIGHUP in a worker.
    Drain,
    /// Nothing is left to finish (or the drain deadline passed).
    Idle,
    /// The next generation failed after it was ready: this one takes its sockets back.
    TakenBack,
}

/// All phases, in their numeric order.
pub const PHASES: [Phase; 5] = [Phase::Starting, Phase::Serving, Phase::Restarting, Phase::Draining, Phase::Closing];

/// All events.
pub const EVENTS: [Event; 7] =
    [Event::Listening, Event::RestartStarted, Event::SuccessorReady, Event::RolledBack, Event::Drain, Event::Idle, Event::TakenBack];

impl Phase {
    /// The phase stored as `n` (see `as u8`); Starting for anything unknown.
    pub const fn from_u8(n: u8) -> Phase {
        match n {
            1 => Phase::Serving,
            2 => Phase::Restarting,
            3 => Phase::Draining,
            4 => Phase::Closing,
            _ => Phase::Starting,
        }
    }

    /// The `state=` value in the status file (see `src/statusfile.ts`). Closing is still
    /// draining to a reader: the process has not ended yet.
    pub const fn status_name(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Serving => "serving",
            Phase::Restarting => "restarting",
            Phase::Draining | Phase::Closing => "draining",
        }
    }

    /// Whether the process has stopped taking connections.
    pub const fn is_draining(self) -> bool {
        matches!(self, Phase::Draining | Phase::Closing)
    }

    /// The phase `event` leads to from this one, or `None` when it does not apply here.
    pub const fn next(self, event: Event) -> Option<Phase> {
        use Event as E;
        use Phase as P;
        match (self, event) {
            (P::Starting, E::Listening) => Some(P::Serving),
            // A master whose forked workers serve never serves itself: it restarts from Starting.
            (P::Starting | P::Serving, E::RestartStarted) => Some(P::Restarting),
            (P::Restarting, E::SuccessorReady) => Some(P::Draining),
            (P::Restarting, E::RolledBack) => Some(P::Serving),
            // A restart refused before it started changes nothing but the rollback count.
            (P::Starting | P::Serving, E::RolledBack) => Some(self),
            (P::Starting | P::Serving | P::Restarting, E::Drain) => Some(P::Draining),
            (P::Draining, E::Idle) => Some(P::Closing),
            (P::Draining | P::Closing, E::TakenBack) => Some(P::Serving),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for p in PHASES {
            assert_eq!(Phase::from_u8(p as u8), p);
        }
        assert_eq!(Phase::from_u8(200), Phase::Starting);
    }

    #[test]
    fn the_transition_table() {
        use Event as E;
        use Phase as P;
        let allowed = [
            (P::Starting, E::Listening, P::Serving),
            (P::Starting, E::RestartStarted, P::Restarting),
            (P::Starting, E::RolledBack, P::Starting),
            (P::Starting, E::Drain, P::Draining),
            (P::Serving, E::RestartStarted, P::Restarting),
            (P::Serving, E::RolledBack, P::Serving),
            (P::Serving, E::Drain, P::Draining),
            (P::Restarting, E::SuccessorReady, P::Draining),
            (P::Restarting, E::RolledBack, P::Serving),
            (P::Restarting, E::Drain, P::Draining),
            (P::Draining, E::Idle, P::Closing),
            (P::Draining, E::TakenBack, P::Serving),
            (P::Closing, E::TakenBack, P::Serving),
        ];
        for from in PHASES {
            for ev in EVENTS {
                let want = allowed.iter().find(|(f, e, _)| *f == from && *e == ev).map(|(_, _, to)| *to);
                assert_eq!(from.next(ev), want, "{from:?} on {ev:?}");
            }
        }
    }

    #[test]
    fn a_draining_process_never_restarts_or_serves_again_but_by_a_take_back() {
        for from in [Phase::Draining, Phase::Closing] {
            for ev in EVENTS {
                if let Some(to) = from.next(ev) {
                    assert!(to.is_draining() || ev == Event::TakenBack, "{from:?} on {ev:?} -> {to:?}");
                }
            }
        }
    }

    #[test]
    fn status_names_are_the_ones_the_cli_reads() {
        let names: Vec<_> = PHASES.iter().map(|p| p.status_name()).collect();
        assert_eq!(names, ["starting", "serving", "restarting", "draining", "draining"]);
    }
}
