//! The preload library a restart depends on. ld.so reads `LD_PRELOAD` again at every exec, so the
//! next generation (fork mode) or this process itself (exec mode, revive) loads the library from
//! its path once more, not from the copy mapped now. If that file is gone — its directory removed,
//! as /run/user/UID is when the user's last session ends — the next image would run without the
//! shim: in exec mode that is an outage (its bind() fails on the sockets it was handed). A file
//! that is now a symbolic link or another user's is not loaded either. The CLI writes the library
//! into a private directory under its content hash and replaces only what it wrote, so a regular
//! file of ours at that path is what the CLI put there.

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;

/// The path this library was loaded from (as given in LD_PRELOAD), if the loader says.
fn loaded_from() -> Option<String> {
    // SAFETY: dladdr fills `info` for an address inside this library; dli_fname then points to
    // the loader's NUL-terminated copy of the path, valid while the library stays loaded.
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        if libc::dladdr(loaded_from as *const libc::c_void, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(CStr::from_ptr(info.dli_fname).to_string_lossy().into_owned())
    }
}

/// Checks that the next image will find this library where it was loaded from, still a regular
/// file of this user's; the error says what is wrong with it. A relative path (never the CLI's)
/// is not judged: it depends on the directory the next exec happens in.
pub fn check() -> Result<(), String> {
    let Some(path) = loaded_from().filter(|p| p.starts_with('/')) else { return Ok(()) };
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("the preload library {path} was removed ({} must last as long as the program)", crate::config::CACHE_DIR_VAR));
        }
        Err(e) => return Err(format!("can't check the preload library {path}: {e}")),
    };
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Err(format!("the preload library {path} is now a symbolic link"))
    } else if !meta.is_file() {
        Err(format!("the preload library {path} is not a regular file any more"))
    } else if meta.uid() != me {
        Err(format!("the preload library {path} is now owned by uid {}, not {me}", meta.uid()))
    } else {
        Ok(())
    }
}
