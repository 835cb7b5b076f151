//! Only the served program carries huptime. The rule: the processes the program starts keep the
//! shim until the generation has bound its first socket (launchers: a script ending in `exec`, a
//! shell that forks the server, `env`, `nice`, pyenv-style shims); after that only the process
//! holding the sockets (its own re-exec: same pid) and its fork-only children do (prefork
//! workers, a daemon's master). Anything else it starts (fork+exec, vfork+exec, clone+exec,
//! posix_spawn, system, popen) runs as it would without huptime. Each process judges by what it
//! knows: whether it, or the process it was forked from, has bound (or been handed) a socket
//! ([`lineage::has_bound`]); a launcher that never binds (a shell whose child serves) passes the
//! shim on to whatever it starts.
//!
//! What carries the shim is its environment: `LD_PRELOAD` (our entry in it) and the `HUPTIME_*`
//! variables. The constructor takes them out of the program's own environment ([`take_from_environ`]),
//! so that the program sees what it was started with, and keeps them here; the exec hooks hand
//! them on only where the shim must follow ([`carries`], [`prepared`]). The shim's own execs
//! (restarts, revivals) start from the launch captured before, which still has them.
//!
//! The environment handed to an exec is rebuilt without allocating: the exec may come from a
//! vfork child sharing the program's memory, or from the child of a multithreaded fork, where
//! malloc's locks may be held by a thread that does not exist there. The rebuilt pointer array
//! goes on the caller's stack, or in a private mapping when it does not fit.

use crate::config::{REVIVE_STREAK_VAR, SHIM_VARS, STATE_VAR};
use crate::{guard, lineage};
use core::sync::atomic::Ordering;
use libc::c_char;
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// The variable the loader reads the preload list from.
const PRELOAD: &[u8] = b"LD_PRELOAD";

/// What the constructor took out of the environment, handed on where the shim must follow.
pub struct Carried {
    /// `NAME=value` of each of huptime's variables the process was given (but the handover
    /// record and the revive streak, which are one image's only).
    entries: Vec<CString>,
    /// Our entry in `LD_PRELOAD`, as it was given (else the path we were loaded from).
    preload: Vec<u8>,
}

static CARRIED: OnceLock<Carried> = OnceLock::new();

/// An environment entry: its name, and its value if it has one.
fn split(entry: &[u8]) -> (&[u8], &[u8]) {
    match entry.iter().position(|&b| b == b'=') {
        Some(i) => (&entry[..i], &entry[i + 1..]),
        None => (entry, &[]),
    }
}

/// Whether `name` is one of huptime's variables (those the CLI sets; a `HUPTIME_CACHE_DIR` the
/// user set is the user's and stays).
fn is_ours(name: &[u8]) -> bool {
    SHIM_VARS.iter().any(|v| v.as_bytes() == name)
}

/// The entries of an `LD_PRELOAD` value (the loader splits at colons and spaces).
fn preload_entries(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b':' || b == b' ').filter(|e| !e.is_empty())
}

/// Constructor time, once the launch is captured: keeps huptime's variables and our
/// `LD_PRELOAD` entry (`ours`: the path this library was loaded from), and takes them out of the
/// program's environment (`LD_PRELOAD` keeps the user's own entries; it goes when nothing else
/// was in it). Single-threaded: nothing else runs yet.
pub fn take_from_environ(ours: &[u8]) {
    let mut entries = Vec::new();
    for name in SHIM_VARS {
        if let Some(v) = std::env::var_os(name) {
            if name != STATE_VAR && name != REVIVE_STREAK_VAR {
                let kv = [name.as_bytes(), b"=", v.as_bytes()].concat();
                entries.extend(CString::new(kv).ok());
            }
            replace(name, None);
        }
    }
    let mut preload = None;
    if let Some(list) = std::env::var_os("LD_PRELOAD") {
        let same = |e: &[u8]| e == ours || same_file(e, ours);
        preload = preload_entries(list.as_bytes()).find(|e| same(e)).map(<[u8]>::to_vec);
        let rest: Vec<&[u8]> = preload_entries(list.as_bytes()).filter(|e| !same(e)).collect();
        if preload.is_some() {
            replace("LD_PRELOAD", Some(&rest.join(&b':')).filter(|r| !r.is_empty()).map(|r| r.as_slice()));
        }
    }
    // Not in the list (loaded some other way): what follows an exec is loaded from where we were.
    let _ = CARRIED.set(Carried { entries, preload: preload.unwrap_or_else(|| ours.to_vec()) });
}

/// Sets `name` to `value` or removes it, and blanks the entry it had (with NUL bytes): it was in
/// the block the kernel shows as /proc/PID/environ, which should not show it either. Constructor
/// time only (nothing has kept a pointer to the old value but earlier constructors).
fn replace(name: &str, value: Option<&[u8]>) {
    let Ok(c) = CString::new(name) else { return };
    // SAFETY: getenv with a NUL-terminated name; single-threaded (see above).
    let old = unsafe { libc::getenv(c.as_ptr()) };
    match value {
        Some(v) => std::env::set_var(name, std::ffi::OsStr::from_bytes(v)),
        None => std::env::remove_var(name),
    }
    if !old.is_null() {
        // SAFETY: `old` points to the value of the entry `name=value`, NUL-terminated, which
        // the environment no longer refers to (unsetenv and setenv never free an entry).
        unsafe {
            let start = old.sub(name.len() + 1);
            core::ptr::write_bytes(start, 0, name.len() + 1 + libc::strlen(old));
        }
    }
}

/// Whether two paths name the same file.
fn same_file(a: &[u8], b: &[u8]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let meta = |p: &[u8]| std::fs::metadata(std::ffi::OsStr::from_bytes(p)).ok();
    matches!((meta(a), meta(b)), (Some(x), Some(y)) if x.dev() == y.dev() && x.ino() == y.ino())
}

/// What a call starts: the calling process's next image (exec), or a new process (spawn).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Start {
    /// execve() and the like: this process goes on as the program it execs.
    InPlace,
    /// posix_spawn(), system(), popen(): a child of this process runs it.
    Child,
}

/// Whether a program started now carries the shim (see the module doc): before the generation
/// has bound its first socket, always; after, only an exec in the process that holds the
/// sockets — not in a process started from it after the bind, whether by fork() (which the shim
/// sees), by vfork() or a raw clone() (a pid the shim's state does not belong to), or by a
/// spawn. Async-signal-safe.
pub fn carries(start: Start) -> bool {
    if !lineage::has_bound() {
        return true;
    }
    // SAFETY: getpid has no preconditions.
    let other = unsafe { libc::getpid() } != guard::OWNER_PID.load(Ordering::Relaxed);
    start == Start::InPlace && !other && !lineage::forked_after_bind()
}

/// The entries of a NULL-terminated environment (none for a null one, as execve takes it).
///
/// # Safety
/// `envp` is null or a NULL-terminated array of NUL-terminated strings.
unsafe fn entries<'a>(envp: *const *const c_char) -> impl Iterator<Item = (*const c_char, &'a [u8])> {
    let mut i = 0;
    core::iter::from_fn(move || {
        // SAFETY: see the contract above: read up to the terminating NULL.
        let p = if envp.is_null() { core::ptr::null() } else { unsafe { *envp.add(i) } };
        if p.is_null() {
            return None;
        }
        i += 1;
        // SAFETY: a NUL-terminated string (the contract).
        Some((p, unsafe { CStr::from_ptr(p) }.to_bytes()))
    })
}

/// Room for a rebuilt environment: the pointer array and the text of its new `LD_PRELOAD` entry.
pub struct Room<'a> {
    ptrs: &'a mut [*const c_char],
    text: &'a mut [u8],
}

/// How much room a rebuilt environment needs (pointers, bytes of text).
#[derive(Debug, PartialEq, Eq)]
pub struct Needed(usize, usize);

/// `envp` as an exec that does (`carry`) or does not carry the shim must get it: the same array
/// when nothing is to change, else one built in `room` — without huptime's variables and our
/// `LD_PRELOAD` entry, then, when carrying, with them (our entry first in the list). `Err` when
/// `room` is too small, with what it needs.
///
/// # Safety
/// `envp` is null or a NULL-terminated array of NUL-terminated strings, which must outlive the
/// returned array (it points to them, and into `room`).
pub unsafe fn rebuild(envp: *const *const c_char, c: &Carried, carry: bool, room: Room<'_>) -> Result<*const *const c_char, Needed> {
    let ours = c.preload.as_slice();
    let mut count = 0;
    let mut preload: Option<&[u8]> = None;
    let mut change = carry;
    // SAFETY: as the contract says.
    for (_, e) in unsafe { entries(envp) } {
        count += 1;
        let (name, value) = split(e);
        if is_ours(name) {
            change = true;
        } else if name == PRELOAD && preload.is_none() {
            preload = Some(value);
            change |= !ours.is_empty() && preload_entries(value).any(|p| p == ours);
        }
    }
    if !change {
        return Ok(envp);
    }
    let added = if carry { c.entries.len() + 1 } else { 0 };
    let need = Needed(count + added + 1, PRELOAD.len() + 1 + ours.len() + 1 + preload.map_or(0, <[u8]>::len) + 1);
    if room.ptrs.len() < need.0 || room.text.len() < need.1 {
        return Err(need);
    }
    // The new LD_PRELOAD entry: ours first when carrying, then the others as they were.
    let text = room.text;
    let mut n = 0;
    for b in [PRELOAD, b"="] {
        put(text, &mut n, b);
    }
    let head = n;
    if carry && !ours.is_empty() {
        put(text, &mut n, ours);
    }
    for p in preload_entries(preload.unwrap_or_default()).filter(|&p| p != ours) {
        if n > head {
            put(text, &mut n, b":");
        }
        put(text, &mut n, p);
    }
    let keep_preload = n > head;
    put(text, &mut n, b"\0");
    let mut k = 0;
    let ptrs = room.ptrs;
    let mut seen_preload = false;
    // SAFETY: as the contract says.
    for (p, e) in unsafe { entries(envp) } {
        let (name, _) = split(e);
        if is_ours(name) {
            continue;
        }
        if name == PRELOAD && !seen_preload {
            seen_preload = true;
            if keep_preload {
                ptrs[k] = text.as_ptr().cast();
                k += 1;
            }
            continue;
        }
        ptrs[k] = p;
        k += 1;
    }
    if keep_preload && !seen_preload {
        ptrs[k] = text.as_ptr().cast();
        k += 1;
    }
    if carry {
        for e in &c.entries {
            ptrs[k] = e.as_ptr();
            k += 1;
        }
    }
    ptrs[k] = core::ptr::null();
    Ok(ptrs.as_ptr())
}

/// Appends `b` to `text` at `n` (the room was checked beforehand).
fn put(text: &mut [u8], n: &mut usize, b: &[u8]) {
    text[*n..*n + b.len()].copy_from_slice(b);
    *n += b.len();
}

/// Pointers that fit on the stack of a hook (a larger environment goes in a mapping).
const STACK_PTRS: usize = 512;
/// Bytes of `LD_PRELOAD` text that fit on the stack of a hook.
const STACK_TEXT: usize = 4096;

/// Runs `f` (an exec or spawn, as `start` says) with `envp` as it must get it (see [`rebuild`]). When the shim is
/// off here, with `envp` unchanged. Allocation-free: the new array is on this stack, or in a
/// private mapping unmapped afterwards (in a vfork child whose exec succeeds, the mapping stays
/// in the parent: only for an environment of more than 500 variables).
///
/// # Safety
/// As for [`rebuild`]; `f` may use the array only until it returns.
pub unsafe fn prepared<T>(envp: *const *const c_char, start: Start, f: impl FnOnce(*const *const c_char) -> T) -> T {
    let Some(c) = CARRIED.get().filter(|_| guard::ACTIVE.load(Ordering::Acquire)) else { return f(envp) };
    let carry = carries(start);
    let mut ptrs = [core::ptr::null(); STACK_PTRS];
    let mut text = [0u8; STACK_TEXT];
    // SAFETY: the caller's contract; the room lives until `f` returns.
    let need = match unsafe { rebuild(envp, c, carry, Room { ptrs: &mut ptrs, text: &mut text }) } {
        Ok(p) => return f(p),
        Err(need) => need,
    };
    let bytes = need.0 * core::mem::size_of::<*const c_char>() + need.1;
    // SAFETY: a fresh private anonymous mapping of `bytes`, split into the two parts of a room
    // (the pointer part first, so it is aligned); unmapped once `f` returns.
    unsafe {
        let m = libc::mmap(core::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if m == libc::MAP_FAILED {
            return f(envp);
        }
        let ptrs = core::slice::from_raw_parts_mut(m.cast::<*const c_char>(), need.0);
        let text = core::slice::from_raw_parts_mut(m.cast::<u8>().add(need.0 * core::mem::size_of::<*const c_char>()), need.1);
        let r = match rebuild(envp, c, carry, Room { ptrs, text }) {
            Ok(p) => f(p),
            Err(_) => f(envp),
        };
        let e = crate::sys::errno();
        libc::munmap(m, bytes);
        crate::sys::set_errno(e);
        r
    }
}

extern "C" {
    static mut environ: *const *const c_char;
}

/// The program's environment (libc's `environ`).
pub fn environ_now() -> *const *const c_char {
    // SAFETY: reading the pointer libc keeps; what it points to is the program's environment.
    unsafe { *core::ptr::addr_of!(environ) }
}

/// Runs `f` (system(), popen(): libc starts their shell with `environ`) with the environment it
/// must get: `environ` itself, or for the duration of the call a rebuilt one (see [`rebuild`]).
/// Another thread that changes the environment (setenv) during such a call may lose its change:
/// only a launcher that calls system() or popen() before its program serves (or a program that
/// put huptime's variables back into its own environment) has its environment rebuilt.
pub fn with_environ<T>(f: impl FnOnce() -> T) -> T {
    let env = environ_now();
    // SAFETY: `environ` is the program's NULL-terminated environment; the rebuilt one is
    // installed only while `f` runs, and the program's put back before it goes out of scope.
    unsafe {
        prepared(env, Start::Child, |p| {
            if p == env {
                return f();
            }
            *core::ptr::addr_of_mut!(environ) = p;
            let r = f();
            *core::ptr::addr_of_mut!(environ) = env;
            r
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carried() -> Carried {
        let entries = ["HUPTIME_MODE=fork", "HUPTIME_ROOT_PID=7"].iter().map(|s| CString::new(*s).unwrap()).collect();
        Carried { entries, preload: b"/c/huptime-x.so".to_vec() }
    }

    /// Runs `rebuild` on `env` and returns the result as strings (`None`: passed unchanged).
    fn run(env: &[&str], carry: bool) -> Option<Vec<String>> {
        let owned: Vec<CString> = env.iter().map(|s| CString::new(*s).unwrap()).collect();
        let mut envp: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        envp.push(core::ptr::null());
        let (mut ptrs, mut text) = ([core::ptr::null(); 16], [0u8; 256]);
        let c = carried();
        // SAFETY: a NULL-terminated array of our strings, alive meanwhile.
        let out = unsafe { rebuild(envp.as_ptr(), &c, carry, Room { ptrs: &mut ptrs, text: &mut text }) }.unwrap();
        if out == envp.as_ptr() {
            return None;
        }
        // SAFETY: the array just built, NULL-terminated.
        Some(unsafe { entries(out) }.map(|(_, e)| String::from_utf8(e.to_vec()).unwrap()).collect())
    }

    #[test]
    fn a_clean_environment_is_passed_as_it_is() {
        assert_eq!(run(&["A=1", "LD_PRELOAD=/u/mine.so", "HUPTIME_CACHE_DIR=/x"], false), None);
        assert_eq!(run(&[], false), None);
    }

    #[test]
    fn huptime_s_variables_and_preload_entry_are_stripped_and_the_user_s_kept() {
        let got = run(&["A=1", "HUPTIME_MODE=exec", "LD_PRELOAD=/c/huptime-x.so:/u/mine.so", "B=2", "HUPTIME_STATE=00"], false);
        assert_eq!(got.unwrap(), ["A=1", "LD_PRELOAD=/u/mine.so", "B=2"]);
        let got = run(&["LD_PRELOAD=/c/huptime-x.so", "A=1"], false);
        assert_eq!(got.unwrap(), ["A=1"], "nothing else preloaded: no LD_PRELOAD");
    }

    #[test]
    fn carrying_adds_them_back_with_our_library_first() {
        let got = run(&["A=1", "LD_PRELOAD=/u/mine.so /u/two.so"], true);
        assert_eq!(got.unwrap(), ["A=1", "LD_PRELOAD=/c/huptime-x.so:/u/mine.so:/u/two.so", "HUPTIME_MODE=fork", "HUPTIME_ROOT_PID=7"]);
        let got = run(&["A=1", "HUPTIME_MODE=exec"], true);
        assert_eq!(got.unwrap(), ["A=1", "LD_PRELOAD=/c/huptime-x.so", "HUPTIME_MODE=fork", "HUPTIME_ROOT_PID=7"], "ours replace a stale value");
        let got = run(&["LD_PRELOAD=/c/huptime-x.so:/u/mine.so"], true);
        assert_eq!(got.unwrap(), ["LD_PRELOAD=/c/huptime-x.so:/u/mine.so", "HUPTIME_MODE=fork", "HUPTIME_ROOT_PID=7"], "not twice");
    }

    #[test]
    fn too_little_room_says_how_much_is_needed() {
        let owned: Vec<CString> = ["A=1", "HUPTIME_MODE=x"].iter().map(|s| CString::new(*s).unwrap()).collect();
        let envp: Vec<*const c_char> = owned.iter().map(|c| c.as_ptr()).chain([core::ptr::null()]).collect();
        let (mut ptrs, mut text) = ([core::ptr::null(); 2], [0u8; 64]);
        // SAFETY: as in `run`.
        let r = unsafe { rebuild(envp.as_ptr(), &carried(), true, Room { ptrs: &mut ptrs, text: &mut text }) };
        assert_eq!(r.unwrap_err(), Needed(2 + 3 + 1, "LD_PRELOAD=".len() + "/c/huptime-x.so".len() + 1 + 1));
    }

    #[test]
    fn a_null_environment_is_an_empty_one() {
        let (mut ptrs, mut text, c) = ([core::ptr::null(); 8], [0u8; 64], carried());
        // SAFETY: null is an empty environment.
        let out = unsafe { rebuild(core::ptr::null(), &c, true, Room { ptrs: &mut ptrs, text: &mut text }) }.unwrap();
        // SAFETY: the array just built.
        let got: Vec<_> = unsafe { entries(out) }.map(|(_, e)| e.to_vec()).collect();
        assert_eq!(got, [b"LD_PRELOAD=/c/huptime-x.so".to_vec(), b"HUPTIME_MODE=fork".to_vec(), b"HUPTIME_ROOT_PID=7".to_vec()]);
    }
}
