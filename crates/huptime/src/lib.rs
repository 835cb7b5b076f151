//! huptime's native library. Loaded two ways:
//! - as `LD_PRELOAD` into the served program, where the hooks in [`hooks`] keep bound sockets
//!   alive across restarts (see [`lifecycle`] and [`phase`] for the state machine, [`handover`]
//!   for passing sockets between generations, [`wire`] for the record they exchange);
//! - as the CLI's napi module ([`native`]), for the few things Bun cannot do itself (exec).
//!
//! Every module compiles under `cargo test`. The hooks' symbols are exported (`no_mangle`) and the
//! constructor is registered (`.init_array`) only outside tests, so a test binary keeps libc's own
//! close, bind, fork, ... . Pure logic is unit tested, and the decoders among it are fuzzed for a
//! bounded time (`fuzz`, test only); what needs a served program is tested end to end.

#![deny(unsafe_op_in_unsafe_fn)]

// Logging first: its macros are used everywhere below.
#[macro_use]
pub mod log;

// The pure core: data, codecs and tables, no process-wide effects.
pub mod config;
pub mod epollreg;
pub mod fdtable;
pub mod httphead;
pub mod limits;
pub mod phase;
pub mod procnet;
pub mod reach;
pub mod ready_channel;
pub mod sockkey;
pub mod splice;
pub mod spinlock;
pub mod wire;
#[cfg(test)]
mod fuzz;

// The OS seam: real libc symbols and small system-call helpers.
pub mod real;
pub mod sys;

// The served program's side: the hooks, the constructor, and the lifecycle they drive.
pub mod accept_gate;
pub mod attempt;
pub mod binding;
pub mod childenv;
pub mod connio;
pub mod drain;
pub mod exec_restart;
pub mod fdtrack;
pub mod fork_restart;
pub mod forklocks;
pub mod generation_chain;
pub mod guard;
pub mod handover;
pub mod helper;
pub mod hooks;
pub mod keepalive;
mod init;
pub mod launch;
pub mod lifecycle;
pub mod lineage;
pub mod notify;
pub mod pid1;
pub mod pid1_plan;
pub mod preload;
pub mod readiness;
pub mod receipt;
pub mod restart;
pub mod revive;
pub mod rewrite;
pub mod signals;
pub mod sigrecord;
pub mod sockmode;
pub mod sockq;
pub mod status;
pub mod stopsig;
pub mod waits;

// The CLI's side: napi exports.
pub mod listen_fds;
pub mod native;
pub mod typescript;
pub mod unotify;
