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

/// A new status line (STATUS= alone): a restart's receipt in short.
pub fn status(text: &str) {
    send_fmt(format_args!("STATUS={text}"));
}

/// SIGTERM reached the main process (signal handler context).
pub fn stopping() {
    send(b"STOPPING=1");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Receives datagrams on `fd` until one is `want` (another test's lifecycle notices may share
    /// the socket); panics if none comes within the socket's receive timeout.
    fn receive_until(fd: libc::c_int, want: impl Fn(&str) -> bool) -> String {
        let mut buf = [0u8; 2048];
        loop {
            // SAFETY: receiving into a valid buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            assert!(n >= 0, "no notice arrived: {}", std::io::Error::last_os_error());
            let msg = String::from_utf8_lossy(&buf[..n as usize]).into_owned();
            if want(&msg) {
                return msg;
            }
        }
    }

    fn bound_dgram_socket(addr: &(libc::sockaddr_un, libc::socklen_t)) -> libc::c_int {
        // SAFETY: socket creation, a bind to a valid address, a timeout option from a valid struct.
        unsafe {
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0);
            assert_eq!(libc::bind(fd, (&addr.0 as *const libc::sockaddr_un).cast(), addr.1), 0, "bind: {}", std::io::Error::last_os_error());
            let tv = libc::timeval { tv_sec: 20, tv_usec: 0 };
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&tv as *const libc::timeval).cast(), core::mem::size_of::<libc::timeval>() as libc::socklen_t);
            fd
        }
    }

    #[test]
    fn addresses_of_paths_and_abstract_names() {
        let (a, len) = address("/run/systemd/notify").unwrap();
        assert_eq!(a.sun_family, libc::AF_UNIX as libc::sa_family_t);
        let path: Vec<u8> = a.sun_path[..19].iter().map(|&c| c as u8).collect();
        assert_eq!(path, b"/run/systemd/notify");
        assert_eq!(a.sun_path[19], 0);
        assert_eq!(len as usize, 2 + 19 + 1, "a path's length counts its terminating NUL");

        let (a, len) = address("@sd").unwrap();
        assert_eq!([a.sun_path[0], a.sun_path[1], a.sun_path[2]], [0, b's' as libc::c_char, b'd' as libc::c_char]);
        assert_eq!(len as usize, 2 + 3, "an abstract name's length is exactly its bytes");

        let longest = format!("/{}", "x".repeat(106));
        assert!(address(&longest).is_ok());
        assert!(address(&format!("{longest}x")).is_err(), "108 bytes do not fit with the NUL");
        assert!(address("").is_err());
        assert!(address("run/notify").is_err(), "relative paths are refused");
    }

    #[test]
    fn an_abstract_address_reaches_the_socket_bound_to_it() {
        // SAFETY: getpid has no preconditions.
        let name = format!("@huptime-notify-test-{}-{}", unsafe { libc::getpid() }, sys::now_us());
        let addr = address(&name).unwrap();
        let r = bound_dgram_socket(&addr);
        // SAFETY: a socket, one sendto of a valid buffer to a valid address, closes of our fds.
        unsafe {
            let s = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            let sent = libc::sendto(s, b"x".as_ptr().cast(), 1, 0, (&addr.0 as *const libc::sockaddr_un).cast(), addr.1);
            assert_eq!(sent, 1, "sendto {name}: {}", std::io::Error::last_os_error());
            assert_eq!(receive_until(r, |_| true), "x");
            libc::close(s);
            libc::close(r);
        }
    }

    /// One test: the sending socket is process-wide.
    #[test]
    fn each_notice_is_the_exact_sd_notify_message() {
        configure(None);
        assert!(!enabled());
        configure(Some("relative/notify"));
        assert!(!enabled(), "a bad address configures nothing");
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        let path = std::env::temp_dir().join(format!("huptime-notify-test-{pid}.sock"));
        let _ = std::fs::remove_file(&path);
        let path_str = path.to_str().unwrap();
        let r = bound_dgram_socket(&address(path_str).unwrap());
        configure(Some(path_str));
        assert!(enabled());
        let fd = SOCK.load(Ordering::Acquire);
        assert!(fd >= sys::internal_base(), "the socket is in the shim's fd range");
        // SAFETY: plain fcntl.
        assert_ne!(unsafe { libc::fcntl(fd, libc::F_GETFD) } & libc::FD_CLOEXEC, 0);

        ready_here(4242);
        let want = format!("READY=1\nMAINPID={pid}\nSTATUS=serving (generation 4242, pid {pid})");
        receive_until(r, |m| m == want);

        let before = sys::now_us();
        reloading(4243);
        let after = sys::now_us();
        let msg = receive_until(r, |m| m.ends_with("\nSTATUS=restarting: starting generation 4243"));
        let usec: u64 = msg.strip_prefix("RELOADING=1\nMONOTONIC_USEC=").and_then(|m| m.split('\n').next()).and_then(|u| u.parse().ok()).unwrap_or_else(|| panic!("{msg:?}"));
        assert!((before..=after).contains(&usec), "{usec} not in {before}..={after}");

        handed_over(31337, 4244);
        receive_until(r, |m| m == "MAINPID=31337\nREADY=1\nSTATUS=serving (generation 4244, pid 31337)");

        rolled_back("the unit test said no");
        receive_until(r, |m| m == "READY=1\nSTATUS=restart rolled back: the unit test said no");

        sys::set_errno(libc::EINTR);
        stopping();
        assert_eq!(sys::errno(), libc::EINTR, "a signal handler's errno is kept");
        receive_until(r, |m| m == "STOPPING=1");

        // SAFETY: closing our own fd.
        unsafe { libc::close(r) };
        let _ = std::fs::remove_file(&path);
    }
}
