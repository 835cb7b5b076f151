//! The arithmetic of changing a response head on its way out without copying it: a [`Patch`]
//! says where, counted from the next byte the program writes, bytes are inserted or replaced;
//! [`splice`] builds the iovecs to hand the kernel (the program's, split around the patch's text)
//! and [`advance`] says, from what the kernel took, how many of the program's own bytes went out
//! and what is left of the patch. A write that ends part way keeps the rest for the next one, so
//! partial writes on non-blocking sockets stay exact. Pure: no I/O, no allocation.

use crate::httphead::{Edit, MAX_REPLACED};
use libc::iovec;

/// The header inserted after the status line.
pub const INSERTED: &[u8] = b"Connection: close\r\n";
/// `close` and the spaces that pad it to the replaced value's length.
static PADDED: [u8; MAX_REPLACED] = {
    let mut b = [b' '; MAX_REPLACED];
    let mut i = 0;
    while i < 5 {
        b[i] = b"close"[i];
        i += 1;
    }
    b
};

/// Most iovecs of the program's a patched write passes on (a longer writev is left alone).
pub const MAX_PROGRAM_IOVECS: usize = 64;
/// Room for a patched write's iovecs: the program's, one split in two, and the patch's text.
pub const MAX_IOVECS: usize = MAX_PROGRAM_IOVECS + 2;

/// What changes in the bytes the program writes next on one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    /// Offset of the change from the program's next byte.
    pub at: usize,
    /// Bytes replaced (0: an insertion of [`INSERTED`]).
    pub replaced: usize,
    /// Bytes of the patch's text already sent (a write ended inside it).
    pub done: usize,
}

impl Patch {
    /// The patch that carries out `edit` on a response that starts at the program's next byte.
    pub fn of(edit: Edit) -> Option<Patch> {
        match edit {
            Edit::Keep => None,
            Edit::Insert { at } => Some(Patch { at, replaced: 0, done: 0 }),
            Edit::Replace { at, len } => Some(Patch { at, replaced: len, done: 0 }),
        }
    }

    /// The whole text the patch puts in.
    fn text(&self) -> &'static [u8] {
        if self.replaced == 0 {
            INSERTED
        } else {
            &PADDED[..self.replaced.min(MAX_REPLACED)]
        }
    }

    /// The text still to send.
    pub fn rest(&self) -> &'static [u8] {
        let t = self.text();
        &t[self.done.min(t.len())..]
    }

    /// The patch as one word (0: none), for a per-connection atomic. `at` fits 16 bits (a head
    /// is looked at only in its first bytes), `replaced` and `done` 8 bits each.
    pub fn pack(p: Option<Patch>) -> u32 {
        p.map_or(0, |p| 1 << 31 | (p.at.min(0xffff) as u32) << 15 | (p.replaced as u32 & 0x7f) << 8 | p.done as u32 & 0xff)
    }

    /// The patch [`Patch::pack`] gave `w`.
    pub fn unpack(w: u32) -> Option<Patch> {
        (w & 1 << 31 != 0).then_some(Patch { at: (w >> 15 & 0xffff) as usize, replaced: (w >> 8 & 0x7f) as usize, done: (w & 0xff) as usize })
    }
}

fn iov(base: *const u8, len: usize) -> iovec {
    iovec { iov_base: base as *mut libc::c_void, iov_len: len }
}

/// Fills `out` with the iovecs that write `prog` (the program's, `total` bytes) with `p` applied
/// to it; returns how many. `out` has room for `prog.len() + 2`. A patch that starts past these
/// bytes leaves them as they are.
pub fn splice(prog: &[iovec], p: &Patch, out: &mut [iovec]) -> usize {
    let total: usize = prog.iter().map(|v| v.iov_len).sum();
    let insert = p.replaced == 0;
    if p.at > total || (!insert && p.at == total) {
        out[..prog.len()].copy_from_slice(prog);
        return prog.len();
    }
    let (a, text) = (p.at, p.rest());
    // The program's bytes [a, b) give way to `put`.
    let (b, put) = if insert { (a, text) } else { let b = (a + text.len()).min(total); (b, &text[..b - a]) };
    let mut n = 0;
    let mut push = |v: iovec| {
        if v.iov_len > 0 {
            out[n] = v;
            n += 1;
        }
    };
    let mut placed = false;
    let mut off = 0;
    for v in prog {
        let (start, end, base) = (off, off + v.iov_len, v.iov_base as *const u8);
        if start < a {
            push(iov(base, end.min(a) - start));
        }
        if !placed && a <= end {
            push(iov(put.as_ptr(), put.len()));
            placed = true;
        }
        if end > b {
            let from = b.max(start);
            push(iov(base.wrapping_add(from - start), end - from));
        }
        off = end;
    }
    if !placed {
        push(iov(put.as_ptr(), put.len()));
    }
    n
}

/// After the kernel took `sent` bytes of a write spliced from `total` program bytes with `p`:
/// how many of the program's bytes went out (what its call returns), and what is left of `p`.
pub fn advance(p: &Patch, total: usize, sent: usize) -> (usize, Option<Patch>) {
    let left = |at| Some(Patch { at, ..*p });
    if p.replaced > 0 {
        let r = p.replaced - p.done.min(p.replaced);
        return match sent {
            s if s <= p.at => (s, left(p.at - s)),
            s if s >= p.at + r => (s, None),
            s => (s, Some(Patch { at: 0, done: p.done + (s - p.at), ..*p })),
        };
    }
    if p.at > total {
        return (sent, left(p.at - sent));
    }
    let t = p.rest().len();
    match sent {
        s if s <= p.at => (s, left(p.at - s)),
        s if s < p.at + t => (p.at, Some(Patch { at: 0, done: p.done + (s - p.at), ..*p })),
        s => (s - t, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(v: &[iovec]) -> Vec<u8> {
        let mut out = Vec::new();
        for i in v {
            // SAFETY: every iovec here points into a live buffer of the test or a static.
            out.extend_from_slice(unsafe { core::slice::from_raw_parts(i.iov_base as *const u8, i.iov_len) });
        }
        out
    }

    /// Writes `response` as the program would, in writes of the sizes `writes` gives (each split
    /// into iovecs of `piece` bytes), through a kernel that takes at most `room()` bytes a call;
    /// returns what went out, after checking that every call's return counts program bytes.
    fn send_all(response: &[u8], edit: Edit, piece: usize, mut room: impl FnMut() -> usize) -> Vec<u8> {
        let mut patch = Patch::of(edit);
        let mut wire = Vec::new();
        let mut pos = 0;
        let mut stalls = 0;
        while pos < response.len() {
            let chunk = &response[pos..];
            let prog: Vec<iovec> = chunk.chunks(piece).map(|c| iov(c.as_ptr(), c.len())).collect::<Vec<_>>().into_iter().take(MAX_PROGRAM_IOVECS).collect();
            let total: usize = prog.iter().map(|v| v.iov_len).sum();
            let Some(p) = patch else {
                let k = room().min(total);
                wire.extend_from_slice(&chunk[..k]);
                pos += k;
                continue;
            };
            let mut out = [iov(core::ptr::null(), 0); MAX_IOVECS];
            let n = splice(&prog, &p, &mut out);
            let bytes = flatten(&out[..n]);
            let k = room().min(bytes.len());
            wire.extend_from_slice(&bytes[..k]);
            let (mine, next) = advance(&p, total, k);
            assert!(mine <= total);
            if mine == 0 {
                stalls += 1;
                assert!(stalls < 1000, "no progress");
            }
            pos += mine;
            patch = next;
        }
        assert_eq!(patch.map(|p| p.rest().len()).unwrap_or(0), 0, "the patch went out whole");
        wire
    }

    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello";
    const BARE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    fn edited(r: &[u8], e: Edit) -> Vec<u8> {
        match e {
            Edit::Keep => r.to_vec(),
            Edit::Insert { at } => [&r[..at], INSERTED, &r[at..]].concat(),
            Edit::Replace { at, len } => [&r[..at], &PADDED[..len], &r[at + len..]].concat(),
        }
    }

    #[test]
    fn every_split_point_and_iovec_shape_gives_the_same_bytes() {
        for r in [RESPONSE, BARE] {
            let e = crate::httphead::plan(r);
            let want = edited(r, e);
            assert!(want.windows(17).any(|w| w == b"Connection: close"), "{}", String::from_utf8_lossy(&want));
            for piece in [1, 2, 3, 7, 17, 18, r.len()] {
                for room in 1..=want.len() {
                    assert_eq!(send_all(r, e, piece, || room), want, "iovecs of {piece}, {room} bytes a call");
                }
            }
            // A kernel that takes a different amount each call.
            let mut x = 7u32;
            let got = send_all(r, e, 5, || {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                (x >> 16) as usize % 9
            });
            assert_eq!(got, want);
        }
    }

    #[test]
    fn a_patch_past_this_write_waits_for_the_next_one() {
        let p = Patch { at: 10, replaced: 0, done: 0 };
        let data = [b'x'; 4];
        let prog = [iov(data.as_ptr(), 4)];
        let mut out = [iov(core::ptr::null(), 0); MAX_IOVECS];
        assert_eq!(splice(&prog, &p, &mut out), 1);
        assert_eq!(advance(&p, 4, 4), (4, Some(Patch { at: 6, ..p })));
        let q = Patch { at: 4, replaced: 10, done: 0 };
        let n = splice(&prog, &q, &mut out);
        assert_eq!(flatten(&out[..n]), b"xxxx");
        assert_eq!(advance(&q, 4, 4), (4, Some(Patch { at: 0, ..q })));
    }

    #[test]
    fn only_injected_bytes_sent_counts_as_nothing_written() {
        let p = Patch { at: 0, replaced: 0, done: 3 };
        assert_eq!(advance(&p, 50, 5), (0, Some(Patch { at: 0, replaced: 0, done: 8 })));
        assert_eq!(advance(&p, 50, INSERTED.len() - 3), (0, None), "the text is out; the program's bytes are not");
        assert_eq!(advance(&p, 50, INSERTED.len() - 3 + 4), (4, None));
    }

    #[test]
    fn a_patch_packs_into_a_word() {
        for p in [Patch { at: 0, replaced: 0, done: 0 }, Patch { at: 2047, replaced: 64, done: 63 }, Patch { at: 17, replaced: 0, done: 18 }] {
            assert_eq!(Patch::unpack(Patch::pack(Some(p))), Some(p));
        }
        assert_eq!(Patch::unpack(Patch::pack(None)), None);
    }
}
