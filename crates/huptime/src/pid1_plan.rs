//! How huptime's init (see [`crate::pid1`]) comes to be and starts the program: the CLI
//! replaces itself with the huptime executable again, preloaded, with [`INIT_VAR`] set and the
//! program on its command line ([`exec_init`]); the library's constructor reads that back as a
//! [`Plan`]; the init starts the program from it ([`spawn`]), with the shim's variables that say
//! who the program and its supervisor are.

use crate::config::{ROOT_PID_VAR, STATUS_DIR_VAR, STOP_DRAINS_VAR, SUPERVISOR_PID_VAR};
use crate::real;
use libc::pid_t;
use std::ffi::CString;
use std::path::PathBuf;

/// Set (to the stop timeout in ms, 0: none) in the environment of the re-executed huptime that
/// is to be the init; the program's path and argv follow `--` on its command line.
pub const INIT_VAR: &str = "HUPTIME_INIT";

/// The first word of the init's command line after its own name: what `ps` shows.
const INIT_FLAG: &str = "--init";

/// The program the init starts, and how long a stop may take.
pub struct Plan {
    /// The program's path.
    pub file: CString,
    argv: Vec<CString>,
    /// `KEY=VALUE` entries; the one at `root_slot` has room for any pid (written in the child).
    /// A stop signal the program leaves at its default action drains it (`STOP_DRAINS_VAR`).
    env: Vec<Vec<u8>>,
    root_slot: usize,
    /// Where the generations publish their state (follows fork mode's new pids).
    pub status_dir: Option<PathBuf>,
    /// After a stop signal, SIGKILL to what is left this long after (0: never).
    pub stop_timeout_ms: u64,
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

/// The plan of the process [`exec_init`] started (its [`INIT_VAR`], command line and
/// environment), or None in any other process.
pub fn of_this_process() -> Option<Result<Plan, String>> {
    let timeout = std::env::var_os(INIT_VAR)?;
    Some(from_this_process(&timeout))
}

fn from_this_process(timeout: &std::ffi::OsStr) -> Result<Plan, String> {
    let timeout_ms = timeout.to_str().and_then(|t| t.parse::<u64>().ok()).ok_or_else(|| format!("{INIT_VAR}={timeout:?} is not a number of ms"))?;
    let cmdline = std::fs::read("/proc/self/cmdline").map_err(|e| format!("can't read /proc/self/cmdline: {e}"))?;
    let words: Vec<Vec<u8>> = cmdline.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    // [huptime, --init, FILE, --, ARGV..., ""] (the last split is after the final NUL).
    if words.len() < 5 || words[1] != INIT_FLAG.as_bytes() || words[3] != b"--" {
        return Err("its command line is not `huptime --init FILE -- ARGV...`".into());
    }
    let env: Vec<Vec<u8>> = std::env::vars_os().map(|(k, v)| [k.as_encoded_bytes(), b"=", v.as_encoded_bytes()].concat()).collect();
    Plan::new(&words[2], &words[4..words.len() - 1], &env, timeout_ms)
}

/// Starts the program (fork, then exec with default signal actions and an empty mask: what it
/// would get as a container's entrypoint). Returns its pid, or -1 with errno set. Called by the
/// init, which runs one thread.
pub fn spawn(plan: &mut Plan) -> pid_t {
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
        // The init runs one thread: formatting in the child is safe here.
        info!("init: can't execute {}: {}", crate::log::Lossy(plan.file.as_bytes()), crate::log::OsError::last());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
