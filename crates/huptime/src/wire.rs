//! The handover record one generation gives the next: which inherited fd is which bound socket,
//! the generation number, and where to report readiness. Versioned and length-checked so that a
//! truncated, foreign or future record is refused with a clear reason instead of being trusted.
//!
//! Layout (little endian), carried hex-encoded in `HUPTIME_STATE`:
//! `"HUPT" | version u8 | reserved u8 | payload_len u32 | payload | fnv1a32(payload) u32`
//! payload v1: `generation u32 | parent_pid i32 | ready_fd i32 | count u16 | count × socket`
//! socket: `fd i32 | family u16 | socktype i32 | addr_len u16 | addr bytes`

use crate::sockkey::{SockKey, ADDR_MAX};
use core::fmt;

/// Leading bytes of every record.
pub const MAGIC: [u8; 4] = *b"HUPT";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;
/// Most sockets a record may carry (the shim's table size).
pub const MAX_SOCKETS: usize = 64;
/// Bytes before the payload: magic, version, reserved byte, payload length.
pub const HEADER: usize = 4 + 1 + 1 + 4;
/// Longest hex form accepted (far more than [`MAX_SOCKETS`] entries need).
pub const MAX_ENV_LEN: usize = 64 * 1024;

/// One inherited socket: the fd number in the receiving process and its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketEntry {
    /// Fd number as inherited by the next generation.
    pub fd: i32,
    /// What the program bound it to.
    pub key: SockKey,
}

/// Everything the next generation needs from the previous one.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Handover {
    /// Generation number of the receiver (the first program started by the CLI is 1).
    pub generation: u32,
    /// Pid of the generation that started this one (0 if none).
    pub parent_pid: i32,
    /// Write end of the readiness pipe, or -1 when the sender does not wait (exec mode).
    pub ready_fd: i32,
    /// Sockets handed over.
    pub sockets: Vec<SocketEntry>,
}

/// Why a record was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Odd length or a non-hex character in the environment value.
    BadHex,
    /// The environment value is longer than [`MAX_ENV_LEN`] (its length).
    TooLong(usize),
    /// Fewer bytes than the header or the declared payload needs.
    Truncated,
    /// Does not start with `HUPT`.
    BadMagic,
    /// Written by a huptime whose format this one does not know.
    UnsupportedVersion(u8),
    /// The reserved header byte is set: written by a format this one does not know.
    Reserved(u8),
    /// Declared payload length disagrees with the bytes present.
    LengthMismatch,
    /// Payload checksum mismatch: corrupted in transit.
    Checksum,
    /// More sockets than the table can hold.
    TooManySockets(usize),
    /// Socket entry `n` is malformed (bad address or negative fd).
    BadSocket(usize),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadHex => f.write_str("not hex-encoded"),
            WireError::TooLong(n) => write!(f, "{n} characters long, at most {MAX_ENV_LEN}"),
            WireError::Truncated => f.write_str("truncated"),
            WireError::BadMagic => f.write_str("bad magic (not a huptime record)"),
            WireError::UnsupportedVersion(v) => {
                write!(f, "unsupported version {v} (this huptime reads {VERSION})")
            }
            WireError::Reserved(b) => write!(f, "reserved header byte is {b}, expected 0"),
            WireError::LengthMismatch => f.write_str("length field does not match the data"),
            WireError::Checksum => f.write_str("checksum mismatch"),
            WireError::TooManySockets(n) => write!(f, "{n} sockets, at most {MAX_SOCKETS}"),
            WireError::BadSocket(i) => write!(f, "socket entry {i} is malformed"),
        }
    }
}

/// FNV-1a, 32 bit: cheap corruption check, not a security measure.
pub fn fnv1a32(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(self.u32()? as i32)
    }
}

impl Handover {
    /// Serializes to the binary layout described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut p = Vec::with_capacity(16 + self.sockets.len() * 24);
        p.extend_from_slice(&self.generation.to_le_bytes());
        p.extend_from_slice(&self.parent_pid.to_le_bytes());
        p.extend_from_slice(&self.ready_fd.to_le_bytes());
        p.extend_from_slice(&(self.sockets.len() as u16).to_le_bytes());
        for s in &self.sockets {
            p.extend_from_slice(&s.fd.to_le_bytes());
            p.extend_from_slice(&s.key.family.to_le_bytes());
            p.extend_from_slice(&s.key.socktype.to_le_bytes());
            p.extend_from_slice(&s.key.len.to_le_bytes());
            p.extend_from_slice(s.key.bytes());
        }
        let mut out = Vec::with_capacity(HEADER + p.len() + 4);
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(0);
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(&p);
        out.extend_from_slice(&fnv1a32(&p).to_le_bytes());
        out
    }

    /// Parses and validates a record; never panics, whatever the input.
    pub fn decode(buf: &[u8]) -> Result<Handover, WireError> {
        if buf.len() < 4 {
            return Err(WireError::Truncated);
        }
        if buf[..4] != MAGIC {
            return Err(WireError::BadMagic);
        }
        if buf.len() < HEADER {
            return Err(WireError::Truncated);
        }
        if buf[4] != VERSION {
            return Err(WireError::UnsupportedVersion(buf[4]));
        }
        if buf[5] != 0 {
            return Err(WireError::Reserved(buf[5]));
        }
        let len = u32::from_le_bytes([buf[6], buf[7], buf[8], buf[9]]) as usize;
        if buf.len() != HEADER.saturating_add(len).saturating_add(4) {
            return Err(WireError::LengthMismatch);
        }
        let payload = &buf[HEADER..HEADER + len];
        let sum = &buf[HEADER + len..];
        if fnv1a32(payload).to_le_bytes() != sum {
            return Err(WireError::Checksum);
        }
        let mut r = Reader { buf: payload, pos: 0 };
        let generation = r.u32()?;
        let parent_pid = r.i32()?;
        let ready_fd = r.i32()?;
        let count = r.u16()? as usize;
        if count > MAX_SOCKETS {
            return Err(WireError::TooManySockets(count));
        }
        let mut sockets = Vec::with_capacity(count);
        for i in 0..count {
            let fd = r.i32()?;
            let family = r.u16()?;
            let socktype = r.i32()?;
            let alen = r.u16()? as usize;
            if alen > ADDR_MAX || fd < 0 {
                return Err(WireError::BadSocket(i));
            }
            let bytes = r.take(alen)?;
            let key = SockKey::from_parts(family, socktype, bytes).ok_or(WireError::BadSocket(i))?;
            sockets.push(SocketEntry { fd, key });
        }
        if r.pos != payload.len() {
            return Err(WireError::LengthMismatch);
        }
        Ok(Handover { generation, parent_pid, ready_fd, sockets })
    }

    /// Hex form for an environment variable.
    pub fn to_env(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let bytes = self.encode();
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Parses the hex form written by `to_env`.
    pub fn from_env(s: &str) -> Result<Handover, WireError> {
        let s = s.as_bytes();
        if s.len() > MAX_ENV_LEN {
            return Err(WireError::TooLong(s.len()));
        }
        if !s.len().is_multiple_of(2) {
            return Err(WireError::BadHex);
        }
        fn nib(c: u8) -> Result<u8, WireError> {
            match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                b'A'..=b'F' => Ok(c - b'A' + 10),
                _ => Err(WireError::BadHex),
            }
        }
        let mut bytes = Vec::with_capacity(s.len() / 2);
        for pair in s.chunks(2) {
            bytes.push(nib(pair[0])? << 4 | nib(pair[1])?);
        }
        Handover::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handover {
        let mut v4 = vec![0u8; 16];
        v4[0] = 2;
        v4[2..4].copy_from_slice(&8000u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let mut un = vec![1u8, 0];
        un.extend_from_slice(b"/tmp/x.sock");
        Handover {
            generation: 7,
            parent_pid: 4242,
            ready_fd: 9,
            sockets: vec![
                SocketEntry { fd: 3, key: SockKey::from_sockaddr(1, &v4).unwrap() },
                SocketEntry { fd: 4, key: SockKey::from_sockaddr(2, &v4).unwrap() },
                SocketEntry { fd: 5, key: SockKey::from_sockaddr(1, &un).unwrap() },
            ],
        }
    }

    #[test]
    fn round_trip_binary_and_env() {
        let h = sample();
        assert_eq!(Handover::decode(&h.encode()).unwrap(), h);
        assert_eq!(Handover::from_env(&h.to_env()).unwrap(), h);
        let empty = Handover { ready_fd: -1, ..Default::default() };
        assert_eq!(Handover::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn refuses_damaged_records() {
        let good = sample().encode();
        assert_eq!(Handover::decode(&good[..3]), Err(WireError::Truncated));
        let mut b = good.clone();
        b[0] = b'X';
        assert_eq!(Handover::decode(&b), Err(WireError::BadMagic));
        let mut b = good.clone();
        b[4] = 99;
        assert_eq!(Handover::decode(&b), Err(WireError::UnsupportedVersion(99)));
        assert_eq!(Handover::decode(&good[..good.len() - 1]), Err(WireError::LengthMismatch));
        let mut b = good.clone();
        b[HEADER + 2] ^= 1;
        assert_eq!(Handover::decode(&b), Err(WireError::Checksum));
        assert_eq!(Handover::from_env("zz"), Err(WireError::BadHex));
        assert_eq!(Handover::from_env("abc"), Err(WireError::BadHex));
        assert_eq!(Handover::from_env(&"00".repeat(MAX_ENV_LEN)), Err(WireError::TooLong(2 * MAX_ENV_LEN)));
    }

    #[test]
    fn checksummed_but_inconsistent_payloads_are_refused() {
        // A payload with a valid checksum but a socket count larger than its entries.
        let mut h = sample();
        h.sockets.truncate(1);
        let mut bytes = h.encode();
        let count_at = HEADER + 12;
        bytes[count_at] = 2;
        let len = bytes.len();
        let sum = fnv1a32(&bytes[HEADER..len - 4]).to_le_bytes();
        bytes[len - 4..].copy_from_slice(&sum);
        assert_eq!(Handover::decode(&bytes), Err(WireError::Truncated));
    }
}
