//! napi exports for `huptime --listen-fds`, where huptime stays the parent of a program that the
//! preload cannot reach (a static binary) and hands it sockets by systemd's LISTEN_FDS protocol:
//! listening sockets, starting a generation with them at fds 3.., a pipe for its stderr, and a
//! notify socket it reports readiness on. Loaded as the CLI's native module only.

use napi::bindgen_prelude::Buffer;
use napi::{Error, Result, Status};
use napi_derive::napi;
use std::ffi::CString;

fn os_err(what: String) -> Error {
    Error::new(Status::GenericFailure, format!("{what}: {}", std::io::Error::last_os_error()))
}

fn cstring(what: &str, s: String) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Status::InvalidArg, format!("{what} contains a NUL byte")))
}

/// Opens a listening socket: `family` is "ipv4", "ipv6" or "unix"; `host` an IP address (or the
/// socket path for unix); `port` the TCP port. SO_REUSEADDR, close-on-exec, backlog 4096.
/// Returns the fd. `label` names the address in error messages.
#[napi]
pub fn listen_socket(family: String, host: String, port: u32, label: String) -> Result<i32> {
    let (domain, addr): (i32, Vec<u8>) = match family.as_str() {
        "ipv4" => {
            let ip: std::net::Ipv4Addr = host.parse().map_err(|_| Error::new(Status::InvalidArg, format!("{label}: {host} is not an IPv4 address")))?;
            // SAFETY: sockaddr_in is plain data.
            let mut a: libc::sockaddr_in = unsafe { core::mem::zeroed() };
            a.sin_family = libc::AF_INET as libc::sa_family_t;
            a.sin_port = (port as u16).to_be();
            a.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
            // SAFETY: viewing a plain struct as bytes.
            (libc::AF_INET, unsafe { core::slice::from_raw_parts((&a as *const libc::sockaddr_in).cast::<u8>(), core::mem::size_of_val(&a)) }.to_vec())
        }
        "ipv6" => {
            let ip: std::net::Ipv6Addr = host.parse().map_err(|_| Error::new(Status::InvalidArg, format!("{label}: {host} is not an IPv6 address")))?;
            // SAFETY: sockaddr_in6 is plain data.
            let mut a: libc::sockaddr_in6 = unsafe { core::mem::zeroed() };
            a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            a.sin6_port = (port as u16).to_be();
            a.sin6_addr.s6_addr = ip.octets();
            // SAFETY: viewing a plain struct as bytes.
            (libc::AF_INET6, unsafe { core::slice::from_raw_parts((&a as *const libc::sockaddr_in6).cast::<u8>(), core::mem::size_of_val(&a)) }.to_vec())
        }
        "unix" => {
            // SAFETY: sockaddr_un is plain data.
            let mut a: libc::sockaddr_un = unsafe { core::mem::zeroed() };
            a.sun_family = libc::AF_UNIX as libc::sa_family_t;
            if host.is_empty() || host.len() >= a.sun_path.len() {
                return Err(Error::new(Status::InvalidArg, format!("{label}: the socket path must be 1 to 107 bytes long")));
            }
            for (i, b) in host.bytes().enumerate() {
                a.sun_path[i] = b as libc::c_char;
            }
            let len = core::mem::size_of::<libc::sa_family_t>() + host.len() + 1;
            // SAFETY: viewing a plain struct as bytes.
            (libc::AF_UNIX, unsafe { core::slice::from_raw_parts((&a as *const libc::sockaddr_un).cast::<u8>(), len) }.to_vec())
        }
        other => return Err(Error::new(Status::InvalidArg, format!("{label}: unknown address family {other}"))),
    };
    // SAFETY: socket setup on a fresh fd with valid buffers; the fd is closed on every error path.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(os_err(format!("can't create a socket for {label}")));
        }
        let one: libc::c_int = 1;
        if domain != libc::AF_UNIX {
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, (&one as *const libc::c_int).cast(), 4);
        }
        if domain == libc::AF_INET6 {
            libc::setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, (&one as *const libc::c_int).cast(), 4);
        }
        if libc::bind(fd, addr.as_ptr().cast(), addr.len() as libc::socklen_t) != 0 {
            let e = os_err(format!("can't listen on {label}"));
            libc::close(fd);
            return Err(e);
        }
        if libc::listen(fd, 4096) != 0 {
            let e = os_err(format!("can't listen on {label}"));
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

/// Starts `file` as a child in its own process group with `fds` at 3, 4, ... (LISTEN_FDS
/// order), `stderr_fd` as its stderr (-1: inherit), LISTEN_PID set to its own pid, default signal
/// dispositions, an empty signal mask and SIGTERM when huptime dies. `env` should already hold
/// LISTEN_FDS, LISTEN_FDNAMES and NOTIFY_SOCKET. Returns the pid.
#[napi]
pub fn spawn_with_fds(file: String, argv: Vec<String>, env: Vec<String>, fds: Vec<i32>, stderr_fd: i32) -> Result<i32> {
    let file_c = cstring("the program path", file.clone())?;
    let argv_c = argv.into_iter().map(|a| cstring("an argument", a)).collect::<Result<Vec<_>>>()?;
    let mut env_c = env.into_iter().filter(|e| !e.starts_with("LISTEN_PID=")).map(|a| cstring("an environment entry", a)).collect::<Result<Vec<_>>>()?;
    // Filled in by the child with its own pid (no allocation after fork).
    env_c.push(CString::new("LISTEN_PID=           ").unwrap_or_default());
    let pid_slot = env_c.len() - 1;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|s| s.as_ptr()).collect();
    argv_p.push(core::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|s| s.as_ptr()).collect();
    env_p.push(core::ptr::null());
    let pid_buf = env_c[pid_slot].as_ptr() as *mut u8;
    // SAFETY: between fork and exec the child calls only async-signal-safe functions and writes
    // into memory that fork copied.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_err(format!("can't start {file}")));
    }
    if pid == 0 {
        // SAFETY: child side, see above.
        unsafe { child_exec(&file_c, &argv_p, &env_p, pid_buf, &fds, stderr_fd) }
    }
    Ok(pid)
}

/// The child side of `spawn_with_fds`; never returns.
///
/// # Safety
/// Only in the child of fork(), before anything else runs in it: it makes only async-signal-safe
/// calls. `pid_buf` points to a writable `LISTEN_PID=` entry with room for ten digits and a NUL
/// after the `=`, and `argv` and `env` are NULL-terminated arrays of NUL-terminated strings (all
/// of it memory fork copied, the child's own).
unsafe fn child_exec(file: &CString, argv: &[*const libc::c_char], env: &[*const libc::c_char], pid_buf: *mut u8, fds: &[i32], stderr_fd: i32) -> ! {
    // SAFETY: setpgid, prctl and getpid take integers and are async-signal-safe.
    let mut pid = unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        libc::getpid() as u32
    };
    // LISTEN_PID=<pid>: digits written after the '='.
    let mut digits = [0u8; 10];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (pid % 10) as u8;
        n += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    let start = "LISTEN_PID=".len();
    // SAFETY: at most ten digits and a NUL after the '=', within the entry (the contract above).
    unsafe {
        for i in 0..n {
            *pid_buf.add(start + i) = digits[n - 1 - i];
        }
        *pid_buf.add(start + n) = 0;
    }
    // Move the sockets out of the way first (a source may sit where another one goes).
    let mut high = [0i32; 64];
    let count = fds.len().min(64);
    for (i, &fd) in fds.iter().take(count).enumerate() {
        // SAFETY: F_DUPFD_CLOEXEC takes an integer argument.
        high[i] = unsafe { crate::real::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    }
    // SAFETY: dup2 and close on integers, async-signal-safe; execve gets NULL-terminated arrays (the contract above); write of a static
    // buffer, then _exit.
    unsafe {
        if stderr_fd >= 0 {
            libc::dup2(stderr_fd, 2);
        }
        for (i, &h) in high.iter().take(count).enumerate() {
            libc::dup2(h, 3 + i as i32); // dup2 clears close-on-exec on the target
            libc::close(h);
        }
        crate::sys::default_signals();
        libc::execve(file.as_ptr(), argv.as_ptr(), env.as_ptr());
        let msg = b"huptime: can't execute the program\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// A close-on-exec pipe: `[read end (non-blocking), write end]`, of 1 MiB where the system allows
/// it (fs.pipe-max-size; else the default 64 KiB): what a program writes to its stderr waits there
/// between two looks of huptime's, rather than blocking the program.
#[napi]
pub fn make_pipe() -> Result<Vec<i32>> {
    let mut p = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(os_err("can't create a pipe".into()));
    }
    // SAFETY: plain fcntl on our own fds.
    unsafe {
        crate::real::fcntl(p[0], libc::F_SETFL, libc::O_NONBLOCK as libc::c_long);
        crate::real::fcntl(p[0], libc::F_SETPIPE_SZ, 1 << 20);
    }
    Ok(vec![p[0], p[1]])
}

/// Reads what is available on a non-blocking fd: bytes, an empty buffer when nothing is there
/// yet, or null at end of file.
#[napi]
pub fn read_available(fd: i32) -> Option<Buffer> {
    let mut buf = vec![0u8; 65536];
    // SAFETY: reading into a buffer of the given size.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n == 0 {
        return None;
    }
    buf.truncate(n.max(0) as usize);
    Some(buf.into())
}

/// Closes an fd of this process.
#[napi]
pub fn close_fd(fd: i32) {
    // SAFETY: closing an fd the CLI owns.
    unsafe { libc::close(fd) };
}

/// Binds a datagram notify socket at `path` (credentials passed with each message,
/// non-blocking, close-on-exec) for the programs huptime starts; returns the fd.
#[napi]
pub fn notify_socket(path: String) -> Result<i32> {
    let (addr, len) = crate::notify::address(&path).map_err(|e| Error::new(Status::InvalidArg, format!("notify socket {path:?} is {e}")))?;
    // SAFETY: socket setup with a valid address; the fd is closed on error.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(os_err(format!("can't create the notify socket {path}")));
        }
        let one: libc::c_int = 1;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_PASSCRED, (&one as *const libc::c_int).cast(), 4);
        if libc::bind(fd, (&addr as *const libc::sockaddr_un).cast(), len) != 0 {
            let e = os_err(format!("can't bind the notify socket {path}"));
            libc::close(fd);
            return Err(e);
        }
        Ok(fd)
    }
}

/// One sd_notify message and who sent it.
#[napi(object)]
pub struct Notice {
    /// Sender's pid (from its credentials, which the kernel checks; 0 without them).
    pub pid: i32,
    /// Sender's uid at the time it sent (from its credentials; null without them).
    pub uid: Option<u32>,
    /// The message (`KEY=value` lines).
    pub message: String,
}

/// Receives one pending message from a notify socket, if any (never blocks). Messages truncated
/// to 4096 bytes; whom to believe is the caller's decision (see src/notify-access.ts).
#[napi]
pub fn recv_notice(fd: i32) -> Option<Notice> {
    let mut buf = [0u8; 4096];
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut msg = crate::sys::msghdr(&mut iov, &mut cbuf);
    // SAFETY: every pointer in `msg` refers to a live local buffer.
    unsafe {
        let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
        if n < 0 {
            return None;
        }
        let (mut pid, mut uid) = (0, None);
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_CREDENTIALS {
                let cred = core::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::ucred>());
                pid = cred.pid;
                uid = Some(cred.uid);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
        Some(Notice { pid, uid, message: String::from_utf8_lossy(&buf[..n as usize]).into_owned() })
    }
}
