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
    let mut h = Fnv::new();
    h.add(data);
    h.0
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

/// A record to write, borrowing its sockets: encoded without allocating (see
/// [`Record::write_env`]), so that it can be written where allocation is not allowed (a revival
/// from a signal handler).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// See [`Handover::generation`].
    pub generation: u32,
    /// See [`Handover::parent_pid`].
    pub parent_pid: i32,
    /// See [`Handover::ready_fd`].
    pub ready_fd: i32,
    /// See [`Handover::sockets`].
    pub sockets: &'a [SocketEntry],
}

/// Bytes of the hex form of a record with [`MAX_SOCKETS`] sockets of the longest address.
pub const MAX_HEX_LEN: usize = 2 * (HEADER + 14 + MAX_SOCKETS * (12 + ADDR_MAX) + 4);

impl Record<'_> {
    fn payload_len(&self) -> usize {
        14 + self.sockets.iter().map(|s| 12 + s.key.bytes().len()).sum::<usize>()
    }

    /// Emits the binary layout described in the module docs, piece by piece.
    fn emit(&self, put: &mut impl FnMut(&[u8])) {
        let mut sum = Fnv::new();
        let mut payload = |put: &mut dyn FnMut(&[u8]), b: &[u8]| {
            sum.add(b);
            put(b);
        };
        put(&MAGIC);
        put(&[VERSION, 0]);
        put(&(self.payload_len() as u32).to_le_bytes());
        payload(put, &self.generation.to_le_bytes());
        payload(put, &self.parent_pid.to_le_bytes());
        payload(put, &self.ready_fd.to_le_bytes());
        payload(put, &(self.sockets.len() as u16).to_le_bytes());
        for s in self.sockets {
            payload(put, &s.fd.to_le_bytes());
            payload(put, &s.key.family.to_le_bytes());
            payload(put, &s.key.socktype.to_le_bytes());
            payload(put, &s.key.len.to_le_bytes());
            payload(put, s.key.bytes());
        }
        put(&sum.0.to_le_bytes());
    }

    /// Serializes to the binary layout described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.payload_len() + 4);
        self.emit(&mut |b| out.extend_from_slice(b));
        out
    }

    /// Writes the hex form (for an environment variable) into `out`; returns its length, or None
    /// (nothing useful written) when `out` is too small or there are more than [`MAX_SOCKETS`].
    pub fn write_env(&self, out: &mut [u8]) -> Option<usize> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        if self.sockets.len() > MAX_SOCKETS || out.len() < 2 * (HEADER + self.payload_len() + 4) {
            return None;
        }
        let mut n = 0;
        self.emit(&mut |b| {
            for &x in b {
                out[n] = HEX[(x >> 4) as usize];
                out[n + 1] = HEX[(x & 15) as usize];
                n += 2;
            }
        });
        Some(n)
    }
}

/// FNV-1a, 32 bit, fed piece by piece.
struct Fnv(u32);

impl Fnv {
    fn new() -> Self {
        Fnv(0x811c_9dc5)
    }
    fn add(&mut self, data: &[u8]) {
        for &b in data {
            self.0 ^= b as u32;
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }
}

impl Handover {
    /// This record, borrowed for writing.
    pub fn record(&self) -> Record<'_> {
        Record { generation: self.generation, parent_pid: self.parent_pid, ready_fd: self.ready_fd, sockets: &self.sockets }
    }

    /// Serializes to the binary layout described in the module docs.
    pub fn encode(&self) -> Vec<u8> {
        self.record().encode()
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
        let mut out = vec![0u8; MAX_HEX_LEN];
        let n = self.record().write_env(&mut out).unwrap_or(0);
        out.truncate(n);
        String::from_utf8(out).unwrap_or_default()
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
    fn writes_the_longest_record_into_a_fixed_buffer() {
        let mut un = vec![1u8, 0];
        un.extend_from_slice(&[b'x'; ADDR_MAX - 2]);
        let entry = SocketEntry { fd: 3, key: SockKey::from_sockaddr(1, &un).unwrap() };
        assert_eq!(entry.key.bytes().len(), ADDR_MAX);
        let h = Handover { generation: 2, parent_pid: 1, ready_fd: -1, sockets: vec![entry; MAX_SOCKETS] };
        let mut out = [0u8; MAX_HEX_LEN];
        let n = h.record().write_env(&mut out).unwrap();
        assert_eq!(n, MAX_HEX_LEN);
        assert_eq!(Handover::from_env(core::str::from_utf8(&out[..n]).unwrap()).unwrap(), h);
        assert_eq!(h.record().write_env(&mut out[..n - 1]), None);
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
