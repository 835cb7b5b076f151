//! The napi exports the CLI uses. This library is `dlopen`ed by the CLI (its hooks are not active
//! there), so plain libc calls are fine here.

use napi::{Error, Result, Status};
use napi_derive::napi;
use std::ffi::CString;

fn cstring(what: &str, s: String) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArg, format!("{what} contains a NUL byte")))
}

/// A program's path, arguments and environment as C strings, with the NULL-terminated pointer
/// arrays execve takes (pointing into the strings this owns).
pub struct ExecArgs {
    /// The program's path.
    pub file: CString,
    /// argv, NULL-terminated.
    pub argv: Vec<*const libc::c_char>,
    /// envp, NULL-terminated.
    pub env: Vec<*const libc::c_char>,
    _strings: Vec<CString>,
}

impl ExecArgs {
    /// Converts them, refusing a NUL byte inside any of them.
    pub fn new(file: &str, argv: Vec<String>, env: Vec<String>) -> Result<ExecArgs> {
        let file = cstring("the program path", file.to_string())?;
        let argv_c = argv.into_iter().map(|a| cstring("an argument", a)).collect::<Result<Vec<_>>>()?;
        let env_c = env.into_iter().map(|a| cstring("an environment entry", a)).collect::<Result<Vec<_>>>()?;
        let pointers = |v: &[CString]| v.iter().map(|s| s.as_ptr()).chain([core::ptr::null()]).collect::<Vec<_>>();
        let (argv, env) = (pointers(&argv_c), pointers(&env_c));
        // Moving a CString does not move its heap bytes: the pointers stay valid.
        Ok(ExecArgs { file, argv, env, _strings: argv_c.into_iter().chain(env_c).collect() })
    }
}

/// Replaces the calling process with `file` (same pid), after resetting every signal disposition
/// to its default and unblocking all signals, so the program does not inherit the CLI runtime's
/// signal setup. Returns only on failure, with the OS error.
#[napi]
pub fn exec(file: String, argv: Vec<String>, env: Vec<String>) -> Result<()> {
    let args = ExecArgs::new(&file, argv, env)?;
    // SAFETY: resetting signal state and exec'ing with valid NUL-terminated arrays.
    unsafe {
        for sig in 1..65 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            libc::signal(sig, libc::SIG_DFL);
        }
        let mut set: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, core::ptr::null_mut());
        libc::execve(args.file.as_ptr(), args.argv.as_ptr(), args.env.as_ptr());
    }
    let e = std::io::Error::last_os_error();
    Err(Error::new(Status::GenericFailure, format!("can't execute {file}: {e}")))
}

/// The version of the native library (must match the CLI's).
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The TypeScript module of the protocols between the CLI and the shim (the `HUPTIME_*` names, the
/// status file, the handover record): scripts/build writes it to src/generated/protocol.ts.
#[napi]
pub fn protocol_typescript() -> String {
    crate::typescript::module()
}

/// Makes this process a child subreaper: orphaned descendants (later generations of the
/// instances it started, whose old generation exited) are reparented to it, not to init.
#[napi]
pub fn set_child_subreaper() -> Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(Error::new(Status::GenericFailure, format!("can't become a child subreaper: {e}")));
    }
    Ok(())
}

/// Starts `file` as a child process (posix_spawn) with default signal dispositions and an empty
/// signal mask; returns its pid.
#[napi]
pub fn spawn_program(file: String, argv: Vec<String>, env: Vec<String>) -> Result<i32> {
    let file_c = cstring("the program path", file.clone())?;
    let argv_c = argv.into_iter().map(|a| cstring("an argument", a)).collect::<Result<Vec<_>>>()?;
    let env_c = env.into_iter().map(|a| cstring("an environment entry", a)).collect::<Result<Vec<_>>>()?;
    let mut argv_p: Vec<*mut libc::c_char> = argv_c.iter().map(|s| s.as_ptr() as *mut _).collect();
    argv_p.push(core::ptr::null_mut());
    let mut env_p: Vec<*mut libc::c_char> = env_c.iter().map(|s| s.as_ptr() as *mut _).collect();
    env_p.push(core::ptr::null_mut());
    let mut pid: libc::pid_t = 0;
    // SAFETY: attributes initialised before use and destroyed after; arrays NUL-terminated.
    let r = unsafe {
        let mut attr: libc::posix_spawnattr_t = core::mem::zeroed();
        libc::posix_spawnattr_init(&mut attr);
        let mut all: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut none: libc::sigset_t = core::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::posix_spawnattr_setsigdefault(&mut attr, &all);
        libc::posix_spawnattr_setsigmask(&mut attr, &none);
        libc::posix_spawnattr_setflags(&mut attr, (libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK) as libc::c_short);
        let r = libc::posix_spawn(&mut pid, file_c.as_ptr(), core::ptr::null(), &attr, argv_p.as_ptr(), env_p.as_ptr());
        libc::posix_spawnattr_destroy(&mut attr);
        r
    };
    if r != 0 {
        let e = std::io::Error::from_raw_os_error(r);
        return Err(Error::new(Status::GenericFailure, format!("can't start {file}: {e}")));
    }
    Ok(pid)
}

/// A child that ended.
#[napi(object)]
pub struct Ended {
    /// Its pid.
    pub pid: i32,
    /// Exit status, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

/// Reaps one ended child, if any (never blocks).
#[napi]
pub fn reap_child() -> Option<Ended> {
    let mut status: libc::c_int = 0;
    // SAFETY: valid out-pointer.
    let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
    if pid <= 0 {
        return None;
    }
    let (code, signal) = if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    };
    Some(Ended { pid, code, signal })
}

/// Sends one sd_notify message (`READY=1`, `RELOADING=1`, ...) to the notify socket `socket` (a
/// path or an `@abstract` name), as the service's main process. Used when huptime itself stays
/// the main process (`--multi`, `--listen-fds`).
#[napi]
pub fn sd_notify(socket: String, message: String) -> Result<()> {
    let (addr, len) = crate::notify::address(&socket).map_err(|e| Error::new(Status::InvalidArg, format!("notify socket {socket:?} is {e}")))?;
    // SAFETY: a datagram socket used for one sendto with a valid address, then closed.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::new(Status::GenericFailure, format!("can't notify {socket}: {e}")));
        }
        let r = libc::sendto(fd, message.as_ptr().cast(), message.len(), libc::MSG_NOSIGNAL, (&addr as *const libc::sockaddr_un).cast(), len);
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        if r < 0 {
            return Err(Error::new(Status::GenericFailure, format!("can't notify {socket}: {e}")));
        }
    }
    Ok(())
}

/// CLOCK_MONOTONIC in microseconds (sd_notify's MONOTONIC_USEC).
#[napi]
pub fn monotonic_usec() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1000
}

/// A process's listening sockets and client connections (from the kernel's socket tables).
#[napi(object)]
pub struct SocketSummary {
    /// `proto address` of each listening socket: `tcp 127.0.0.1:8080`, `unix /run/x.sock`.
    pub listening: Vec<String>,
    /// Connected client sockets on one of its listening addresses.
    pub connections: u32,
}

/// The sockets of `pid`, or null when it is gone or not readable (another user's).
#[napi]
pub fn process_sockets(pid: i32) -> Option<SocketSummary> {
    crate::procnet::of_pid(pid).map(|s| SocketSummary { listening: s.listening, connections: s.connections })
}

/// Why LD_PRELOAD would not reach a program (see `reach.rs`).
#[napi(object)]
pub struct PreloadObstacle {
    /// The file the reason belongs to: the program, or the interpreter of a `#!` script.
    pub file: String,
    /// `static`, `setuid`, `setgid`, `capabilities`, or `caller-ids` (huptime's own effective
    /// ids differ from its real ones).
    pub reason: String,
    /// The uid (setuid) or gid (setgid) the program would run as.
    pub id: Option<u32>,
}

/// Why the program at `path`, executed by this process, would not get the preload library, or
/// null when it would (or when the file cannot be inspected; the exec then says why).
#[napi]
pub fn preload_obstacle(path: String) -> Option<PreloadObstacle> {
    use crate::reach::Obstacle;
    let (file, why) = crate::reach::inspect(std::path::Path::new(&path))?;
    let (reason, id) = match why {
        Obstacle::Static => ("static", None),
        Obstacle::Setuid(uid) => ("setuid", Some(uid)),
        Obstacle::Setgid(gid) => ("setgid", Some(gid)),
        Obstacle::Capabilities => ("capabilities", None),
        Obstacle::CallerIds => ("caller-ids", None),
    };
    Some(PreloadObstacle { file: file.to_string_lossy().into_owned(), reason: reason.to_string(), id })
}

/// Replaces the CLI with huptime's init (see `pid1.rs`): the huptime executable again, which the
/// preload library (LD_PRELOAD in `env`) takes over before the Bun runtime starts; it starts
/// `file` as its child and stays its init. SIGKILL to what is left `stop_timeout_ms` after a stop
/// signal (0: never). Returns only on failure.
#[napi]
pub fn exec_init(file: String, argv: Vec<String>, env: Vec<String>, stop_timeout_ms: i64) -> Result<()> {
    let why = crate::pid1_plan::exec_init(&file, &argv, &env, stop_timeout_ms.max(0) as u64);
    Err(Error::new(Status::GenericFailure, why))
}
