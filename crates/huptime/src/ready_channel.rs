//! The readiness channel: a pipe from a starting generation back to the generation that started
//! it. Besides the one-byte "ready" message it carries copies of what the new generation writes to
//! stderr until it is ready, so that a failed start can be reported with its last lines.
//!
//! Messages (each written with a single write() of at most PIPE_BUF bytes, so messages from several
//! processes of the new generation never interleave):
//! - `R`: the new generation is ready;
//! - `E len:u16le bytes`: a piece of the new generation's stderr (`len` <= [`MAX_CHUNK`]).
//!
//! The writer side never blocks (the pipe's write end is non-blocking): a stderr copy that does not
//! fit is dropped, never delaying the program.

/// Largest stderr piece in one message (header + piece stays under PIPE_BUF).
pub const MAX_CHUNK: usize = 4000;
/// How much of the new generation's stderr the old generation keeps for its report.
pub const TAIL_BYTES: usize = 4096;

/// Encodes one stderr message into `out`; returns its length.
pub fn encode_stderr(piece: &[u8], out: &mut [u8; MAX_CHUNK + 3]) -> usize {
    let n = piece.len().min(MAX_CHUNK);
    out[0] = b'E';
    out[1..3].copy_from_slice(&(n as u16).to_le_bytes());
    out[3..3 + n].copy_from_slice(&piece[..n]);
    3 + n
}

/// What the reading side has learnt so far.
#[derive(Debug, Default)]
pub struct Reader {
    pending: Vec<u8>,
    tail: Vec<u8>,
    /// The `R` message arrived.
    pub ready: bool,
    /// Bytes that were not a valid message (a foreign writer); reading stops trusting the channel.
    pub garbled: bool,
}

impl Reader {
    /// Feeds bytes read from the pipe. Once the channel is garbled, further bytes are dropped, so
    /// a foreign writer can never make the reader hold more than one partial message.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.garbled {
            return;
        }
        self.pending.extend_from_slice(bytes);
        let mut at = 0;
        while at < self.pending.len() && !self.garbled {
            match self.pending[at] {
                b'R' => {
                    self.ready = true;
                    at += 1;
                }
                b'E' => {
                    if self.pending.len() < at + 3 {
                        break;
                    }
                    let n = u16::from_le_bytes([self.pending[at + 1], self.pending[at + 2]]) as usize;
                    if n > MAX_CHUNK {
                        self.garbled = true;
                        break;
                    }
                    if self.pending.len() < at + 3 + n {
                        break;
                    }
                    let piece = self.pending[at + 3..at + 3 + n].to_vec();
                    self.keep(&piece);
                    at += 3 + n;
                }
                _ => self.garbled = true,
            }
        }
        if self.garbled {
            self.pending = Vec::new();
        } else {
            self.pending.drain(..at.min(self.pending.len()));
        }
    }

    /// Bytes held back until the rest of their message arrives (at most one message's worth).
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    fn keep(&mut self, piece: &[u8]) {
        self.tail.extend_from_slice(piece);
        if self.tail.len() > TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
        }
    }

    /// The last `max` complete or partial lines of the new generation's stderr (lossy UTF-8,
    /// control characters other than tab replaced), oldest first.
    pub fn last_lines(&self, max: usize) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.tail);
        let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).collect();
        // The oldest line may be cut by the tail limit: drop it unless it is all there is.
        let skip_cut = self.tail.len() >= TAIL_BYTES && lines.len() > 1;
        let lines = if skip_cut { &lines[1..] } else { &lines[..] };
        let from = lines.len().saturating_sub(max);
        lines[from..].iter().map(|l| l.chars().map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect()).collect()
    }
}

/// Describes a raw wait status: "exited with status 3", "was killed by signal 11 (SIGSEGV)".
pub fn describe_status(status: i32) -> String {
    if status & 0x7f == 0 {
        format!("exited with status {}", (status >> 8) & 0xff)
    } else {
        let sig = status & 0x7f;
        let core = if status & 0x80 != 0 { ", core dumped" } else { "" };
        format!("was killed by signal {sig} ({}{core})", signal_name(sig))
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// Whether a raw wait status is a failure: any signal but SIGTERM/SIGINT, or a non-zero exit.
pub fn is_failure(status: i32) -> bool {
    if status < 0 {
        return true;
    }
    if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        return sig != libc::SIGTERM && sig != libc::SIGINT;
    }
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(piece: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; MAX_CHUNK + 3];
        let n = encode_stderr(piece, &mut buf);
        buf[..n].to_vec()
    }

    #[test]
    fn ready_and_stderr_in_any_split() {
        let mut all = msg(b"Traceback (most recent call last):\n  File \"x.py\"\n");
        all.extend(msg(b"SyntaxError: invalid syntax\n"));
        all.push(b'R');
        for split in 0..all.len() {
            let mut r = Reader::default();
            r.feed(&all[..split]);
            r.feed(&all[split..]);
            assert!(r.ready, "split at {split}");
            assert!(!r.garbled);
            assert_eq!(r.last_lines(2), vec!["  File \"x.py\"", "SyntaxError: invalid syntax"]);
        }
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut r = Reader::default();
        for i in 0..2000 {
            r.feed(&msg(format!("line {i}\n").as_bytes()));
        }
        assert_eq!(r.last_lines(3), vec!["line 1997", "line 1998", "line 1999"]);
        assert!(!r.ready);
    }

    #[test]
    fn long_pieces_are_cut_and_garbage_stops_parsing() {
        let big = vec![b'x'; MAX_CHUNK + 100];
        let m = msg(&big);
        assert_eq!(m.len(), MAX_CHUNK + 3);
        let mut r = Reader::default();
        r.feed(b"Zjunk");
        assert!(r.garbled);
        r.feed(b"R");
        assert!(!r.ready);
        r.feed(&big);
        assert_eq!(r.buffered(), 0, "a garbled channel's bytes are dropped");
    }

    #[test]
    fn statuses() {
        assert_eq!(describe_status(3 << 8), "exited with status 3");
        assert_eq!(describe_status(11), "was killed by signal 11 (SIGSEGV)");
        assert_eq!(describe_status(0x86), "was killed by signal 6 (SIGABRT, core dumped)");
    }

    #[test]
    fn failures_and_deliberate_stops() {
        assert!(!is_failure(0)); // exit 0
        assert!(is_failure(3 << 8)); // exit 3
        assert!(is_failure(libc::SIGKILL));
        assert!(is_failure(libc::SIGSEGV | 0x80)); // with a core dump
        assert!(!is_failure(libc::SIGTERM));
        assert!(!is_failure(libc::SIGINT));
        assert!(is_failure(-1)); // unknown
    }
}
