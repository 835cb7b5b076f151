//! The program's generations as huptime's init follows them: fork mode's next generation has a
//! new pid, named with the one it replaced (`previous`) in its status file (see
//! [`crate::status`]), which is what the init reads.

use crate::status;
use libc::pid_t;
use std::path::Path;

/// One status file's fields the init reads: pid, the pid it replaced, state.
#[derive(Debug, PartialEq)]
pub struct Record {
    /// The generation's pid.
    pub pid: pid_t,
    /// The generation it replaced (its own pid after an exec restart, 0 for the first).
    pub previous: pid_t,
    /// Its phase's status name.
    pub state: String,
}

/// Parses a status file (see [`crate::status`]); None when a field is missing.
pub fn parse_record(body: &str) -> Option<Record> {
    let get = |k: &str| body.lines().find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix('=')));
    Some(Record {
        pid: get(status::field::PID)?.parse().ok()?,
        previous: get(status::field::PREVIOUS)?.parse().ok()?,
        state: get(status::field::STATE)?.to_string(),
    })
}

/// Every status file in `dir` that parses.
pub fn read_records(dir: &Path) -> Vec<Record> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(status::SUFFIX))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|b| parse_record(&b))
        .collect()
}

/// The program's generations from `first` on, with their states: `first`, then the running
/// generation that names it as `previous` (fork mode's next one), and so on.
pub fn chain(records: &[Record], first: pid_t, running: impl Fn(pid_t) -> bool) -> Vec<(pid_t, String)> {
    let state = |p: pid_t| records.iter().find(|r| r.pid == p).map(|r| r.state.clone()).unwrap_or_default();
    let mut out = vec![(first, state(first))];
    while out.len() < 64 {
        let last = out[out.len() - 1].0;
        match records.iter().find(|r| r.previous == last && r.pid != last && running(r.pid) && !out.iter().any(|o| o.0 == r.pid)) {
            Some(r) => out.push((r.pid, r.state.clone())),
            None => break,
        }
    }
    out
}

/// Whether `pid` exists (a zombie counts: the reap that follows settles it).
pub fn alive(pid: pid_t) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pid: pid_t, previous: pid_t, state: &str) -> Record {
        Record { pid, previous, state: state.into() }
    }

    #[test]
    fn records_parse_from_the_status_file_format() {
        let body = "pid=12\nstart=5\ngeneration=2\nmode=fork\nstate=serving\nprevious=7\nrollbacks=0\n";
        assert_eq!(parse_record(body), Some(rec(12, 7, "serving")));
        assert_eq!(parse_record("pid=12\nstate=serving\n"), None);
    }

    #[test]
    fn the_chain_follows_running_successors_and_skips_an_exec_restart_s_own_pid() {
        let records = [rec(2, 0, "draining"), rec(9, 2, "serving"), rec(5, 2, "starting"), rec(9, 9, "serving")];
        assert_eq!(chain(&records, 2, |p| p != 5), vec![(2, "draining".into()), (9, "serving".into())]);
        assert_eq!(chain(&records, 9, |_| true), vec![(9, "serving".into())]);
        assert_eq!(chain(&[], 3, |_| true), vec![(3, String::new())]);
    }

}
