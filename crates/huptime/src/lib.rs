//! huptime's native library. Loaded two ways:
//! - as `LD_PRELOAD` into the served program, where the hooks in [`hooks`] keep bound sockets
//!   alive across restarts (see [`restart`] for the state machine, [`handover`] for passing
//!   sockets between generations, [`wire`] for the record they exchange);
//! - as the CLI's napi module ([`native`]), for the few things Bun cannot do itself (exec).
//!
//! Pure logic ([`wire`], [`sockkey`], [`config`], [`report`], [`procnet`], [`reach`], [`epollreg`])
//! is unit tested, and the decoders among it are fuzzed for a bounded time (`fuzz`, test only);
//! the rest is tested end to end.

#[cfg(not(test))]
pub mod attempt;
pub mod config;
pub mod epollreg;
pub mod sockkey;
pub mod wire;

pub mod fdtable;
#[cfg(test)]
mod fuzz;
#[cfg(not(test))]
pub mod handover;
#[cfg(not(test))]
pub mod hooks;
#[cfg(not(test))]
mod init;
#[cfg(not(test))]
pub mod launch;
#[macro_use]
pub mod log;
#[cfg(not(test))]
pub mod native;
#[cfg(not(test))]
pub mod preload;
#[cfg(not(test))]
pub mod notify;
pub mod procnet;
pub mod reach;
pub mod real;
pub mod report;
#[cfg(not(test))]
pub mod restart;
#[cfg(not(test))]
pub mod signals;
#[cfg(not(test))]
pub mod status;
#[cfg(not(test))]
pub mod supervise;
#[cfg(not(test))]
pub mod sys;
