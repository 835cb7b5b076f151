//! Fuzzing the handover record ([`crate::wire`]): `Handover::decode` on random bytes and on
//! mutated valid records (some resealed with a correct length and checksum, some with an edited
//! count, address length, fd or payload length, so the payload parser itself is reached), and
//! `Handover::from_env` on their hex forms, corrupted or not.

use super::{mutate, run, Outcomes, Rng};
use crate::sockkey::SockKey;
use crate::wire::{fnv1a32, Handover, SocketEntry, WireError, HEADER, MAGIC, MAX_ENV_LEN, MAX_SOCKETS, VERSION};

fn random_key(rng: &mut Rng) -> SockKey {
    let socktype = *rng.pick(&[1, 2, 5]);
    let mut raw = Vec::new();
    match rng.below(4) {
        0 => {
            raw.extend_from_slice(&2u16.to_ne_bytes());
            raw.extend((0..14).map(|_| rng.next() as u8));
        }
        1 => {
            raw.extend_from_slice(&10u16.to_ne_bytes());
            raw.extend((0..26).map(|_| rng.next() as u8));
        }
        2 => {
            raw.extend_from_slice(&1u16.to_ne_bytes());
            raw.extend((0..1 + rng.below(100)).map(|_| 1 + rng.below(255) as u8)); // a path: no NUL
        }
        _ => {
            raw.extend_from_slice(&[1, 0, 0]); // abstract: every byte counts
            raw.extend((0..1 + rng.below(100)).map(|_| rng.next() as u8));
        }
    }
    SockKey::from_sockaddr(socktype, &raw).expect("a well-formed address")
}

fn random_record(rng: &mut Rng) -> Handover {
    let count = if rng.one_in(20) { rng.below(MAX_SOCKETS + 1) } else { rng.below(5) };
    let sockets = (0..count)
        .map(|_| {
            let fd = if rng.one_in(2) { rng.below(64) as i32 } else { (rng.next() >> 33) as i32 };
            SocketEntry { fd, key: random_key(rng) }
        })
        .collect();
    let any = rng.next() as i32;
    let ready_fd = *rng.pick(&[-1, 0, 3, 9, any]);
    Handover { generation: rng.next() as u32, parent_pid: rng.next() as i32, ready_fd, sockets }
}

/// Makes the header, length and checksum consistent with the bytes present (unless
/// `keep_length`), so that the decoder goes past its first checks.
fn reseal(buf: &mut [u8], keep_length: bool) {
    let len = buf.len();
    if len < HEADER + 4 {
        return;
    }
    buf[..4].copy_from_slice(&MAGIC);
    buf[4] = VERSION;
    buf[5] = 0;
    if !keep_length {
        buf[6..10].copy_from_slice(&((len - HEADER - 4) as u32).to_le_bytes());
    }
    let sum = fnv1a32(&buf[HEADER..len - 4]).to_le_bytes();
    buf[len - 4..].copy_from_slice(&sum);
}

/// Offsets of the length-like fields of an encoded record: payload length, socket count, and
/// each socket's fd and address length.
fn length_fields(h: &Handover) -> Vec<(usize, usize)> {
    let mut fields = vec![(6, 4), (HEADER + 12, 2)];
    let mut at = HEADER + 14;
    for s in &h.sockets {
        fields.push((at, 4));
        fields.push((at + 10, 2));
        at += 12 + s.key.len as usize;
    }
    fields
}

fn variant(e: &WireError) -> String {
    let name = format!("{e:?}");
    name.split('(').next().unwrap_or_default().to_string()
}

/// Decodes `buf` and checks what comes out: an error that says something, or a record within the
/// shim's limits that re-encodes to exactly `buf`.
fn check_decode(buf: &[u8]) -> Result<Handover, WireError> {
    let got = Handover::decode(buf);
    match &got {
        Ok(h) => {
            assert!(h.sockets.len() <= MAX_SOCKETS, "{} sockets accepted", h.sockets.len());
            for s in &h.sockets {
                assert!(s.fd >= 0, "negative fd {} accepted", s.fd);
                assert_eq!(SockKey::from_parts(s.key.family, s.key.socktype, s.key.bytes()), Some(s.key));
            }
            assert_eq!(h.encode(), buf, "accepted a non-canonical record");
            assert_eq!(Handover::from_env(&h.to_env()).as_ref(), Ok(h));
        }
        Err(e) => assert!(!e.to_string().is_empty(), "{e:?} has no message"),
    }
    got
}

/// What `from_env` must answer, written independently of it.
fn expected_from_env(s: &str) -> Result<Handover, WireError> {
    if s.len() > MAX_ENV_LEN {
        return Err(WireError::TooLong(s.len()));
    }
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(WireError::BadHex);
    }
    let bytes: Vec<u8> = (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect();
    Handover::decode(&bytes)
}

/// The hex form of `buf`, sometimes in upper case, sometimes with one character dropped or a
/// foreign one (non-hex, multi-byte, control) inserted.
fn hex_form(rng: &mut Rng, buf: &[u8]) -> String {
    let mut s: String = buf.iter().map(|b| format!("{b:02x}")).collect();
    match rng.below(6) {
        0 => s = s.to_uppercase(),
        1 if !s.is_empty() => {
            s.remove(rng.below(s.len()));
        }
        2 => {
            let c = *rng.pick(&['g', 'G', ' ', '-', '+', 'é', '٣', 'ａ', '\0', '\n', '0']);
            s.insert(rng.below(s.len() + 1), c);
        }
        3 if rng.one_in(50) => s = s.repeat(MAX_ENV_LEN / s.len().max(1) + 1),
        _ => {}
    }
    s
}

#[test]
fn decode_and_from_env_never_panic() {
    let outcomes = run("wire", |rng, out: &mut Outcomes| {
        let valid = random_record(rng);
        let good = valid.encode();
        let kind = rng.below(6);
        let mut buf = match kind {
            0 => rng.bytes(200),
            1 => {
                let mut b = vec![0; HEADER];
                b.extend(rng.bytes(200));
                b.extend([0; 4]);
                reseal(&mut b, false);
                b
            }
            _ => good.clone(),
        };
        match kind {
            2 => mutate(rng, &mut buf, &good),
            3 => {
                mutate(rng, &mut buf, &good);
                reseal(&mut buf, false);
            }
            4 => {
                let (at, width) = *rng.pick(&length_fields(&valid));
                let v = if rng.one_in(2) { rng.next() as u32 } else { rng.below(300) as u32 };
                buf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
                reseal(&mut buf, at == 6);
            }
            _ => {}
        }
        match check_decode(&buf) {
            Ok(h) if kind == 5 => {
                assert_eq!(h, valid, "a valid record did not round-trip");
                out.count("valid record");
            }
            Ok(_) if kind >= 1 => out.count("accepted mutant"),
            Ok(_) => out.count("accepted random"),
            Err(e) => out.count(&variant(&e)),
        }
        let hex = hex_form(rng, &buf);
        let got = Handover::from_env(&hex);
        assert_eq!(got, expected_from_env(&hex), "from_env({hex:?})");
        if let Err(e @ (WireError::BadHex | WireError::TooLong(_))) = &got {
            assert!(!e.to_string().is_empty());
            out.count(&format!("env {}", variant(e)));
        }
    });
    for seen in [
        "valid record",
        "accepted mutant",
        "Truncated",
        "BadMagic",
        "UnsupportedVersion",
        "Reserved",
        "LengthMismatch",
        "Checksum",
        "TooManySockets",
        "BadSocket",
        "env BadHex",
        "env TooLong",
    ] {
        assert!(outcomes.seen(seen) > 0, "no case reached {seen}");
    }
}
