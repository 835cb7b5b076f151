//! napi exports for running a static program under seccomp user notification (src/seccomp.ts).

use super::{filter, fresh, held, ready, spawn, steer, supervisor};
use napi::{Error, Result, Status};
use napi_derive::napi;

/// Why this machine cannot run a static program under huptime (it needs Linux 5.9 with seccomp
/// user notification, and huptime's filter must install), or null when it can.
#[napi]
pub fn seccomp_unsupported() -> Option<String> {
    filter::unsupported()
}

/// Starts `file` as a new generation under the seccomp filter, with `stderr_fd` as its stderr
/// (-1: inherited), in its own process group; its bind() and listen() calls are answered from
/// now on. `previous` is the generation it is to replace (0: none), which decides whether its
/// accept() calls are sent too ([`steer::sends_after`]). Returns its pid.
#[napi]
pub fn seccomp_spawn(file: String, argv: Vec<String>, env: Vec<String>, stderr_fd: i32, previous: i32) -> Result<i32> {
    let args = crate::native::ExecArgs::new(&file, argv, env)?;
    let fail = |e: String| Error::new(Status::GenericFailure, format!("can't start {file}: {e}"));
    let sends = if previous > 0 { held::with(|t| steer::sends_after(t, previous)) } else { filter::Sends::BindListen };
    let (pid, fd) = spawn::start(&args.file, &args.argv, &args.env, stderr_fd, sends).map_err(fail)?;
    held::with(|t| t.generation(pid).sends = sends);
    supervisor::watch(pid, fd).map_err(fail)?;
    Ok(pid)
}

/// What a generation did with its sockets, and whether it is ready.
#[napi(object)]
pub struct SeccompGeneration {
    /// The addresses it listens on (or was handed), e.g. `tcp 127.0.0.1:8080`.
    pub listening: Vec<String>,
    /// How many of its bind() calls got a socket huptime held.
    pub taken_over: u32,
    /// How many of its bind() calls got their own socket beside one huptime held (the same
    /// address; new connections are steered to it once it serves).
    pub joined: u32,
    /// Whether it waits for connections on all of them (a thread in accept, or its epoll).
    pub ready: bool,
    /// Whether its filter sends its accept() calls to huptime (the generation it replaced had a
    /// socket new connections can't be steered away from).
    pub sends_accept: bool,
    /// Notifications answered for it.
    pub answered: f64,
}

/// The state of generation `pid`. A listening socket it has closed since (one it opened to probe
/// a port, say) is forgotten first: it is neither waited for nor kept for the next generation.
#[napi]
pub fn seccomp_generation(pid: i32) -> SeccompGeneration {
    let before = held::with(|t| t.listened_inodes(pid));
    let open = ready::open_sockets(pid);
    let (listening, inodes, taken_over, joined, answered, sends) = held::with(|t| {
        t.forget_closed(pid, &before, &open);
        let g = t.generation(pid);
        (g.listened.iter().map(|(k, _)| k.to_string()).collect::<Vec<_>>(), g.listened.iter().map(|&(_, i)| i).collect::<Vec<_>>(), g.taken_over, g.joined, g.answered, g.sends)
    });
    let sends_accept = sends == filter::Sends::BindListenAccept;
    SeccompGeneration { listening, taken_over, joined, ready: ready::is_ready(pid, &inodes), sends_accept, answered: answered as f64 }
}

/// Generation `pid` is being replaced: it takes no new connection from now on (new TCP
/// connections go to its successor's socket; where its filter sends accept(), that fails with
/// EAGAIN on a non-blocking socket and waits on a blocking one). Returns how many connections it
/// still has to take from its sockets, or accepted and has not read from yet (call again until
/// 0, then send the stop signal).
#[napi]
pub fn seccomp_refuse_accepts(pid: i32) -> u32 {
    let left = supervisor::refuse_accepts(pid);
    let ports: Vec<u16> = held::with(|t| t.generation(pid).listened.iter().filter_map(|(k, _)| k.port()).collect());
    left + fresh::count(pid, &ports)
}

/// Generation `pid` serves (or the generation it replaces has ended): new connections to each
/// address where it listens on a socket of its own beside another generation's go to it from now
/// on. Call before [`seccomp_keep_only`].
#[napi]
pub fn seccomp_steer_to(pid: i32) {
    held::with(|t| steer::steer_to(t, pid));
}

/// The generation generation `pid` replaced has ended: the kernel picks among `pid`'s sockets
/// again (the steering program is taken off).
#[napi]
pub fn seccomp_settle(pid: i32) {
    held::with(|t| steer::settle(t, pid));
}

/// Generation `pid` was sent its stop signal: its waiting accept() calls fail with EINTR.
#[napi]
pub fn seccomp_release_accepts(pid: i32) {
    supervisor::release_accepts(pid);
}

/// Generation `pid` now serves: the held sockets it does not use are closed.
#[napi]
pub fn seccomp_keep_only(pid: i32) {
    held::with(|t| t.keep_only_those_of(pid));
}

/// The addresses huptime holds for the next generation.
#[napi]
pub fn seccomp_held() -> Vec<String> {
    held::with(|t| t.held_addresses())
}

/// The state of one generation, for its status file (the program cannot write its own).
#[napi(object)]
pub struct GenerationStatus {
    /// The program's pid.
    pub pid: i32,
    /// Its generation number (1 for the first).
    pub generation: u32,
    /// starting, serving, draining (see STATUS_STATES).
    pub state: String,
    /// The generation it replaced (0: none).
    pub previous: i32,
    /// Failed restarts while it served.
    pub rollbacks: u32,
    /// --ready-timeout in ms.
    pub ready_timeout_ms: u32,
    /// --drain-timeout in ms (0: no limit).
    pub drain_timeout_ms: u32,
    /// Why the last restart failed.
    pub last_error: String,
}

/// Publishes `s` in the status directory `dir` as the program's own state file (mode `fork`).
#[napi]
pub fn seccomp_publish(dir: String, s: GenerationStatus) {
    let record = crate::status::Record {
        pid: s.pid,
        generation: s.generation,
        mode: crate::status::mode::FORK,
        state: &s.state,
        previous: s.previous,
        rollbacks: s.rollbacks,
        ready_timeout_ms: s.ready_timeout_ms.into(),
        drain_timeout_ms: s.drain_timeout_ms.into(),
        // huptime does not see a static program's connections (nothing of it is in the program).
        closed: [0; 3],
        last_error: &s.last_error,
    };
    crate::status::write(std::path::Path::new(&dir), &record);
}

/// Removes the state file of `pid` from `dir` (the generation ended).
#[napi]
pub fn seccomp_withdraw(dir: String, pid: i32) {
    let _ = std::fs::remove_file(std::path::Path::new(&dir).join(format!("{pid}{}", crate::status::SUFFIX)));
}
