//! execve and the other ways to start a program (exec*, posix_spawn*, system, popen): each runs
//! with SIGHUP blocked or not as the program sees it, so what it starts gets the mask it would get
//! without huptime (see `signals::as_program`), and with the environment that carries the shim
//! where it must follow, and leaves it out everywhere else (see `childenv::prepared`).

use crate::childenv::{environ_now, prepared, with_environ, Start};
use crate::{real, signals};
use libc::{c_char, c_int};

type Argv = *const *const c_char;

/// Runs `f`, an exec of this process into another program, with the signal mask and SIGHUP's
/// action the program would give it, and `envp` as it must get it (see `childenv::prepared`).
///
/// # Safety
/// As for execve(): `envp` is null or a NULL-terminated array of NUL-terminated strings.
unsafe fn in_place(envp: Argv, f: impl FnOnce(Argv) -> c_int) -> c_int {
    let leaving = !crate::childenv::carries(Start::InPlace);
    signals::as_program(|| {
        // SAFETY: the caller's `envp` (the contract above).
        let exec = || unsafe { prepared(envp, Start::InPlace, f) };
        if leaving {
            crate::sigrecord::exec_leaving(exec)
        } else {
            exec()
        }
    })
}

/// execve(): with the program's view of SIGHUP.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execve(path: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    unsafe { in_place(envp, |e| real::execve(path, argv, e)) }
}

/// execv(): as execve().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    let env = environ_now();
    unsafe { in_place(env, |e| if e == env { real::execv(path, argv) } else { real::execve(path, argv, e) }) }
}

/// execvp(): as execve().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: Argv) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    let env = environ_now();
    unsafe { in_place(env, |e| if e == env { real::execvp(file, argv) } else { real::execvpe(file, argv, e) }) }
}

/// execvpe(): as execve().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn execvpe(file: *const c_char, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    unsafe { in_place(envp, |e| real::execvpe(file, argv, e)) }
}

/// fexecve(): as execve().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fexecve(fd: c_int, argv: Argv, envp: Argv) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    unsafe { in_place(envp, |e| real::fexecve(fd, argv, e)) }
}

/// posix_spawn(): the child starts with the caller's mask unless `attr` sets one: the program's
/// view of SIGHUP then.
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut libc::pid_t,
    path: *const c_char,
    acts: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    signals::as_program(|| unsafe { prepared(envp.cast(), Start::Child, |e| real::posix_spawn(pid, path, acts, attr, argv, e.cast())) })
}

/// posix_spawnp(): as posix_spawn().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn posix_spawnp(
    pid: *mut libc::pid_t,
    file: *const c_char,
    acts: *const libc::posix_spawn_file_actions_t,
    attr: *const libc::posix_spawnattr_t,
    argv: *const *mut c_char,
    envp: *const *mut c_char,
) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    signals::as_program(|| unsafe { prepared(envp.cast(), Start::Child, |e| real::posix_spawnp(pid, file, acts, attr, argv, e.cast())) })
}

/// system(): as posix_spawn() (glibc passes the caller's mask to the shell).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn system(cmd: *const c_char) -> c_int {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    signals::as_program(|| with_environ(|| unsafe { real::system(cmd) }))
}

/// popen(): as posix_spawn().
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn popen(cmd: *const c_char, mode: *const c_char) -> *mut libc::FILE {
    // SAFETY: the program's arguments, handed on (the environment as `prepared` makes it, which
    // points to the program's own entries and ours): its contract with libc holds.
    signals::as_program(|| with_environ(|| unsafe { real::popen(cmd, mode) }))
}

/// execl(), execlp(), execle() once their variadic arguments are laid out as an array (by the
/// trampolines below): `kind` 0, 1, 2. execle's environment follows the argument list's NULL.
///
/// # Safety
/// As for execl(): `path` and the NULL-terminated list in `argv` (then execle's environment) are
/// valid.
#[cfg(target_arch = "x86_64")] // called by the x86_64 trampoline only
unsafe extern "C" fn exec_list(path: *const c_char, argv: Argv, kind: c_int) -> c_int {
    // SAFETY: the program's arguments: `argv` is its NULL-terminated argument list, laid out by
    // the trampoline, and for execle the environment pointer follows that NULL (its contract).
    unsafe {
        match kind {
            0 => execv(path, argv),
            1 => execvp(path, argv),
            _ => {
                let mut i = 0;
                while !(*argv.add(i)).is_null() {
                    i += 1;
                }
                execve(path, argv, *argv.add(i + 1) as Argv)
            }
        }
    }
}

/// The variadic exec functions (x86_64 System V): the five register arguments after `path` are
/// pushed below the caller's stack arguments, which makes one contiguous array of them; then
/// `exec_list` does the rest. The return address is kept aside and put back before returning.
macro_rules! exec_variadic {
    ($name:ident, $kind:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[unsafe(naked)]
        #[cfg_attr(not(test), no_mangle)]
        /// Variadic exec: see `exec_list`.
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                "pop r11",
                "push r9",
                "push r8",
                "push rcx",
                "push rdx",
                "push rsi",
                "push r11",
                "lea rsi, [rsp + 8]",
                concat!("mov edx, ", $kind),
                "call {f}",
                "pop r11",
                "add rsp, 40",
                "push r11",
                "ret",
                f = sym exec_list,
            )
        }
    };
}

exec_variadic!(execl, 0);
exec_variadic!(execlp, 1);
exec_variadic!(execle, 2);
