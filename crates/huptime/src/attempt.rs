//! One attempt to start a new generation, seen from the generation that started it: waiting for
//! its readiness message (see [`crate::ready_channel`]), learning how it ended when it fails (exit status
//! or signal, last stderr lines), and killing every process it left behind on rollback.
//!
//! The new generation is a sibling (CLONE_PARENT), not our child, so its wait status comes from
//! the kernel's pidfd exit information (Linux 6.15+) or, while it is a zombie, from /proc.

use crate::ready_channel::{self, Reader};
use crate::{real, sys};
use libc::c_int;

/// How the attempt ended.
pub enum Outcome {
    /// The new generation is ready.
    Ready,
    /// Every process of the new generation is gone (or closed the channel) before it was ready.
    Ended,
    /// Not ready in time.
    Timeout,
}

/// A starting generation being watched.
pub struct Attempt {
    /// Pid of its first process.
    pub pid: libc::pid_t,
    pidfd: c_int,
    ready_r: c_int,
    /// Inode of the readiness pipe (finds the processes that hold it).
    pipe_ino: u64,
    /// What it wrote to the channel.
    pub reader: Reader,
    /// Raw wait status of the first process, once known.
    pub status: Option<i32>,
}

impl Attempt {
    /// Starts watching `pid` (with its pidfd, -1 if none) through the read end of its channel.
    pub fn new(pid: libc::pid_t, pidfd: c_int, ready_r: c_int) -> Attempt {
        // SAFETY: plain data filled by fstat.
        let mut st: libc::stat = unsafe { core::mem::zeroed() };
        // SAFETY: valid out-pointer.
        let pipe_ino = if unsafe { libc::fstat(ready_r, &mut st) } == 0 { st.st_ino } else { 0 };
        Attempt { pid, pidfd, ready_r, pipe_ino, reader: Reader::default(), status: None }
    }

    /// Waits until the new generation is ready, has ended, or `timeout_ms` passed. The channel
    /// decides, not the first pid: a daemonizing program's first process exits normally once its
    /// daemon child (which keeps the channel's write end) runs. EOF means every process of the new
    /// generation is gone.
    pub fn wait(&mut self, timeout_ms: u64) -> Outcome {
        let deadline = sys::now_ms() + timeout_ms;
        let mut buf = [0u8; 8192];
        loop {
            let left = deadline.saturating_sub(sys::now_ms());
            if left == 0 {
                return Outcome::Timeout;
            }
            let watch_pid = if self.status.is_some() { -1 } else { self.pidfd };
            let mut fds = [
                libc::pollfd { fd: self.ready_r, events: libc::POLLIN, revents: 0 },
                libc::pollfd { fd: watch_pid, events: libc::POLLIN, revents: 0 },
            ];
            // SAFETY: valid pollfd array.
            let r = unsafe { real::poll(fds.as_mut_ptr(), 2, left.min(1000) as c_int) };
            if r < 0 {
                continue;
            }
            if fds[0].revents != 0 {
                // SAFETY: read into a valid buffer.
                let n = unsafe { real::read(self.ready_r, buf.as_mut_ptr().cast(), buf.len()) };
                if n > 0 {
                    self.reader.feed(&buf[..n as usize]);
                    if self.reader.ready {
                        return Outcome::Ready;
                    }
                } else if n == 0 {
                    if self.status.is_none() {
                        self.status = exit_status(self.pid, self.pidfd, 500);
                    }
                    return Outcome::Ended;
                }
            }
            if fds[1].revents != 0 {
                self.status = exit_status(self.pid, self.pidfd, 200);
                if self.status.is_none() {
                    self.status = Some(-1); // ended, status unknown: stop watching the pidfd
                }
                debug!("the new generation's first process ended; waiting for the processes it left (a daemon?)");
            }
        }
    }

    /// How the first process ended, in words ("exited with status 3"), if known.
    pub fn how_it_ended(&self) -> Option<String> {
        self.status.filter(|&s| s >= 0).map(ready_channel::describe_status)
    }

    /// After it was ready: whether the first process has ended since (checked without waiting).
    /// Its wait status is then in `status` when the kernel still has it.
    pub fn has_ended(&mut self) -> bool {
        if !sys::pidfd_exited(self.pidfd) {
            return false;
        }
        if self.status.is_none() {
            self.status = exit_status(self.pid, self.pidfd, 200);
        }
        true
    }

    /// Whether the first process ended as a failure (a crash, a kill, a non-zero exit) rather
    /// than a deliberate stop (exit 0, SIGTERM, SIGINT). Unknown counts as a failure.
    pub fn failed(&self) -> bool {
        self.status.is_none_or(ready_channel::is_failure)
    }

    /// Kills every process of the new generation: its first process, every process that holds
    /// the channel's write end, and the process groups they lead. Returns how many were signalled.
    pub fn kill_all(&self) -> usize {
        let mut killed = 0;
        let exited = self.pidfd < 0 || sys::pidfd_exited(self.pidfd);
        if !exited && sys::pidfd_signal(self.pidfd, libc::SIGKILL) {
            killed += 1;
        }
        // SAFETY: getpid/getpgrp have no preconditions.
        let (me, my_group) = unsafe { (libc::getpid(), libc::getpgrp()) };
        for _ in 0..5 {
            let holders = pipe_writers(self.pipe_ino, me);
            if holders.is_empty() {
                break;
            }
            for pid in holders {
                // SAFETY: signalling processes of the generation we started.
                unsafe {
                    let group = libc::getpgid(pid);
                    if group > 0 && group != my_group && group == pid {
                        libc::kill(-group, libc::SIGKILL);
                    }
                    if libc::kill(pid, libc::SIGKILL) == 0 {
                        killed += 1;
                    }
                }
            }
            sys::sleep_ms(20);
        }
        killed
    }
}

/// The raw wait status of `pid`, which has exited or is about to: from the pidfd's exit
/// information once it is reaped, or from /proc while it is a zombie. Waits up to `wait_ms`.
fn exit_status(pid: libc::pid_t, pidfd: c_int, wait_ms: u64) -> Option<i32> {
    let until = sys::now_ms() + wait_ms;
    loop {
        if let Some(s) = pidfd_exit_code(pidfd) {
            return Some(s);
        }
        if let Some(s) = zombie_exit_code(pid) {
            return Some(s);
        }
        if sys::now_ms() >= until {
            return None;
        }
        sys::sleep_ms(5);
    }
}

/// PIDFD_GET_INFO with PIDFD_INFO_EXIT (Linux 6.15+): the wait status of a reaped process.
fn pidfd_exit_code(pidfd: c_int) -> Option<i32> {
    if pidfd < 0 {
        return None;
    }
    #[repr(C)]
    #[derive(Default)]
    struct PidfdInfo {
        mask: u64,
        cgroupid: u64,
        ids: [u32; 11],
        exit_code: i32,
    }
    const PIDFD_INFO_EXIT: u64 = 1 << 3;
    // _IOWR(0xFF, 11, struct pidfd_info) with the 64-byte first version of the struct.
    const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | ((core::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
    let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..Default::default() };
    // SAFETY: the kernel fills at most size_of::<PidfdInfo>() bytes.
    let r = unsafe { libc::ioctl(pidfd, PIDFD_GET_INFO, &mut info as *mut PidfdInfo) };
    (r == 0 && info.mask & PIDFD_INFO_EXIT != 0).then_some(info.exit_code)
}

/// The exit_code field of /proc/PID/stat, while PID is a zombie.
fn zombie_exit_code(pid: libc::pid_t) -> Option<i32> {
    let rest = sys::proc_stat_fields(pid)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 is the state; field 52 (index 49 after the command) the exit code.
    if fields.first() != Some(&"Z") {
        return None;
    }
    fields.get(49)?.parse().ok()
}

/// Processes other than `me` that hold the write end of the pipe with inode `ino`.
fn pipe_writers(ino: u64, me: libc::pid_t) -> Vec<libc::pid_t> {
    let mut out = Vec::new();
    if ino == 0 {
        return out;
    }
    let target = format!("pipe:[{ino}]");
    let Ok(procs) = std::fs::read_dir("/proc") else { return out };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else { continue };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str()) {
                let info = std::fs::read_to_string(p.path().join("fdinfo").join(fd.file_name())).unwrap_or_default();
                let flags = info.lines().find_map(|l| l.strip_prefix("flags:")).and_then(|f| i64::from_str_radix(f.trim(), 8).ok()).unwrap_or(0);
                if flags as c_int & libc::O_ACCMODE == libc::O_WRONLY {
                    out.push(pid);
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Child, Command, Stdio};

    /// A file of readiness-channel messages copying two stderr lines, for a child to `cat` into
    /// the channel (as the shim in a new generation would write them).
    fn stderr_copies(name: &str, lines: &[&str]) -> std::path::PathBuf {
        let mut bytes = Vec::new();
        for l in lines {
            let mut buf = [0u8; ready_channel::MAX_CHUNK + 3];
            let n = ready_channel::encode_stderr(format!("{l}\n").as_bytes(), &mut buf);
            bytes.extend_from_slice(&buf[..n]);
        }
        // SAFETY: getpid has no preconditions.
        let path = std::env::temp_dir().join(format!("huptime-attempt-test-{}-{name}", unsafe { libc::getpid() }));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Starts `sh -c script` ($0 = `arg`) with the channel's write end at fd 3, and watches it
    /// (through a pidfd if `with_pidfd`). The test keeps no copy of the write end.
    fn start(script: &str, arg: &std::path::Path, with_pidfd: bool) -> (Child, Attempt) {
        let mut p = [-1; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let w = p[1];
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]).arg(arg).stdin(Stdio::null()).stdout(Stdio::null());
        // SAFETY: only dup2/fcntl between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                let r = if w == 3 { libc::fcntl(3, libc::F_SETFD, 0) } else { libc::dup2(w, 3) };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        // SAFETY: closing our copy of the write end; pidfd_open with no flags.
        let pidfd = unsafe {
            libc::close(w);
            if with_pidfd { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) as c_int } else { -1 }
        };
        assert!(!with_pidfd || pidfd >= 0);
        let a = Attempt::new(child.id() as libc::pid_t, pidfd, p[0]);
        assert_ne!(a.pipe_ino, 0);
        (child, a)
    }

    fn finish(a: Attempt) {
        // SAFETY: closing the fds the attempt was given.
        unsafe {
            libc::close(a.ready_r);
            if a.pidfd >= 0 {
                libc::close(a.pidfd);
            }
        }
    }

    const LONG_MS: u64 = 60_000;

    #[test]
    fn ready_then_killed_with_everything_it_started() {
        let copies = stderr_copies("ready", &["loading config", "listening on :8080"]);
        let (mut child, mut a) = start("cat \"$0\" >&3; printf R >&3; exec sleep 120", &copies, true);
        assert!(matches!(a.wait(LONG_MS), Outcome::Ready));
        assert_eq!(a.reader.last_lines(5), ["loading config", "listening on :8080"]);
        assert!(!a.has_ended(), "ready and still running");
        assert!(a.kill_all() >= 1);
        let until = sys::now_ms() + LONG_MS;
        while !a.has_ended() {
            assert!(sys::now_ms() < until, "the killed generation did not end");
            sys::sleep_ms(5);
        }
        assert_eq!(a.how_it_ended().as_deref(), Some("was killed by signal 9 (SIGKILL)"));
        assert!(a.failed());
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        finish(a);
        let _ = std::fs::remove_file(copies);
    }

    #[test]
    fn ended_before_ready_with_its_status_and_last_stderr_lines() {
        let copies = stderr_copies("ended", &["Traceback (most recent call last):", "OSError: port taken"]);
        for (code, failed) in [(3, true), (0, false)] {
            // No pidfd: the status comes from /proc while the process is a zombie.
            let (mut child, mut a) = start(&format!("cat \"$0\" >&3; exit {code}"), &copies, false);
            assert!(matches!(a.wait(LONG_MS), Outcome::Ended));
            assert_eq!(a.how_it_ended(), Some(format!("exited with status {code}")));
            assert_eq!(a.failed(), failed, "exit {code}");
            assert_eq!(a.reader.last_lines(1), ["OSError: port taken"]);
            assert!(!a.reader.ready);
            assert_eq!(child.wait().unwrap().code(), Some(code));
            finish(a);
        }
        let _ = std::fs::remove_file(copies);
    }

    #[test]
    fn silent_generation_times_out_and_is_killed() {
        let (mut child, mut a) = start("exec sleep 120", std::path::Path::new("-"), true);
        assert!(matches!(a.wait(200), Outcome::Timeout));
        assert!(a.status.is_none() && a.how_it_ended().is_none());
        assert!(a.failed(), "an unknown end counts as a failure");
        assert!(a.kill_all() >= 1);
        assert!(matches!(a.wait(LONG_MS), Outcome::Ended), "killed: the channel closes");
        assert_eq!(a.how_it_ended().as_deref(), Some("was killed by signal 9 (SIGKILL)"));
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        finish(a);
    }

    /// A daemonizing program: its first process exits 0 while a child it left keeps the channel.
    #[test]
    fn kill_all_reaches_the_processes_that_hold_the_channel() {
        let (mut child, mut a) = start("(exec sleep 120) & exit 0", std::path::Path::new("-"), true);
        let mut p = libc::pollfd { fd: a.pidfd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, LONG_MS as c_int) }, 1, "the first process did not exit");
        assert!(matches!(a.wait(100), Outcome::Timeout), "the channel is still held");
        assert_eq!(a.status, Some(0), "the first process's status is known once it ended");
        assert!(!a.failed());
        assert!(a.has_ended());
        let holders = pipe_writers(a.pipe_ino, std::process::id() as libc::pid_t);
        assert_eq!(holders.len(), 1, "the background sleep holds the write end: {holders:?}");
        assert!(a.kill_all() >= 1);
        assert!(matches!(a.wait(LONG_MS), Outcome::Ended), "every holder of the channel is gone");
        assert!(pipe_writers(a.pipe_ino, std::process::id() as libc::pid_t).is_empty());
        assert_eq!(child.wait().unwrap().code(), Some(0));
        finish(a);
    }
}
