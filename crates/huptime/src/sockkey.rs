//! Identity of a bound socket: the typed key (family, type, address) that lets a new generation's
//! `bind()` find the socket its predecessor left open. Plain data, no allocation, so it can live in
//! the fixed-size tables the hooks use.

use core::fmt;

/// Room for the largest address we track (`sockaddr_un` is 110 bytes).
pub const ADDR_MAX: usize = 112;

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A normalized socket address plus socket type. Two binds are "the same socket" when their keys
/// are equal: same family, same type (stream/datagram), same address bytes after normalization
/// (padding and IPv6 flow info cleared, unix paths cut at their NUL).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SockKey {
    /// Address family (AF_INET, AF_INET6, AF_UNIX).
    pub family: u16,
    /// Socket type without SOCK_NONBLOCK/SOCK_CLOEXEC (SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET).
    pub socktype: i32,
    /// Number of meaningful bytes in `addr`.
    pub len: u16,
    /// The normalized `sockaddr` bytes, zero past `len`.
    pub addr: [u8; ADDR_MAX],
}

impl fmt::Debug for SockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl SockKey {
    /// Builds a key from the raw bytes given to `bind()`. Returns `None` for families huptime does
    /// not manage (netlink, packet, ...) or malformed lengths, so those binds pass through untouched.
    pub fn from_sockaddr(socktype: i32, raw: &[u8]) -> Option<SockKey> {
        if raw.len() < 2 {
            return None;
        }
        let family = u16::from_ne_bytes([raw[0], raw[1]]);
        let mut key = SockKey { family, socktype: socktype & 0xf, len: 0, addr: [0; ADDR_MAX] };
        match family {
            AF_INET => {
                if raw.len() < 16 {
                    return None;
                }
                // family(2) port(2) addr(4); sin_zero is padding.
                key.addr[..8].copy_from_slice(&raw[..8]);
                key.len = 8;
            }
            AF_INET6 => {
                if raw.len() < 24 {
                    return None;
                }
                // family(2) port(2) flowinfo(4, ignored) addr(16) scope_id(4)
                key.addr[..4].copy_from_slice(&raw[..4]);
                key.addr[8..24].copy_from_slice(&raw[8..24]);
                if raw.len() >= 28 {
                    key.addr[24..28].copy_from_slice(&raw[24..28]);
                }
                key.len = 28;
            }
            AF_UNIX => {
                let path = &raw[2..raw.len().min(ADDR_MAX)];
                let n = if path.first() == Some(&0) {
                    path.len() // abstract: every byte counts
                } else {
                    path.iter().position(|&b| b == 0).unwrap_or(path.len())
                };
                if n == 0 {
                    return None; // unnamed/autobind: nothing to hand over by name
                }
                key.addr[..2].copy_from_slice(&raw[..2]);
                key.addr[2..2 + n].copy_from_slice(&path[..n]);
                key.len = (2 + n) as u16;
            }
            _ => return None,
        }
        Some(key)
    }

    /// The meaningful address bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.addr[..self.len as usize]
    }

    /// The port of an inet (IPv4 or IPv6) address.
    pub fn port(&self) -> Option<u16> {
        matches!(self.family, AF_INET | AF_INET6).then(|| u16::from_be_bytes([self.addr[2], self.addr[3]]))
    }

    /// The filesystem path of a unix socket bound to a path (not abstract), without NUL.
    pub fn unix_path(&self) -> Option<&[u8]> {
        if self.family == AF_UNIX && self.len > 2 && self.addr[2] != 0 {
            Some(&self.addr[2..self.len as usize])
        } else {
            None
        }
    }

    /// Rebuilds a key from the wire; validates it the same way `from_sockaddr` does.
    pub fn from_parts(family: u16, socktype: i32, bytes: &[u8]) -> Option<SockKey> {
        if bytes.len() > ADDR_MAX || bytes.len() < 2 || !(1..=5).contains(&socktype) {
            return None;
        }
        let mut buf = [0u8; ADDR_MAX];
        buf[..bytes.len()].copy_from_slice(bytes);
        let declared = u16::from_ne_bytes([buf[0], buf[1]]);
        if declared != family {
            return None;
        }
        let raw_len = match family {
            AF_INET => 16,
            AF_INET6 => 28,
            _ => bytes.len(),
        };
        let key = SockKey::from_sockaddr(socktype, &buf[..raw_len.max(bytes.len())])?;
        if key.bytes() != bytes {
            return None;
        }
        Some(key)
    }
}

impl fmt::Display for SockKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match (self.family, self.socktype) {
            (AF_UNIX, 1) => "unix",
            (AF_UNIX, _) => "unixgram",
            (_, 2) => "udp",
            _ => "tcp",
        };
        let a = &self.addr;
        match self.family {
            AF_INET => {
                let port = u16::from_be_bytes([a[2], a[3]]);
                write!(f, "{proto}:{}.{}.{}.{}:{port}", a[4], a[5], a[6], a[7])
            }
            AF_INET6 => {
                let port = u16::from_be_bytes([a[2], a[3]]);
                write!(f, "{proto}:[")?;
                for i in 0..8 {
                    if i > 0 {
                        f.write_str(":")?;
                    }
                    write!(f, "{:x}", u16::from_be_bytes([a[8 + 2 * i], a[9 + 2 * i]]))?;
                }
                write!(f, "]:{port}")
            }
            _ => {
                f.write_str(proto)?;
                f.write_str(":")?;
                for &b in &a[2..self.len as usize] {
                    let c = if b == 0 { '@' } else { b as char };
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inet(port: u16, ip: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0u8; 16];
        v[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        v[2..4].copy_from_slice(&port.to_be_bytes());
        v[4..8].copy_from_slice(&ip);
        v
    }

    #[test]
    fn inet_padding_is_ignored() {
        let a = inet(8000, [127, 0, 0, 1]);
        let mut b = a.clone();
        b[12] = 7; // sin_zero garbage
        assert_eq!(SockKey::from_sockaddr(1, &a), SockKey::from_sockaddr(1 | 0o4000, &b));
    }

    #[test]
    fn type_and_port_distinguish() {
        let a = SockKey::from_sockaddr(1, &inet(8000, [127, 0, 0, 1])).unwrap();
        let b = SockKey::from_sockaddr(2, &inet(8000, [127, 0, 0, 1])).unwrap();
        let c = SockKey::from_sockaddr(1, &inet(8001, [127, 0, 0, 1])).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "tcp:127.0.0.1:8000");
        assert_eq!(b.to_string(), "udp:127.0.0.1:8000");
        assert_eq!((a.port(), c.port()), (Some(8000), Some(8001)));
    }

    #[test]
    fn unix_path_cut_at_nul() {
        let mut raw = vec![0u8; 110];
        raw[..2].copy_from_slice(&AF_UNIX.to_ne_bytes());
        raw[2..10].copy_from_slice(b"/tmp/s.k");
        let k = SockKey::from_sockaddr(1, &raw).unwrap();
        let k2 = SockKey::from_sockaddr(1, &raw[..10]).unwrap();
        assert_eq!(k, k2);
        assert_eq!(k.unix_path(), Some(&b"/tmp/s.k"[..]));
        assert_eq!(k.to_string(), "unix:/tmp/s.k");
    }

    #[test]
    fn abstract_and_unnamed_unix() {
        let mut raw = vec![0u8; 6];
        raw[..2].copy_from_slice(&AF_UNIX.to_ne_bytes());
        raw[3..6].copy_from_slice(b"abc");
        let k = SockKey::from_sockaddr(1, &raw).unwrap();
        assert_eq!(k.unix_path(), None);
        assert_eq!(k.to_string(), "unix:@abc");
        assert!(SockKey::from_sockaddr(1, &raw[..2]).is_none());
    }

    #[test]
    fn unknown_family_and_short_input_pass_through() {
        assert!(SockKey::from_sockaddr(1, &[16, 0, 0, 0]).is_none());
        assert!(SockKey::from_sockaddr(1, &[2]).is_none());
        assert!(SockKey::from_sockaddr(1, &inet(1, [1, 2, 3, 4])[..10]).is_none());
    }

    #[test]
    fn inet6_display_and_parts_round_trip() {
        let mut raw = vec![0u8; 28];
        raw[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        raw[2..4].copy_from_slice(&8080u16.to_be_bytes());
        raw[4..8].copy_from_slice(&[9, 9, 9, 9]); // flow info, ignored
        raw[23] = 1; // ::1
        let k = SockKey::from_sockaddr(1, &raw).unwrap();
        assert_eq!(k.to_string(), "tcp:[0:0:0:0:0:0:0:1]:8080");
        assert_eq!(SockKey::from_parts(k.family, k.socktype, k.bytes()), Some(k));
        assert!(SockKey::from_parts(AF_INET, 1, k.bytes()).is_none());
    }
}
