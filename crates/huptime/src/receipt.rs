//! The receipt of a restart: how it ended and what it cost, shown by `huptime --status --json` as
//! `last_restart`, printed by `huptime --restart`, logged, and told to systemd in short.
//!
//! Owner: the generation that ran the restart. It alone sees every figure first-hand: it took the
//! SIGHUP, read the new generation's ready message, stopped accepting, drained, and counted the
//! connections it finished and cut (the drain's counts in [`crate::status`]). So it fills one
//! [`Receipt`] as the restart goes and writes it once, when the outcome is final, into
//! `PID.receipt` ([`SUFFIX`]) in the status directory, PID being the process whose `--status`
//! row shows it: the new generation after a fork restart that succeeded (written just before the
//! old one exits), this generation itself after a rollback or a refusal. An exec restart is run
//! by one process in two images: the old image fills the receipt up to its exec and carries it
//! across in [`RECEIPT_VAR`] ([`Receipt::carry`]); the new image only notes when it is ready and
//! writes it. Nothing else writes a receipt; a process's receipt goes with its status file.
//!
//! Format: one `key=value` per line, the keys in [`field`] (the CLI's copies are generated into
//! src/generated/protocol.ts), durations in ms with three decimals, an unknown figure empty.
//! [`Receipt`] is plain fixed-size data and its text is written into a fixed buffer, without
//! allocating; filling it from /proc (the new generation's start time, the kernel's drop counters)
//! happens on the helper thread.

use crate::config::RECEIPT_VAR;
use crate::fdtable::internal;
use crate::spinlock::SpinLock;
use crate::status::LastError;
use crate::sys;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// The keys of a receipt file, in the order they are written.
pub mod field {
    /// Pid of the process whose row shows the receipt.
    pub const PID: &str = "pid";
    /// Its start time from /proc/PID/stat (a reader tells a reused pid by it).
    pub const START: &str = "start";
    /// Pid of the generation that ran the restart.
    pub const PREVIOUS: &str = "previous";
    /// The generation the restart started (or would have started).
    pub const GENERATION: &str = "generation";
    /// How it ended: one of [`super::outcome`].
    pub const OUTCOME: &str = "outcome";
    /// When it was recorded, ms since the Unix epoch (for the receipt's age).
    pub const AT: &str = "at";
    /// From the SIGHUP until the new generation's ready message was read.
    pub const SIGHUP_TO_READY_MS: &str = "sighup_to_ready_ms";
    /// From then until the old generation had stopped accepting.
    pub const HANDOVER_MS: &str = "handover_ms";
    /// From the moment the old generation (or image) stopped accepting until it had drained
    /// (about to exit or exec).
    pub const DRAINED_MS: &str = "drained_ms";
    /// Connections the old generation finished normally (their own end, or closed when idle).
    pub const CONNECTIONS_DRAINED: &str = "connections_drained";
    /// Connections it cut at the drain deadline (at a request boundary or reset).
    pub const CONNECTIONS_CUT: &str = "connections_cut";
    /// Increase of the kernel's ListenOverflows + ListenDrops over the restart, for the whole
    /// network namespace.
    pub const LISTEN_DROPS: &str = "listen_drops";
    /// Why the restart was rolled back or refused (empty when it succeeded).
    pub const REASON: &str = "reason";
    /// The receipt in one line, as `huptime --restart` prints it and the log says it.
    pub const SUMMARY: &str = "summary";
    /// Every key.
    pub const ALL: [&str; 14] = [
        PID,
        START,
        PREVIOUS,
        GENERATION,
        OUTCOME,
        AT,
        SIGHUP_TO_READY_MS,
        HANDOVER_MS,
        DRAINED_MS,
        CONNECTIONS_DRAINED,
        CONNECTIONS_CUT,
        LISTEN_DROPS,
        REASON,
        SUMMARY,
    ];
}

/// The values of the `outcome` key.
pub mod outcome {
    /// The new generation became ready and took over.
    pub const READY: &str = "ready";
    /// The new generation failed (before it was ready, or while the old one still drained); the
    /// old one serves on.
    pub const ROLLED_BACK: &str = "rolled_back";
    /// The restart could not be attempted: the program or the preload library is gone, or the
    /// previous generation still drained `--ready-timeout` after the SIGHUP.
    pub const REFUSED: &str = "refused";
    /// Every value.
    pub const ALL: [&str; 3] = [READY, ROLLED_BACK, REFUSED];
}

/// Ending of a receipt file's name, after the pid.
pub use crate::status::RECEIPT_SUFFIX as SUFFIX;

/// How a restart ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// See [`outcome::READY`].
    Ready,
    /// See [`outcome::ROLLED_BACK`].
    RolledBack,
    /// See [`outcome::REFUSED`].
    Refused,
}

impl Outcome {
    /// The `outcome` value.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ready => outcome::READY,
            Outcome::RolledBack => outcome::ROLLED_BACK,
            Outcome::Refused => outcome::REFUSED,
        }
    }
}

/// One restart's figures, filled as it goes. Times are monotonic µs; 0 means "not reached".
#[derive(Clone, Copy)]
pub struct Receipt {
    /// Pid of the process that shows the receipt (see the module doc).
    pub pid: libc::pid_t,
    /// Its start time (clock ticks after boot, /proc/PID/stat field 22).
    pub start: u64,
    /// Pid of the generation that ran the restart.
    pub previous: libc::pid_t,
    /// The generation the restart started.
    pub generation: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// Wall-clock ms since the epoch when it was recorded.
    pub at_ms: u64,
    hup_us: u64,
    ready_us: u64,
    stopped_us: u64,
    drained_us: u64,
    /// Client connections open when the old generation stopped accepting.
    open_at_stop: usize,
    /// Connections finished normally.
    pub drained: usize,
    /// Connections cut at the deadline.
    pub cut: usize,
    drops_before: Option<u64>,
    /// ListenOverflows + ListenDrops increase, if both readings were possible.
    pub listen_drops: Option<u64>,
    /// Why it was rolled back or refused.
    pub reason: LastError,
}

/// Microseconds between two readings, if both were taken in order.
fn span(from: u64, to: u64) -> Option<u64> {
    (from > 0 && to >= from).then(|| to - from)
}

/// `us` as ms with three decimals.
struct Ms(u64);

impl fmt::Display for Ms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// `us` as ms the way people read it: `82 ms`, `0.07 ms`, `3.50 ms`.
struct Short(u64);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 10_000 {
            write!(f, "{} ms", (self.0 + 500) / 1000)
        } else {
            write!(f, "{}.{:02} ms", self.0 / 1000, (self.0 % 1000) / 10)
        }
    }
}

/// A value or nothing (an unknown figure is written empty).
struct Maybe<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Maybe<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}

impl Receipt {
    /// A restart of generation `generation - 1` (this process, `previous`) begins at `hup_us`,
    /// with the kernel's drop count `drops` then.
    pub fn begin(previous: libc::pid_t, generation: u32, hup_us: u64, drops: Option<u64>) -> Receipt {
        Receipt {
            pid: previous,
            start: 0,
            previous,
            generation,
            outcome: Outcome::Refused,
            at_ms: 0,
            hup_us,
            ready_us: 0,
            stopped_us: 0,
            drained_us: 0,
            open_at_stop: 0,
            drained: 0,
            cut: 0,
            drops_before: drops,
            listen_drops: None,
            reason: LastError::empty(),
        }
    }

    /// The new generation, `pid`, was ready at `now_us`: the receipt is its.
    pub fn ready(&mut self, pid: libc::pid_t, now_us: u64) {
        self.pid = pid;
        self.outcome = Outcome::Ready;
        self.ready_us = now_us;
    }

    /// The old generation stopped accepting at `now_us` with `open` client connections. Called
    /// where the sockets are taken away (no allocation, no lock).
    pub fn stopped(&mut self, now_us: u64, open: usize) {
        self.stopped_us = now_us;
        self.open_at_stop = open;
    }

    /// The old generation has drained at `now_us`; its drain cut `cut` connections (at a request
    /// boundary or reset) and the kernel's drop count is now `drops`.
    pub fn drained(&mut self, now_us: u64, cut: usize, drops: Option<u64>) {
        self.drained_us = now_us;
        self.cut = cut;
        self.drained = self.open_at_stop.saturating_sub(cut);
        self.end(drops);
    }

    /// The restart failed (`why`); the receipt is this generation's, `me`.
    pub fn rolled_back(&mut self, me: libc::pid_t, why: &str, drops: Option<u64>) {
        self.pid = me;
        self.outcome = Outcome::RolledBack;
        self.reason.set(why);
        self.end(drops);
    }

    /// The restart could not be attempted (`why`).
    pub fn refused(&mut self, why: &str) {
        self.outcome = Outcome::Refused;
        self.reason.set(why);
    }

    fn end(&mut self, drops: Option<u64>) {
        self.listen_drops = match (self.drops_before, drops) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
    }

    /// From the SIGHUP until the new generation was ready (µs).
    pub fn sighup_to_ready_us(&self) -> Option<u64> {
        span(self.hup_us, self.ready_us)
    }

    /// From ready until the old generation had stopped accepting (µs).
    pub fn handover_us(&self) -> Option<u64> {
        span(self.ready_us, self.stopped_us)
    }

    /// From the moment the old generation stopped accepting until it had drained (µs).
    pub fn drained_us(&self) -> Option<u64> {
        span(self.stopped_us, self.drained_us)
    }

    /// The figures an exec restart's old image carries to its new image (in [`RECEIPT_VAR`]):
    /// `generation,hup,stopped,drained,open,cut,drops` (monotonic µs survive the exec; dashes
    /// for an unknown drop count). Every field has a fixed width, so that the environment of a
    /// process that restarts in place keeps its size from one restart to the next.
    pub fn carry(&self, out: &mut impl Write) -> fmt::Result {
        write!(out, "{:010},{:020},{:020},{:020},{:020},{:020},", self.generation, self.hup_us, self.stopped_us, self.drained_us, self.open_at_stop, self.cut)?;
        match self.drops_before {
            Some(d) => write!(out, "{d:020}"),
            None => write!(out, "{:-<20}", ""),
        }
    }

    /// The receipt an old image of this process (`pid`) carried in `text` (see [`Receipt::carry`]).
    pub fn carried(pid: libc::pid_t, text: &str) -> Option<Receipt> {
        let mut f = text.split(',');
        let mut next = || f.next()?.parse::<u64>().ok();
        let generation = u32::try_from(next()?).ok()?;
        let (hup, stopped, drained, open, cut) = (next()?, next()?, next()?, next()?, next()?);
        let drops = next();
        let mut r = Receipt::begin(pid, generation, hup, drops);
        r.stopped(stopped, usize::try_from(open).ok()?);
        r.drained_us = drained;
        r.cut = usize::try_from(cut).ok()?;
        r.drained = r.open_at_stop.saturating_sub(r.cut);
        Some(r)
    }

    /// The one-line summary: `pid 17832 -> 17891, ready in 82 ms, handover 0.07 ms, 3
    /// connections drained in 12 ms, 0 cut, 0 dropped by the kernel`.
    pub fn summary(&self, out: &mut impl Write) -> fmt::Result {
        let drops = Maybe(self.listen_drops);
        match self.outcome {
            Outcome::Ready => {
                if self.pid == self.previous {
                    write!(out, "pid {} (exec)", self.pid)?;
                } else {
                    write!(out, "pid {} -> {}", self.previous, self.pid)?;
                }
                if let Some(t) = self.sighup_to_ready_us() {
                    write!(out, ", ready in {}", Short(t))?;
                }
                if let Some(t) = self.handover_us() {
                    write!(out, ", handover {}", Short(t))?;
                }
                let s = if self.drained == 1 { "" } else { "s" };
                write!(out, ", {} connection{s} drained", self.drained)?;
                if let Some(t) = self.drained_us() {
                    write!(out, " in {}", Short(t))?;
                }
                write!(out, ", {} cut", self.cut)?;
            }
            Outcome::RolledBack => write!(out, "pid {}, generation {} rolled back: {}", self.pid, self.generation, self.reason.as_str())?,
            Outcome::Refused => write!(out, "pid {}, restart refused: {}", self.pid, self.reason.as_str())?,
        }
        match self.listen_drops {
            Some(_) => write!(out, ", {drops} dropped by the kernel"),
            None => Ok(()),
        }
    }

    /// The short form for systemd's STATUS=.
    pub fn short(&self, out: &mut impl Write) -> fmt::Result {
        match self.outcome {
            Outcome::Ready => {
                write!(out, "serving (generation {}, pid {}); last restart", self.generation, self.pid)?;
                if let Some(t) = self.sighup_to_ready_us() {
                    write!(out, " ready in {},", Short(t))?;
                }
                write!(out, " {} drained, {} cut", self.drained, self.cut)?;
                match self.listen_drops {
                    Some(d) => write!(out, ", {d} dropped"),
                    None => Ok(()),
                }
            }
            Outcome::RolledBack => write!(out, "restart rolled back: {}", self.reason.as_str()),
            Outcome::Refused => write!(out, "restart refused: {}", self.reason.as_str()),
        }
    }

    /// The file's text, one `key=value` per line in [`field::ALL`]'s order.
    pub fn write(&self, out: &mut impl Write) -> fmt::Result {
        let ms = |us: Option<u64>| Maybe(us.map(Ms));
        writeln!(out, "{}={}", field::PID, self.pid)?;
        writeln!(out, "{}={}", field::START, self.start)?;
        writeln!(out, "{}={}", field::PREVIOUS, self.previous)?;
        writeln!(out, "{}={}", field::GENERATION, self.generation)?;
        writeln!(out, "{}={}", field::OUTCOME, self.outcome.name())?;
        writeln!(out, "{}={}", field::AT, self.at_ms)?;
        writeln!(out, "{}={}", field::SIGHUP_TO_READY_MS, ms(self.sighup_to_ready_us()))?;
        writeln!(out, "{}={}", field::HANDOVER_MS, ms(self.handover_us()))?;
        writeln!(out, "{}={}", field::DRAINED_MS, ms(self.drained_us()))?;
        let ready = self.outcome == Outcome::Ready;
        writeln!(out, "{}={}", field::CONNECTIONS_DRAINED, Maybe(ready.then_some(self.drained)))?;
        writeln!(out, "{}={}", field::CONNECTIONS_CUT, Maybe(ready.then_some(self.cut)))?;
        writeln!(out, "{}={}", field::LISTEN_DROPS, Maybe(self.listen_drops))?;
        writeln!(out, "{}={}", field::REASON, self.reason.as_str())?;
        write!(out, "{}=", field::SUMMARY)?;
        self.summary(out)?;
        writeln!(out)
    }
}

/// A fixed buffer for a receipt's text (its reason may appear twice: in `reason` and `summary`).
pub type Text = crate::log::TextBuf<4096>;

/// An exec restart's receipt carried from the old image, until the new one is ready.
static CARRIED: SpinLock<Option<Receipt>> = SpinLock::new(None);
/// When the new image was ready (monotonic µs; 0: not yet), for the helper thread to record.
static READY_AT: AtomicU64 = AtomicU64::new(0);

/// Constructor time: takes the receipt an exec restart's old image carried (see
/// [`Receipt::carried`]), if any.
pub fn adopt_from_env() {
    let Some(text) = std::env::var_os(RECEIPT_VAR) else { return };
    // SAFETY: getpid has no preconditions.
    match Receipt::carried(unsafe { libc::getpid() }, &text.to_string_lossy()) {
        Some(r) => *CARRIED.lock() = Some(r),
        None => info!("ignoring {RECEIPT_VAR}={}: not a receipt", crate::config::shown(&text.to_string_lossy())),
    }
}

/// This process serves (any thread, a hook's path: no allocation): an exec restart's receipt,
/// if one was carried, is due; the helper thread is woken to record it.
pub fn note_ready() {
    if CARRIED.lock().is_some() && READY_AT.compare_exchange(0, sys::now_us(), Ordering::AcqRel, Ordering::Acquire).is_ok() {
        sys::eventfd_signal(internal::get(internal::WAKE));
    }
}

/// Helper thread: the carried receipt, completed, once the new image is ready (taken once).
pub fn due() -> Option<Receipt> {
    let at = READY_AT.load(Ordering::Acquire);
    if at == 0 {
        return None;
    }
    let mut r = CARRIED.lock().take()?;
    r.ready(r.pid, at);
    r.end(listen_drops_now());
    Some(r)
}

/// Wall-clock ms since the Unix epoch.
pub fn wall_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The kernel's ListenOverflows + ListenDrops in this process's network namespace now (helper
/// thread: reads /proc).
pub fn listen_drops_now() -> Option<u64> {
    crate::procnet::listen_drops(&std::fs::read_to_string("/proc/self/net/netstat").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(r: &Receipt) -> String {
        let mut t = Text::new();
        r.write(&mut t).unwrap();
        t.as_str().to_string()
    }

    fn keys(body: &str) -> Vec<&str> {
        body.lines().map(|l| l.split_once('=').unwrap().0).collect()
    }

    #[test]
    fn a_successful_restart_with_every_figure() {
        let mut r = Receipt::begin(100, 3, 1_000, Some(7));
        r.ready(200, 83_000);
        r.stopped(83_070, 5);
        r.drained(95_000, 2, Some(9));
        r.start = 4242;
        let body = text(&r);
        assert_eq!(keys(&body), field::ALL);
        for line in [
            "pid=200",
            "start=4242",
            "previous=100",
            "generation=3",
            "outcome=ready",
            "sighup_to_ready_ms=82.000",
            "handover_ms=0.070",
            "drained_ms=11.930",
            "connections_drained=3",
            "connections_cut=2",
            "listen_drops=2",
            "reason=",
        ] {
            assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
        }
        let want = "summary=pid 100 -> 200, ready in 82 ms, handover 0.07 ms, 3 connections drained in 12 ms, 2 cut, 2 dropped by the kernel";
        assert!(body.lines().any(|l| l == want), "{body}");
        let mut s = Text::new();
        r.short(&mut s).unwrap();
        assert_eq!(s.as_str(), "serving (generation 3, pid 200); last restart ready in 82 ms, 3 drained, 2 cut, 2 dropped");
    }

    #[test]
    fn unknown_figures_are_empty_and_failures_carry_their_reason() {
        let mut r = Receipt::begin(100, 3, 1_000, None);
        r.rolled_back(100, "generation 3 (pid 200) exited with status 1 before it was ready:\nboom", Some(4));
        let body = text(&r);
        assert_eq!(keys(&body), field::ALL);
        for line in ["pid=100", "outcome=rolled_back", "sighup_to_ready_ms=", "handover_ms=", "connections_cut=", "listen_drops="] {
            assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
        }
        assert!(body.contains("\nreason=generation 3 (pid 200) exited with status 1 before it was ready: boom\n"));
        let mut r = Receipt::begin(100, 3, 1_000, Some(1));
        r.refused("the preload library is gone");
        assert!(text(&r).contains("\noutcome=refused\n"));
        assert!(text(&r).ends_with("summary=pid 100, restart refused: the preload library is gone\n"));
    }

    #[test]
    fn an_exec_restart_carries_its_figures_to_the_new_image() {
        let mut r = Receipt::begin(100, 4, 1_000, Some(7));
        r.stopped(2_000, 3);
        r.drained(14_000, 1, Some(8));
        let mut carried = Text::new();
        r.carry(&mut carried).unwrap();
        assert_eq!(carried.as_str(), "0000000004,00000000000000001000,00000000000000002000,00000000000000014000,00000000000000000003,00000000000000000001,00000000000000000007");
        let mut back = Receipt::carried(100, carried.as_str()).unwrap();
        back.ready(100, 83_000);
        back.end(Some(9));
        let body = text(&back);
        for line in ["pid=100", "previous=100", "generation=4", "outcome=ready", "sighup_to_ready_ms=82.000", "handover_ms=", "drained_ms=12.000", "connections_drained=2", "connections_cut=1", "listen_drops=2"] {
            assert!(body.lines().any(|l| l == line), "{line} in\n{body}");
        }
        assert!(body.contains("\nsummary=pid 100 (exec), ready in 82 ms, 2 connections drained in 12 ms, 1 cut, 2 dropped by the kernel\n"), "{body}");
        let mut unknown = Receipt::begin(100, 4, 1_000, None);
        unknown.stopped(2_000, 0);
        let mut t = Text::new();
        unknown.carry(&mut t).unwrap();
        assert_eq!(t.as_str().len(), carried.as_str().len(), "the same width, whatever the figures");
        assert_eq!(Receipt::carried(100, t.as_str()).unwrap().drops_before, None);
        for bad in ["", "4,1,2", "x,1,2,3,4,5,6", "4,-1,2,3,4,5,6"] {
            assert!(Receipt::carried(100, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn durations_read_well() {
        let s = |us| Short(us).to_string();
        assert_eq!([s(70), s(3_504), s(9_999), s(10_000), s(82_400), s(82_600)], ["0.07 ms", "3.50 ms", "9.99 ms", "10 ms", "82 ms", "83 ms"]);
        assert_eq!(Ms(1_234_567).to_string(), "1234.567");
        assert_eq!(span(0, 5), None, "not reached");
        assert_eq!(span(6, 5), None);
    }

    #[test]
    fn text_is_cut_not_grown() {
        let mut t = Text::new();
        for _ in 0..5000 {
            t.write_str("é").unwrap();
        }
        assert_eq!(t.as_str().len(), 4094, "4095 bytes kept, the last character cut in two dropped");
    }
}
