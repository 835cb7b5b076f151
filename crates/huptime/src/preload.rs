//! The preload library a restart depends on. ld.so reads `LD_PRELOAD` again at every exec, so the
//! next generation (fork mode) or this process itself (exec mode, revive) loads the library from
//! its path once more, not from the copy mapped now. If that file is gone — its directory removed,
//! as /run/user/UID is when the user's last session ends — the next image would run without the
//! shim: in exec mode that is an outage (its bind() fails on the sockets it was handed). A file
//! that is now a symbolic link or another user's is not loaded either. The CLI writes the library
//! into a private directory under its content hash and replaces only what it wrote, so a regular
//! file of ours at that path is what the CLI put there.

use crate::log::{Lossy, OsError};
use core::fmt;
use std::ffi::{CStr, CString};
use std::sync::OnceLock;

/// The library's absolute path, captured at start-up so that [`check`] needs no allocation.
static PATH: OnceLock<Option<CString>> = OnceLock::new();

/// The path this library was loaded from (as given in LD_PRELOAD), if the loader says.
pub fn loaded_from() -> Option<CString> {
    // SAFETY: dladdr fills `info` for an address inside this library; dli_fname then points to
    // the loader's NUL-terminated copy of the path, valid while the library stays loaded.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        if libc::dladdr(loaded_from as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(CStr::from_ptr(info.dli_fname).to_owned())
    }
}

/// Notes where the library was loaded from (constructor time). A relative path (never the
/// CLI's) is not judged: it depends on the directory the next exec happens in.
pub fn capture() {
    let _ = PATH.set(loaded_from().filter(|p| p.to_bytes().starts_with(b"/")));
}

/// What is wrong with the library's path.
#[derive(Debug)]
pub enum Problem {
    /// It is gone.
    Removed(&'static CStr),
    /// lstat failed otherwise.
    Unreadable(&'static CStr, OsError),
    /// It is a symbolic link now.
    Symlink(&'static CStr),
    /// It is something else than a regular file.
    NotAFile(&'static CStr),
    /// It belongs to another user (its uid, ours).
    Owner(&'static CStr, u32, u32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |p: &'static CStr| Lossy(p.to_bytes());
        match *self {
            Problem::Removed(p) => {
                write!(f, "the preload library {} was removed ({} must last as long as the program)", shown(p), crate::config::CACHE_DIR_VAR)
            }
            Problem::Unreadable(p, e) => write!(f, "can't check the preload library {}: {e}", shown(p)),
            Problem::Symlink(p) => write!(f, "the preload library {} is now a symbolic link", shown(p)),
            Problem::NotAFile(p) => write!(f, "the preload library {} is not a regular file any more", shown(p)),
            Problem::Owner(p, uid, me) => write!(f, "the preload library {} is now owned by uid {uid}, not {me}", shown(p)),
        }
    }
}

/// Checks that the next image will find this library where it was loaded from, still a regular
/// file of this user's. Allocation- and lock-free (a revival may run in a signal handler).
pub fn check() -> Result<(), Problem> {
    let Some(Some(path)) = PATH.get() else { return Ok(()) };
    judge(path.as_c_str())
}

/// What [`check`] finds at `path`.
fn judge(path: &'static CStr) -> Result<(), Problem> {
    // SAFETY: lstat on a NUL-terminated path into plain data; geteuid has no preconditions.
    let (r, st, me) = unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::lstat(path.as_ptr(), &mut st), st, libc::geteuid())
    };
    match (r, st.st_mode & libc::S_IFMT) {
        (0, libc::S_IFLNK) => Err(Problem::Symlink(path)),
        (0, libc::S_IFREG) if st.st_uid != me => Err(Problem::Owner(path, st.st_uid, me)),
        (0, libc::S_IFREG) => Ok(()),
        (0, _) => Err(Problem::NotAFile(path)),
        _ if crate::sys::errno() == libc::ENOENT => Err(Problem::Removed(path)),
        _ => Err(Problem::Unreadable(path, OsError::last())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked(p: &std::path::Path) -> &'static CStr {
        use std::os::unix::ffi::OsStrExt;
        Box::leak(CString::new(p.as_os_str().as_bytes()).unwrap().into_boxed_c_str())
    }

    /// One test: the captured path is process-wide.
    #[test]
    fn the_library_is_found_where_it_was_loaded_from() {
        assert!(check().is_ok(), "nothing captured: nothing to check");
        let from = loaded_from().expect("the loader knows this image");
        let from = std::path::Path::new(from.to_str().unwrap());
        assert_eq!(from.canonicalize().unwrap(), std::env::current_exe().unwrap().canonicalize().unwrap());
        capture();
        assert!(check().is_ok(), "this image is a regular file of ours");
    }

    #[test]
    fn each_problem_with_the_path_is_named() {
        // SAFETY: getpid/geteuid have no preconditions.
        let (pid, me) = unsafe { (libc::getpid(), libc::geteuid()) };
        let dir = std::env::temp_dir().join(format!("huptime-preload-test-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let lib = dir.join("libhuptime.so");
        std::fs::write(&lib, b"not really a library").unwrap();
        assert!(judge(leaked(&lib)).is_ok());

        let link = dir.join("link.so");
        std::os::unix::fs::symlink(&lib, &link).unwrap();
        assert!(matches!(judge(leaked(&link)), Err(Problem::Symlink(_))));
        assert!(matches!(judge(leaked(&dir)), Err(Problem::NotAFile(_))));
        let gone = judge(leaked(&dir.join("gone.so")));
        assert!(matches!(gone, Err(Problem::Removed(_))));
        assert!(gone.unwrap_err().to_string().contains(crate::config::CACHE_DIR_VAR), "says what must last");
        let under_a_file = judge(leaked(&lib.join("x")));
        assert!(matches!(under_a_file, Err(Problem::Unreadable(_, _))));
        assert!(under_a_file.unwrap_err().to_string().starts_with("can't check the preload library "));

        // Another user's file: ours given away (as root), or one of root's (as anyone else).
        let foreign = if me == 0 {
            let c = leaked(&lib);
            // SAFETY: chown of a NUL-terminated path.
            assert_eq!(unsafe { libc::chown(c.as_ptr(), 1, 1) }, 0);
            lib.clone()
        } else {
            std::path::PathBuf::from("/etc/passwd")
        };
        match judge(leaked(&foreign)) {
            Err(p @ Problem::Owner(_, uid, mine)) => {
                assert_eq!((uid == me, mine), (false, me));
                assert!(p.to_string().contains(&format!("owned by uid {uid}, not {me}")));
            }
            other => panic!("{other:?}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
