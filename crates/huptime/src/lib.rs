//! huptime's native library. Loaded two ways:
//! - as `LD_PRELOAD` into the served program, where the hooks in [`hooks`] keep bound sockets
//!   alive across restarts (see [`restart`] for the state machine, [`handover`] for passing
//!   sockets between generations, [`wire`] for the record they exchange);
//! - as the CLI's napi module ([`native`]), for the few things Bun cannot do itself (exec).
//!
//! Every module compiles under `cargo test`. The hooks' symbols are exported (`no_mangle`) and the
//! constructor is registered (`.init_array`) only outside tests, so a test binary keeps libc's own
//! close, bind, fork, ... . Pure logic is unit tested, and the decoders among it are fuzzed for a
//! bounded time (`fuzz`, test only); what needs a served program is tested end to end.

pub mod attempt;
pub mod config;
pub mod epollreg;
pub mod sockkey;
pub mod wire;

pub mod fdtable;
#[cfg(test)]
mod fuzz;
pub mod handover;
pub mod hooks;
mod init;
pub mod launch;
#[macro_use]
pub mod log;
pub mod native;
pub mod preload;
pub mod notify;
pub mod procnet;
pub mod reach;
pub mod real;
pub mod report;
pub mod restart;
pub mod status;
pub mod supervise;
pub mod sys;
