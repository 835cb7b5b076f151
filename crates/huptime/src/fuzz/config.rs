//! Fuzzing the `HUPTIME_*` settings ([`crate::config::parse`]): random sets of variables with
//! boundary numbers, NaN and infinities, other scripts' digits, invalid UTF-8, empty and 100 KB
//! values. Whatever they hold, parsing must not panic, every setting must stay within its range,
//! and every ignored value must be reported on one short line naming its variable.

use super::{run, Outcomes, Rng};
use crate::config::{parse, Mode, DEFAULT_DRAIN_TIMEOUT_MS, DEFAULT_READY_TIMEOUT_MS, DRAIN_TIMEOUT_VAR, MODE_VAR, NOTIFY_VAR, READY_TIMEOUT_VAR, SHIM_VARS, STATE_VAR};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// Every variable the shim's settings come from (the handover record is fuzzed on its own), and
/// one it does not read.
fn vars() -> Vec<&'static str> {
    SHIM_VARS.into_iter().filter(|&v| v != STATE_VAR).chain(["HUPTIME_NOT_A_SETTING"]).collect()
}

const EDGES: [&str; 30] = [
    "", "0", "1", "-1", "-0", "+7", " 5 ", "0x10", "1e9", "1e9.0001", "1000000000.1", "1e400", "1e-300", "NaN", "nan", "inf",
    "-inf", "4294967295", "4294967296", "2147483647", "2147483648", "-2147483648", "99999999999999999999999", "exec", "fork",
    "EXEC", "ｅｘｅｃ", "٣", "/run/x", "@sd",
];

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(6) {
        0 => rng.pick(&EDGES).as_bytes().to_vec(),
        1 => {
            let sign = *rng.pick(&["", "-", "+"]);
            let digits: String = (0..1 + rng.below(30)).map(|_| char::from(b'0' + rng.below(10) as u8)).collect();
            let tail = *rng.pick(&["", ".5", "e3", "e-2", "E400", ".", "x"]);
            format!("{sign}{digits}{tail}").into_bytes()
        }
        2 => {
            let pool = ['a', '0', '9', '.', '-', ' ', 'é', '٣', '𝟗', '\u{202e}', '\u{feff}', '\n', '\t', '/', '@'];
            (0..rng.below(20)).map(|_| *rng.pick(&pool)).collect::<String>().into_bytes()
        }
        3 => rng.bytes(40),
        4 => {
            let unit = *rng.pick(&["9", "é", "/a", "\u{ff}"]);
            unit.repeat(100_000 / unit.len()).into_bytes()
        }
        _ => {
            let mut v = rng.pick(&EDGES).as_bytes().to_vec();
            v.insert(rng.below(v.len() + 1), rng.next() as u8);
            v
        }
    }
}

/// What the seconds parser must accept: a finite number from 0 to 1e9, spaces around allowed.
fn expected_ms(v: &[u8]) -> Option<u64> {
    let f: f64 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
    (f.is_finite() && (0.0..=1e9).contains(&f)).then(|| (f * 1000.0).round() as u64)
}

#[test]
fn parse_never_panics_and_reports_each_ignored_value() {
    let vars = vars();
    let asked = RefCell::new(BTreeSet::new());
    let outcomes = run("config", |rng, out: &mut Outcomes| {
        let mut env: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        let sparse = if rng.one_in(3) { 8 } else { 2 };
        for &name in &vars {
            if rng.one_in(sparse) {
                env.insert(name, value(rng));
            }
        }
        let get = |k: &str| {
            asked.borrow_mut().insert(k.to_string());
            env.get(k).map(|v| OsString::from_vec(v.clone()))
        };
        let (c, warnings) = parse(get);
        assert_eq!(parse(get), (c.clone(), warnings.clone()), "parsing is not deterministic");
        let mut warned: BTreeMap<&str, usize> = BTreeMap::new();
        for w in &warnings {
            assert!(!w.contains('\n') && w.len() < 300, "warning is not one short line: {w:?}");
            let name = vars.iter().find(|n| w.starts_with(&format!("{n}="))).unwrap_or_else(|| panic!("warning names no variable: {w}"));
            assert!(env.contains_key(name), "warning about {name}, which is not set");
            *warned.entry(name).or_default() += 1;
        }
        assert!(warned.values().all(|&n| n == 1), "more than one warning for a variable: {warnings:?}");
        assert_eq!(c.mode == Mode::Exec, env.get(MODE_VAR).is_some_and(|v| v == b"exec"));
        for (name, got, default) in [(READY_TIMEOUT_VAR, c.ready_timeout_ms, DEFAULT_READY_TIMEOUT_MS), (DRAIN_TIMEOUT_VAR, c.drain_timeout_ms, DEFAULT_DRAIN_TIMEOUT_MS)] {
            match env.get(name).map(|v| expected_ms(v)) {
                Some(Some(ms)) => assert_eq!(got, ms, "{name}"),
                Some(None) => {
                    assert_eq!(got, default, "{name}");
                    assert!(warned.contains_key(name), "{name}={:?} ignored silently", env[name]);
                }
                None => assert_eq!(got, default),
            }
        }
        assert!(c.revive_streak <= 1000 && c.root_pid >= 0 && c.supervisor_pid >= 0);
        assert!(c.status_dir.as_ref().is_none_or(|d| d.is_absolute()));
        if let Some(s) = &c.notify_socket {
            assert_eq!(Some(s.as_bytes()), env.get(NOTIFY_VAR).map(|v| v.as_slice()));
        }
        out.count(if warnings.is_empty() { "clean" } else { "warned" });
        if c.mode == Mode::Exec {
            out.count("exec");
        }
    });
    let asked = asked.into_inner();
    let fuzzed: BTreeSet<String> = vars.iter().map(|s| s.to_string()).collect();
    assert!(asked.is_subset(&fuzzed), "variables parse() reads but this test does not vary: {:?}", asked.difference(&fuzzed).collect::<Vec<_>>());
    for seen in ["clean", "warned", "exec"] {
        assert!(outcomes.seen(seen) > 0, "no case was {seen}");
    }
}
