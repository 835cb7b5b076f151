//! HTTP/1.x as a draining generation sees it on a connection, from the bytes alone: where the
//! heads of requests end in what the program reads (to count the requests it has to answer),
//! whether what it writes starts a final response, and where that response's head must change
//! to say `Connection: close`. Pure: no I/O, no allocation.

/// The end of a message head.
const HEAD_END: &[u8; 4] = b"\r\n\r\n";

/// Counts the message heads that end in `bytes` (each "\r\n\r\n"), carrying `carry` bytes of
/// that pattern matched at the end of the previous read (0..=3). Returns the count and the new
/// carry. A body that contains the pattern is counted too: an upper bound, which is the safe
/// side (a connection counted busier than it is is not closed early).
pub fn count_heads(carry: u8, bytes: &[u8]) -> (u32, u8) {
    let mut matched = carry.min(3) as usize;
    let mut n = 0;
    for &b in bytes {
        if b == HEAD_END[matched] {
            matched += 1;
            if matched == HEAD_END.len() {
                n += 1;
                matched = 0;
            }
        } else {
            matched = usize::from(b == b'\r');
        }
    }
    (n, matched as u8)
}

/// What the first bytes of a write are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Not the start of an HTTP/1.x response (a body, another protocol, or too short to tell).
    Other,
    /// An interim (1xx) response: `100 Continue`, `103 Early Hints`. Another one follows.
    Interim,
    /// A final response (status 200 or more): the answer to one request.
    Final,
}

/// Whether `b` begins with an HTTP/1.0 or HTTP/1.1 status line (`HTTP/1.x NNN` then a space or
/// CR), and of which kind.
pub fn response_start(b: &[u8]) -> Start {
    if b.len() < 13 || !(b.starts_with(b"HTTP/1.1 ") || b.starts_with(b"HTTP/1.0 ")) {
        return Start::Other;
    }
    let code = &b[9..12];
    if !code.iter().all(u8::is_ascii_digit) || !(b[12] == b' ' || b[12] == b'\r') {
        return Start::Other;
    }
    if code[0] == b'1' {
        Start::Interim
    } else {
        Start::Final
    }
}

/// Longest header value the shim replaces by `close` padded with spaces.
pub const MAX_REPLACED: usize = 64;

/// How a response head is changed to say `Connection: close`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// Leave it: it closes already, or its status line does not end in the bytes seen.
    Keep,
    /// Insert `Connection: close\r\n` at this offset (right after the status line).
    Insert { at: usize },
    /// Replace the `len` bytes at `at` (a `Connection` header's value that says keep-alive) by
    /// `close` and spaces: the length stays, and trailing spaces are legal there.
    Replace { at: usize, len: usize },
}

fn has_token(value: &[u8], token: &[u8]) -> bool {
    value.windows(token.len()).any(|w| w.eq_ignore_ascii_case(token))
}

fn trim_ows(mut s: &[u8], mut at: usize) -> (&[u8], usize) {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
        at += 1;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    (s, at)
}

/// The change that makes the response whose first bytes are `head` (a final response: see
/// [`response_start`]) say `Connection: close`. Only the header lines complete in `head` are
/// looked at: a `Connection` header after them cannot be seen, and a `close` inserted ahead of it
/// wins (a client that sees both closes).
pub fn plan(head: &[u8]) -> Edit {
    let Some(status_end) = head.windows(2).position(|w| w == b"\r\n").map(|p| p + 2) else { return Edit::Keep };
    let mut line_start = status_end;
    while let Some(len) = head[line_start..].windows(2).position(|w| w == b"\r\n") {
        let line = &head[line_start..line_start + len];
        if line.is_empty() {
            break;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if line[..colon].eq_ignore_ascii_case(b"connection") {
                let (value, at) = trim_ows(&line[colon + 1..], line_start + colon + 1);
                if has_token(value, b"close") {
                    return Edit::Keep;
                }
                if has_token(value, b"keep-alive") && (5..=MAX_REPLACED).contains(&value.len()) {
                    return Edit::Replace { at, len: value.len() };
                }
            }
        }
        line_start += len + 2;
    }
    Edit::Insert { at: status_end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_counted_across_reads_split_anywhere() {
        let stream = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n\r\r\n\r\nGET /c HTTP/1.1\r\nHost: c\r\n\r\n";
        assert_eq!(count_heads(0, stream), (3, 0));
        for cut in 0..=stream.len() {
            let (a, carry) = count_heads(0, &stream[..cut]);
            let (b, end) = count_heads(carry, &stream[cut..]);
            assert_eq!((a + b, end), (3, 0), "cut at {cut}");
        }
        let (mut n, mut carry) = (0, 0);
        for &b in stream.iter() {
            let (k, c) = count_heads(carry, &[b]);
            n += k;
            carry = c;
        }
        assert_eq!(n, 3, "one byte at a time");
        assert_eq!(count_heads(0, b"\r\n\r"), (0, 3));
        assert_eq!(count_heads(3, b"\r\n"), (0, 2), "a CR after CRLFCR starts again");
    }

    #[test]
    fn status_lines_are_told_apart() {
        assert_eq!(response_start(b"HTTP/1.1 200 OK\r\n"), Start::Final);
        assert_eq!(response_start(b"HTTP/1.0 404 Not Found\r\n"), Start::Final);
        assert_eq!(response_start(b"HTTP/1.1 204\r\n\r\n"), Start::Final);
        assert_eq!(response_start(b"HTTP/1.1 100 Continue\r\n\r\n"), Start::Interim);
        assert_eq!(response_start(b"HTTP/1.1 103 Early Hints\r\n"), Start::Interim);
        assert_eq!(response_start(b"HTTP/1.1 20"), Start::Other, "too short to tell");
        assert_eq!(response_start(b"HTTP/2.0 200 OK\r\n"), Start::Other);
        assert_eq!(response_start(b"HTTP/1.1 2x0 OK\r\n"), Start::Other);
        assert_eq!(response_start(b"+OK\r\n"), Start::Other);
        assert_eq!(response_start(b"<html>HTTP/1.1 200 OK"), Start::Other);
    }

    #[test]
    fn keep_alive_is_replaced_in_place_and_otherwise_close_is_inserted() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection:  Keep-Alive \r\n\r\nhi";
        let Edit::Replace { at, len } = plan(head) else { panic!("{:?}", plan(head)) };
        assert_eq!(&head[at..at + len], b"Keep-Alive");
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"), Edit::Insert { at: 17 });
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), Edit::Keep);
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, close\r\n\r\n"), Edit::Keep);
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\nConnection: TE\r\n\r\n"), Edit::Insert { at: 17 });
        assert_eq!(plan(b"HTTP/1.1 200 OK"), Edit::Keep, "the status line does not end here");
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\nConnec"), Edit::Insert { at: 17 }, "what is not seen is not looked at");
        assert_eq!(plan(b"HTTP/1.1 200 OK\r\n\r\nConnection: keep-alive\r\n"), Edit::Insert { at: 17 }, "a body is not a head");
        let long = format!("HTTP/1.1 200 OK\r\nConnection: keep-alive{}\r\n\r\n", ",x".repeat(40));
        assert_eq!(plan(long.as_bytes()), Edit::Insert { at: 17 }, "too long a value to pad");
    }
}
