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
//! The CLI (a Bun executable, tens of MB resident) does not do the waiting: it executes the
//! huptime executable again with this library preloaded (see [`crate::pid1_plan`]), and the
//! library's constructor runs [`main`] before the Bun runtime starts (see README, "Containers",
//! for the figures).

use crate::generation_chain::{alive, chain, read_records};
use crate::pid1_plan::{self, spawn, Plan};
use crate::real;
use libc::{c_int, pid_t};

/// Constructor hook: in the process [`pid1_plan::exec_init`] started, runs the init (never returns);
/// anywhere else returns at once.
pub fn run_if_asked() {
    match pid1_plan::of_this_process() {
        None => {}
        Some(Ok(plan)) => main(plan),
        Some(Err(why)) => {
            info!("can't start as an init: {why}");
            exit(127)
        }
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

    #[test]
    fn exit_codes_are_the_program_s_and_a_requested_stop_is_no_failure() {
        let exited = |c: c_int| c << 8;
        assert_eq!(exit_code(exited(3), None), 3);
        assert_eq!(exit_code(libc::SIGTERM, Some(libc::SIGTERM)), 0);
        assert_eq!(exit_code(libc::SIGKILL, Some(libc::SIGTERM)), 128 + libc::SIGKILL);
        assert_eq!(exit_code(libc::SIGSEGV, None), 128 + libc::SIGSEGV);
    }

}
