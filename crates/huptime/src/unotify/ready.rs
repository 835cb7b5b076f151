//! When a generation counts as ready: it waits for connections on every socket it listened on
//! (or was handed). Read from /proc, without notifying any per-connection call: a thread of the
//! generation (or of a process it started) blocked in accept()/accept4() on the socket, or the
//! socket registered with one of its epoll instances (Go's poller registers a listener as soon as
//! net.Listen returns, and waits on it from Serve). A program that waits with poll() or select()
//! is not seen as ready (its readiness would need the pollfd array read from its memory).

/// accept and accept4 on this architecture.
const ACCEPTS: [libc::c_long; 2] = [libc::SYS_accept, libc::SYS_accept4];

/// The inode of a socket from its /proc/PID/fd link text, `socket:[12345]`.
pub fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// The inodes an epoll instance watches, from its /proc/PID/fdinfo text (`tfd: ... ino:HEX`).
pub fn epoll_targets(fdinfo: &str) -> Vec<u64> {
    fdinfo
        .lines()
        .filter(|l| l.starts_with("tfd:"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("ino:")))
        .filter_map(|hex| u64::from_str_radix(hex, 16).ok())
        .collect()
}

/// The fd a thread is blocked accepting on, from its /proc/PID/task/TID/syscall text
/// (`NR ARG0 ...` in hex while in a system call; `running` or `-1 ...` otherwise).
pub fn accepting_on(syscall: &str) -> Option<i32> {
    let mut w = syscall.split_whitespace();
    let nr: libc::c_long = w.next()?.parse().ok()?;
    let arg0 = w.next()?.strip_prefix("0x")?;
    ACCEPTS.contains(&nr).then(|| i32::from_str_radix(arg0, 16).ok()).flatten()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The socket inode behind `pid`'s fd `fd`.
fn inode_of(pid: i32, fd: i32) -> Option<u64> {
    socket_inode(&std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?.to_string_lossy())
}

/// Inodes of the sockets `pid` has open.
pub fn open_sockets(pid: i32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten().filter_map(|f| socket_inode(&std::fs::read_link(f.path()).ok()?.to_string_lossy())).collect()
}

/// Inodes of the sockets `pid` waits on for connections (its threads in accept, its epolls).
fn waited_on_by(pid: i32, out: &mut Vec<u64>) {
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let tid = t.file_name().to_string_lossy().into_owned();
            if let Some(fd) = accepting_on(&read(&format!("/proc/{pid}/task/{tid}/syscall"))) {
                out.extend(inode_of(pid, fd));
            }
        }
    }
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for f in fds.flatten() {
            let is_epoll = std::fs::read_link(f.path()).is_ok_and(|l| l.to_string_lossy() == "anon_inode:[eventpoll]");
            if is_epoll {
                out.extend(epoll_targets(&read(&format!("/proc/{pid}/fdinfo/{}", f.file_name().to_string_lossy()))));
            }
        }
    }
}

/// The children of `pid` (every thread's list).
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .flat_map(|t| read(&format!("/proc/{pid}/task/{}/children", t.file_name().to_string_lossy())).split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<i32>>())
        .collect()
}

/// Whether generation `pid` waits for connections on every socket of `listened` (inodes; false
/// when it listened on none yet). Its direct children count too (a master whose workers accept).
pub fn is_ready(pid: i32, listened: &[u64]) -> bool {
    if listened.is_empty() {
        return false;
    }
    let mut waited = Vec::new();
    waited_on_by(pid, &mut waited);
    if !listened.iter().all(|i| waited.contains(i)) {
        for c in children(pid) {
            waited_on_by(c, &mut waited);
        }
    }
    listened.iter().all(|i| waited.contains(i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_texts_are_read() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        let fdinfo = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:        3 events:       19 data:                3  pos:0 ino:2a sdev:8\ntfd:        7 events: 80002019 data:     7f00000000000007  pos:0 ino:1f4 sdev:8\n";
        assert_eq!(epoll_targets(fdinfo), vec![0x2a, 0x1f4]);
        let accept = format!("{} 0x3 0x7ffd1 0x7ffd2 0x0 0x0 0x0 0x7ffd0 0x7f01", libc::SYS_accept);
        assert_eq!(accepting_on(&accept), Some(3));
        assert_eq!(accepting_on(&format!("{} 0x1f 0x0 0x0 0x80800 0x0 0x0 0x1 0x2", libc::SYS_accept4)), Some(31));
        assert_eq!(accepting_on(&format!("{} 0x3 0x0", libc::SYS_read)), None);
        assert_eq!(accepting_on("running"), None);
        assert_eq!(accepting_on("-1 0x7ffd0 0x7f01"), None);
    }

    #[test]
    fn a_thread_blocked_in_accept_makes_its_process_ready() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let me = std::process::id() as i32;
        let inode = inode_of(me, l.as_raw_fd()).unwrap();
        assert!(!is_ready(me, &[]), "nothing listened on: not ready");
        assert!(!is_ready(me, &[inode]), "nobody accepts yet");
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || l.accept().map(|_| ()));
        let start = std::time::Instant::now();
        while !is_ready(me, &[inode]) {
            assert!(start.elapsed().as_secs() < 20, "the accepting thread was never seen");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        t.join().unwrap().unwrap();
    }
}
