//! The constructor: runs in every process the library is loaded into, before `main`. It does
//! nothing unless `HUPTIME_MODE` says the program runs under huptime (the CLI also loads this
//! library, as its native module, and must stay untouched).

use crate::config::{self, MODE_VAR, STATE_VAR};
use crate::{handover, hooks, info, launch, real, restart};
use core::sync::atomic::Ordering;

extern "C" fn huptime_init() {
    if std::env::var_os(MODE_VAR).is_none() {
        return;
    }
    real::resolve_all();
    let (cfg, warnings) = config::parse(|k| std::env::var(k).ok());
    crate::status::configure(cfg.mode);
    restart::configure(cfg);
    handover::adopt_from_env();
    if let Err(e) = launch::capture(&[STATE_VAR, "HUPTIME_REVIVE_STREAK"]) {
        info!("restarts disabled: {e}");
    }
    for w in warnings {
        info!("{w}");
    }
    restart::install_handler();
    restart::mark_started();
    hooks::ACTIVE.store(true, Ordering::Release);
}

#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = huptime_init;
