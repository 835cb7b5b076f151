//! Passing sockets between generations: adopting the ones the previous generation handed over,
//! giving them to the program's bind(), noticing when the program serves (readiness), and
//! preparing the record for the next.

use crate::config::STATE_VAR;
use crate::fdtable::{self, BoundSocket, FdState, Sockets, MAX_SOCKETS, SOCKETS};
use crate::lifecycle::{self, Step};
use crate::phase::Phase;
use crate::sockkey::{SockKey, ADDR_MAX};
use crate::wire::{Handover, Record, SocketEntry, MAX_HEX_LEN};
use crate::{lineage, log, readiness, real, sys};
use core::sync::atomic::{AtomicBool, Ordering};
use libc::c_int;
use std::ffi::CStr;

/// Inherited sockets remain unclaimed; they are closed once the program serves.
static HAS_PENDING: AtomicBool = AtomicBool::new(false);

/// Reads the handover record (if any) from the environment (which it leaves to
/// [`crate::childenv`], like every variable of huptime's), and moves the inherited sockets into the shim's fd
/// range where the program cannot close them by accident. A malformed record is reported and
/// ignored: the program starts fresh.
pub fn adopt_from_env() {
    let Some(raw) = std::env::var_os(STATE_VAR) else { return };
    let raw = raw.to_string_lossy().into_owned();
    let h = match Handover::from_env(&raw) {
        Ok(h) => h,
        Err(e) => {
            info!("ignoring the handover record in {STATE_VAR} ({e}); starting fresh");
            return;
        }
    };
    log::GENERATION.store(h.generation.max(1), Ordering::Relaxed);
    lineage::set_previous_generation(h.parent_pid);
    let mut t = SOCKETS.lock();
    for s in &h.sockets {
        if let Err(why) = verify_inherited(s.fd, &s.key) {
            info!("inherited fd {} is not the {} socket the record names ({why}); ignoring it", s.fd, s.key);
            continue;
        }
        let fd = sys::move_internal(s.fd);
        if fd < 0 || !t.add(BoundSocket { fd, key: s.key, pending: true, inherited: true, shadow: -1, kept: false, waited: false }) {
            info!("can't keep inherited socket {} (fd {}): {}", s.key, s.fd, crate::log::OsError::last());
            continue;
        }
        HAS_PENDING.store(true, Ordering::Release);
        lineage::note_bound();
        debug!("inherited {} as fd {fd}", s.key);
    }
    drop(t);
    if h.ready_fd >= 0 {
        if is_ready_pipe(h.ready_fd) {
            let fd = sys::move_internal(h.ready_fd);
            if fd >= 0 {
                readiness::adopt(fd);
            }
        } else {
            info!("the readiness fd {} named in the handover record is not a write-only pipe; ignoring it (the previous generation will time out and keep serving)", h.ready_fd);
        }
    }
}

/// Socket activation (systemd's LISTEN_FDS protocol): when huptime was started with sockets
/// passed at fds 3.., they are treated like sockets inherited from a previous generation, so the
/// program's bind() on the same address gets the passed socket. The variables are removed from
/// the environment (the program and its children must not take the fds a second time).
pub fn adopt_listen_fds() {
    let vars = ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"];
    let n = std::env::var("LISTEN_FDS").ok();
    let for_pid = std::env::var("LISTEN_PID").ok();
    if n.is_none() {
        return;
    }
    for v in vars {
        std::env::remove_var(v);
    }
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    if lineage::started_by_generation() || for_pid.as_deref().and_then(|p| p.trim().parse::<i32>().ok()) != Some(me) {
        return; // meant for another process (or already handed over by the previous generation)
    }
    let Some(n) = n.and_then(|v| v.trim().parse::<c_int>().ok()).filter(|&n| (1..=64).contains(&n)) else {
        info!("LISTEN_FDS is not a number of sockets (1 to 64); ignoring the passed sockets");
        return;
    };
    let mut t = SOCKETS.lock();
    for fd in 3..3 + n {
        let key = sys::local_address(fd).and_then(|(ss, len)| {
            // SAFETY: the first `len` bytes were filled by getsockname.
            let raw = unsafe { core::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), len as usize) };
            SockKey::from_sockaddr(sys::socktype(fd), raw)
        });
        let Some(key) = key.filter(|_| sys::is_serving_socket(fd)) else {
            info!("passed fd {fd} (LISTEN_FDS) is not a bound, listening socket; leaving it alone");
            continue;
        };
        let moved = sys::move_internal(fd);
        if moved < 0 || !t.add(BoundSocket { fd: moved, key, pending: true, inherited: true, shadow: -1, kept: false, waited: false }) {
            info!("can't keep passed socket {key} (fd {fd}): {}", crate::log::OsError::last());
            continue;
        }
        HAS_PENDING.store(true, Ordering::Release);
        lineage::note_bound();
        info!("socket activation: {key} (fd {fd}) goes to the program's bind() of that address");
    }
}

/// Whether `fd` can be the readiness pipe: above stdio, the write end of a pipe.
fn is_ready_pipe(fd: c_int) -> bool {
    // SAFETY: plain data filled by fstat; fcntl has no memory effects.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        fd > 2
            && libc::fstat(fd, &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFIFO
            && real::fcntl(fd, libc::F_GETFL, 0) & libc::O_ACCMODE == libc::O_WRONLY
    }
}

/// Checks that `fd` really is the socket `key` describes: same type, same family, same port (unless
/// the program asked for port 0), and listening (stream) — so a lying or stale record can never make
/// the shim take over, say, the program's stdout.
fn verify_inherited(fd: c_int, key: &SockKey) -> Result<(), &'static str> {
    if fd <= 2 {
        return Err("that is a standard stream");
    }
    let ty = sys::socktype(fd);
    if ty < 0 {
        return Err(match sys::errno() {
            libc::EBADF => "not open",
            libc::ENOTSOCK => "not a socket",
            _ => "can't read its socket type",
        });
    }
    if ty != key.socktype {
        return Err("a socket of another type");
    }
    let Some((ss, _)) = sys::local_address(fd) else { return Err("getsockname failed") };
    if ss.ss_family != key.family {
        return Err("different address family");
    }
    if key.family == libc::AF_INET as u16 || key.family == libc::AF_INET6 as u16 {
        // SAFETY: the first four bytes of sockaddr_in/in6 are family and port in both.
        let raw = unsafe { core::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), 4) };
        let wanted = [key.addr[2], key.addr[3]];
        if wanted != [0, 0] && raw[2..4] != wanted {
            return Err("bound to another port");
        }
    }
    if !sys::is_serving_socket(fd) {
        return Err("not listening");
    }
    Ok(())
}

/// Whether sockets inherited from the previous generation (or passed by socket activation) wait
/// for the program's bind() of their address.
pub fn has_pending() -> bool {
    HAS_PENDING.load(Ordering::Acquire)
}

/// Called when the program starts waiting for connections on `fd` (accept, epoll, poll, select).
/// Once it has done so on every inherited socket it claimed, tells the previous generation that
/// this one is ready and closes the inherited sockets the program did not claim. Also publishes
/// "serving".
#[inline]
pub fn mark_serving(fd: c_int) {
    if !awaiting() || fdtable::state(fd) != FdState::Bound {
        return;
    }
    let mut inherited = false;
    let mut all_waited = true;
    {
        let mut t = SOCKETS.lock();
        for s in t.iter_mut() {
            if s.fd == fd && !s.pending && !s.kept && s.inherited {
                s.waited = true;
                inherited = true;
            }
            if s.inherited && !s.pending && !s.kept && !s.waited {
                all_waited = false;
            }
        }
    }
    if inherited && all_waited && readiness::report_ready() {
        debug!("ready: waiting for connections on every inherited socket it bound");
    }
    mark_listening(fd);
    if inherited && all_waited {
        close_unclaimed();
    }
}

/// Called when the program listens on a bound socket: for a generation nobody waits for (the
/// first, or one exec'd in place), that is when it counts as serving (connections queue from
/// now on). A generation that the previous one waits for is serving only once it waits for
/// connections (`mark_serving`): a daemon may listen long before its workers accept.
pub fn mark_listening(fd: c_int) {
    if lifecycle::phase() != Phase::Starting || readiness::unsent() {
        return;
    }
    if fdtable::state(fd) == FdState::Bound {
        lifecycle::enter(Step::Listening { announce: !readiness::awaited() });
    }
}

/// Closes inherited sockets the program never bound.
pub fn close_unclaimed() {
    if !HAS_PENDING.swap(false, Ordering::AcqRel) {
        return;
    }
    let mut closed = [-1; 64];
    let mut n = 0;
    SOCKETS.lock().drain_pending(|s| {
        info!("closing inherited {} (fd {}): this generation did not bind it", s.key, s.fd);
        if n < closed.len() {
            closed[n] = s.fd;
            n += 1;
        }
    });
    for &fd in &closed[..n] {
        sys::close(fd);
    }
}

/// Bytes of `HUPTIME_STATE=<hex record>` with its NUL.
const ENV_LEN: usize = STATE_VAR.len() + 1 + MAX_HEX_LEN + 1;

/// The record for the next generation plus the fds that carry it: fixed size, filled without
/// allocating (a revival may run in a signal handler).
pub struct Outgoing {
    /// The sockets handed over: private duplicates (close them in the sender afterwards).
    entries: [SocketEntry; MAX_SOCKETS],
    /// Entries in use.
    n: usize,
    /// The fds the next generation inherits: the duplicates, then the readiness pipe (if any).
    keep: [c_int; MAX_SOCKETS + 1],
    /// Fds in use in `keep`.
    n_keep: usize,
    /// `HUPTIME_STATE=<hex>`, NUL-terminated.
    env: [u8; ENV_LEN],
}

impl Outgoing {
    /// An empty record.
    pub const fn new() -> Self {
        const NONE: SocketEntry = SocketEntry { fd: -1, key: SockKey { family: 0, socktype: 0, len: 0, addr: [0; ADDR_MAX] } };
        Outgoing { entries: [NONE; MAX_SOCKETS], n: 0, keep: [-1; MAX_SOCKETS + 1], n_keep: 0, env: [0; ENV_LEN] }
    }
    /// The environment entry carrying the record.
    pub fn env(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.env).unwrap_or_default()
    }
    /// Where the environment entry lives (for an exec plan prepared before it is written).
    pub fn env_ptr(&self) -> *const libc::c_char {
        self.env.as_ptr().cast()
    }
    /// The socket duplicates handed over.
    pub fn socket_fds(&self) -> impl Iterator<Item = c_int> + '_ {
        self.entries[..self.n].iter().map(|e| e.fd)
    }
    /// Every fd the next generation inherits.
    pub fn keep(&self) -> &[c_int] {
        &self.keep[..self.n_keep]
    }
}

impl Default for Outgoing {
    fn default() -> Self {
        Self::new()
    }
}

/// How long (in yields) a revival from a signal handler waits for the socket table's lock before
/// reading the table without it: the holder may be the very thread the handler interrupted.
const HANDLER_YIELDS: u32 = 1000;

/// Builds into `out` the record for generation `generation`, duplicating each unique serving
/// socket into the shim's range (so the program's later close() or our draining does not affect
/// them); `ready_fd` (-1 if none) is the readiness pipe the next generation inherits too.
/// `in_handler`: called from a signal handler, which must not wait for a lock its own thread may
/// hold (see [`crate::spinlock::SpinLock::unguarded`]). Allocation-free.
pub fn prepare(generation: u32, ready_fd: c_int, in_handler: bool, out: &mut Outgoing) {
    out.n = 0;
    out.n_keep = 0;
    let guard = if in_handler { SOCKETS.lock_within(HANDLER_YIELDS) } else { Some(SOCKETS.lock()) };
    // SAFETY: only when the lock could not be had in a signal handler that is about to replace
    // the image; whatever a concurrent writer tears is checked by the next generation, which
    // verifies every inherited fd against its record entry.
    let table: &Sockets = match &guard {
        Some(g) => g,
        None => unsafe { SOCKETS.unguarded() },
    };
    for s in table.iter() {
        if s.pending || out.n == MAX_SOCKETS || out.entries[..out.n].iter().any(|e| e.key == s.key) || !sys::is_serving_socket(s.fd) {
            continue;
        }
        let d = sys::dup_internal(s.fd);
        if d < 0 {
            info!("can't hand over {} (fd {}): {}", s.key, s.fd, crate::log::OsError::last());
            continue;
        }
        out.entries[out.n] = SocketEntry { fd: d, key: s.key };
        out.n += 1;
        out.keep[out.n_keep] = d;
        out.n_keep += 1;
    }
    drop(guard);
    if ready_fd >= 0 {
        out.keep[out.n_keep] = ready_fd;
        out.n_keep += 1;
    }
    // SAFETY: getpid has no preconditions.
    let record = Record { generation, parent_pid: unsafe { libc::getpid() }, ready_fd, sockets: &out.entries[..out.n] };
    let head = STATE_VAR.len() + 1;
    out.env[..STATE_VAR.len()].copy_from_slice(STATE_VAR.as_bytes());
    out.env[STATE_VAR.len()] = b'=';
    let n = record.write_env(&mut out.env[head..ENV_LEN - 1]).unwrap_or(0);
    out.env[head + n] = 0;
}

/// Whether poll/select calls need scanning for readiness (cheap check for the hot path).
#[inline]
pub fn awaiting() -> bool {
    readiness::pending() || HAS_PENDING.load(Ordering::Relaxed) || lifecycle::phase() == Phase::Starting
}
