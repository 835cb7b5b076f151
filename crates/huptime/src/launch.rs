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
