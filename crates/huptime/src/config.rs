//! Settings the CLI passes to the shim through `HUPTIME_*` variables, parsed once at start-up.
//! Parsing is defensive: a bad value is reported (one line naming the variable) and replaced by
//! the default, never trusted. Values may be any bytes: invalid UTF-8 is reported like any other
//! bad value, except in paths, which are kept as they are.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

/// How a restart is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Start the new generation beside the old one; the old one drains and exits.
    Fork,
    /// Drain, then exec the new code in the same process (same pid).
    Exec,
}

impl Mode {
    /// Every mode, the default first.
    pub const ALL: [Mode; 2] = [Mode::Fork, Mode::Exec];

    /// The mode's name: the value of [`MODE_VAR`] that chooses it.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Fork => "fork",
            Mode::Exec => "exec",
        }
    }
}

/// How long a new generation may take to become ready unless [`READY_TIMEOUT_VAR`] says (ms).
pub const DEFAULT_READY_TIMEOUT_MS: u64 = 60_000;
/// How long a draining generation waits for its connections unless [`DRAIN_TIMEOUT_VAR`] says (ms).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;
/// How long a connection of a draining generation must have moved no data before it counts as
/// idle and is closed, unless [`DRAIN_IDLE_VAR`] says (ms).
pub const DEFAULT_DRAIN_IDLE_MS: u64 = 500;

/// The shim's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Restart mode.
    pub mode: Mode,
    /// Log every decision, not only errors and restarts.
    pub debug: bool,
    /// How long a new generation may take to become ready before it is abandoned (ms).
    pub ready_timeout_ms: u64,
    /// How long a draining generation waits for its connections (ms, 0 = forever).
    pub drain_timeout_ms: u64,
    /// How long a connection must have moved no data, while draining, to be closed as idle (ms).
    pub drain_idle_ms: u64,
    /// File to remove before each new generation starts (`--unlink`, a pidfile).
    pub unlink: Option<PathBuf>,
    /// Before a generation ends or execs, also wait for its child processes (`--wait`).
    pub wait_children: bool,
    /// Start the program again when it exits (`--revive`).
    pub revive: bool,
    /// Quick exits in a row so far (revive back-off), carried across revivals.
    pub revive_streak: u32,
    /// With `--multi`: set SO_REUSEPORT on every socket before bind so instances share ports.
    pub reuseport: bool,
    /// Pid of the process huptime started (the program itself, not the processes it spawns).
    pub root_pid: i32,
    /// Pid of the `huptime --multi` supervisor whose death ends this instance (0: none).
    pub supervisor_pid: i32,
    /// Private directory where each process publishes its state (absolute), if any.
    pub status_dir: Option<PathBuf>,
    /// systemd's notify socket (a path or `@abstract` name), if the shim speaks for the program.
    pub notify_socket: Option<String>,
    /// SIGTERM or SIGINT left at its default action drains the program, then ends it (0), as a
    /// restart's old generation does (set by huptime's init, see `pid1.rs`).
    pub stop_drains: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Fork,
            debug: false,
            ready_timeout_ms: DEFAULT_READY_TIMEOUT_MS,
            drain_timeout_ms: DEFAULT_DRAIN_TIMEOUT_MS,
            drain_idle_ms: DEFAULT_DRAIN_IDLE_MS,
            unlink: None,
            wait_children: false,
            revive: false,
            revive_streak: 0,
            reuseport: false,
            root_pid: 0,
            supervisor_pid: 0,
            status_dir: None,
            notify_socket: None,
            stop_drains: false,
        }
    }
}

static INSTALLED: OnceLock<Config> = OnceLock::new();

/// Installs this process's settings (constructor time; later calls change nothing).
pub fn install(c: Config) {
    let _ = INSTALLED.set(c);
}

/// This process's settings (the defaults until [`install`]).
pub fn get() -> &'static Config {
    static DEFAULT: OnceLock<Config> = OnceLock::new();
    INSTALLED.get().unwrap_or_else(|| DEFAULT.get_or_init(Config::default))
}

// The variables' names. The CLI's copies are generated from these (src/generated/protocol.ts, see
// crate::typescript): every name the shim reads must be in SHIM_VARS.

/// Prefix of every variable huptime owns.
pub const VAR_PREFIX: &str = "HUPTIME_";
/// Name of the variable holding the handover record (hex, see [`crate::wire`]).
pub const STATE_VAR: &str = "HUPTIME_STATE";
/// Name of the variable whose presence turns the shim on; its value is a [`Mode`]'s name.
pub const MODE_VAR: &str = "HUPTIME_MODE";
/// Name of the flag that logs every decision.
pub const DEBUG_VAR: &str = "HUPTIME_DEBUG";
/// Name of the variable holding `--ready-timeout` (seconds).
pub const READY_TIMEOUT_VAR: &str = "HUPTIME_READY_TIMEOUT";
/// Name of the variable holding `--drain-timeout` (seconds, 0: no limit).
pub const DRAIN_TIMEOUT_VAR: &str = "HUPTIME_DRAIN_TIMEOUT";
/// Name of the variable holding `--drain-idle` (seconds).
pub const DRAIN_IDLE_VAR: &str = "HUPTIME_DRAIN_IDLE";
/// Name of the variable naming the directory for state files.
pub const STATUS_DIR_VAR: &str = "HUPTIME_STATUS_DIR";
/// Name of the variable holding `--multi`'s number of instances (sockets share ports).
pub const MULTI_VAR: &str = "HUPTIME_MULTI";
/// Name of the flag that revives the program when it exits (`--revive`).
pub const REVIVE_VAR: &str = "HUPTIME_REVIVE";
/// Name of the variable carrying the revive back-off's count of quick exits across revivals.
pub const REVIVE_STREAK_VAR: &str = "HUPTIME_REVIVE_STREAK";
/// Name of the flag that waits for child processes before a generation ends or execs (`--wait`).
pub const WAIT_VAR: &str = "HUPTIME_WAIT";
/// Name of the variable naming a file removed before each new generation starts (`--unlink`).
pub const UNLINK_VAR: &str = "HUPTIME_UNLINK";
/// Name of the variable holding the pid of the process huptime started.
pub const ROOT_PID_VAR: &str = "HUPTIME_ROOT_PID";
/// Name of the variable holding the pid of the `--multi` supervisor.
pub const SUPERVISOR_PID_VAR: &str = "HUPTIME_SUPERVISOR_PID";
/// Name of the variable naming the systemd notify socket.
pub const NOTIFY_VAR: &str = "HUPTIME_NOTIFY_SOCKET";
/// Name of the flag that makes a stop signal at its default action drain the program (see
/// [`Config::stop_drains`]).
pub const STOP_DRAINS_VAR: &str = "HUPTIME_STOP_DRAINS";
/// Name of the variable carrying an exec restart's receipt from its old image to its new one
/// (the receipt module's `carry`/`carried`).
pub const RECEIPT_VAR: &str = "HUPTIME_RECEIPT";
/// Every variable the shim reads (the CLI drops inherited ones, so a stale value never reaches a
/// new run).
pub const SHIM_VARS: [&str; 17] = [
    STATE_VAR,
    MODE_VAR,
    DEBUG_VAR,
    READY_TIMEOUT_VAR,
    DRAIN_TIMEOUT_VAR,
    DRAIN_IDLE_VAR,
    STATUS_DIR_VAR,
    MULTI_VAR,
    REVIVE_VAR,
    REVIVE_STREAK_VAR,
    WAIT_VAR,
    UNLINK_VAR,
    ROOT_PID_VAR,
    SUPERVISOR_PID_VAR,
    NOTIFY_VAR,
    STOP_DRAINS_VAR,
    RECEIPT_VAR,
];
/// Name of the variable choosing where the CLI writes the preload library and the state files.
/// The shim never reads it (it only names it in a message); it is defined here so that every
/// `HUPTIME_*` name has one definition.
pub const CACHE_DIR_VAR: &str = "HUPTIME_CACHE_DIR";

/// Most characters of a bad value quoted in a warning (the rest is summarised by its length).
const SHOWN_CHARS: usize = 40;

/// A value as quoted in a warning: debug-escaped, and cut when long so the line stays readable.
pub fn shown(v: &str) -> String {
    if v.chars().count() <= SHOWN_CHARS {
        return format!("{v:?}");
    }
    let head: String = v.chars().take(SHOWN_CHARS).collect();
    format!("{head:?}... ({} bytes)", v.len())
}

fn parse_seconds(v: &str) -> Option<u64> {
    let f: f64 = v.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 || f > 1e9 {
        return None;
    }
    Some((f * 1000.0).round() as u64)
}

fn parse_pid(v: &str) -> Option<i32> {
    v.trim().parse::<i32>().ok().filter(|&p| p > 0)
}

/// Reads the variables through `get` and collects one warning per ignored value.
struct Vars<G> {
    get: G,
    warnings: Vec<String>,
}

impl<G: Fn(&str) -> Option<OsString>> Vars<G> {
    /// The value as text; invalid UTF-8 is reported and ignored.
    fn text(&mut self, name: &str) -> Option<String> {
        let v = (self.get)(name)?;
        match v.into_string() {
            Ok(s) => Some(s),
            Err(raw) => {
                let lossy = raw.to_string_lossy().into_owned();
                self.warnings.push(format!("{name}={} is not valid UTF-8; ignoring it", shown(&lossy)));
                None
            }
        }
    }

    /// A flag: on when set to anything but empty or `0`.
    fn flag(&mut self, name: &str) -> bool {
        (self.get)(name).is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// A path: any bytes but empty.
    fn path(&mut self, name: &str) -> Option<PathBuf> {
        (self.get)(name).filter(|v| !v.is_empty()).map(PathBuf::from)
    }

    /// A value parsed by `parse`; a value it refuses is reported with `what` it should be and
    /// `instead`, what happens without it.
    fn parsed<T>(&mut self, name: &str, parse: impl Fn(&str) -> Option<T>, what: &str, instead: &str) -> Option<T> {
        let v = self.text(name)?;
        let parsed = parse(&v);
        if parsed.is_none() {
            self.warnings.push(format!("{name}={} is not {what}; {instead}", shown(&v)));
        }
        parsed
    }
}

/// Parses the settings from a variable lookup. Returns the settings and one message per ignored
/// value (the caller logs them). Never panics, whatever the values.
pub fn parse(get: impl Fn(&str) -> Option<OsString>) -> (Config, Vec<String>) {
    let mut c = Config::default();
    let mut v = Vars { get, warnings: Vec::new() };
    match v.text(MODE_VAR).as_deref() {
        Some("") | None => {}
        Some(name) => match Mode::ALL.into_iter().find(|m| m.name() == name) {
            Some(m) => c.mode = m,
            None => v.warnings.push(format!("{MODE_VAR}={} is not fork or exec; using fork", shown(name))),
        },
    }
    c.debug = v.flag(DEBUG_VAR);
    c.wait_children = v.flag(WAIT_VAR);
    c.revive = v.flag(REVIVE_VAR);
    c.stop_drains = v.flag(STOP_DRAINS_VAR);
    c.unlink = v.path(UNLINK_VAR);
    let count = |s: &str| s.trim().parse::<u32>().ok();
    c.revive_streak = v.parsed(REVIVE_STREAK_VAR, count, "a count", "using 0").unwrap_or(0).min(1000);
    c.root_pid = v.parsed(ROOT_PID_VAR, parse_pid, "a process id", "ignoring it").unwrap_or(0);
    c.supervisor_pid = v.parsed(SUPERVISOR_PID_VAR, parse_pid, "a process id", "ignoring it").unwrap_or(0);
    c.reuseport = v.parsed(MULTI_VAR, count, "a number of instances", "not sharing ports").is_some_and(|n| n >= 1);
    let ready = format!("using {}", c.ready_timeout_ms / 1000);
    c.ready_timeout_ms = v.parsed(READY_TIMEOUT_VAR, parse_seconds, "a number of seconds", &ready).unwrap_or(c.ready_timeout_ms);
    let drain = format!("using {}", c.drain_timeout_ms / 1000);
    c.drain_timeout_ms = v.parsed(DRAIN_TIMEOUT_VAR, parse_seconds, "a number of seconds", &drain).unwrap_or(c.drain_timeout_ms);
    let idle = format!("using {}", c.drain_idle_ms as f64 / 1000.0);
    c.drain_idle_ms = v.parsed(DRAIN_IDLE_VAR, parse_seconds, "a number of seconds", &idle).unwrap_or(c.drain_idle_ms);
    c.status_dir = v.path(STATUS_DIR_VAR);
    if let Some(dir) = c.status_dir.take() {
        if dir.is_absolute() {
            c.status_dir = Some(dir);
        } else {
            let d = dir.to_string_lossy().into_owned();
            v.warnings.push(format!("{STATUS_DIR_VAR}={} is not an absolute path; not publishing state", shown(&d)));
        }
    }
    c.notify_socket = v.text(NOTIFY_VAR);
    (c, v.warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::unix::ffi::OsStringExt;

    fn run_bytes(vars: &[(&str, &[u8])]) -> (Config, Vec<String>) {
        let m: HashMap<String, OsString> = vars.iter().map(|(a, b)| (a.to_string(), OsString::from_vec(b.to_vec()))).collect();
        parse(|k| m.get(k).cloned())
    }

    fn run(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let bytes: Vec<(&str, &[u8])> = vars.iter().map(|(a, b)| (*a, b.as_bytes())).collect();
        run_bytes(&bytes)
    }

    #[test]
    fn defaults() {
        let (c, w) = run(&[]);
        assert_eq!(c, Config::default());
        assert!(w.is_empty());
    }

    #[test]
    fn values() {
        let (c, w) = run(&[
            ("HUPTIME_MODE", "exec"),
            ("HUPTIME_DEBUG", "1"),
            ("HUPTIME_DRAIN_TIMEOUT", "0.5"),
            ("HUPTIME_DRAIN_IDLE", "0.25"),
            ("HUPTIME_UNLINK", "/run/x.pid"),
            ("HUPTIME_WAIT", "1"),
            ("HUPTIME_MULTI", "3"),
            ("HUPTIME_ROOT_PID", "42"),
            ("HUPTIME_SUPERVISOR_PID", "41"),
            ("HUPTIME_STATUS_DIR", "/run/huptime/status"),
            ("HUPTIME_NOTIFY_SOCKET", "@sd"),
        ]);
        assert_eq!(c.mode, Mode::Exec);
        assert!(c.debug);
        assert!(c.wait_children);
        assert!(c.reuseport);
        assert_eq!(c.unlink.as_deref(), Some(std::path::Path::new("/run/x.pid")));
        assert_eq!(c.drain_timeout_ms, 500);
        assert_eq!(c.drain_idle_ms, 250);
        assert_eq!((c.root_pid, c.supervisor_pid), (42, 41));
        assert_eq!(c.status_dir.as_deref(), Some(std::path::Path::new("/run/huptime/status")));
        assert_eq!(c.notify_socket.as_deref(), Some("@sd"));
        assert!(w.is_empty());
    }

    #[test]
    fn bad_values_warn_and_default() {
        let (c, w) = run(&[
            ("HUPTIME_MODE", "spawn"),
            ("HUPTIME_READY_TIMEOUT", "-3"),
            ("HUPTIME_DRAIN_TIMEOUT", "NaN"),
            ("HUPTIME_DRAIN_IDLE", "-1"),
            ("HUPTIME_REVIVE_STREAK", "99999999999999999999"),
            ("HUPTIME_ROOT_PID", "-1"),
            ("HUPTIME_SUPERVISOR_PID", "pid"),
            ("HUPTIME_MULTI", "many"),
            ("HUPTIME_STATUS_DIR", "relative/dir"),
        ]);
        assert_eq!(c, Config::default());
        assert_eq!(w.len(), 9, "{w:?}");
        for (line, name) in w.iter().zip(["MODE", "REVIVE_STREAK", "ROOT_PID", "SUPERVISOR_PID", "MULTI", "READY_TIMEOUT", "DRAIN_TIMEOUT", "DRAIN_IDLE", "STATUS_DIR"]) {
            assert!(line.starts_with(&format!("HUPTIME_{name}=")), "{line}");
        }
        assert!(w[0].contains("spawn"));
    }

    #[test]
    fn invalid_utf8_is_refused_except_in_paths() {
        let (c, w) = run_bytes(&[("HUPTIME_MODE", b"ex\xffec"), ("HUPTIME_NOTIFY_SOCKET", b"/run/\xfe"), ("HUPTIME_UNLINK", b"/tmp/\xff.pid")]);
        assert_eq!(c.mode, Mode::Fork);
        assert_eq!(c.notify_socket, None);
        assert_eq!(c.unlink.map(|p| p.into_os_string().into_vec()), Some(b"/tmp/\xff.pid".to_vec()));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().all(|l| l.contains("is not valid UTF-8")));
    }

    #[test]
    fn long_values_are_cut_in_warnings() {
        let long = "9".repeat(100_000) + "x";
        let (_, w) = run(&[("HUPTIME_DRAIN_TIMEOUT", &long)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].len() < 200, "{}", w[0]);
        assert!(w[0].contains("(100001 bytes)"));
    }
}
