//! Fuzzing the readiness channel's reader ([`crate::ready_channel::Reader`]): streams of valid messages,
//! mutated streams and random bytes, fed whole and in random pieces. Whatever the bytes, the reader
//! must not panic, must hold back at most one partial message, and must reach the same verdict
//! however the bytes were split by the pipe.

use super::{mutate, run, Outcomes, Rng};
use crate::ready_channel::{encode_stderr, Reader, MAX_CHUNK};

/// A stream of valid messages; returns it with whether it contains the ready message.
fn valid_stream(rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut ready = false;
    for _ in 0..rng.below(12) {
        if rng.one_in(6) {
            out.push(b'R');
            ready = true;
            continue;
        }
        let len = if rng.one_in(10) { rng.below(MAX_CHUNK + 100) } else { rng.below(80) };
        let piece: Vec<u8> = (0..len).map(|_| *rng.pick(b"ab \t\r\n\x1b\xff\xc3\xa9?")).collect();
        let mut msg = [0u8; MAX_CHUNK + 3];
        let n = encode_stderr(&piece, &mut msg);
        out.extend_from_slice(&msg[..n]);
    }
    (out, ready)
}

/// Feeds `stream` in random pieces, checking the bound on held-back bytes after each.
fn feed_in_pieces(rng: &mut Rng, stream: &[u8]) -> Reader {
    let mut r = Reader::default();
    let mut at = 0;
    while at < stream.len() {
        let most = if rng.one_in(2) { 8 } else { 9000 };
        let n = 1 + rng.below(most);
        let end = (at + n).min(stream.len());
        r.feed(&stream[at..end]);
        assert!(r.buffered() < MAX_CHUNK + 3, "holds {} bytes back", r.buffered());
        at = end;
    }
    r
}

#[test]
fn feed_never_panics_and_ignores_how_bytes_are_split() {
    let outcomes = run("report", |rng, out: &mut Outcomes| {
        let (mut stream, ready) = valid_stream(rng);
        let kind = rng.below(3);
        match kind {
            0 => {}
            1 => {
                let donor = stream.clone();
                mutate(rng, &mut stream, &donor);
            }
            _ => stream = rng.bytes(300),
        }
        let mut whole = Reader::default();
        whole.feed(&stream);
        let pieces = feed_in_pieces(rng, &stream);
        assert_eq!((whole.ready, whole.garbled), (pieces.ready, pieces.garbled));
        let max = rng.below(12);
        let lines = whole.last_lines(max);
        assert_eq!(lines, pieces.last_lines(max));
        assert!(lines.len() <= max);
        for l in &lines {
            assert!(!l.trim().is_empty() && !l.chars().any(|c| c.is_control() && c != '\t'), "line {l:?}");
        }
        if kind == 0 {
            assert_eq!((whole.ready, whole.garbled, whole.buffered()), (ready, false, 0), "a valid stream");
        }
        out.count(match (whole.garbled, whole.ready) {
            (true, _) => "garbled",
            (false, true) => "ready",
            (false, false) => "not ready",
        });
    });
    for seen in ["garbled", "ready", "not ready"] {
        assert!(outcomes.seen(seen) > 0, "no case was {seen}");
    }
}
