//! What the program was started with, captured in the constructor before the program can change
//! it: executable, argv, environment, working directory, signal mask and ignored signals, the fds
//! it was given (stdio and others) and stdin's offset. A restart starts the next generation from
//! exactly this, so code and config come from disk but the launch is identical.

use crate::fdtable::internal;
use crate::sys;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// The captured launch.
pub struct Launch {
    /// Absolute path of the executable image (re-read from disk at restart).
    pub exe: CString,
    /// Command line.
    pub argv: Vec<CString>,
    /// Environment, without the handover record.
    pub env: Vec<CString>,
    /// Working directory at start.
    pub cwd: CString,
    /// Signal mask at start.
    pub mask: libc::sigset_t,
    /// Bit n set: signal n was ignored at start (stays ignored across exec, as it was given).
    pub ignored: u64,
    /// stdin's file offset at start, -1 if not seekable.
    pub stdin_offset: i64,
}

// SAFETY: sigset_t is plain data.
unsafe impl Send for Launch {}
// SAFETY: read-only after capture.
unsafe impl Sync for Launch {}

static LAUNCH: OnceLock<Launch> = OnceLock::new();

/// The captured launch (None before `capture` or if capture failed).
pub fn get() -> Option<&'static Launch> {
    LAUNCH.get()
}

/// Captures everything; `skip_env` names variables left out of the saved environment.
pub fn capture(skip_env: &[&str]) -> Result<(), String> {
    let exe = exec_path()?;
    let cmdline = std::fs::read("/proc/self/cmdline").map_err(|e| format!("can't read /proc/self/cmdline: {e}"))?;
    let argv: Vec<CString> = cmdline
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .filter_map(|s| CString::new(s).ok())
        .collect();
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if skip_env.iter().any(|s| k.as_bytes() == s.as_bytes()) {
            continue;
        }
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        if let Ok(c) = CString::new(kv) {
            env.push(c);
        }
    }
    let cwd = std::env::current_dir().map_err(|e| format!("can't read the working directory: {e}"))?;
    // SAFETY: plain data initialised by the calls below.
    let mut mask: libc::sigset_t = unsafe { core::mem::zeroed() };
    let mut ignored = 0u64;
    // SAFETY: querying the mask and dispositions only.
    unsafe {
        crate::real::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut mask);
        for sig in 1..64 {
            let mut old: libc::sigaction = core::mem::zeroed();
            if crate::real::sigaction(sig, core::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                ignored |= 1 << sig;
            }
        }
    }
    // SAFETY: lseek on fd 0 has no memory effects.
    let stdin_offset = unsafe { libc::lseek(0, 0, libc::SEEK_CUR) };
    save_original_fds();
    let launch = Launch {
        exe: CString::new(exe.as_os_str().as_bytes()).map_err(|_| "exe path has a NUL".to_string())?,
        argv,
        env,
        cwd: CString::new(cwd.as_os_str().as_bytes()).map_err(|_| "cwd has a NUL".to_string())?,
        mask,
        ignored,
        stdin_offset,
    };
    let _ = LAUNCH.set(launch);
    Ok(())
}

/// The path this image was exec'd by: the kernel's AT_EXECFN when it names the running executable
/// (so a restart keeps the process name `killall` matches, e.g. `python3`, not `python3.11`),
/// else the resolved /proc/self/exe (scripts: AT_EXECFN is the script, the image its interpreter).
fn exec_path() -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let resolved = std::fs::read_link("/proc/self/exe").map_err(|e| format!("can't read /proc/self/exe: {e}"))?;
    // SAFETY: getauxval has no preconditions; AT_EXECFN points to a NUL-terminated string.
    let execfn = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if execfn.is_null() {
        return Ok(resolved);
    }
    // SAFETY: see above.
    let given = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(unsafe { CStr::from_ptr(execfn) }.to_bytes()));
    match (std::fs::metadata(&given), std::fs::metadata("/proc/self/exe")) {
        (Ok(a), Ok(b)) if a.dev() == b.dev() && a.ino() == b.ino() => {
            Ok(std::env::current_dir().map(|d| d.join(&given)).unwrap_or(given))
        }
        _ => Ok(resolved),
    }
}

/// Saves a private copy of every fd the program was given (they are the ones without
/// close-on-exec), so the next generation gets the same stdio and extra fds even if the program
/// closes or redirects its own.
fn save_original_fds() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let mut fds: Vec<i32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect();
    fds.sort_unstable();
    let mut slot = internal::ORIG_BASE;
    for fd in fds {
        if slot >= internal::COUNT {
            break;
        }
        // SAFETY: plain fcntl.
        let flags = unsafe { crate::real::fcntl(fd, libc::F_GETFD, 0) };
        if flags < 0 || flags & libc::FD_CLOEXEC != 0 || crate::fdtable::state(fd) != crate::fdtable::FdState::None {
            continue;
        }
        let copy = sys::dup_internal(fd);
        if copy >= 0 {
            internal::ORIG_NUM[slot].store(fd, core::sync::atomic::Ordering::Release);
            internal::set(slot, copy);
            if fd == 2 {
                crate::log::LOG_FD.store(copy, core::sync::atomic::Ordering::Relaxed);
            }
            slot += 1;
        }
    }
}

/// Forgets the saved stdin/stdout/stderr (a daemon detached from them): the next generations
/// get the daemon's own fds 0-2, and huptime's messages go to its stderr.
pub fn release_stdio() {
    use core::sync::atomic::Ordering;
    for slot in internal::ORIG_BASE..internal::COUNT {
        if (0..=2).contains(&internal::ORIG_NUM[slot].load(Ordering::Acquire)) {
            internal::ORIG_NUM[slot].store(-1, Ordering::Release);
            sys::close(internal::take(slot));
        }
    }
    crate::log::LOG_FD.store(2, Ordering::Relaxed);
}

/// Everything `exec_into` needs, prepared (allocated) beforehand — before any fork, or at
/// start-up for a revival that may happen in a signal handler — so that it runs only
/// async-signal-safe code.
pub struct ExecPlan {
    launch: &'static Launch,
    argv_p: Vec<*const libc::c_char>,
    env_p: Vec<*const libc::c_char>,
}

// SAFETY: the pointers refer to the launch (read-only after capture) and to entries the creator
// keeps valid (see `new`).
unsafe impl Send for ExecPlan {}
// SAFETY: as above; the plan itself is never changed.
unsafe impl Sync for ExecPlan {}

impl ExecPlan {
    /// A plan from the captured launch plus extra environment entries (`NAME=value`).
    ///
    /// # Safety
    /// Each pointer in `extra` must point to a NUL-terminated entry whenever `exec_into` runs
    /// (its contents may change in between: a revival writes them at the time).
    pub unsafe fn new(launch: &'static Launch, extra: &[*const libc::c_char]) -> ExecPlan {
        let mut argv_p: Vec<_> = launch.argv.iter().map(|s| s.as_ptr()).collect();
        argv_p.push(core::ptr::null());
        let mut env_p: Vec<_> = launch.env.iter().map(|s| s.as_ptr()).chain(extra.iter().copied()).collect();
        env_p.push(core::ptr::null());
        ExecPlan { launch, argv_p, env_p }
    }

    /// The executable, shown.
    pub fn exe(&self) -> crate::log::Lossy<'_> {
        crate::log::Lossy(self.launch.exe.to_bytes())
    }

    /// Restores the launch (stdio and original fds, cwd, stdin offset, signal state), closes every
    /// other fd at exec except `keep` (the next generation inherits those), and execs.
    /// Async-signal-safe. Returns only if execve failed (errno set).
    pub fn exec_into(&self, keep: &[libc::c_int]) {
        let launch = self.launch;
        use crate::real;
        use core::sync::atomic::Ordering;
        // SAFETY: raw syscalls on fds and memory prepared beforehand.
        unsafe {
            for slot in internal::ORIG_BASE..internal::COUNT {
                let saved = internal::SLOTS[slot].load(Ordering::Acquire);
                let num = internal::ORIG_NUM[slot].load(Ordering::Acquire);
                if saved >= 0 && num >= 0 {
                    real::dup3(saved, num, 0);
                }
            }
            libc::chdir(launch.cwd.as_ptr());
            if launch.stdin_offset >= 0 {
                libc::lseek(0, launch.stdin_offset, libc::SEEK_SET);
            }
            real::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int);
            for slot in internal::ORIG_BASE..internal::COUNT {
                let num = internal::ORIG_NUM[slot].load(Ordering::Acquire);
                if num >= 3 {
                    real::fcntl(num, libc::F_SETFD, 0);
                }
            }
            for &fd in keep {
                real::fcntl(fd, libc::F_SETFD, 0);
            }
            for sig in 1..65 {
                if sig == libc::SIGKILL || sig == libc::SIGSTOP || sig == 32 || sig == 33 {
                    continue;
                }
                // Dispositions as at the first start. A caught signal is left alone: execve
                // resets it to the default atomically, while setting SIG_DFL here would let a
                // signal arriving before execve (SIGIO from a closing worker channel, say) kill
                // the process with the default action.
                let mut want = if sig < 64 && launch.ignored & (1 << sig) != 0 { libc::SIG_IGN } else { libc::SIG_DFL };
                // Ignored until the new image is set up (SIG_IGN survives execve, a handler
                // replaces it): SIGHUP until the shim's constructor installs huptime's handler,
                // SIGIO from files the old image left in O_ASYNC mode with this pid as owner
                // (nginx's worker channels, whose workers may exit only after the exec).
                if (sig == libc::SIGHUP || sig == libc::SIGIO) && want == libc::SIG_DFL {
                    want = libc::SIG_IGN;
                }
                let mut cur: libc::sigaction = core::mem::zeroed();
                real::sigaction(sig, core::ptr::null(), &mut cur);
                let caught = cur.sa_sigaction != libc::SIG_IGN && cur.sa_sigaction != libc::SIG_DFL;
                if cur.sa_sigaction != want && !(caught && want == libc::SIG_DFL) {
                    let mut act: libc::sigaction = core::mem::zeroed();
                    act.sa_sigaction = want;
                    real::sigaction(sig, &act, core::ptr::null_mut());
                }
            }
            // Interval timers survive execve: one the old image armed (nginx's master does while
            // its workers stop) would kill the new image with SIGALRM before it has a handler.
            let off: libc::itimerval = core::mem::zeroed();
            for which in [libc::ITIMER_REAL, libc::ITIMER_VIRTUAL, libc::ITIMER_PROF] {
                libc::setitimer(which, &off, core::ptr::null_mut());
            }
            crate::real::pthread_sigmask(libc::SIG_SETMASK, &launch.mask, core::ptr::null_mut());
            real::execve(launch.exe.as_ptr(), self.argv_p.as_ptr(), self.env_p.as_ptr());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;
    use std::os::unix::ffi::OsStringExt;

    fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
        // SAFETY: plain data filled by fstat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid out-pointer.
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    }

    /// The ORIG slot that saved fd `num`, if any.
    fn saved_slot(num: libc::c_int) -> Option<usize> {
        (internal::ORIG_BASE..internal::COUNT).find(|&s| internal::ORIG_NUM[s].load(Ordering::Acquire) == num && internal::get(s) >= 0)
    }

    /// One test: the launch, the saved fds' slots and the log fd are process-wide.
    #[test]
    fn the_launch_is_captured_as_given_and_stdio_can_be_released() {
        assert!(get().is_none());
        let mut given = [-1; 2];
        let mut private = [-1; 2];
        // SAFETY: valid out-arrays.
        unsafe {
            assert_eq!(libc::pipe2(given.as_mut_ptr(), 0), 0);
            assert_eq!(libc::pipe2(private.as_mut_ptr(), libc::O_CLOEXEC), 0);
        }
        let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = std::env::vars_os().collect();
        let skip = vars[0].0.to_str().unwrap().to_string();
        capture(&[&skip]).unwrap();
        let l = get().expect("captured");

        let exe = std::path::Path::new(std::ffi::OsStr::from_bytes(l.exe.to_bytes()));
        assert_eq!(std::fs::canonicalize(exe).unwrap(), std::env::current_exe().unwrap().canonicalize().unwrap());
        let argv: Vec<Vec<u8>> = std::env::args_os().map(|a| a.into_vec()).filter(|a| !a.is_empty()).collect();
        assert_eq!(l.argv.iter().map(|a| a.to_bytes().to_vec()).collect::<Vec<_>>(), argv);
        let env: Vec<&[u8]> = l.env.iter().map(|e| e.to_bytes()).collect();
        assert!(!env.iter().any(|e| e.starts_with(format!("{skip}=").as_bytes())), "{skip} is left out");
        for (k, v) in &vars[1..] {
            let kv = [k.as_bytes(), b"=", v.as_bytes()].concat();
            assert!(env.contains(&kv.as_slice()), "{k:?} is kept");
        }
        assert_eq!(l.cwd.to_bytes(), std::env::current_dir().unwrap().as_os_str().as_bytes());
        // SAFETY: querying this thread's mask into plain data.
        let mask = unsafe {
            let mut m: libc::sigset_t = core::mem::zeroed();
            libc::pthread_sigmask(libc::SIG_BLOCK, core::ptr::null(), &mut m);
            m
        };
        for sig in 1..libc::SIGRTMAX() {
            // SAFETY: membership tests on initialised sets.
            assert_eq!(unsafe { libc::sigismember(&l.mask, sig) }, unsafe { libc::sigismember(&mask, sig) }, "signal {sig}");
        }
        assert_ne!(l.ignored & 1 << libc::SIGPIPE, 0, "the test harness ignores SIGPIPE");
        assert_eq!(l.ignored & 1 << libc::SIGTERM, 0);
        // SAFETY: lseek on fd 0 has no memory effects.
        assert_eq!(l.stdin_offset, unsafe { libc::lseek(0, 0, libc::SEEK_CUR) });

        // Every fd given without close-on-exec has a private copy: stdio, the extra pipe.
        for fd in [0, 1, 2, given[0]] {
            if identity(fd).is_none() {
                continue;
            }
            let s = saved_slot(fd).unwrap_or_else(|| panic!("fd {fd} was not saved"));
            let copy = internal::get(s);
            assert!(copy >= sys::internal_base());
            assert_eq!(identity(copy), identity(fd));
        }
        assert!(saved_slot(private[0]).is_none(), "a close-on-exec fd is not the program's to pass on");
        if let Some(s) = saved_slot(2) {
            assert_eq!(crate::log::LOG_FD.load(Ordering::Relaxed), internal::get(s), "messages go to the saved stderr");
        }

        let extra = CString::new("HUPTIME_TEST=1").unwrap();
        // SAFETY: `extra` outlives the plan.
        let plan = unsafe { ExecPlan::new(l, &[extra.as_ptr()]) };
        assert_eq!(plan.argv_p.len(), l.argv.len() + 1);
        assert!(plan.argv_p.last().unwrap().is_null());
        assert_eq!(plan.env_p.len(), l.env.len() + 2);
        assert_eq!(plan.env_p[l.env.len()], extra.as_ptr());
        assert_eq!(plan.exe().to_string(), exe.to_string_lossy());

        let stdio: Vec<usize> = (0..=2).filter_map(saved_slot).collect();
        let copies: Vec<libc::c_int> = stdio.iter().map(|&s| internal::get(s)).collect();
        release_stdio();
        for (&s, &copy) in stdio.iter().zip(&copies) {
            assert_eq!(internal::get(s), -1);
            assert_eq!(internal::ORIG_NUM[s].load(Ordering::Acquire), -1);
            assert_eq!(crate::fdtable::state(copy), crate::fdtable::FdState::None, "the copy is closed");
        }
        assert!(saved_slot(given[0]).is_some(), "only stdio is released");
        assert_eq!(crate::log::LOG_FD.load(Ordering::Relaxed), 2);
        // SAFETY: closing our own fds.
        unsafe {
            for fd in given.into_iter().chain(private) {
                libc::close(fd);
            }
        }
    }
}
