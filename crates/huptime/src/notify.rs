//! systemd's readiness protocol (sd_notify), spoken by the shim for the unmodified program when
//! huptime runs as a `Type=notify` / `Type=notify-reload` service. The CLI moves `NOTIFY_SOCKET`
//! to `HUPTIME_NOTIFY_SOCKET` so that the program itself never talks to systemd behind our back.
//!
//! - `READY=1` + `MAINPID=`: a generation nobody waits for (the first, or one exec'd in place)
//!   starts serving;
//! - `RELOADING=1` + `MONOTONIC_USEC=`: a SIGHUP starts a restart;
//! - `MAINPID=` + `READY=1`: the new generation of a fork-mode restart is ready (sent by the old
//!   one, still the main process); `READY=1` + `STATUS=`: a restart was rolled back;
//! - `STOPPING=1`: SIGTERM reached the program's main process.
//!
//! Messages are formatted into a stack buffer and sent with one sendto(): no allocation, no lock,
//! so `stopping` is safe in a signal handler.

use crate::config::{self, NOTIFY_VAR};
use crate::log::LineBuf;
use crate::sys;
use core::fmt::Write;
use core::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

static SOCK: AtomicI32 = AtomicI32::new(-1);
static ADDR: OnceLock<(libc::sockaddr_un, libc::socklen_t)> = OnceLock::new();

/// Builds the address of a notify socket: a path, or an abstract name written `@name`.
pub fn address(path: &str) -> Result<(libc::sockaddr_un, libc::socklen_t), &'static str> {
    // SAFETY: sockaddr_un is plain data.
    let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes.len() >= a.sun_path.len() || !(bytes[0] == b'/' || bytes[0] == b'@') {
        return Err("not an absolute path or @abstract name of at most 107 bytes");
    }
    for (i, &b) in bytes.iter().enumerate() {
        a.sun_path[i] = if i == 0 && b == b'@' { 0 } else { b as libc::c_char };
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + bytes.len() + usize::from(bytes[0] == b'/');
    Ok((a, len as libc::socklen_t))
}

/// Opens the sending socket for `path` (HUPTIME_NOTIFY_SOCKET), if any (constructor time).
pub fn configure(path: Option<&str>) {
    let Some(path) = path else { return };
    match address(path) {
        Ok(a) => {
            let _ = ADDR.set(a);
            // SAFETY: plain socket creation.
            let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
            if fd >= 0 {
                SOCK.store(sys::move_internal(fd), Ordering::Release);
            }
        }
        Err(e) => info!("{NOTIFY_VAR}={} is {e}; not notifying systemd", config::shown(path)),
    }
}

/// Whether huptime speaks for the program to systemd.
pub fn enabled() -> bool {
    SOCK.load(Ordering::Acquire) >= 0
}

fn send(msg: &[u8]) {
    let fd = SOCK.load(Ordering::Acquire);
    let Some((addr, len)) = ADDR.get() else { return };
    if fd < 0 {
        return;
    }
    let saved = sys::errno();
    // SAFETY: valid buffer and address; sendto is async-signal-safe.
    unsafe {
        libc::sendto(fd, msg.as_ptr().cast(), msg.len(), libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT, (addr as *const libc::sockaddr_un).cast(), *len);
    }
    sys::set_errno(saved);
}

fn send_fmt(args: core::fmt::Arguments<'_>) {
    if !enabled() {
        return;
    }
    let mut b = LineBuf::new();
    let _ = b.write_fmt(args);
    send(b.as_bytes());
}

/// This process serves and nobody else reports it: it is the service's main process and ready.
pub fn ready_here(generation: u32) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    send_fmt(format_args!("READY=1\nMAINPID={pid}\nSTATUS=serving (generation {generation}, pid {pid})"));
}

/// A restart begins (Type=notify-reload: RELOADING=1 with the current monotonic time).
pub fn reloading(generation: u32) {
    send_fmt(format_args!("RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=restarting: starting generation {generation}", sys::now_us()));
}

/// The new generation `pid` is ready and becomes the main process.
pub fn handed_over(pid: libc::pid_t, generation: u32) {
    send_fmt(format_args!("MAINPID={pid}\nREADY=1\nSTATUS=serving (generation {generation}, pid {pid})"));
}

/// A restart failed; this (old) generation goes on serving.
pub fn rolled_back(why: &str) {
    send_fmt(format_args!("READY=1\nSTATUS=restart rolled back: {why}"));
}

/// SIGTERM reached the main process (signal handler context).
pub fn stopping() {
    send(b"STOPPING=1");
}
