//! huptime as an init: PID 1 of a container's PID namespace (or any process, with `--init`).
//! The huptime process does not become the program; it starts the program as its child and
//! stays, small, doing what a container's init must:
//!
//! - it reaps every process that ends under it (orphans are reparented to a namespace's PID 1,
//!   or to a child subreaper, which `--init` makes it);
//! - SIGHUP restarts: it goes to the newest generation, whose shim restarts the configured way
//!   (fork mode's new generation is a sibling, so a child of this init too);
//! - SIGTERM, SIGINT and SIGQUIT stop: passed on to the program's generations (not to one that
//!   is already draining); a program that leaves SIGTERM or SIGINT at its default action is
//!   drained by its shim (as a restart's old generation: stop accepting, finish the open
//!   connections within --drain-timeout, exit 0); what is left when the stop timeout passes is
//!   killed (SIGKILL);
//! - every other signal (SIGUSR1, SIGUSR2, SIGWINCH, ...) goes to the newest generation;
//! - it exits with the program's status once the program has ended (0 when the stop signal it
//!   passed on ended it; 128 + the signal's number when another signal did).
//!
//! Why the program cannot be PID 1 itself: the kernel refuses CLONE_PARENT to a namespace's init
//! (EINVAL: its sibling would live outside the namespace), so fork mode could never start a new
//! generation; and PID 1 has no default signal actions (a program that does not handle SIGTERM
//! ignores `docker stop`) and inherits every orphan, which a program does not reap.
//!
//! The CLI (a Bun executable, tens of MB resident) does not do the waiting: [`exec_init`]
//! executes the huptime executable again with this library preloaded and [`INIT_VAR`] set, and
//! the library's constructor runs [`main`] before the Bun runtime starts (see README,
//! "Containers", for the figures).

use crate::config::{ROOT_PID_VAR, STATUS_DIR_VAR, STOP_DRAINS_VAR, SUPERVISOR_PID_VAR};
use crate::{real, status};
use libc::{c_int, pid_t};
use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Set (to the stop timeout in ms, 0: none) in the environment of the re-executed huptime that
/// is to be the init; the program's path and argv follow `--` on its command line.
pub const INIT_VAR: &str = "HUPTIME_INIT";

/// The first word of the init's command line after its own name: what `ps` shows.
const INIT_FLAG: &str = "--init";

/// The program the init starts, and how long a stop may take.
pub struct Plan {
    file: CString,
    argv: Vec<CString>,
    /// `KEY=VALUE` entries; the one at `root_slot` has room for any pid (written in the child).
    /// A stop signal the program leaves at its default action drains it (`STOP_DRAINS_VAR`).
    env: Vec<Vec<u8>>,
    root_slot: usize,
    /// Where the generations publish their state (follows fork mode's new pids).
    status_dir: Option<PathBuf>,
    /// After a stop signal, SIGKILL to what is left this long after (0: never).
    stop_timeout_ms: u64,
}

/// Room for the digits of any pid in the root pid entry.
const PID_DIGITS: usize = 10;

impl Plan {
    /// The program `file` run as `argv` with `env` (the shim's variables included); the root
    /// and supervisor pid entries are replaced (the program's own pid, and this init's).
    pub fn new(file: &[u8], argv: &[Vec<u8>], env: &[Vec<u8>], stop_timeout_ms: u64) -> Result<Plan, String> {
        let c = |what: &str, b: &[u8]| CString::new(b).map_err(|_| format!("{what} contains a NUL byte"));
        let file = c("the program path", file)?;
        let argv = argv.iter().map(|a| c("an argument", a)).collect::<Result<Vec<_>, _>>()?;
        let named = |e: &[u8], k: &str| e.len() > k.len() && e.starts_with(k.as_bytes()) && e[k.len()] == b'=';
        let mut kept: Vec<Vec<u8>> = env
            .iter()
            .filter(|e| ![ROOT_PID_VAR, SUPERVISOR_PID_VAR, STOP_DRAINS_VAR, INIT_VAR].iter().any(|k| named(e, k)))
            .map(|e| {
                c("an environment entry", e)?;
                Ok(e.clone())
            })
            .collect::<Result<_, String>>()?;
        let status_dir = kept.iter().find(|e| named(e, STATUS_DIR_VAR)).map(|e| PathBuf::from(String::from_utf8_lossy(&e[STATUS_DIR_VAR.len() + 1..]).into_owned()));
        // SAFETY: getpid has no preconditions.
        kept.push(format!("{SUPERVISOR_PID_VAR}={}\0", unsafe { libc::getpid() }).into_bytes());
        kept.push(format!("{STOP_DRAINS_VAR}=1\0").into_bytes());
        let root_slot = kept.len();
        kept.push(format!("{ROOT_PID_VAR}={}\0", "0".repeat(PID_DIGITS)).into_bytes());
        for e in &mut kept {
            if e.last() != Some(&0) {
                e.push(0);
            }
        }
        Ok(Plan { file, argv, env: kept, root_slot, status_dir, stop_timeout_ms })
    }
}

/// Replaces the calling process (the CLI) with the init: the huptime executable again, with
/// this library preloaded (`env` has the program's LD_PRELOAD) so that its constructor runs
/// [`main`]. Returns only on failure, with the reason.
pub fn exec_init(file: &str, argv: &[String], env: &[String], stop_timeout_ms: u64) -> String {
    let mut args = vec!["huptime".to_string(), INIT_FLAG.to_string(), file.to_string(), "--".to_string()];
    args.extend(argv.iter().cloned());
    let mut vars: Vec<String> = env.iter().filter(|e| !e.starts_with(&format!("{INIT_VAR}="))).cloned().collect();
    vars.push(format!("{INIT_VAR}={stop_timeout_ms}"));
    let Ok(args) = args.into_iter().map(CString::new).collect::<Result<Vec<_>, _>>() else { return "an argument contains a NUL byte".into() };
    let Ok(vars) = vars.into_iter().map(CString::new).collect::<Result<Vec<_>, _>>() else { return "an environment entry contains a NUL byte".into() };
    let mut argv_p: Vec<*const libc::c_char> = args.iter().map(|s| s.as_ptr()).collect();
    argv_p.push(core::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = vars.iter().map(|s| s.as_ptr()).collect();
    env_p.push(core::ptr::null());
    // SAFETY: NUL-terminated arrays of valid C strings, alive across the call.
    unsafe { libc::execve(c"/proc/self/exe".as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    format!("can't execute /proc/self/exe as the init: {}", std::io::Error::last_os_error())
}

/// Constructor hook: in the process [`exec_init`] started, runs the init (never returns);
/// anywhere else returns at once.
pub fn run_if_asked() {
    let Some(timeout) = std::env::var_os(INIT_VAR) else { return };
    let fail = |why: String| -> ! {
        info!("can't start as an init: {why}");
        exit(127)
    };
    let timeout_ms = timeout.to_str().and_then(|t| t.parse::<u64>().ok()).unwrap_or_else(|| fail(format!("{INIT_VAR}={timeout:?} is not a number of ms")));
    let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_else(|e| fail(format!("can't read /proc/self/cmdline: {e}")));
    let words: Vec<Vec<u8>> = cmdline.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    // [huptime, --init, FILE, --, ARGV..., ""] (the last split is after the final NUL).
    if words.len() < 5 || words[1] != INIT_FLAG.as_bytes() || words[3] != b"--" {
        fail("its command line is not `huptime --init FILE -- ARGV...`".into());
    }
    let argv = &words[4..words.len() - 1];
    let env: Vec<Vec<u8>> = std::env::vars_os().map(|(k, v)| [k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()).collect();
    match Plan::new(&words[2], argv, &env, timeout_ms) {
        Ok(plan) => main(plan),
        Err(why) => fail(why),
    }
}

/// The signals the init waits for (blocked, taken by sigtimedwait): all but those the kernel
/// never lets a process catch, the ones a fault raises in the faulting thread, and SIGPIPE (a
/// write of its own to a closed log pipe: ignored, never passed on).
fn waited_set() -> libc::sigset_t {
    // SAFETY: plain sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut set);
        for s in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, libc::SIGSYS, libc::SIGABRT, libc::SIGPIPE] {
            libc::sigdelset(&mut set, s);
        }
        set
    }
}

/// Runs the init: starts the program, then reaps, passes signals on and stops, and exits with
/// the program's status.
pub fn main(plan: Plan) -> ! {
    crate::log::GENERATION.store(0, core::sync::atomic::Ordering::Relaxed);
    real::resolve_all();
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    // PID 1 of a namespace gets the orphans anyway; elsewhere ask for them.
    // SAFETY: prctl with integer arguments.
    if me != 1 && unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        info!("can't become a child subreaper: {}; orphans will not be reaped here", crate::log::OsError::last());
    }
    let set = waited_set();
    let mut ignore = crate::signals::empty_action();
    ignore.sa_sigaction = libc::SIG_IGN;
    // SAFETY: a valid set, blocked in the only thread this process runs; SIG_IGN for SIGPIPE.
    unsafe {
        real::pthread_sigmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
        real::sigaction(libc::SIGPIPE, &ignore, core::ptr::null_mut());
    }
    let mut plan = plan;
    let first = spawn(&mut plan);
    if first < 0 {
        info!("can't start {}: {}", crate::log::Lossy(plan.file.as_bytes()), crate::log::OsError::last());
        exit(127);
    }
    debug!("init: started the program, pid {first}");
    let mut init = Init { plan, me, current: first, stop: None, deadline: None, killed: false, ended: None, children: true, told_rest: false };
    loop {
        let sig = wait_signal(&set, init.wait_ms());
        if let Some(s) = sig.filter(|&s| s != libc::SIGCHLD) {
            init.on_signal(s);
        }
        init.reap();
        init.enforce_deadline();
        if let Some(code) = init.finished() {
            exit(code);
        }
    }
}

/// The init's state: the program's current generation, the stop in progress, how it ended.
struct Init {
    plan: Plan,
    me: pid_t,
    /// The oldest generation still running (fork mode's pid changes once it has drained).
    current: pid_t,
    /// The stop signal passed on, once one came.
    stop: Option<c_int>,
    /// When what is left gets SIGKILL (monotonic ms).
    deadline: Option<u64>,
    killed: bool,
    /// The wait status of the program's last generation, once it ended.
    ended: Option<c_int>,
    /// Whether any child was left at the last reap.
    children: bool,
    /// Whether what the program left was told to stop (once it had ended, during a stop).
    told_rest: bool,
}

impl Init {
    fn wait_ms(&self) -> Option<u64> {
        self.deadline.filter(|_| !self.killed).map(|d| d.saturating_sub(crate::sys::now_ms()))
    }

    /// The program's generations from the current one on (see [`chain`]).
    fn generations(&self) -> Vec<(pid_t, String)> {
        let records = self.plan.status_dir.as_deref().map(read_records).unwrap_or_default();
        chain(&records, self.current, |p| p == self.current || alive(p))
    }

    fn newest(&self) -> pid_t {
        self.generations().last().map_or(self.current, |g| g.0)
    }

    fn on_signal(&mut self, sig: c_int) {
        match sig {
            libc::SIGTERM | libc::SIGINT | libc::SIGQUIT => {
                if self.stop.is_none() {
                    self.stop = Some(sig);
                    let t = self.plan.stop_timeout_ms;
                    self.deadline = (t > 0).then(|| crate::sys::now_ms() + t);
                }
                let gens = self.generations();
                let last = gens.len().saturating_sub(1);
                let targets: Vec<pid_t> = gens.iter().enumerate().filter(|(i, g)| *i == last || g.1 != draining()).map(|(_, g)| g.0).collect();
                info!("init: signal {sig}: stopping the program (pid {targets:?})");
                for p in targets {
                    send(p, sig);
                }
            }
            _ => {
                let to = self.newest();
                debug!("init: signal {sig}: passed on to pid {to}");
                send(to, sig);
            }
        }
    }

    /// Reaps every child that ended; follows the program to its next generation when the
    /// current one ends after a fork restart.
    fn reap(&mut self) {
        loop {
            let mut st: c_int = 0;
            // SAFETY: valid out-pointer.
            let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
            if pid <= 0 {
                self.children = pid == 0;
                return;
            }
            if pid != self.current || self.ended.is_some() {
                debug!("init: reaped pid {pid}");
                continue;
            }
            match self.generations().get(1) {
                Some(&(next, _)) => {
                    debug!("init: generation pid {pid} ended; the program is now pid {next}");
                    self.current = next;
                }
                None => {
                    info!("init: the program (pid {pid}) {}", describe(st));
                    self.ended = Some(st);
                }
            }
        }
    }

    fn enforce_deadline(&mut self) {
        let Some(d) = self.deadline else { return };
        if self.killed || crate::sys::now_ms() < d {
            return;
        }
        self.killed = true;
        info!("init: still running {} s after the stop signal; killing what is left (SIGKILL)", self.plan.stop_timeout_ms as f64 / 1000.0);
        kill_all(self.me);
    }

    /// The exit status, once the init is done: the program has ended and, during a stop, what
    /// it left has ended too (or was killed).
    fn finished(&mut self) -> Option<c_int> {
        let st = self.ended?;
        if self.stop.is_some() && self.children && !self.killed {
            if !self.told_rest {
                self.told_rest = true;
                for p in descendants(self.me) {
                    send(p, self.stop.unwrap_or(libc::SIGTERM));
                }
            }
            return None;
        }
        Some(exit_code(st, self.stop))
    }
}

/// The state name of a draining generation in its status file.
fn draining() -> &'static str {
    crate::phase::Phase::Draining.status_name()
}

/// How a wait status reads in the log.
fn describe(st: c_int) -> String {
    if libc::WIFEXITED(st) {
        format!("exited with status {}", libc::WEXITSTATUS(st))
    } else {
        format!("was killed by signal {}", libc::WTERMSIG(st))
    }
}

/// The init's exit status for the program's wait status `st`: its exit status, 0 when the stop
/// signal passed on ended it, else 128 + the signal (as a shell reports it).
pub fn exit_code(st: c_int, stop: Option<c_int>) -> c_int {
    if libc::WIFEXITED(st) {
        return libc::WEXITSTATUS(st);
    }
    let sig = libc::WTERMSIG(st);
    if Some(sig) == stop {
        0
    } else {
        128 + sig
    }
}

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

fn read_records(dir: &Path) -> Vec<Record> {
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
fn alive(pid: pid_t) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn send(pid: pid_t, sig: c_int) {
    // SAFETY: kill with integer arguments.
    if pid > 0 && unsafe { libc::kill(pid, sig) } != 0 {
        debug!("init: can't send signal {sig} to pid {pid}: {}", crate::log::OsError::last());
    }
}

/// The processes under `me` (children first), from /proc/PID/task/TID/children.
fn descendants(me: pid_t) -> Vec<pid_t> {
    let mut out = Vec::new();
    let mut todo = vec![me];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else { continue };
        for t in tasks.flatten() {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse::<pid_t>().ok()) {
                if !out.contains(&k) {
                    out.push(k);
                    todo.push(k);
                }
            }
        }
    }
    out
}

/// SIGKILL to every process under the init: as a namespace's PID 1, kill(-1) reaches exactly
/// the namespace's other processes; elsewhere, the descendants.
fn kill_all(me: pid_t) {
    if me == 1 {
        // SAFETY: kill with integer arguments.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        return;
    }
    for p in descendants(me) {
        send(p, libc::SIGKILL);
    }
}

/// Waits for one of `set` (blocked) for at most `ms` (None: no limit); None on timeout.
fn wait_signal(set: &libc::sigset_t, ms: Option<u64>) -> Option<c_int> {
    // SAFETY: plain data filled by the kernel.
    let mut info: libc::siginfo_t = unsafe { core::mem::zeroed() };
    let ts = ms.map(|ms| libc::timespec { tv_sec: (ms / 1000) as libc::time_t, tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long });
    let tsp = ts.as_ref().map_or(core::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: valid set, out-pointer and (null or valid) timeout.
    let r = unsafe { libc::sigtimedwait(set, &mut info, tsp) };
    (r > 0).then_some(r)
}

/// Starts the program (fork, then exec with default signal actions and an empty mask: what it
/// would get as a container's entrypoint). Returns its pid, or -1 with errno set.
fn spawn(plan: &mut Plan) -> pid_t {
    let argv: Vec<*const libc::c_char> = plan.argv.iter().map(|a| a.as_ptr()).chain(core::iter::once(core::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> = plan.env.iter().map(|e| e.as_ptr().cast()).chain(core::iter::once(core::ptr::null())).collect();
    let root = plan.env[plan.root_slot].as_mut_ptr();
    // SAFETY: the child runs only async-signal-safe calls on memory prepared before the fork,
    // then execs or exits.
    unsafe {
        let pid = real::fork();
        if pid != 0 {
            return pid;
        }
        let dfl = crate::signals::empty_action();
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                real::sigaction(sig, &dfl, core::ptr::null_mut());
            }
        }
        write_pid(root.add(ROOT_PID_VAR.len() + 1), libc::getpid());
        let none = crate::signals::empty_set();
        real::pthread_sigmask(libc::SIG_SETMASK, &none, core::ptr::null_mut());
        real::execve(plan.file.as_ptr(), argv.as_ptr(), envp.as_ptr());
        let msg = b"huptime: init: can't execute the program\n";
        real::write(2, msg.as_ptr().cast(), msg.len());
        real::syscall(libc::SYS_exit_group, 127, 0, 0, 0, 0, 0);
        libc::abort()
    }
}

/// Writes `pid`'s digits and a NUL at `at` (room for [`PID_DIGITS`] + 1 bytes), without
/// allocating (a fork child).
///
/// # Safety
/// `at` is valid for PID_DIGITS + 1 bytes.
unsafe fn write_pid(at: *mut u8, pid: pid_t) {
    let mut digits = [0u8; PID_DIGITS];
    let (mut n, mut v) = (0, pid.max(0) as u32);
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 || n == PID_DIGITS {
            break;
        }
    }
    for i in 0..n {
        // SAFETY: i < n <= PID_DIGITS, within the caller's room.
        unsafe { *at.add(i) = digits[n - 1 - i] };
    }
    // SAFETY: n <= PID_DIGITS.
    unsafe { *at.add(n) = 0 };
}

fn exit(code: c_int) -> ! {
    // SAFETY: ends the process at once (no exit hooks: nothing of the program runs here).
    unsafe {
        real::syscall(libc::SYS_exit_group, code as libc::c_long, 0, 0, 0, 0, 0);
        libc::abort()
    }
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

    #[test]
    fn exit_codes_are_the_program_s_and_a_requested_stop_is_no_failure() {
        let exited = |c: c_int| c << 8;
        assert_eq!(exit_code(exited(3), None), 3);
        assert_eq!(exit_code(libc::SIGTERM, Some(libc::SIGTERM)), 0);
        assert_eq!(exit_code(libc::SIGKILL, Some(libc::SIGTERM)), 128 + libc::SIGKILL);
        assert_eq!(exit_code(libc::SIGSEGV, None), 128 + libc::SIGSEGV);
    }

    #[test]
    fn pids_are_written_as_c_digits() {
        let mut buf = [b'x'; PID_DIGITS + 1];
        // SAFETY: the buffer has room for PID_DIGITS + 1 bytes.
        unsafe { write_pid(buf.as_mut_ptr(), 4_194_304) };
        assert_eq!(&buf[..8], b"4194304\0");
    }

    #[test]
    fn the_plan_replaces_the_root_and_supervisor_pids() {
        let env = [b"A=1".to_vec(), format!("{ROOT_PID_VAR}=77").into_bytes(), format!("{STATUS_DIR_VAR}=/tmp/s").into_bytes()];
        let p = Plan::new(b"/bin/true", &[b"true".to_vec()], &env, 5).unwrap();
        assert_eq!(p.status_dir.as_deref(), Some(Path::new("/tmp/s")));
        let roots: Vec<_> = p.env.iter().filter(|e| e.starts_with(ROOT_PID_VAR.as_bytes())).collect();
        assert_eq!(roots.len(), 1);
        assert_eq!(p.env[p.root_slot], format!("{ROOT_PID_VAR}=0000000000\0").into_bytes());
        assert!(p.env.iter().all(|e| e.last() == Some(&0)));
    }
}
