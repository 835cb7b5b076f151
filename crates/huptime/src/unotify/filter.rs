//! The seccomp filter a generation runs under, and installing it in the child before exec.
//!
//! The filter is a few BPF instructions: for the native architecture, `bind` and `listen` (and,
//! in one variant, `accept` and `accept4`) return SECCOMP_RET_USER_NOTIF (the calling thread
//! waits until huptime answers); every other call, and every call of another ABI (a 32-bit
//! program on a 64-bit kernel), is allowed untouched. bind and listen are how sockets change
//! hands. Reading, writing and polling are never sent.
//!
//! Which calls are sent ([`Sends`]): an old generation must take no new connection once its
//! successor serves and before it is told to stop (a server such as Go's http.Server drops a
//! connection it accepted but had not read when its graceful stop began). For TCP, huptime does
//! that by steering new connections away from the old generation's own socket ([`super::steer`]),
//! so accept() needs no round trip to huptime. A generation whose predecessor listened on a socket
//! that can't be steered (a unix socket) has its accept() calls sent, so that huptime can refuse
//! them ([`super::answer::on_accept`]): each connection then costs one round trip.

/// AUDIT_ARCH_* of the architecture this library is built for (linux/audit.h: the ELF machine
/// number with the 64-bit and little-endian bits).
#[cfg(target_arch = "x86_64")]
pub const AUDIT_ARCH: u32 = 0xC000_003E;
/// AUDIT_ARCH_AARCH64.
#[cfg(target_arch = "aarch64")]
pub const AUDIT_ARCH: u32 = 0xC000_00B7;

/// Which system calls a generation's filter sends to huptime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sends {
    /// bind() and listen(): its old sockets are steered away from when it is replaced.
    BindListen,
    /// bind(), listen(), accept() and accept4(): its accept() calls can be refused.
    BindListenAccept,
}

/// The system calls sent to huptime by [`Sends::BindListenAccept`] (the first two by both).
pub const NOTIFIED: [libc::c_long; 4] = [libc::SYS_bind, libc::SYS_listen, libc::SYS_accept, libc::SYS_accept4];

/// Offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;

const fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

const fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};

/// [`Sends::BindListenAccept`]'s program.
const WITH_ACCEPT: [libc::sock_filter; 9] = [
    /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
    /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, 6), // other ABI: 8
    /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[0] as u32, 3, 0), // bind: 7
    /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[1] as u32, 2, 0), // listen: 7
    /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[2] as u32, 1, 0), // accept: 7
    /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[3] as u32, 0, 1), // accept4: 7, else 8
    /* 7 */ stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    /* 8 */ stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
];

/// [`Sends::BindListen`]'s program.
const WITHOUT_ACCEPT: [libc::sock_filter; 7] = [
    /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
    /* 1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 0, 4), // other ABI: 6
    /* 2 */ stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
    /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[0] as u32, 1, 0), // bind: 5
    /* 4 */ jump(BPF_JMP | BPF_JEQ | BPF_K, NOTIFIED[1] as u32, 0, 1), // listen: 5, else 6
    /* 5 */ stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_USER_NOTIF),
    /* 6 */ stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW),
];

/// The filter program for `sends` (see the module's doc).
pub const fn program(sends: Sends) -> &'static [libc::sock_filter] {
    match sends {
        Sends::BindListen => &WITHOUT_ACCEPT,
        Sends::BindListenAccept => &WITH_ACCEPT,
    }
}

/// Installs the filter for `sends` on the calling thread (no_new_privs first, which an
/// unprivileged process needs) and returns the notification fd (close-on-exec), or the errno.
/// Flags, each dropped when the kernel refuses it (EINVAL), newest first:
/// - SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19): a call huptime has received is no longer
///   interrupted by the program's signals (a Go program gets many: SIGURG preemption); without
///   it an interrupted bind is restarted and sent again, which [`super::answer`] handles the same
///   way.
/// - SECCOMP_FILTER_FLAG_SPEC_ALLOW (Linux 4.17): the program keeps the speculation mitigations it
///   would have without huptime. Without the flag, a kernel whose speculative-store-bypass
///   mitigation is in its "seccomp" mode (the default before Linux 5.16) turns it on for every
///   process under a filter, which can slow a server down by several percent.
///
/// Async-signal-safe (system calls on locals only): it runs in the child between fork and exec.
pub fn install(sends: Sends) -> Result<libc::c_int, libc::c_int> {
    let prog = program(sends);
    let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
    let optional = [libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW];
    // SAFETY: prctl with integers; seccomp reads `fprog` and the program it points to, both live.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(*libc::__errno_location());
        }
        let mut flags = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | optional[0] | optional[1];
        loop {
            let fd = libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog);
            if fd >= 0 {
                return Ok(fd as libc::c_int);
            }
            let e = *libc::__errno_location();
            match optional.iter().find(|&&f| flags & f != 0) {
                Some(&f) if e == libc::EINVAL => flags &= !f,
                _ => return Err(e),
            }
        }
    }
}

/// The kernel release as (major, minor), from uname.
fn kernel_release() -> Option<(u32, u32)> {
    // SAFETY: utsname is plain data filled by uname.
    let mut u: libc::utsname = unsafe { core::mem::zeroed() };
    // SAFETY: valid out-pointer.
    if unsafe { libc::uname(&mut u) } != 0 {
        return None;
    }
    // SAFETY: uname NUL-terminates the release.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }.to_string_lossy().into_owned();
    parse_release(&release)
}

/// "6.18.0-foo" -> (6, 18).
pub fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The oldest kernel with everything used: SECCOMP_IOCTL_NOTIF_ADDFD and pidfd_getfd.
pub const MIN_KERNEL: (u32, u32) = (5, 9);

/// Why this kernel cannot run a static program under huptime, or None when it can: user
/// notification must be available to this process (seccomp may itself be filtered, in a
/// container), with ADDFD and pidfd_getfd (Linux 5.9), and the filter must install (it does not
/// where a user-notification filter is already in place: a process has one at most).
pub fn unsupported() -> Option<String> {
    let action: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // SAFETY: SECCOMP_GET_ACTION_AVAIL reads one u32.
    let notify = match unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_GET_ACTION_AVAIL, 0, &action as *const u32) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    };
    // pidfd_getfd on an invalid pidfd: EBADF when the call exists, ENOSYS when it does not.
    // SAFETY: the call fails on fd -1 without side effects.
    let getfd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, -1, 0, 0) } == 0 || crate::sys::errno() != libc::ENOSYS;
    verdict(kernel_release(), notify, getfd, try_install)
}

/// Whether [`install`] succeeds here, tried in a child process (a filter cannot be removed) that
/// exits with 0 or the errno. Asking the kernel which actions it has is not enough: where a
/// filter with user notification is already installed (by a container's supervisor, say), a
/// second one fails with EBUSY.
fn try_install() -> std::io::Result<()> {
    // SAFETY: the child makes only async-signal-safe calls (`install` is) and then _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: the child of fork; _exit runs nothing of the parent's.
        unsafe { libc::_exit(install(Sends::BindListenAccept).err().unwrap_or(0)) }
    }
    let mut status = 0;
    // SAFETY: reaping our own child into a local.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if crate::sys::errno() != libc::EINTR {
            return Ok(()); // reaped by someone else: the spawn will say what fails, if anything
        }
    }
    match (libc::WIFEXITED(status), libc::WEXITSTATUS(status)) {
        (true, 0) => Ok(()),
        (true, e) => Err(std::io::Error::from_raw_os_error(e)),
        _ => Err(std::io::Error::other(format!("the process trying it ended with signal {}", libc::WTERMSIG(status)))),
    }
}

/// [`unsupported`]'s judgement of the facts: the kernel release, whether user notification is
/// available (the error of asking), whether pidfd_getfd exists, and whether the filter installs
/// (asked last, and only when all else is there: it costs a fork). The answer names what failed,
/// with its errno and what that errno usually means, then the requirement.
pub fn verdict(release: Option<(u32, u32)>, notify: std::io::Result<()>, getfd: bool, install: impl FnOnce() -> std::io::Result<()>) -> Option<String> {
    let need = format!("it needs Linux {}.{} or later, the seccomp() system call allowed, and no seccomp user notification already in use", MIN_KERNEL.0, MIN_KERNEL.1);
    match release {
        Some(r) if r >= MIN_KERNEL => {}
        Some((a, b)) => return Some(format!("this kernel is {a}.{b}; {need}")),
        None => return Some(format!("can't read the kernel release; {need}")),
    }
    if let Err(e) = notify {
        return Some(format!("seccomp() fails here with {}; {need}", seccomp_errno(&e)));
    }
    if !getfd {
        return Some(format!("pidfd_getfd() fails here with ENOSYS (Function not implemented); {need}"));
    }
    install().err().map(|e| format!("installing huptime's seccomp filter fails here with {}; {need}", seccomp_errno(&e)))
}

/// How seccomp() failed (asking for SECCOMP_RET_USER_NOTIF, or installing the filter), in words:
/// the errno's name, its text, and what it usually means there.
fn seccomp_errno(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let (name, meaning) = match e.raw_os_error() {
        Some(libc::EPERM) => ("EPERM", "a seccomp profile forbids the call (as a container's may)"),
        Some(libc::EACCES) => ("EACCES", "a seccomp profile or a security module forbids the call"),
        Some(libc::ENOSYS) => ("ENOSYS", "the kernel has no seccomp, or a seccomp profile hides the call"),
        Some(libc::EINVAL) => ("EINVAL", "this kernel's seccomp predates user notification"),
        Some(libc::EOPNOTSUPP) => ("EOPNOTSUPP", "this kernel's seccomp has no user notification"),
        Some(libc::EBUSY) => ("EBUSY", "another seccomp filter here already uses user notification (there can be one only)"),
        _ => return format!("errno {} ({text})", e.raw_os_error().unwrap_or(0)),
    };
    format!("{name} ({text}), which means {meaning}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `p` as the kernel would on (arch, nr) and returns the action.
    fn run(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let i = p[pc];
            match i.code as u32 {
                c if c == BPF_LD | BPF_W | BPF_ABS => a = if i.k == ARCH_OFFSET { arch } else { nr },
                c if c == BPF_JMP | BPF_JEQ | BPF_K => pc += if a == i.k { i.jt } else { i.jf } as usize,
                c if c == BPF_RET | BPF_K => return i.k,
                c => panic!("unexpected instruction {c:#x}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn each_filter_sends_its_calls_and_allows_the_rest() {
        let (notify, allow) = (libc::SECCOMP_RET_USER_NOTIF, libc::SECCOMP_RET_ALLOW);
        let other = [libc::SYS_read, libc::SYS_write, libc::SYS_epoll_wait, libc::SYS_connect, libc::SYS_socket];
        for (sends, sent) in [(Sends::BindListenAccept, &NOTIFIED[..]), (Sends::BindListen, &NOTIFIED[..2])] {
            let p = program(sends);
            for nr in NOTIFIED.iter().chain(&other) {
                let want = if sent.contains(nr) { notify } else { allow };
                assert_eq!(run(p, AUDIT_ARCH, *nr as u32), want, "{sends:?}, call {nr}");
                assert_eq!(run(p, 0x4000_0003, *nr as u32), allow, "{sends:?}: another ABI's call {nr} is allowed");
            }
        }
    }

    #[test]
    fn what_is_missing_is_named_with_its_errno_and_the_requirement() {
        let failed = |e| Err(std::io::Error::from_raw_os_error(e));
        let installs = || Ok(());
        let not_asked = || -> std::io::Result<()> { panic!("the filter is tried only when all else is there") };
        let need = "it needs Linux 5.9 or later, the seccomp() system call allowed, and no seccomp user notification already in use";
        assert_eq!(verdict(Some((6, 18)), Ok(()), true, installs), None);
        assert_eq!(verdict(Some((5, 4)), Ok(()), true, not_asked).unwrap(), format!("this kernel is 5.4; {need}"));
        assert_eq!(
            verdict(Some((6, 1)), failed(libc::EPERM), true, not_asked).unwrap(),
            format!("seccomp() fails here with EPERM (Operation not permitted), which means a seccomp profile forbids the call (as a container's may); {need}")
        );
        assert_eq!(
            verdict(Some((6, 1)), failed(libc::ENOSYS), true, not_asked).unwrap(),
            format!("seccomp() fails here with ENOSYS (Function not implemented), which means the kernel has no seccomp, or a seccomp profile hides the call; {need}")
        );
        assert_eq!(verdict(Some((6, 1)), failed(libc::E2BIG), true, not_asked).unwrap(), format!("seccomp() fails here with errno 7 (Argument list too long); {need}"));
        assert_eq!(verdict(Some((5, 9)), Ok(()), false, not_asked).unwrap(), format!("pidfd_getfd() fails here with ENOSYS (Function not implemented); {need}"));
        assert_eq!(
            verdict(Some((6, 1)), Ok(()), true, || failed(libc::EBUSY)).unwrap(),
            format!("installing huptime's seccomp filter fails here with EBUSY (Device or resource busy), which means another seccomp filter here already uses user notification (there can be one only); {need}")
        );
        assert!(verdict(None, Ok(()), true, not_asked).unwrap().starts_with("can't read the kernel release"));
        assert_eq!(unsupported(), None, "this machine runs the seccomp tests");
    }

    #[test]
    fn kernel_releases_are_read_up_to_the_minor_number() {
        assert_eq!(parse_release("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_release("5.9"), Some((5, 9)));
        assert_eq!(parse_release("garbage"), None);
        assert!((5, 10) >= MIN_KERNEL && (5, 8) < MIN_KERNEL && (6, 0) >= MIN_KERNEL);
    }
}
