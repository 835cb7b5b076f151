//! fcntl, fcntl64, ioctl: only to keep the fd table's record of a bound socket's blocking mode
//! right (see [`crate::sockmode`]); every call goes to the real function unchanged.
//!
//! fcntl and ioctl are variadic; their optional argument is passed in an integer register on
//! x86_64 and aarch64 whatever its type (int, long or pointer), so it is declared as one c_long
//! and handed on as is.

use crate::{real, sockmode};
use libc::{c_int, c_long, c_ulong};

/// Whether a successful `fcntl(fd, cmd, ...)` may have changed the blocking mode.
fn sets_mode(cmd: c_int) -> bool {
    cmd == libc::F_SETFL
}

/// fcntl(): the real call; after a successful F_SETFL on a bound socket, its mode is noted.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: the program's arguments, handed on unchanged (whether `arg` is a pointer is
    // `cmd`'s business, as in libc).
    let r = unsafe { real::fcntl(fd, cmd, arg) };
    if r == 0 && sets_mode(cmd) && super::active_here() {
        sockmode::changed(fd);
    }
    r
}

/// fcntl64(): as fcntl() (what programs built with _FILE_OFFSET_BITS=64 call).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    // SAFETY: the program's arguments, handed on unchanged (whether `arg` is a pointer is
    // `cmd`'s business, as in libc).
    let r = unsafe { real::fcntl64(fd, cmd, arg) };
    if r == 0 && sets_mode(cmd) && super::active_here() {
        sockmode::changed(fd);
    }
    r
}

/// ioctl(): the real call; after a successful FIONBIO on a bound socket, its mode is noted.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_long) -> c_int {
    // SAFETY: the program's arguments, handed on unchanged (what `arg` points to is `req`'s
    // business, as in libc).
    let r = unsafe { real::ioctl(fd, req, arg) };
    if r == 0 && req == libc::FIONBIO && super::active_here() {
        sockmode::changed(fd);
    }
    r
}
