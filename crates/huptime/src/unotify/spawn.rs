//! Starting a generation under the filter: fork; the child (in its own process group, SIGTERM
//! when huptime dies, stderr to huptime's pipe, default signals) installs the filter, sends the
//! notification fd to huptime over a socketpair (SCM_RIGHTS), and execs the program. huptime
//! receives the fd before the program runs a single instruction of its own, so that no bind() of
//! it can go unanswered. The filter and the notification fd pass on to the program's children:
//! their bind()/listen() calls are answered the same way (they are part of the generation).

use super::filter::Sends;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Starts `file` (argv, env: NULL-terminated arrays of C strings) under the filter for `sends`
/// with `stderr_fd` as its stderr (-1: inherited); returns its pid and the notification fd.
pub fn start(file: &CString, argv: &[*const libc::c_char], env: &[*const libc::c_char], stderr_fd: libc::c_int, sends: Sends) -> Result<(i32, OwnedFd), String> {
    let mut pair = [-1; 2];
    // SAFETY: valid out-array.
    if unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, pair.as_mut_ptr()) } != 0 {
        return Err(os_error("can't create a socketpair"));
    }
    // SAFETY: fresh fds we own.
    let (ours, theirs) = unsafe { (OwnedFd::from_raw_fd(pair[0]), OwnedFd::from_raw_fd(pair[1])) };
    // SAFETY: between fork and exec the child makes only async-signal-safe calls on memory that
    // fork copied (see `child`).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("can't fork"));
    }
    if pid == 0 {
        // SAFETY: the child of fork, see above.
        unsafe { child(file, argv, env, stderr_fd, theirs.as_raw_fd(), sends) }
    }
    drop(theirs);
    match receive(&ours) {
        Ok(fd) => Ok((pid, fd)),
        Err(e) => {
            // SAFETY: reaping our own child, which exits right after it failed.
            unsafe { libc::waitpid(pid, core::ptr::null_mut(), 0) };
            Err(e)
        }
    }
}

/// The notification fd the child sends, or why it could not.
fn receive(sock: &OwnedFd) -> Result<OwnedFd, String> {
    let mut errno = [0u8; 4];
    let mut cbuf = [0u64; 4];
    let mut iov = libc::iovec { iov_base: errno.as_mut_ptr().cast(), iov_len: 4 };
    let mut msg = crate::sys::msghdr(&mut iov, &mut cbuf);
    // SAFETY: every pointer in `msg` refers to a live local buffer.
    unsafe {
        let n = loop {
            let n = libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC);
            if n >= 0 || crate::sys::errno() != libc::EINTR {
                break n;
            }
        };
        if n < 0 {
            return Err(os_error("can't receive the seccomp notification fd"));
        }
        let c = libc::CMSG_FIRSTHDR(&msg);
        if !c.is_null() && (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
            return Ok(OwnedFd::from_raw_fd(core::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>())));
        }
        if n == 4 {
            let e = std::io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            return Err(format!("can't install the seccomp filter: {e}"));
        }
        Err("the program's process ended before it installed the seccomp filter".into())
    }
}

/// The child side of [`start`]; never returns.
///
/// # Safety
/// Only in the child of fork(), before anything else runs in it: it makes only async-signal-safe
/// calls. `argv` and `env` are NULL-terminated arrays of NUL-terminated strings.
unsafe fn child(file: &CString, argv: &[*const libc::c_char], env: &[*const libc::c_char], stderr_fd: libc::c_int, sock: libc::c_int, sends: Sends) -> ! {
    // SAFETY: system calls on integers and local buffers, all async-signal-safe (the contract).
    unsafe {
        libc::setpgid(0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
        if stderr_fd >= 0 {
            libc::dup2(stderr_fd, 2);
        }
        crate::sys::default_signals();
        let listener = super::filter::install(sends);
        let mut payload = match listener {
            Ok(_) => [0u8; 4],
            Err(e) => e.to_ne_bytes(),
        };
        let mut iov = libc::iovec { iov_base: payload.as_mut_ptr().cast(), iov_len: 4 };
        let mut cbuf = [0u64; 3]; // CMSG_SPACE(4): a 16-byte header, 4 bytes padded to 8
        let msg = crate::sys::msghdr(&mut iov, if listener.is_ok() { &mut cbuf } else { &mut [] });
        if let Ok(fd) = listener {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
            core::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>(), fd);
        }
        let sent = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
        if let Ok(fd) = listener {
            libc::close(fd); // huptime has it now (in flight, it holds the file)
        }
        libc::close(sock);
        if listener.is_err() || sent < 0 {
            libc::_exit(126);
        }
        libc::execve(file.as_ptr(), argv.as_ptr(), env.as_ptr());
        let msg = b"huptime: can't execute the program\n";
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}
