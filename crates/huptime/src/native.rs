//! The napi exports the CLI uses. This library is `dlopen`ed by the CLI (its hooks are not active
//! there), so plain libc calls are fine here.

use napi::{Error, Result, Status};
use napi_derive::napi;
use std::ffi::CString;

fn cstring(what: &str, s: String) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArg, format!("{what} contains a NUL byte")))
}

/// Replaces the calling process with `file` (same pid), after resetting every signal disposition
/// to its default and unblocking all signals, so the program does not inherit the CLI runtime's
/// signal setup. Returns only on failure, with the OS error.
#[napi]
pub fn exec(file: String, argv: Vec<String>, env: Vec<String>) -> Result<()> {
    let file_c = cstring("the program path", file.clone())?;
    let argv_c = argv.into_iter().map(|a| cstring("an argument", a)).collect::<Result<Vec<_>>>()?;
    let env_c = env.into_iter().map(|a| cstring("an environment entry", a)).collect::<Result<Vec<_>>>()?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|s| s.as_ptr()).collect();
    argv_p.push(core::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|s| s.as_ptr()).collect();
    env_p.push(core::ptr::null());
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
        libc::execve(file_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr());
    }
    let e = std::io::Error::last_os_error();
    Err(Error::new(Status::GenericFailure, format!("can't execute {file}: {e}")))
}

/// The version of the native library (must match the CLI's).
#[napi]
pub fn native_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}
