//! Property tests of the delta engine: `patch(base, diff(signature(base), new)) == new` for
//! random bases and edits, through both the slice and the streaming APIs.
mod delta_common;
use delta_common::pseudo_random;
use std::io::{Cursor, Read};

use proptest::prelude::*;
use sync::delta::{
    apply, apply_slice, diff, diff_slice, diff_with_window, Signature, SignatureOptions,
};

/// A reader that hands out its data in irregular pieces, as pipes and sockets do.
struct Chunky<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    i: usize,
}

impl Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = self
            .sizes
            .get(self.i % self.sizes.len().max(1))
            .copied()
            .unwrap_or(7);
        self.i += 1;
        let k = want.max(1).min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

#[derive(Clone, Debug)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Overwrite(usize, Vec<u8>),
    /// Copy `len` bytes from `from` to `to` (repeats).
    Repeat {
        from: usize,
        len: usize,
        to: usize,
    },
    /// Move the first `k` bytes to the end (a shift of everything).
    Rotate(usize),
    FlipByte(usize),
}

fn apply_edits(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for e in edits {
        let len = v.len();
        let at = |p: usize| if len == 0 { 0 } else { p % (len + 1) };
        match e {
            Edit::Insert(p, bytes) => {
                let p = at(*p);
                v.splice(p..p, bytes.iter().copied());
            }
            Edit::Delete(p, n) => {
                let p = at(*p);
                let end = (p + n).min(len);
                v.drain(p..end);
            }
            Edit::Overwrite(p, bytes) => {
                let p = at(*p);
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(x) = v.get_mut(p + i) {
                        *x = *b;
                    }
                }
            }
            Edit::Repeat { from, len: n, to } => {
                let from = at(*from);
                let end = (from + n).min(len);
                let piece = v[from..end].to_vec();
                let to = at(*to);
                v.splice(to..to, piece);
            }
            Edit::Rotate(k) => {
                if len > 0 {
                    v.rotate_left(k % len);
                }
            }
            Edit::FlipByte(p) => {
                if len > 0 {
                    v[p % len] ^= 0x5a;
                }
            }
        }
    }
    v
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..200))
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1usize..500).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..100))
            .prop_map(|(p, b)| Edit::Overwrite(p, b)),
        (any::<usize>(), 1usize..2000, any::<usize>()).prop_map(|(from, len, to)| Edit::Repeat {
            from,
            len,
            to
        }),
        any::<usize>().prop_map(Edit::Rotate),
        any::<usize>().prop_map(Edit::FlipByte),
    ]
}

/// Random bytes, or low-entropy ones (runs and a small alphabet) that stress weak-checksum
/// collisions and duplicate blocks.
fn base() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..20_000),
        prop::collection::vec(0u8..3, 0..20_000),
        (any::<u8>(), 0usize..5000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn block_size() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(16u32),
        Just(31),
        Just(64),
        Just(100),
        Just(512),
        Just(4096)
    ]
}

fn round_trip(base: &[u8], new: &[u8], bs: u32, chunks: Vec<usize>, window: usize) {
    let sig = Signature::calculate(base, SignatureOptions::with_block_size(bs)).unwrap();
    let streamed_sig = Signature::calculate_from(
        Chunky {
            data: base,
            sizes: chunks.clone(),
            i: 0,
        },
        SignatureOptions::with_block_size(bs),
    )
    .unwrap();
    assert_eq!(sig, streamed_sig, "slice and stream signatures differ");
    let bytes = sig.serialize();
    assert_eq!(Signature::deserialize(&bytes).unwrap(), sig);
    assert_eq!(Signature::read_from(&bytes[..]).unwrap(), sig);

    let idx = sig.index();
    let mut d_slice = Vec::new();
    let s1 = diff_slice(&idx, new, &mut d_slice).unwrap();
    assert_eq!(s1.new_len, new.len() as u64);
    assert_eq!(s1.copied + s1.literal, new.len() as u64);
    assert_eq!(s1.delta_len, d_slice.len() as u64);
    assert_eq!(apply_slice(base, &d_slice, new.len()).unwrap(), new);

    let mut d_stream = Vec::new();
    diff(
        &idx,
        Chunky {
            data: new,
            sizes: chunks.clone(),
            i: 0,
        },
        &mut d_stream,
    )
    .unwrap();
    // Below the window size the streaming diff sees the same bytes at once: same delta.
    assert_eq!(d_stream, d_slice, "streaming and slice deltas differ");

    let mut d_small = Vec::new();
    diff_with_window(
        &idx,
        Chunky {
            data: new,
            sizes: chunks,
            i: 0,
        },
        &mut d_small,
        window,
    )
    .unwrap();
    let mut out = Vec::new();
    let n = apply(Cursor::new(base), &d_small[..], &mut out).unwrap();
    assert_eq!(n, new.len() as u64);
    assert_eq!(out, new, "small-window streaming round trip failed");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn edits_round_trip(
        base in base(),
        edits in prop::collection::vec(edit(), 0..6),
        bs in block_size(),
        chunks in prop::collection::vec(1usize..5000, 1..5),
        window in 0usize..20_000,
    ) {
        let new = apply_edits(&base, &edits);
        round_trip(&base, &new, bs, chunks, window);
    }

    #[test]
    fn unrelated_files_round_trip(
        base in base(),
        new in base(),
        bs in block_size(),
    ) {
        round_trip(&base, &new, bs, vec![4096], 1);
    }

    /// One changed byte at or next to a block edge costs at most two blocks of literal.
    #[test]
    fn single_byte_at_block_edge(
        blocks in 2usize..40,
        which in any::<usize>(),
        delta in -1isize..=1,
        seed in any::<u64>(),
    ) {
        let bs = 64usize;
        let base = pseudo_random(blocks * bs, seed);
        let edge = (which % blocks) * bs;
        let pos = (edge as isize + delta).clamp(0, base.len() as isize - 1) as usize;
        let mut new = base.clone();
        new[pos] ^= 1;
        let sig = Signature::calculate(&base, SignatureOptions::with_block_size(bs as u32)).unwrap();
        let mut d = Vec::new();
        let stats = diff_slice(&sig.index(), &new, &mut d).unwrap();
        prop_assert!(stats.literal <= 2 * bs as u64, "literal {}", stats.literal);
        prop_assert_eq!(apply_slice(&base, &d, new.len()).unwrap(), new);
    }
}

#[test]
fn identical_file_is_one_copy() {
    let base = pseudo_random(100_000, 1); // 100_000 = 24 blocks of 4096 + a short one
    let sig = Signature::calculate(&base, SignatureOptions::with_block_size(4096)).unwrap();
    let mut d = Vec::new();
    let stats = diff_slice(&sig.index(), &base, &mut d).unwrap();
    assert_eq!(stats.literal, 0);
    assert_eq!(stats.copied, 100_000);
    // magic and version 4 + COPY(1 + 1 + 4) + END(1 + 3 + 16)
    assert_eq!(d.len(), 30, "{d:02x?}");
}

#[test]
fn empty_and_short_files() {
    for (base, new) in [
        (&b""[..], &b""[..]),
        (b"", b"abc"),
        (b"abc", b""),
        (b"abc", b"abc"),
        (b"short base", b"a short base"),
    ] {
        round_trip(base, new, 16, vec![1], 0);
        round_trip(base, new, 4096, vec![3], 0);
    }
    // A file shorter than a block that is unchanged is copied, not sent.
    let sig = Signature::calculate(b"0123456789", SignatureOptions::with_block_size(64)).unwrap();
    let mut d = Vec::new();
    let stats = diff_slice(&sig.index(), b"0123456789", &mut d).unwrap();
    assert_eq!((stats.copied, stats.literal), (10, 0));
}

/// Larger than the 4 MiB window: exercises the sliding window with the default buffer.
#[test]
fn streaming_beyond_the_window() {
    let base = pseudo_random(9 << 20, 42);
    let mut new = base.clone();
    for k in 0..16 {
        let p = k * (base.len() / 16) + 1234;
        new[p..p + 4096].fill(k as u8);
    }
    new.splice(4 << 20..4 << 20, pseudo_random(1024, 7));
    let sig =
        Signature::calculate_from(&base[..], SignatureOptions::with_block_size(4096)).unwrap();
    let mut d = Vec::new();
    let stats = diff(&sig.index(), &new[..], &mut d).unwrap();
    // 16 overwrites touch at most 2 blocks each, the insertion at most 1 block + itself.
    assert!(
        stats.literal <= 16 * 2 * 4096 + 4096 + 1024,
        "literal {}",
        stats.literal
    );
    let mut out = Vec::new();
    apply(Cursor::new(&base), &d[..], &mut out).unwrap();
    assert!(out == new);
}
