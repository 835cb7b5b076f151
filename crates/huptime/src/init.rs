//! The constructor: runs in every process the library is loaded into, before `main`. It does
//! nothing unless `HUPTIME_MODE` says the program runs under huptime (the CLI also loads this
//! library, as its native module, and must stay untouched). It reads huptime's variables and takes
//! them out of the program's environment (see [`crate::childenv`]).

use crate::config::{self, MODE_VAR, RECEIPT_VAR, REVIVE_STREAK_VAR, STATE_VAR};
use crate::{accept_gate, childenv, handover, helper, hooks, launch, lifecycle, lineage, readiness, real, revive, signals, stopsig};
use core::sync::atomic::Ordering;

#[cfg_attr(test, allow(dead_code))]
extern "C" fn huptime_init() {
    crate::pid1::run_if_asked();
    if std::env::var_os(MODE_VAR).is_none() {
        return;
    }
    real::resolve_all();
    crate::preload::capture();
    let (cfg, warnings) = config::parse(|k| std::env::var_os(k));
    crate::status::configure(&cfg);
    let (notify_socket, supervisor) = (cfg.notify_socket.clone(), cfg.supervisor_pid);
    let cfg_pids = (cfg.root_pid, cfg.supervisor_pid);
    crate::log::DEBUG.store(cfg.debug, Ordering::Relaxed);
    config::install(cfg);
    handover::adopt_from_env();
    crate::receipt::adopt_from_env();
    helper::watch_predecessor(readiness::awaited());
    handover::adopt_listen_fds();
    if lineage::started_by_generation() {
        lifecycle::republish();
    }
    if let Err(e) = launch::capture(&[STATE_VAR, REVIVE_STREAK_VAR, RECEIPT_VAR]) {
        info!("restarts disabled: {e}");
    }
    // The launch (what restarts start from) has huptime's variables; the program does not see them.
    childenv::take_from_environ(crate::preload::loaded_from().as_deref().map_or(&[], |p| p.to_bytes()));
    for w in warnings {
        info!("{w}");
    }
    crate::notify::configure(notify_socket.as_deref());
    if is_the_program(&cfg_pids) {
        signals::take_sighup(true);
    }
    signals::install_handler();
    accept_gate::install_wake_handler();
    stopsig::watch_for_notify();
    stopsig::drain_on_stop();
    revive::mark_started();
    die_with_supervisor(supervisor);
    // SAFETY: getpid has no preconditions.
    hooks::OWNER_PID.store(unsafe { libc::getpid() }, Ordering::Relaxed);
    hooks::ACTIVE.store(true, Ordering::Release);
}

/// Whether this process is the program huptime serves (the image huptime exec'd into, a later
/// generation, an instance of `--multi`) rather than a process the program spawned (which inherits
/// the shim): only the program takes SIGHUP from its threads at start (a spawned process does once
/// it binds a socket), so that what the program spawns starts with the mask it would without us.
fn is_the_program((root, supervisor): &(i32, i32)) -> bool {
    // SAFETY: getpid/getppid have no preconditions.
    let (me, parent) = unsafe { (libc::getpid(), libc::getppid()) };
    me == *root || lineage::started_by_generation() || (*supervisor > 0 && parent == *supervisor)
}

/// Under `huptime --multi`, instances end when huptime (pid `parent`, 0 if none) does
/// (parent-death signal), even if it is killed. Set only in the supervisor's own children: later
/// generations are its children too.
#[cfg_attr(test, allow(dead_code))]
fn die_with_supervisor(parent: i32) {
    if parent <= 0 {
        return;
    }
    // SAFETY: prctl/getppid with integer arguments.
    unsafe {
        if libc::getppid() == parent {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
            if libc::getppid() != parent {
                libc::raise(libc::SIGTERM); // it died before the signal was armed
            }
        }
    }
}

#[cfg(not(test))]
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = huptime_init;
