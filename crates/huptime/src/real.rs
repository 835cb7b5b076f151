//! The real libc functions behind our hooks, resolved once with `dlsym(RTLD_NEXT)`.
//!
//! Inside the shim every call to a hooked function must come through here: a plain `libc::close`
//! from this library would land in our own `close` hook. `resolve_all` runs in the constructor so
//! that nothing is resolved later from a signal handler or a freshly forked child.

use core::sync::atomic::{AtomicUsize, Ordering};
use libc::{c_char, c_int, c_long, c_uint, c_void, nfds_t, pollfd, sigset_t, sockaddr, socklen_t};

fn resolve(name: &'static [u8]) -> usize {
    // SAFETY: name is NUL-terminated; dlsym is safe to call with RTLD_NEXT.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr() as *const c_char) };
    if p.is_null() {
        let msg = b"huptime: fatal: cannot find the real ";
        // SAFETY: raw writes of static buffers to stderr, then abort: nothing else is safe here.
        unsafe {
            libc::write(2, msg.as_ptr() as *const c_void, msg.len());
            libc::write(2, name.as_ptr() as *const c_void, name.len() - 1);
            libc::write(2, b" in libc\n".as_ptr() as *const c_void, 9);
            libc::abort();
        }
    }
    p as usize
}

/// The real `$name` as a function pointer of its C prototype.
macro_rules! real_fn {
    ($name:ident($($t:ty),*) -> $r:ty) => {{
        let p = address(Sym::$name);
        // SAFETY: `p` is the non-null address dlsym(RTLD_NEXT) returned for the symbol spelled
        // `$name` (see `NAMES`), and the type is the C prototype libc declares for it: calling
        // through it is calling that libc function.
        unsafe { core::mem::transmute::<usize, unsafe extern "C" fn($($t),*) -> $r>(p) }
    }};
}

/// Declares the real functions: `safe` ones take only integers and hand the kernel no memory of
/// ours, so calling them cannot break memory safety, whatever the arguments (what they do to an
/// fd or to the process is the caller's business: the shim keeps its fds as plain numbers it
/// tracks itself, never as Rust-owned handles a stray close could invalidate). The `unsafe` ones
/// take pointers, or install or run code (signal handlers, a fork child): their caller upholds
/// libc's contract for them.
macro_rules! real_fns {
    (
        safe { $($sname:ident($($sa:ident: $st:ty),*) -> $sr:ty;)* }
        unsafe { $($name:ident($($a:ident: $t:ty),*) -> $r:ty;)* }
    ) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy)]
        #[repr(usize)]
        enum Sym { $($sname,)* $($name,)* Count }
        static PTRS: [AtomicUsize; Sym::Count as usize] =
            [const { AtomicUsize::new(0) }; Sym::Count as usize];
        static NAMES: [&[u8]; Sym::Count as usize] = [
            $(concat!(stringify!($sname), "\0").as_bytes(),)*
            $(concat!(stringify!($name), "\0").as_bytes(),)*
        ];

        $(
            /// The next (libc) definition of this function: integers in, no memory of ours
            /// touched, hence safe to call (see [`real_fns!`]).
            #[inline]
            pub fn $sname($($sa: $st),*) -> $sr {
                let f = real_fn!($sname($($st),*) -> $sr);
                // SAFETY: only integers go in and nothing of ours is read or written: the
                // call cannot break memory safety (see the macro's doc).
                unsafe { f($($sa),*) }
            }
        )*
        $(
            /// The next (libc) definition of this function.
            ///
            /// # Safety
            /// As for the libc function: its pointer arguments are valid for what it reads and
            /// writes, and what it installs or starts obeys its rules.
            #[inline]
            pub unsafe fn $name($($a: $t),*) -> $r {
                let f = real_fn!($name($($t),*) -> $r);
                // SAFETY: the caller upholds libc's contract for this function (see above).
                unsafe { f($($a),*) }
            }
        )*

        /// Resolves every real symbol now (constructor time), so hooks never call dlsym later,
        /// in particular not from a signal handler or a freshly forked child.
        pub fn resolve_all() {
            for i in 0..Sym::Count as usize {
                if PTRS[i].load(Ordering::Relaxed) == 0 {
                    PTRS[i].store(resolve(NAMES[i]), Ordering::Relaxed);
                }
            }
        }

        /// The resolved address of `sym` (resolved now if the constructor has not run yet).
        #[inline]
        fn address(sym: Sym) -> usize {
            let i = sym as usize;
            let mut p = PTRS[i].load(Ordering::Relaxed);
            if p == 0 {
                p = resolve(NAMES[i]);
                PTRS[i].store(p, Ordering::Relaxed);
            }
            p
        }
    };
}

real_fns! {
    safe {
        listen(fd: c_int, backlog: c_int) -> c_int;
        close(fd: c_int) -> c_int;
        close_range(first: c_uint, last: c_uint, flags: c_int) -> c_int;
        dup(fd: c_int) -> c_int;
        dup2(old: c_int, new: c_int) -> c_int;
        dup3(old: c_int, new: c_int, flags: c_int) -> c_int;
        epoll_create(size: c_int) -> c_int;
        epoll_create1(flags: c_int) -> c_int;
        shutdown(fd: c_int, how: c_int) -> c_int;
        _exit(status: c_int) -> ();
        setsid() -> libc::pid_t;
    }
    unsafe {
        bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
        accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
        accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
        epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut libc::epoll_event) -> c_int;
        poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
        ppoll(fds: *mut pollfd, n: nfds_t, ts: *const libc::timespec, mask: *const sigset_t) -> c_int;
        select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *mut libc::timeval) -> c_int;
        pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, t: *const libc::timespec, m: *const sigset_t) -> c_int;
        fork() -> libc::pid_t;
        sigaction(sig: c_int, act: *const libc::sigaction, old: *mut libc::sigaction) -> c_int;
        signal(sig: c_int, handler: libc::sighandler_t) -> libc::sighandler_t;
        unlink(path: *const c_char) -> c_int;
        unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int;
        syscall(n: c_long, a: c_long, b: c_long, c: c_long, d: c_long, e: c_long, f: c_long) -> c_long;
        write(fd: c_int, buf: *const c_void, n: usize) -> isize;
        writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
        read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
        __read_chk(fd: c_int, buf: *mut c_void, n: usize, size: usize) -> isize;
        readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
        recv(fd: c_int, buf: *mut c_void, n: usize, flags: c_int) -> isize;
        __recv_chk(fd: c_int, buf: *mut c_void, n: usize, size: usize, flags: c_int) -> isize;
        recvfrom(fd: c_int, buf: *mut c_void, n: usize, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> isize;
        recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize;
        send(fd: c_int, buf: *const c_void, n: usize, flags: c_int) -> isize;
        sendto(fd: c_int, buf: *const c_void, n: usize, flags: c_int, addr: *const sockaddr, len: socklen_t) -> isize;
        sendmsg(fd: c_int, msg: *const libc::msghdr, flags: c_int) -> isize;
        sendfile(out: c_int, input: c_int, off: *mut libc::off_t, n: usize) -> isize;
        sendfile64(out: c_int, input: c_int, off: *mut libc::off64_t, n: usize) -> isize;
        fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int;
        fcntl64(fd: c_int, cmd: c_int, arg: c_long) -> c_int;
        ioctl(fd: c_int, req: libc::c_ulong, arg: c_long) -> c_int;
        execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
        sigprocmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int;
        pthread_sigmask(how: c_int, set: *const sigset_t, old: *mut sigset_t) -> c_int;
        sigsuspend(mask: *const sigset_t) -> c_int;
        epoll_pwait(ep: c_int, ev: *mut libc::epoll_event, n: c_int, timeout: c_int, mask: *const sigset_t) -> c_int;
        pthread_create(t: *mut libc::pthread_t, attr: *const libc::pthread_attr_t, start: extern "C" fn(*mut c_void) -> *mut c_void, arg: *mut c_void) -> c_int;
        execv(path: *const c_char, argv: *const *const c_char) -> c_int;
        execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
        execvpe(file: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
        fexecve(fd: c_int, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
        posix_spawn(pid: *mut libc::pid_t, path: *const c_char, acts: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
        posix_spawnp(pid: *mut libc::pid_t, file: *const c_char, acts: *const libc::posix_spawn_file_actions_t, attr: *const libc::posix_spawnattr_t, argv: *const *mut c_char, envp: *const *mut c_char) -> c_int;
        system(cmd: *const c_char) -> c_int;
        popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE;
    }
}

