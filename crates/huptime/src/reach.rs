//! Whether LD_PRELOAD reaches a program, checked before huptime starts one so that it can say
//! why not instead of starting it without its restarts. Only the dynamic loader reads
//! LD_PRELOAD, so a statically linked ELF (no PT_INTERP header) never gets it; and the loader
//! ignores it (for a path with a slash, as huptime's is) in secure-execution mode (AT_SECURE),
//! which the kernel chooses when the exec changes the caller's ids or gives it capabilities:
//!
//! - setuid: the new effective uid (the file's owner, when the bit applies) differs from the
//!   caller's real uid; setgid likewise with the group (S_ISGID with group execute; the caller's
//!   supplementary groups do not matter);
//! - file capabilities (`security.capability`) for a caller whose real uid is not 0, when they
//!   have the effective bit or grant permitted capabilities;
//! - neither set-id bits nor file capabilities count on a `nosuid` mount, and set-id bits do not
//!   count under no_new_privs.
//!
//! A `#!` script is not set-id capable itself: its interpreter is what the kernel executes, so
//! the interpreter (and its own, up to four levels deep) is checked instead.
//!
//! The rules are pure functions of the file's and the caller's facts ([`obstacle`]); [`inspect`]
//! gathers the facts (stat, statvfs, getxattr, the ELF headers, /proc/self/status).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Why LD_PRELOAD will not apply to a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Obstacle {
    /// A statically linked ELF: there is no dynamic loader to read LD_PRELOAD.
    Static,
    /// Setuid to this uid, not the caller's real uid: secure-execution mode.
    Setuid(u32),
    /// Setgid to this gid, not the caller's real gid: secure-execution mode.
    Setgid(u32),
    /// File capabilities, for a caller that is not root: secure-execution mode.
    Capabilities,
    /// The caller's own effective ids differ from its real ones: every exec is in
    /// secure-execution mode.
    CallerIds,
}

/// Capabilities a file carries (`security.capability`), as the kernel reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileCaps {
    /// The effective bit: the capabilities are raised at exec.
    pub effective: bool,
    /// Permitted set (fP).
    pub permitted: u64,
    /// Inheritable set (fI).
    pub inheritable: u64,
}

/// What an executable file is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ELF file; `dynamic` when it names a program interpreter (PT_INTERP).
    Elf { dynamic: bool },
    /// A `#!` script run by this interpreter.
    Script(PathBuf),
    /// Not readable by the caller (execute-only, as some setuid programs are): only its set-id
    /// bits and capabilities can be judged.
    Unreadable,
    /// Anything else (the exec itself will say what is wrong with it).
    Other,
}

/// The facts about an executable file that decide whether LD_PRELOAD applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExeFacts {
    /// st_mode (permission and set-id bits).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// On a mount with `nosuid`.
    pub nosuid: bool,
    /// Its file capabilities, if any.
    pub caps: Option<FileCaps>,
}

/// The facts about the process that will exec the program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// Real uid.
    pub ruid: u32,
    /// Effective uid.
    pub euid: u32,
    /// Real gid.
    pub rgid: u32,
    /// Effective gid.
    pub egid: u32,
    /// Inheritable capabilities (CapInh).
    pub inheritable: u64,
    /// Permitted capabilities (CapPrm).
    pub permitted: u64,
    /// Capability bounding set (CapBnd).
    pub bounding: u64,
    /// no_new_privs is set (prctl, systemd's NoNewPrivileges=).
    pub no_new_privs: bool,
}

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_IXGRP: u32 = 0o0010;

/// Whether the kernel would run a dynamically linked `exe` in secure-execution mode for
/// `caller`, and why (the rules of the kernel's bprm_fill_uid and cap_bprm_creds_from_file).
pub fn secure_exec(exe: &ExeFacts, caller: &Caller) -> Option<Obstacle> {
    let ids_apply = !exe.nosuid && !caller.no_new_privs;
    let setuid = ids_apply && exe.mode & S_ISUID != 0;
    let setgid = ids_apply && exe.mode & (S_ISGID | S_IXGRP) == (S_ISGID | S_IXGRP);
    let euid = if setuid { exe.uid } else { caller.euid };
    let egid = if setgid { exe.gid } else { caller.egid };
    if euid != caller.ruid {
        return Some(if setuid { Obstacle::Setuid(exe.uid) } else { Obstacle::CallerIds });
    }
    if egid != caller.rgid {
        return Some(if setgid { Obstacle::Setgid(exe.gid) } else { Obstacle::CallerIds });
    }
    let caps = exe.caps.filter(|_| !exe.nosuid && caller.ruid != 0)?;
    // The new permitted set: (bounding & fP) | (pI & fI); under no_new_privs it cannot grow
    // beyond what the caller already has.
    let mut grown = (caps.permitted & caller.bounding) | (caps.inheritable & caller.inheritable);
    if caller.no_new_privs {
        grown &= caller.permitted;
    }
    (caps.effective || grown != 0).then_some(Obstacle::Capabilities)
}

/// Decodes a `security.capability` value (vfs_cap_data, revisions 1 to 3). A revision 3 value
/// whose root id is not 0 belongs to another user namespace and does not apply here (the kernel
/// shows a value for this namespace as revision 2). None: no capabilities that apply.
pub fn parse_caps(raw: &[u8]) -> Option<FileCaps> {
    let word = |i: usize| raw.get(i * 4..i * 4 + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let magic = word(0)?;
    let effective = magic & 1 != 0;
    match magic & 0xff00_0000 {
        0x0100_0000 => Some(FileCaps { effective, permitted: word(1)? as u64, inheritable: word(2)? as u64 }),
        rev @ (0x0200_0000 | 0x0300_0000) => {
            if rev == 0x0300_0000 && word(5)? != 0 {
                return None;
            }
            let permitted = word(1)? as u64 | (word(3)? as u64) << 32;
            let inheritable = word(2)? as u64 | (word(4)? as u64) << 32;
            Some(FileCaps { effective, permitted, inheritable })
        }
        _ => None,
    }
}

/// Reads an ELF file's headers through `read_at(offset, len)`: Some(whether it has a PT_INTERP
/// program header), or None when it is not an ELF file (or cannot be read as one).
pub fn elf_is_dynamic(read_at: impl Fn(u64, usize) -> Option<Vec<u8>>) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    let h = read_at(0, 64)?;
    if h.len() < 52 || h[..4] != *b"\x7fELF" {
        return None;
    }
    let little = match h[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let u16_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1]];
        if little { u16::from_le_bytes(v) } else { u16::from_be_bytes(v) }
    };
    let u32_at = |b: &[u8], i: usize| {
        let v = [b[i], b[i + 1], b[i + 2], b[i + 3]];
        if little { u32::from_le_bytes(v) } else { u32::from_be_bytes(v) }
    };
    let (phoff, phentsize, phnum) = match h[4] {
        1 => (u32_at(&h, 0x1c) as u64, u16_at(&h, 0x2a) as usize, u16_at(&h, 0x2c) as usize),
        2 if h.len() >= 64 => {
            let off = (u32_at(&h, 0x20) as u64, u32_at(&h, 0x24) as u64);
            let phoff = if little { off.0 | off.1 << 32 } else { off.0 << 32 | off.1 };
            (phoff, u16_at(&h, 0x36) as usize, u16_at(&h, 0x38) as usize)
        }
        _ => return None,
    };
    if phentsize < 4 || phnum > 4096 {
        return None;
    }
    let table = read_at(phoff, phentsize * phnum)?;
    if table.len() < phentsize * phnum {
        return None;
    }
    Some((0..phnum).any(|i| u32_at(&table, i * phentsize) == PT_INTERP))
}

/// The interpreter a `#!` line names (the first word after `#!`), or None if `head` (the file's
/// first bytes) does not start with one.
pub fn script_interpreter(head: &[u8]) -> Option<PathBuf> {
    let line = head.strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let word = line.split(|&b| b == b' ' || b == b'\t' || b == 0).find(|w| !w.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(word)))
}

/// Reads the caller's capability sets and no_new_privs from the text of /proc/self/status.
pub fn parse_proc_status(text: &str, caller: &mut Caller) {
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let hex = || u64::from_str_radix(value.trim(), 16).unwrap_or(0);
        match key {
            "CapInh" => caller.inheritable = hex(),
            "CapPrm" => caller.permitted = hex(),
            "CapBnd" => caller.bounding = hex(),
            "NoNewPrivs" => caller.no_new_privs = value.trim() == "1",
            _ => {}
        }
    }
}

/// The calling process's ids, capability sets and no_new_privs.
pub fn caller() -> Caller {
    // SAFETY: the get*id calls have no preconditions.
    let mut c = unsafe { Caller { ruid: libc::getuid(), euid: libc::geteuid(), rgid: libc::getgid(), egid: libc::getegid(), ..Caller::default() } };
    parse_proc_status(&std::fs::read_to_string("/proc/self/status").unwrap_or_default(), &mut c);
    c
}

fn kind(path: &Path) -> Kind {
    let Ok(f) = std::fs::File::open(path) else { return Kind::Unreadable };
    let read_at = |off: u64, len: usize| {
        let mut buf = vec![0u8; len];
        let n = f.read_at(&mut buf, off).ok()?;
        buf.truncate(n);
        Some(buf)
    };
    if let Some(dynamic) = elf_is_dynamic(read_at) {
        return Kind::Elf { dynamic };
    }
    match read_at(0, 256).as_deref().and_then(script_interpreter) {
        Some(interp) => Kind::Script(interp),
        None => Kind::Other,
    }
}

fn facts(path: &Path) -> Option<ExeFacts> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: plain data filled in by stat/statvfs/getxattr from a NUL-terminated path.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        if libc::stat(c.as_ptr(), &mut st) != 0 {
            return None;
        }
        let mut vfs: libc::statvfs = core::mem::zeroed();
        let nosuid = libc::statvfs(c.as_ptr(), &mut vfs) == 0 && vfs.f_flag & libc::ST_NOSUID != 0;
        let mut raw = [0u8; 64];
        let n = libc::getxattr(c.as_ptr(), c"security.capability".as_ptr(), raw.as_mut_ptr().cast(), raw.len());
        let caps = if n > 0 { parse_caps(&raw[..n as usize]) } else { None };
        Some(ExeFacts { mode: st.st_mode, uid: st.st_uid, gid: st.st_gid, nosuid, caps })
    }
}

/// Why LD_PRELOAD would not reach `path` when this process executes it, with the file the
/// reason belongs to (`path` itself, or the interpreter of a script). None when it would, or
/// when the file cannot be inspected (the exec reports what is wrong with it).
pub fn inspect(path: &Path) -> Option<(PathBuf, Obstacle)> {
    let me = caller();
    let mut file = path.to_path_buf();
    for _ in 0..5 {
        match kind(&file) {
            Kind::Elf { dynamic: false } => return Some((file, Obstacle::Static)),
            Kind::Elf { dynamic: true } | Kind::Unreadable => return secure_exec(&facts(&file)?, &me).map(|o| (file, o)),
            Kind::Script(interp) => file = interp,
            Kind::Other => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: Caller = Caller { ruid: 1000, euid: 1000, rgid: 1000, egid: 1000, inheritable: 0, permitted: 0, bounding: 0x1ff_ffff_ffff, no_new_privs: false };
    const ROOT: Caller = Caller { ruid: 0, euid: 0, rgid: 0, egid: 0, ..USER };

    fn exe(mode: u32, uid: u32, gid: u32) -> ExeFacts {
        ExeFacts { mode, uid, gid, nosuid: false, caps: None }
    }

    #[test]
    fn setuid_counts_when_it_changes_the_uid() {
        assert_eq!(secure_exec(&exe(0o4755, 0, 0), &USER), Some(Obstacle::Setuid(0)));
        assert_eq!(secure_exec(&exe(0o4755, 1001, 0), &ROOT), Some(Obstacle::Setuid(1001)));
        assert_eq!(secure_exec(&exe(0o4755, 1000, 1000), &USER), None);
        assert_eq!(secure_exec(&exe(0o755, 0, 0), &USER), None);
    }

    #[test]
    fn setgid_needs_group_execute_and_a_different_real_gid() {
        assert_eq!(secure_exec(&exe(0o2755, 0, 1001), &ROOT), Some(Obstacle::Setgid(1001)));
        assert_eq!(secure_exec(&exe(0o2745, 0, 1001), &ROOT), None, "S_ISGID without S_IXGRP is mandatory locking");
        assert_eq!(secure_exec(&exe(0o2755, 0, 1000), &USER), None);
    }

    #[test]
    fn nosuid_and_no_new_privs_ignore_the_set_id_bits() {
        let on_nosuid = ExeFacts { nosuid: true, ..exe(0o6755, 0, 0) };
        assert_eq!(secure_exec(&on_nosuid, &USER), None);
        assert_eq!(secure_exec(&exe(0o6755, 0, 0), &Caller { no_new_privs: true, ..USER }), None);
    }

    #[test]
    fn mixed_caller_ids_make_every_exec_secure() {
        assert_eq!(secure_exec(&exe(0o755, 0, 0), &Caller { euid: 0, ..USER }), Some(Obstacle::CallerIds));
        assert_eq!(secure_exec(&exe(0o755, 0, 0), &Caller { egid: 0, ..USER }), Some(Obstacle::CallerIds));
    }

    #[test]
    fn file_capabilities_count_for_users_but_not_root() {
        let bind = 1 << 10; // cap_net_bind_service
        let ep = ExeFacts { caps: Some(FileCaps { effective: true, permitted: bind, inheritable: 0 }), ..exe(0o755, 0, 0) };
        assert_eq!(secure_exec(&ep, &USER), Some(Obstacle::Capabilities));
        assert_eq!(secure_exec(&ep, &ROOT), None);
        assert_eq!(secure_exec(&ExeFacts { nosuid: true, ..ep.clone() }, &USER), None);
        let p = ExeFacts { caps: Some(FileCaps { effective: false, permitted: bind, inheritable: 0 }), ..exe(0o755, 0, 0) };
        assert_eq!(secure_exec(&p, &USER), Some(Obstacle::Capabilities));
        assert_eq!(secure_exec(&p, &Caller { no_new_privs: true, ..USER }), None, "under no_new_privs, fP cannot grow");
        let i = ExeFacts { caps: Some(FileCaps { effective: false, permitted: 0, inheritable: bind }), ..exe(0o755, 0, 0) };
        assert_eq!(secure_exec(&i, &USER), None, "fI alone grants nothing to an empty pI");
        assert_eq!(secure_exec(&i, &Caller { inheritable: bind, ..USER }), Some(Obstacle::Capabilities));
    }

    #[test]
    fn capability_xattrs_of_each_revision() {
        // setcap cap_net_bind_service+ep writes revision 2: magic|effective, then (permitted,
        // inheritable) for the low and the high 32 capabilities.
        let mut v2 = Vec::new();
        for w in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
            v2.extend_from_slice(&w.to_le_bytes());
        }
        assert_eq!(parse_caps(&v2), Some(FileCaps { effective: true, permitted: 1 << 10, inheritable: 0 }));
        let mut v3 = v2.clone();
        v3[3] = 3;
        v3.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse_caps(&v3), Some(FileCaps { effective: true, permitted: 1 << 10, inheritable: 0 }));
        let other_ns = [&v3[..20], &100_000u32.to_le_bytes()].concat();
        assert_eq!(parse_caps(&other_ns), None);
        let v1: Vec<u8> = [0x0100_0000u32, 0, 1 << 10].iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(parse_caps(&v1), Some(FileCaps { effective: false, permitted: 0, inheritable: 1 << 10 }));
        assert_eq!(parse_caps(&[1, 2]), None);
        assert_eq!(parse_caps(&0x0500_0000u32.to_le_bytes().repeat(5)), None);
    }

    /// A minimal ELF header (64- or 32-bit, either byte order) with program headers of `types`.
    fn elf(class64: bool, little: bool, types: &[u32]) -> Vec<u8> {
        let (ehsize, phentsize) = if class64 { (64usize, 56usize) } else { (52, 32) };
        let mut b = vec![0u8; ehsize + phentsize * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if class64 { 2 } else { 1 };
        b[5] = if little { 1 } else { 2 };
        let put16 = |b: &mut Vec<u8>, i: usize, v: u16| b[i..i + 2].copy_from_slice(&if little { v.to_le_bytes() } else { v.to_be_bytes() });
        let put32 = |b: &mut Vec<u8>, i: usize, v: u32| b[i..i + 4].copy_from_slice(&if little { v.to_le_bytes() } else { v.to_be_bytes() });
        if class64 {
            let off = if little { 0x20 } else { 0x24 }; // low word of the 64-bit e_phoff
            put32(&mut b, off, ehsize as u32);
            put16(&mut b, 0x36, phentsize as u16);
            put16(&mut b, 0x38, types.len() as u16);
        } else {
            put32(&mut b, 0x1c, ehsize as u32);
            put16(&mut b, 0x2a, phentsize as u16);
            put16(&mut b, 0x2c, types.len() as u16);
        }
        for (i, &t) in types.iter().enumerate() {
            put32(&mut b, ehsize + i * phentsize, t);
        }
        b
    }

    fn reader(b: Vec<u8>) -> impl Fn(u64, usize) -> Option<Vec<u8>> {
        move |off, len| b.get(off as usize..).map(|rest| rest[..len.min(rest.len())].to_vec())
    }

    #[test]
    fn elf_headers_tell_static_from_dynamic() {
        for class64 in [true, false] {
            for little in [true, false] {
                assert_eq!(elf_is_dynamic(reader(elf(class64, little, &[6, 3, 1]))), Some(true), "{class64} {little}");
                assert_eq!(elf_is_dynamic(reader(elf(class64, little, &[1, 1, 4]))), Some(false), "{class64} {little}");
            }
        }
        assert_eq!(elf_is_dynamic(reader(b"#!/bin/sh\necho hi\n".to_vec())), None);
        let mut cut = elf(true, true, &[1, 3]);
        cut.truncate(80);
        assert_eq!(elf_is_dynamic(reader(cut)), None, "truncated program headers");
    }

    #[test]
    fn the_real_programs_on_this_machine() {
        let read = |p: &str| {
            let f = std::fs::File::open(p).unwrap();
            elf_is_dynamic(move |off, len| {
                let mut buf = vec![0u8; len];
                let n = f.read_at(&mut buf, off).ok()?;
                buf.truncate(n);
                Some(buf)
            })
        };
        assert_eq!(read("/bin/sh"), Some(true));
        assert_eq!(inspect(Path::new("/bin/sh")), None);
    }

    #[test]
    fn script_lines() {
        assert_eq!(script_interpreter(b"#!/bin/sh\n"), Some(PathBuf::from("/bin/sh")));
        assert_eq!(script_interpreter(b"#! \t/usr/bin/env python3 -u\nprint()"), Some(PathBuf::from("/usr/bin/env")));
        assert_eq!(script_interpreter(b"#!\n"), None);
        assert_eq!(script_interpreter(b"\x7fELF"), None);
    }

    #[test]
    fn proc_status_fields() {
        let mut c = Caller::default();
        parse_proc_status("Name:\tx\nCapInh:\t0000000000000400\nCapPrm:\t0000000000000001\nCapBnd:\t000001ffffffffff\nNoNewPrivs:\t1\n", &mut c);
        assert_eq!((c.inheritable, c.permitted, c.bounding, c.no_new_privs), (0x400, 1, 0x1ff_ffff_ffff, true));
    }
}
