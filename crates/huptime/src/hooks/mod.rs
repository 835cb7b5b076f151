//! The interposed libc functions. Each hook is thin: when the shim is off, or the call is
//! re-entered from inside the shim, it goes straight to the real function; otherwise it does its
//! bookkeeping around the real call and preserves errno (the checks: [`crate::guard`]).

pub use crate::guard::{active_here, enter, enter_if, keep_errno, ACTIVE, OWNER_PID};

pub mod exec;
pub mod fd;
pub mod io;
pub mod mode;
pub mod process;
pub mod sigmask;
pub mod socket;
