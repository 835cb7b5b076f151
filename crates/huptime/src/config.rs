//! Settings the CLI passes to the shim through `HUPTIME_*` variables, parsed once at start-up.
//! Parsing is defensive: a bad value is reported and replaced by the default, never trusted.

/// How a restart is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Start the new generation beside the old one; the old one drains and exits.
    Fork,
    /// Drain, then exec the new code in the same process (same pid).
    Exec,
}

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
    /// File to remove before each new generation starts (`--unlink`, a pidfile).
    pub unlink: Option<String>,
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
}

impl Default for Config {
    fn default() -> Self {
        Config { mode: Mode::Fork, debug: false, ready_timeout_ms: 60_000, drain_timeout_ms: 30_000, unlink: None, wait_children: false, revive: false, revive_streak: 0, reuseport: false, root_pid: 0 }
    }
}

/// Name of the variable holding the handover record.
pub const STATE_VAR: &str = "HUPTIME_STATE";
/// Name of the variable whose presence turns the shim on.
pub const MODE_VAR: &str = "HUPTIME_MODE";

fn parse_seconds(v: &str) -> Option<u64> {
    let f: f64 = v.trim().parse().ok()?;
    if !f.is_finite() || f < 0.0 || f > 1e9 {
        return None;
    }
    Some((f * 1000.0).round() as u64)
}

/// Parses the settings from a variable lookup. Returns the settings and one message per ignored
/// value (the caller logs them).
pub fn parse(get: impl Fn(&str) -> Option<String>) -> (Config, Vec<String>) {
    let mut c = Config::default();
    let mut warnings = Vec::new();
    match get(MODE_VAR).as_deref() {
        Some("exec") => c.mode = Mode::Exec,
        Some("fork") | Some("") | None => {}
        Some(other) => warnings.push(format!("{MODE_VAR}={other:?} is not fork or exec; using fork")),
    }
    c.debug = matches!(get("HUPTIME_DEBUG").as_deref(), Some(v) if !v.is_empty() && v != "0");
    c.wait_children = matches!(get("HUPTIME_WAIT").as_deref(), Some(v) if !v.is_empty() && v != "0");
    c.unlink = get("HUPTIME_UNLINK").filter(|v| !v.is_empty());
    c.revive = matches!(get("HUPTIME_REVIVE").as_deref(), Some(v) if !v.is_empty() && v != "0");
    c.revive_streak = get("HUPTIME_REVIVE_STREAK").and_then(|v| v.parse().ok()).unwrap_or(0).min(1000);
    c.root_pid = get("HUPTIME_ROOT_PID").and_then(|v| v.parse().ok()).unwrap_or(0);
    c.reuseport = get("HUPTIME_MULTI").is_some_and(|v| v.parse::<u32>().is_ok_and(|n| n >= 1));
    for (name, slot) in [
        ("HUPTIME_READY_TIMEOUT", &mut c.ready_timeout_ms),
        ("HUPTIME_DRAIN_TIMEOUT", &mut c.drain_timeout_ms),
    ] {
        if let Some(v) = get(name) {
            match parse_seconds(&v) {
                Some(ms) => *slot = ms,
                None => warnings.push(format!("{name}={v:?} is not a number of seconds; using {}", *slot / 1000)),
            }
        }
    }
    (c, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> (Config, Vec<String>) {
        let m: HashMap<String, String> = vars.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        parse(|k| m.get(k).cloned())
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
            ("HUPTIME_UNLINK", "/run/x.pid"),
            ("HUPTIME_WAIT", "1"),
        ]);
        assert_eq!(c.mode, Mode::Exec);
        assert!(c.debug);
        assert!(c.wait_children);
        assert_eq!(c.unlink.as_deref(), Some("/run/x.pid"));
        assert_eq!(c.drain_timeout_ms, 500);
        assert!(w.is_empty());
    }

    #[test]
    fn bad_values_warn_and_default() {
        let (c, w) = run(&[("HUPTIME_MODE", "spawn"), ("HUPTIME_READY_TIMEOUT", "-3"), ("HUPTIME_DRAIN_TIMEOUT", "NaN")]);
        assert_eq!(c, Config::default());
        assert_eq!(w.len(), 3);
        assert!(w[0].contains("spawn"));
    }
}
