//! When a generation counts as ready: it waits for connections on every socket it listened on
//! (or was handed). Read from /proc, without notifying any per-connection call: a thread of the
//! generation (or of a process it started) blocked in accept()/accept4() on the socket, or in
//! poll()/ppoll() with the socket in its pollfd array for input (POLLIN or POLLRDNORM), or in
//! select()/pselect6() with the socket in its read set (the array or set read from the program's
//! memory, [`memory`]), or the socket registered with one of its epoll instances (Go's poller
//! registers a listener as soon as net.Listen returns, and waits on it from Serve).

use super::memory;

/// accept and accept4 on this architecture.
const ACCEPTS: [libc::c_long; 2] = [libc::SYS_accept, libc::SYS_accept4];
/// poll and ppoll on this architecture (arm64 has no poll: its libc calls ppoll).
#[cfg(target_arch = "x86_64")]
const POLLS: [libc::c_long; 2] = [libc::SYS_poll, libc::SYS_ppoll];
#[cfg(not(target_arch = "x86_64"))]
const POLLS: [libc::c_long; 1] = [libc::SYS_ppoll];
/// select and pselect6 on this architecture (arm64 has no select; glibc's select() calls
/// pselect6 on x86-64 too).
#[cfg(target_arch = "x86_64")]
const SELECTS: [libc::c_long; 2] = [libc::SYS_select, libc::SYS_pselect6];
#[cfg(not(target_arch = "x86_64"))]
const SELECTS: [libc::c_long; 1] = [libc::SYS_pselect6];

/// Most pollfd entries read from one poll()/ppoll() (32 KiB); a longer array is read this far.
const MAX_POLLED: usize = 4096;
/// Most fds of one select()/pselect6() read set looked at (8 KiB); a wider set is read this far.
const MAX_SELECTED: usize = 65536;

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

/// A thread's system call as /proc/PID/task/TID/syscall shows it while the thread is in one.
#[derive(Debug, PartialEq, Eq)]
pub struct Blocked {
    /// The system call number (this architecture's).
    pub nr: libc::c_long,
    /// Its six arguments.
    pub args: [u64; 6],
}

/// What a blocked thread waits on for input, from its system call.
#[derive(Debug, PartialEq, Eq)]
pub enum Wait {
    /// accept()/accept4() on this fd.
    Accept(i32),
    /// poll()/ppoll() on the `nfds` pollfd entries at `addr`.
    Poll { addr: u64, nfds: usize },
    /// select()/pselect6() with the read set at `addr`, fds below `nfds`.
    Select { addr: u64, nfds: usize },
}

/// The system call a thread is blocked in, from its /proc/PID/task/TID/syscall text (`NR ARG0
/// ... ARG5 SP PC`, the number in decimal and the rest in hex, while in a system call; `running`
/// or `-1 SP PC` otherwise).
pub fn blocked_in(syscall: &str) -> Option<Blocked> {
    let mut w = syscall.split_whitespace();
    let nr: libc::c_long = w.next()?.parse().ok()?;
    let mut args = [0u64; 6];
    for a in &mut args {
        *a = u64::from_str_radix(w.next()?.strip_prefix("0x")?, 16).ok()?;
    }
    Some(Blocked { nr, args })
}

/// What system call `b` waits on for input, if it is one that waits for connections.
pub fn wait_of(b: &Blocked) -> Option<Wait> {
    let [a0, a1, ..] = b.args;
    let bounded = |n: u64, most: usize| usize::try_from(n).map_or(most, |n| n.min(most));
    match b.nr {
        nr if ACCEPTS.contains(&nr) => Some(Wait::Accept(i32::try_from(a0).ok()?)),
        nr if POLLS.contains(&nr) => Some(Wait::Poll { addr: a0, nfds: bounded(a1, MAX_POLLED) }),
        // nfds is an int: its upper half is not the program's.
        nr if SELECTS.contains(&nr) && a1 != 0 => Some(Wait::Select { addr: a1, nfds: bounded(a0 & 0xffff_ffff, MAX_SELECTED) }),
        _ => None,
    }
}

/// The fds a pollfd array (its bytes) asks input of: POLLIN or POLLRDNORM in `events`, which is
/// what a listening socket reports a pending connection with. Negative fds are skipped by poll.
pub fn polled_for_input(pollfds: &[u8]) -> Vec<i32> {
    pollfds
        .chunks_exact(core::mem::size_of::<libc::pollfd>())
        .filter_map(|e| {
            let fd = i32::from_ne_bytes(e[0..4].try_into().ok()?);
            let events = i16::from_ne_bytes(e[4..6].try_into().ok()?);
            (fd >= 0 && events & (libc::POLLIN | libc::POLLRDNORM) != 0).then_some(fd)
        })
        .collect()
}

/// How many bytes of an fd_set select() reads for `nfds` fds: whole longs, as the kernel does.
pub fn fd_set_bytes(nfds: usize) -> usize {
    let long = core::mem::size_of::<libc::c_ulong>();
    nfds.div_ceil(long * 8) * long
}

/// The fds below `nfds` set in an fd_set (its bytes: an array of longs, fd N at bit N % bits in
/// long N / bits, as FD_SET does).
pub fn selected_for_input(set: &[u8], nfds: usize) -> Vec<i32> {
    let bits = core::mem::size_of::<libc::c_ulong>() * 8;
    let words: Vec<libc::c_ulong> = set.chunks_exact(bits / 8).filter_map(|w| Some(libc::c_ulong::from_ne_bytes(w.try_into().ok()?))).collect();
    (0..nfds.min(words.len() * bits)).filter(|&fd| words[fd / bits] >> (fd % bits) & 1 == 1).filter_map(|fd| i32::try_from(fd).ok()).collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The socket inode behind `pid`'s fd `fd`.
pub fn inode_of(pid: i32, fd: i32) -> Option<u64> {
    socket_inode(&std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?.to_string_lossy())
}

/// Inodes of the sockets `pid` has open.
pub fn open_sockets(pid: i32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    fds.flatten().filter_map(|f| socket_inode(&std::fs::read_link(f.path()).ok()?.to_string_lossy())).collect()
}

/// The fds `pid`'s thread waits on for input in `wait` (its pollfd array or read set read from
/// its memory; none when that cannot be read).
fn input_fds(pid: i32, wait: &Wait) -> Vec<i32> {
    match *wait {
        Wait::Accept(fd) => vec![fd],
        Wait::Poll { addr, nfds } => memory::read(pid, addr, nfds * core::mem::size_of::<libc::pollfd>()).map(|b| polled_for_input(&b)).unwrap_or_default(),
        Wait::Select { addr, nfds } => memory::read(pid, addr, fd_set_bytes(nfds)).map(|b| selected_for_input(&b, nfds)).unwrap_or_default(),
    }
}

/// Inodes of the sockets `pid` waits on for connections (its threads in accept, poll or select,
/// its epolls).
fn waited_on_by(pid: i32, out: &mut Vec<u64>) {
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            let tid = t.file_name().to_string_lossy().into_owned();
            let Some(wait) = blocked_in(&read(&format!("/proc/{pid}/task/{tid}/syscall"))).and_then(|b| wait_of(&b)) else { continue };
            out.extend(input_fds(pid, &wait).into_iter().filter_map(|fd| inode_of(pid, fd)));
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
    use std::os::fd::AsRawFd;

    /// The /proc syscall text of a thread blocked in `nr` with `args` (stack and pc made up).
    fn syscall_text(nr: libc::c_long, args: [u64; 6]) -> String {
        let hex: Vec<String> = args.iter().map(|a| format!("{a:#x}")).collect();
        format!("{nr} {} 0x7ffd0 0x7f01\n", hex.join(" "))
    }

    fn wait_in(nr: libc::c_long, args: [u64; 6]) -> Option<Wait> {
        wait_of(&blocked_in(&syscall_text(nr, args))?)
    }

    #[test]
    fn proc_texts_are_read() {
        assert_eq!(socket_inode("socket:[4242]"), Some(4242));
        assert_eq!(socket_inode("pipe:[4242]"), None);
        let fdinfo = "pos:\t0\nflags:\t02\nmnt_id:\t15\nino:\t1057\ntfd:        3 events:       19 data:                3  pos:0 ino:2a sdev:8\ntfd:        7 events: 80002019 data:     7f00000000000007  pos:0 ino:1f4 sdev:8\n";
        assert_eq!(epoll_targets(fdinfo), vec![0x2a, 0x1f4]);
        let text = format!("{} 0x3 0x7ffd1 0x7ffd2 0x0 0x0 0x0 0x7ffd0 0x7f01", libc::SYS_accept);
        assert_eq!(blocked_in(&text), Some(Blocked { nr: libc::SYS_accept, args: [3, 0x7ffd1, 0x7ffd2, 0, 0, 0] }));
        assert_eq!(blocked_in("running"), None);
        assert_eq!(blocked_in("-1 0x7ffd0 0x7f01"), None);
        assert_eq!(blocked_in(&format!("{} 0x3 0x0", libc::SYS_read)), None, "cut short");
    }

    #[test]
    fn the_calls_that_wait_for_connections_are_told_apart() {
        assert_eq!(wait_in(libc::SYS_accept, [3, 0x7ffd1, 0x7ffd2, 0, 0, 0]), Some(Wait::Accept(3)));
        assert_eq!(wait_in(libc::SYS_accept4, [0x1f, 0, 0, 0x80800, 0, 0]), Some(Wait::Accept(31)));
        assert_eq!(wait_in(libc::SYS_ppoll, [0x7ffd10, 2, 0, 0x7ffd20, 8, 0]), Some(Wait::Poll { addr: 0x7ffd10, nfds: 2 }));
        assert_eq!(wait_in(libc::SYS_ppoll, [0x7ffd10, 1 << 40, 0, 0, 8, 0]), Some(Wait::Poll { addr: 0x7ffd10, nfds: MAX_POLLED }), "bounded");
        assert_eq!(wait_in(libc::SYS_pselect6, [5, 0x7ffd30, 0, 0, 0x7ffd40, 0]), Some(Wait::Select { addr: 0x7ffd30, nfds: 5 }));
        assert_eq!(wait_in(libc::SYS_pselect6, [0xffff_ffff_0000_0005, 0x7ffd30, 0, 0, 0, 0]), Some(Wait::Select { addr: 0x7ffd30, nfds: 5 }), "an int");
        assert_eq!(wait_in(libc::SYS_pselect6, [1 << 30, 0x7ffd30, 0, 0, 0, 0]), Some(Wait::Select { addr: 0x7ffd30, nfds: MAX_SELECTED }), "bounded");
        assert_eq!(wait_in(libc::SYS_pselect6, [5, 0, 0x7ffd30, 0, 0, 0]), None, "no read set: it waits to write");
        assert_eq!(wait_in(libc::SYS_read, [3, 0x7ffd30, 16, 0, 0, 0]), None);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(wait_in(libc::SYS_poll, [0x7ffd10, 3, 0xffff_ffff_ffff_ffff, 0, 0, 0]), Some(Wait::Poll { addr: 0x7ffd10, nfds: 3 }));
            assert_eq!(wait_in(libc::SYS_select, [4, 0x7ffd30, 0, 0, 0, 0]), Some(Wait::Select { addr: 0x7ffd30, nfds: 4 }));
        }
    }

    /// The bytes of a value as the program's memory holds them.
    fn bytes_of<T>(v: &[T]) -> Vec<u8> {
        // SAFETY: reading plain data (pollfd, fd_set) as bytes.
        unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), core::mem::size_of_val(v)) }.to_vec()
    }

    #[test]
    fn pollfd_arrays_are_read() {
        let p = |fd, events| libc::pollfd { fd, events, revents: 0 };
        let fds = [p(3, libc::POLLIN), p(4, libc::POLLOUT), p(-1, libc::POLLIN), p(5, libc::POLLRDNORM), p(6, libc::POLLIN | libc::POLLPRI), p(7, 0)];
        assert_eq!(polled_for_input(&bytes_of(&fds)), vec![3, 5, 6]);
        let mut cut = bytes_of(&fds[..2]);
        cut.pop();
        assert_eq!(polled_for_input(&cut), vec![3], "a partial entry is not read");
    }

    #[test]
    fn fd_sets_are_read() {
        // SAFETY: fd_set is plain data, and the FD_* macros stay below FD_SETSIZE.
        let set = unsafe {
            let mut set: libc::fd_set = core::mem::zeroed();
            for fd in [0, 3, 64, 1000] {
                libc::FD_SET(fd, &mut set);
            }
            set
        };
        let b = bytes_of(&[set]);
        assert_eq!(selected_for_input(&b, 1001), vec![0, 3, 64, 1000]);
        assert_eq!(selected_for_input(&b, 1000), vec![0, 3, 64], "fds from nfds on are not looked at");
        assert_eq!(selected_for_input(&b[..8], 1001), vec![0, 3], "nor past the bytes read");
        let long = core::mem::size_of::<libc::c_ulong>();
        assert_eq!([fd_set_bytes(0), fd_set_bytes(1), fd_set_bytes(long * 8), fd_set_bytes(long * 8 + 1)], [0, long, long, 2 * long]);
    }

    /// Runs `wait` (a call that blocks until the test wakes it) on a new thread and returns once
    /// that thread is blocked in one of the system calls `nrs`.
    fn blocked_thread(wait: impl FnOnce() + Send + 'static, nrs: &[libc::c_long]) -> std::thread::JoinHandle<()> {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            // SAFETY: gettid has no arguments.
            tx.send(unsafe { libc::gettid() }).unwrap();
            wait();
        });
        let tid = rx.recv().unwrap();
        let start = std::time::Instant::now();
        while !blocked_in(&read(&format!("/proc/self/task/{tid}/syscall"))).is_some_and(|b| nrs.contains(&b.nr)) {
            assert!(start.elapsed().as_secs() < 20, "the thread was never seen blocked in {nrs:?}");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        t
    }

    /// A listener, its inode, and this process's pid.
    fn listener() -> (std::net::TcpListener, u64, i32) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let me = std::process::id() as i32;
        let inode = inode_of(me, l.as_raw_fd()).unwrap();
        (l, inode, me)
    }

    /// Checks that this process is ready while a thread waits on `l` with `wait` (seen blocked in
    /// one of `nrs`), then lets the thread go with a connection.
    fn ready_while_blocked((l, inode, me): (std::net::TcpListener, u64, i32), wait: impl FnOnce(std::net::TcpListener) + Send + 'static, nrs: &[libc::c_long]) {
        let port = l.local_addr().unwrap().port();
        let t = blocked_thread(move || wait(l), nrs);
        assert!(is_ready(me, &[inode]));
        std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        t.join().unwrap();
    }

    #[test]
    fn a_thread_blocked_in_accept_makes_its_process_ready() {
        let l = listener();
        assert!(!is_ready(l.2, &[]), "nothing listened on: not ready");
        assert!(!is_ready(l.2, &[l.1]), "nobody accepts yet");
        ready_while_blocked(l, |l| drop(l.accept().unwrap()), &ACCEPTS);
    }

    #[test]
    fn a_thread_blocked_in_poll_for_input_on_the_socket_makes_its_process_ready() {
        let wait = |l: std::net::TcpListener| {
            let mut p = [libc::pollfd { fd: -1, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
            // SAFETY: two valid pollfds.
            assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 2, 20_000) }, 1);
        };
        ready_while_blocked(listener(), wait, &POLLS);
    }

    #[test]
    fn a_thread_blocked_in_select_with_the_socket_in_its_read_set_makes_its_process_ready() {
        let wait = |l: std::net::TcpListener| {
            let fd = l.as_raw_fd();
            // SAFETY: fd_set is plain data; fd is below FD_SETSIZE (a test's few fds).
            let n = unsafe {
                let mut set: libc::fd_set = core::mem::zeroed();
                libc::FD_SET(fd, &mut set);
                let mut tv = libc::timeval { tv_sec: 20, tv_usec: 0 };
                libc::select(fd + 1, &mut set, core::ptr::null_mut(), core::ptr::null_mut(), &mut tv)
            };
            assert_eq!(n, 1);
        };
        ready_while_blocked(listener(), wait, &SELECTS);
    }

    #[test]
    fn a_thread_blocked_in_poll_on_other_things_does_not() {
        let (l, inode, me) = listener();
        let mut p = [-1; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        let (r, w) = (p[0], p[1]);
        let fd = l.as_raw_fd();
        let t = blocked_thread(
            move || {
                // The listener asked for output only (which a listening socket never reports).
                let mut p = [libc::pollfd { fd: r, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd, events: libc::POLLOUT, revents: 0 }];
                // SAFETY: two valid pollfds.
                assert_eq!(unsafe { libc::poll(p.as_mut_ptr(), 2, 20_000) }, 1);
            },
            &POLLS,
        );
        assert!(!is_ready(me, &[inode]));
        // SAFETY: writing one byte to our pipe, then closing both ends (the thread is done with them).
        unsafe {
            assert_eq!(libc::write(w, b"x".as_ptr().cast(), 1), 1);
        }
        t.join().unwrap();
        // SAFETY: our pipe's fds, no longer used.
        unsafe {
            libc::close(r);
            libc::close(w);
        }
        drop(l);
    }
}
