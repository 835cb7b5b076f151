//! A process's sockets as the kernel's socket tables describe them (/proc/PID/net/{tcp,tcp6,udp,
//! udp6,unix}, matched to its fds by inode): which addresses it listens on and how many client
//! connections it holds. Read-only: the process is never signalled or traced. Used by
//! `huptime --status` through the napi module; the parsers are pure and unit tested.

use std::collections::{HashMap, HashSet};

/// One socket from a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// "tcp", "tcp6", "udp", "udp6" or "unix".
    pub proto: &'static str,
    /// Local address: `127.0.0.1:8080`, `[::1]:8080`, a unix path (`@name` when abstract).
    pub local: String,
    /// Local port (0 for unix).
    pub port: u16,
    /// Listening (TCP LISTEN, a bound unconnected UDP socket, a unix socket in listen()).
    pub listening: bool,
    /// A connected stream socket (TCP established or closing, unix connected).
    pub connected: bool,
}

fn ipv4(hex: &str) -> Option<String> {
    let v = u32::from_str_radix(hex, 16).ok()?;
    let b = v.to_le_bytes(); // printed in host (little-endian) order
    Some(format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]))
}

fn ipv6(hex: &str) -> Option<String> {
    if hex.len() != 32 || !hex.is_ascii() {
        return None; // (slicing below must not split a multi-byte character)
    }
    let mut bytes = [0u8; 16];
    for w in 0..4 {
        let v = u32::from_str_radix(&hex[w * 8..w * 8 + 8], 16).ok()?;
        bytes[w * 4..w * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    Some(std::net::Ipv6Addr::from(bytes).to_string())
}

/// Parses /proc/net/tcp, tcp6, udp or udp6 (`proto` names which) into inode → entry.
pub fn parse_inet(text: &str, proto: &'static str) -> HashMap<u64, Entry> {
    let v6 = proto.ends_with('6');
    let tcp = proto.starts_with("tcp");
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Some((addr, port)), Some((_, rport))) = (f[1].split_once(':'), f[2].split_once(':')) else { continue };
        let Ok(port) = u16::from_str_radix(port, 16) else { continue };
        let Ok(state) = u8::from_str_radix(f[3], 16) else { continue };
        let Ok(inode) = f[9].parse::<u64>() else { continue };
        let ip = if v6 { ipv6(addr).map(|a| format!("[{a}]")) } else { ipv4(addr) };
        let Some(ip) = ip else { continue };
        let (listening, connected) = if tcp {
            // 0A LISTEN; 01 ESTABLISHED .. 0B CLOSING except 07 CLOSE.
            (state == 0x0A, state != 0x0A && state != 0x07)
        } else {
            (rport == "0000" && port != 0, false)
        };
        out.insert(inode, Entry { proto, local: format!("{ip}:{port}"), port, listening, connected });
    }
    out
}

/// Parses /proc/net/unix into inode → entry (stream and seqpacket sockets; datagram sockets
/// with a path count as listening).
pub fn parse_unix(text: &str) -> HashMap<u64, Entry> {
    const ACCEPTCON: u32 = 0x10000;
    let mut out = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(flags), Ok(ty), Ok(st), Ok(inode)) = (u32::from_str_radix(f[3], 16), u16::from_str_radix(f[4], 16), u8::from_str_radix(f[5], 16), f[6].parse::<u64>()) else {
            continue;
        };
        let path = f.get(7).map(|p| p.to_string()).unwrap_or_default();
        let listening = if ty == 2 { !path.is_empty() } else { flags & ACCEPTCON != 0 };
        out.insert(inode, Entry { proto: "unix", local: path, port: 0, listening, connected: ty != 2 && st == 3 });
    }
    out
}

/// An autobound abstract name (`@` + 5 hex digits): huptime's inert stand-ins while draining.
fn is_autobind(path: &str) -> bool {
    path.len() == 6 && path.starts_with('@') && path[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// What a process's sockets say about it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// `proto address` of every listening socket, sorted, without duplicates.
    pub listening: Vec<String>,
    /// Client connections: connected stream sockets on the address of one of its listeners.
    pub connections: u32,
}

/// Summarises the sockets with the given inodes (a process's fds) against the tables.
pub fn summarize(inodes: &HashSet<u64>, tables: &[HashMap<u64, Entry>]) -> Summary {
    let mine: Vec<&Entry> = tables.iter().flat_map(|t| t.iter()).filter(|(i, _)| inodes.contains(i)).map(|(_, e)| e).collect();
    let mut listening: Vec<String> = mine
        .iter()
        .filter(|e| e.listening && !(e.proto == "unix" && (e.local.is_empty() || is_autobind(&e.local))))
        .map(|e| format!("{} {}", e.proto, e.local))
        .collect();
    listening.sort();
    listening.dedup();
    let ports: HashSet<u16> = mine.iter().filter(|e| e.listening && e.port != 0 && e.proto.starts_with("tcp")).map(|e| e.port).collect();
    let paths: HashSet<&str> = mine.iter().filter(|e| e.listening && e.proto == "unix" && !e.local.is_empty()).map(|e| e.local.as_str()).collect();
    let connections = mine
        .iter()
        .filter(|e| e.connected && if e.proto == "unix" { paths.contains(e.local.as_str()) } else { ports.contains(&e.port) })
        .count() as u32;
    Summary { listening, connections }
}

/// Reads the summary for `pid` from /proc (its own network namespace's tables). None when the
/// process is gone or its fds cannot be read (another user's).
pub fn of_pid(pid: i32) -> Option<Summary> {
    let mut inodes = HashSet::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                if let Ok(i) = n.parse() {
                    inodes.insert(i);
                }
            }
        }
    }
    let read = |name: &str| std::fs::read_to_string(format!("/proc/{pid}/net/{name}")).unwrap_or_default();
    let tables = [
        parse_inet(&read("tcp"), "tcp"),
        parse_inet(&read("tcp6"), "tcp6"),
        parse_inet(&read("udp"), "udp"),
        parse_inet(&read("udp6"), "udp6"),
        parse_unix(&read("unix")),
    ];
    Some(summarize(&inodes, &tables))
}

/// The kernel's ListenOverflows + ListenDrops (TcpExt counters) from the text of
/// /proc/net/netstat: connections dropped at a full or refusing accept queue, for the whole
/// network namespace. None when either counter is missing.
pub fn listen_drops(netstat: &str) -> Option<u64> {
    let mut lines = netstat.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        let (Some(names), Some(values)) = (names.strip_prefix("TcpExt:"), values.strip_prefix("TcpExt:")) else { continue };
        let pairs: HashMap<&str, &str> = names.split_whitespace().zip(values.split_whitespace()).collect();
        let count = |k| pairs.get(k).and_then(|v: &&str| v.parse::<u64>().ok());
        return Some(count("ListenOverflows")? + count("ListenDrops")?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_drops_sum_the_two_tcpext_counters() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\nTcpExt: 1 3 4 99\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(listen_drops(text), Some(7));
        let later = "IpExt: InNoRoutes\nIpExt: 5\nTcpExt: ListenDrops ListenOverflows\nTcpExt: 10 2\n";
        assert_eq!(listen_drops(later), Some(12));
        assert_eq!(listen_drops("TcpExt: ListenDrops\nTcpExt: 1\n"), None, "one counter missing");
        assert_eq!(listen_drops(""), None);
        let real = std::fs::read_to_string("/proc/self/net/netstat").unwrap();
        assert!(listen_drops(&real).is_some(), "this kernel's netstat has both counters");
    }

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 101 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 102 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 103 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:1F90 0100007F:C351 08 00000000:00000000 00:00000000 00000000     0        0 104 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 201 1 0000000000000000 100 0 0 10 0
";
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
0000000000000000: 00000002 00000000 00010000 0001 01 301 /run/app.sock
0000000000000000: 00000003 00000000 00000000 0001 03 302 /run/app.sock
0000000000000000: 00000002 00000000 00010000 0001 01 303 @0001a
0000000000000000: 00000003 00000000 00000000 0001 03 304
";

    #[test]
    fn inet_tables() {
        let t = parse_inet(TCP, "tcp");
        assert_eq!(t[&101], Entry { proto: "tcp", local: "127.0.0.1:8080".into(), port: 8080, listening: true, connected: false });
        assert!(t[&102].connected && !t[&102].listening);
        let t6 = parse_inet(TCP6, "tcp6");
        assert_eq!(t6[&201].local, "[::1]:9090");
        // 32 bytes, but not 32 hex digits: skipped, not a panic (found by fuzzing).
        let odd = TCP6.replacen("00000000000000000000000001000000", "0000000ß0000000000000000100000", 1);
        assert!(parse_inet(&odd, "tcp6").is_empty());
    }

    #[test]
    fn udp_bound_unconnected_is_listening() {
        let udp = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  100: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 401 2 0000000000000000 0
  101: 0100007F:D431 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 402 2 0000000000000000 0
";
        let t = parse_inet(udp, "udp");
        assert!(t[&401].listening);
        assert_eq!(t[&401].local, "0.0.0.0:53");
        assert!(!t[&402].listening);
        let s = summarize(&[401, 402].into(), &[t]);
        assert_eq!(s.listening, vec!["udp 0.0.0.0:53"]);
        assert_eq!(s.connections, 0);
    }

    #[test]
    fn summary_counts_accepted_connections_only() {
        let tables = [parse_inet(TCP, "tcp"), parse_inet(TCP6, "tcp6"), parse_unix(UNIX)];
        // The server: listener, one established and one closing accepted connection, the unix
        // listener with one accepted connection, an inert stand-in. Socket 103 is a client's.
        let server: HashSet<u64> = [101, 102, 104, 201, 301, 302, 303].into();
        let s = summarize(&server, &tables);
        assert_eq!(s.listening, vec!["tcp 127.0.0.1:8080", "tcp6 [::1]:9090", "unix /run/app.sock"]);
        assert_eq!(s.connections, 3);
        let client: HashSet<u64> = [103, 304].into();
        assert_eq!(summarize(&client, &tables), Summary::default());
    }
}
