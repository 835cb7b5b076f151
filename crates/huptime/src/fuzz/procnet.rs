//! Fuzzing the socket table parsers ([`crate::procnet`]): well-formed /proc/net/{tcp,tcp6,udp,
//! udp6,unix} tables, the same with lines dropped, repeated or cut, fields swapped or replaced
//! (other scripts, multi-byte characters in hex fields, huge numbers), and byte-level mutations.
//! The kernel writes these tables, but the CLI's native module must not abort on any text.

use super::{mutate, run, Outcomes, Rng};
use crate::procnet::{parse_inet, parse_unix, summarize, Entry};
use std::collections::{HashMap, HashSet};

const PROTOS: [&str; 5] = ["tcp", "tcp6", "udp", "udp6", "unix"];

/// A row as the kernel writes it, and what the parser must make of it (inode, port, listening).
fn row(rng: &mut Rng, proto: &str, sl: usize, inode: u64) -> (String, u16, bool) {
    let port = rng.next() as u16;
    if proto == "unix" {
        let flags = *rng.pick(&[0u32, 0x10000]);
        let ty = *rng.pick(&[1u16, 2, 5]);
        let st = *rng.pick(&[1u8, 3]);
        let path = *rng.pick(&["", "/run/app.sock", "@0001a", "@abstract"]);
        let listening = if ty == 2 { !path.is_empty() } else { flags != 0 };
        return (format!("0000000000000000: 00000002 00000000 {flags:08X} {ty:04X} {st:02X} {inode} {path}"), 0, listening);
    }
    let hex = |rng: &mut Rng, n: usize| -> String { (0..n).map(|_| format!("{:X}", rng.below(16))).collect() };
    let width = if proto.ends_with('6') { 32 } else { 8 };
    let (local, remote) = (hex(rng, width), hex(rng, width));
    let rport = if rng.one_in(2) { 0 } else { rng.next() as u16 };
    let st = *rng.pick(&[0x01u8, 0x07, 0x08, 0x0A]);
    let listening = if proto.starts_with("tcp") { st == 0x0A } else { rport == 0 && port != 0 };
    let line = format!(
        "{sl:4}: {local}:{port:04X} {remote}:{rport:04X} {st:02X} 00000000:00000000 00:00000000 00000000     0        0 {inode} 1 0000000000000000 100 0 0 10 0"
    );
    (line, port, listening)
}

fn header(proto: &str) -> &'static str {
    if proto == "unix" {
        "Num       RefCount Protocol Flags    Type St Inode Path"
    } else {
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode"
    }
}

const TOKENS: [&str; 12] = ["", "-1", ":", "::", "0A", "ZZ", "é", "٣٣", "18446744073709551616", "0100007F:1F90", "\u{feff}", "𝟗"];

/// One line-level edit: drop, repeat, cut or swap, or change a field (replace it, or put a
/// multi-byte character over two of its bytes so its length stays the same).
fn edit_lines(rng: &mut Rng, lines: &mut Vec<String>) {
    if lines.is_empty() {
        return;
    }
    let i = rng.below(lines.len());
    match rng.below(5) {
        0 => {
            lines.remove(i);
        }
        1 => lines.insert(i, lines[i].clone()),
        2 => {
            let cuts: Vec<usize> = lines[i].char_indices().map(|(at, _)| at).collect();
            let at = cuts.get(rng.below(cuts.len() + 1)).copied().unwrap_or(lines[i].len());
            lines[i].truncate(at);
        }
        _ => {
            let mut fields: Vec<String> = lines[i].split(' ').map(str::to_string).collect();
            let f = rng.below(fields.len());
            if rng.one_in(2) {
                fields[f] = rng.pick(&TOKENS).to_string();
            } else if fields[f].is_ascii() && fields[f].len() >= 2 {
                let at = rng.below(fields[f].len() - 1);
                let wide = *rng.pick(&["é", "ß", "ж"]);
                fields[f].replace_range(at..at + 2, wide);
            } else {
                let g = rng.below(fields.len());
                fields.swap(f, g);
            }
            lines[i] = fields.join(" ");
        }
    }
}

fn check_entries(proto: &str, table: &HashMap<u64, Entry>) {
    for e in table.values() {
        assert_eq!(e.proto, proto);
        if proto != "unix" {
            assert!(e.local.ends_with(&format!(":{}", e.port)), "{e:?}");
        }
    }
}

#[test]
fn parsers_never_panic() {
    let outcomes = run("procnet", |rng, out: &mut Outcomes| {
        let proto = *rng.pick(&PROTOS);
        let mut expected = HashMap::new();
        let mut lines = vec![header(proto).to_string()];
        for sl in 0..rng.below(8) {
            let inode = 1000 + sl as u64;
            let (line, port, listening) = row(rng, proto, sl, inode);
            lines.push(line);
            expected.insert(inode, (port, listening));
        }
        let kind = rng.below(3);
        if kind == 1 {
            for _ in 0..1 + rng.below(3) {
                edit_lines(rng, &mut lines);
            }
        }
        let mut text = lines.join("\n");
        if kind == 2 {
            let mut bytes = text.into_bytes();
            let donor = bytes.clone();
            mutate(rng, &mut bytes, &donor);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let table = if proto == "unix" { parse_unix(&text) } else { parse_inet(&text, proto) };
        check_entries(proto, &table);
        if kind == 0 {
            assert_eq!(table.len(), expected.len(), "{text}");
            for (inode, (port, listening)) in &expected {
                let e = &table[inode];
                assert_eq!((e.port, e.listening), (*port, *listening), "{e:?}");
            }
        }
        let inodes: HashSet<u64> = table.keys().copied().filter(|_| rng.one_in(2)).collect();
        let s = summarize(&inodes, std::slice::from_ref(&table));
        assert!(s.connections as usize <= inodes.len());
        assert!(s.listening.windows(2).all(|w| w[0] < w[1]), "not sorted and unique: {:?}", s.listening);
        out.count(if table.is_empty() { "no entries" } else { "entries" });
    });
    for seen in ["entries", "no entries"] {
        assert!(outcomes.seen(seen) > 0, "no case gave {seen}");
    }
}
