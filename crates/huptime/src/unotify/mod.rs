//! Restarts for programs LD_PRELOAD cannot reach (static binaries: Go with CGO_ENABLED=0, musl
//! builds), by seccomp user notification. huptime stays the parent; each generation starts under a
//! small seccomp filter ([`filter`]) that sends its `bind()` and `listen()` calls to huptime (a
//! thread of the CLI process, [`supervisor`]). A `listen()` shows huptime a listening socket, which
//! it then holds a duplicate of ([`held`]). A later generation's `bind()` to a TCP address gets a
//! socket of its own in the same SO_REUSEPORT group, to which new connections are steered once it
//! serves ([`steer`], with the kernel's socket lists read by [`sockdiag`]); to another address
//! huptime holds (a unix socket), it is answered by installing the held socket at the program's fd
//! number (SECCOMP_IOCTL_NOTIF_ADDFD) and replying success ([`answer`]). Readiness is read from
//! /proc ([`ready`]): a generation is ready once it waits for connections on every socket it
//! listened on (a thread blocked in accept on it, or in poll or select with it among the fds it
//! waits to read, or the socket registered with an epoll instance); [`memory`] reads the program's
//! memory for both. An old generation is refused new connections (steered away from, or its
//! accept() calls refused where its filter sends them) and given time to take what its sockets
//! queued and read those it accepted ([`fresh`]) before its stop signal. The generation's
//! lifecycle (stop signal, drain, rollback) is the CLI's (src/seccomp.ts); [`native`] is its napi
//! surface.
//!
//! Loaded as the CLI's native module only: nothing here runs in a preloaded program.

pub mod answer;
pub mod filter;
pub mod fresh;
pub mod held;
pub mod memory;
pub mod native;
pub mod ready;
pub mod sockdiag;
pub mod spawn;
pub mod steer;
pub mod supervisor;

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::io::{BufRead, BufReader, Read};
    use std::os::fd::{FromRawFd, OwnedFd};

    /// Starts `python3 -c code` under the filter for `sends`; returns its pid and a reader of its
    /// stderr.
    fn python(code: &str, sends: filter::Sends) -> (i32, BufReader<std::fs::File>) {
        let mut p = [-1; 2];
        // SAFETY: valid out-array.
        assert_eq!(unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: fresh fds we own.
        let (r, w) = unsafe { (std::fs::File::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) };
        let file = CString::new("/usr/bin/python3").unwrap();
        let args = [CString::new("python3").unwrap(), CString::new("-c").unwrap(), CString::new(code).unwrap()];
        let mut argv: Vec<_> = args.iter().map(|a| a.as_ptr()).collect();
        argv.push(core::ptr::null());
        let env = [core::ptr::null()];
        use std::os::fd::AsRawFd;
        let (pid, fd) = spawn::start(&file, &argv, &env, w.as_raw_fd(), sends).unwrap();
        held::with(|t| t.generation(pid).sends = sends);
        supervisor::watch(pid, fd).unwrap();
        (pid, BufReader::new(r))
    }

    /// The program's next stderr line; panics after 20 s without one (a test never hangs).
    fn line(r: &mut BufReader<std::fs::File>) -> String {
        use std::os::fd::AsRawFd;
        if !r.buffer().contains(&b'\n') {
            let mut p = libc::pollfd { fd: r.get_ref().as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            assert_eq!(unsafe { libc::poll(&mut p, 1, 20_000) }, 1, "no line from the program within 20 s");
        }
        let mut s = String::new();
        r.read_line(&mut s).unwrap();
        s.trim().to_string()
    }

    /// A blocking accept() of a generation refused new connections waits (the connection stays
    /// queued for another), and fails with EINTR once released after the stop signal, so that
    /// the program's handler runs.
    #[test]
    fn a_refused_blocking_accept_waits_then_sees_its_stop_signal() {
        let code = "import signal,socket,sys\n\
                    signal.signal(signal.SIGTERM, lambda *a: (sys.stderr.write('term\\n'), sys.stderr.flush(), sys.exit(0)))\n\
                    s=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(16)\n\
                    sys.stderr.write('%d\\n'%s.getsockname()[1]);sys.stderr.flush()\n\
                    while True:\n    c,_=s.accept();sys.stderr.write('accepted\\n');sys.stderr.flush();c.close()";
        let (pid, mut r) = python(code, filter::Sends::BindListenAccept);
        let port: u16 = line(&mut r).parse().unwrap();
        let _first = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(line(&mut r), "accepted");
        // Its next accept() let through (bind, listen, two accepts answered): blocked in the kernel.
        let start = std::time::Instant::now();
        while held::with(|t| t.generation(pid).answered) < 4 {
            assert!(start.elapsed().as_secs() < 20, "its second accept() never came");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        supervisor::refuse_accepts(pid);
        // Its accept() already running in the kernel (let through before) still takes one.
        let _second = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert_eq!(line(&mut r), "accepted");
        let _third = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let start = std::time::Instant::now();
        while held::with(|t| t.generation(pid).parked.len()) == 0 {
            assert!(start.elapsed().as_secs() < 20, "its accept() was never held");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        supervisor::release_accepts(pid);
        assert_eq!(line(&mut r), "term", "the handler ran, the queued connection was not taken");
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "{status:#x}");
        supervisor::unwatch(pid);
    }

    /// A generation that died leaves its socket to huptime alone: a successor is handed that very
    /// socket, with the connection it queued, rather than binding its own beside it (new
    /// connections would wait on the dead one's).
    #[test]
    fn a_socket_whose_generation_died_is_handed_over_with_what_it_queued() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',{port}))\ns.listen(16)\nsys.stderr.write('up\\n');sys.stderr.flush()\n");
        let (a, mut ra) = python(&format!("{listen}time.sleep(30)"), filter::Sends::BindListen);
        assert_eq!(line(&mut ra), "up");
        let mut queued = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        queued.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(a, libc::SIGKILL);
            libc::waitpid(a, core::ptr::null_mut(), 0);
        }
        let start = std::time::Instant::now();
        while supervisor::watching(a) {
            assert!(start.elapsed().as_secs() < 20, "huptime never saw the program end");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let (b, mut rb) = python(&format!("{listen}c,_=s.accept();c.sendall(b'b');c.close();time.sleep(30)"), filter::Sends::BindListen);
        assert_eq!(line(&mut rb), "up");
        assert_eq!(held::with(|t| (t.generation(b).joined, t.generation(b).taken_over)), (0, 1));
        let mut got = String::new();
        queued.read_to_string(&mut got).unwrap();
        assert_eq!(got, "b", "the connection queued on the dead one's socket was taken by the next");
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(b, libc::SIGKILL);
            libc::waitpid(b, core::ptr::null_mut(), 0);
        }
        supervisor::unwatch(b);
    }

    /// One test: the held table is process-wide.
    #[test]
    fn a_second_program_binding_the_same_address_listens_beside_the_first_or_gets_its_socket() {
        if let Some(why) = filter::unsupported() {
            panic!("this machine cannot run the test: {why}");
        }
        // TCP: the second program's socket joins the first one's SO_REUSEPORT group, and new
        // connections stay with the first until they are handed over.
        let code = "import socket,sys,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                    s.bind(('127.0.0.1',int(sys.argv[1]) if len(sys.argv)>1 else 0))\ns.listen(16)\n\
                    sys.stderr.write('%d %d\\n'%(s.getsockname()[1],s.fileno()));sys.stderr.flush()\n\
                    c,_=s.accept();c.sendall(b'WHO');c.close();time.sleep(30)";
        // A port free now (a bind to port 0 is not made shareable: nothing can follow it there).
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let code = code.replace("int(sys.argv[1]) if len(sys.argv)>1 else 0", &free.to_string());
        let (a, mut ra) = python(&code.replace("WHO", "a"), filter::Sends::BindListen);
        let first = line(&mut ra);
        let port: u16 = first.split(' ').next().unwrap().parse().unwrap();
        assert_eq!(held::with(|t| t.generation(a).listened.len()), 1, "{first}");
        // The second one binds the port the first listens on: without huptime, EADDRINUSE.
        let code_b = code.replace("WHO", "b");
        let (b, mut rb) = python(&code_b, filter::Sends::BindListen);
        let second = line(&mut rb);
        assert!(second.starts_with(&format!("{port} ")), "{second}");
        assert_eq!(held::with(|t| (t.generation(b).joined, t.generation(b).taken_over)), (1, 0));
        let got = |port: u16| {
            let mut got = String::new();
            std::net::TcpStream::connect(("127.0.0.1", port)).unwrap().read_to_string(&mut got).unwrap();
            got
        };
        assert_eq!(got(port), "a", "the first serves until it is handed over");
        // Its filter sends bind() and listen() only: the accept() that took it was not sent.
        assert_eq!(held::with(|t| t.generation(a).answered), 2);
        // A unix socket at a path the first listens on: the second gets that very socket.
        let dir = std::env::temp_dir().join(format!("huptime-unotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sock");
        let unix = format!(
            "import socket,sys,time\ns=socket.socket(socket.AF_UNIX)\ns.bind({path:?})\ns.listen(16)\n\
             sys.stderr.write('%d\\n'%s.fileno());sys.stderr.flush()\nc,_=s.accept();c.sendall(b'WHO');c.close();time.sleep(30)"
        );
        let (c, mut rc) = python(&unix.replace("WHO", "c"), filter::Sends::BindListen);
        line(&mut rc);
        let (d, mut rd) = python(&unix.replace("WHO", "d"), filter::Sends::BindListen);
        line(&mut rd);
        assert_eq!(held::with(|t| (t.generation(d).joined, t.generation(d).taken_over)), (0, 1));
        let mut got_unix = String::new();
        std::os::unix::net::UnixStream::connect(&path).unwrap().read_to_string(&mut got_unix).unwrap();
        assert!(got_unix == "c" || got_unix == "d", "either may accept: the socket is one ({got_unix:?})");
        for pid in [a, b, c, d] {
            // SAFETY: killing and reaping our own children.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, core::ptr::null_mut(), 0);
            }
            supervisor::unwatch(pid);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
