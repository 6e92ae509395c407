//! Garbled and hostile signatures and deltas give errors, never panics or huge allocations.
mod delta_common;
use delta_common::pseudo_random;
use std::io::Cursor;

use sync::delta::{
    apply, apply_slice, diff_slice, DeltaError, Signature, SignatureOptions, DELTA_MAGIC,
};

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A literal command with a 4-byte length field.
fn literal(len: u32, out: &mut Vec<u8>) {
    out.push(0x03);
    out.extend_from_slice(&len.to_le_bytes());
}

/// A relative copy command with 8-byte fields (`rel` already zigzagged).
fn copy(rel: u64, len: u64, out: &mut Vec<u8>) {
    out.push(0x1f);
    out.extend_from_slice(&rel.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
}

fn header() -> Vec<u8> {
    DELTA_MAGIC.to_vec()
}

fn sample() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let base = pseudo_random(50_000, 9);
    let mut new = base.clone();
    new[20_000..20_100].fill(0);
    let sig = Signature::calculate(&base, SignatureOptions::with_block_size(512)).unwrap();
    let mut d = Vec::new();
    diff_slice(&sig.index(), &new, &mut d).unwrap();
    (base, new, d)
}

fn both(base: &[u8], delta: &[u8]) -> (Result<Vec<u8>, DeltaError>, Result<Vec<u8>, DeltaError>) {
    let a = apply_slice(base, delta, 1 << 24);
    let mut out = Vec::new();
    let b = apply(Cursor::new(base), delta, &mut out).map(|_| out);
    (a, b)
}

#[test]
fn every_truncation_of_a_delta_is_an_error() {
    let (base, _, d) = sample();
    for cut in 0..d.len() {
        let (a, b) = both(&base, &d[..cut]);
        assert!(a.is_err() && b.is_err(), "cut at {cut} accepted");
    }
}

#[test]
fn every_single_bit_flip_is_caught_or_harmless() {
    let (base, new, d) = sample();
    for i in 0..d.len() {
        for bit in [0, 3, 7] {
            let mut g = d.clone();
            g[i] ^= 1 << bit;
            let (a, b) = both(&base, &g);
            // Either rejected, or (a flip in a copy's length or offset that the hash check
            // would catch cannot pass) the output is exactly the new file.
            let (a, b) = (a.ok(), b.ok());
            assert_eq!(a, b, "slice and streaming patch disagree at {i} bit {bit}");
            if let Some(out) = a {
                assert!(out == new, "flip at {i} bit {bit} gave a wrong file");
            }
        }
    }
}

#[test]
fn wrong_base_is_a_hash_mismatch() {
    let (base, _, d) = sample();
    let mut other = base.clone();
    other[100] ^= 1;
    assert!(matches!(
        apply_slice(&other, &d, 1 << 24),
        Err(DeltaError::HashMismatch { .. })
    ));
    let mut out = Vec::new();
    assert!(matches!(
        apply(Cursor::new(&other), &d[..], &mut out),
        Err(DeltaError::HashMismatch { .. })
    ));
}

#[test]
fn wrong_declared_length_and_hash() {
    let mut d = header();
    literal(3, &mut d);
    d.extend_from_slice(b"abc");
    d.push(0x00);
    varint(4, &mut d);
    d.extend_from_slice(&[0u8; 16]);
    assert!(matches!(
        apply_slice(b"", &d, 100),
        Err(DeltaError::LengthMismatch {
            expected: 4,
            actual: 3
        })
    ));
    let n = d.len();
    d[n - 17] = 3; // right length, wrong hash
    assert!(matches!(
        apply_slice(b"", &d, 100),
        Err(DeltaError::HashMismatch { .. })
    ));
}

#[test]
fn huge_declared_lengths_do_not_allocate() {
    // A literal claiming 4 GiB: rejected by the bound before anything is read.
    let mut d = header();
    literal(u32::MAX, &mut d);
    let (a, b) = both(b"", &d);
    assert!(matches!(
        a,
        Err(DeltaError::OutOfRange {
            field: "literal length",
            ..
        })
    ));
    assert!(matches!(
        b,
        Err(DeltaError::OutOfRange {
            field: "literal length",
            ..
        })
    ));
    // A literal of the maximum length with no bytes behind it: truncated.
    let mut d = header();
    literal(1 << 20, &mut d);
    let (a, b) = both(b"", &d);
    assert!(matches!(a, Err(DeltaError::Truncated { .. })));
    assert!(matches!(b, Err(DeltaError::Truncated { .. })));
    // A huge copy: out of range of the base.
    let mut d = header();
    copy(0, 1 << 61, &mut d);
    let (a, b) = both(&[1, 2, 3], &d);
    assert!(matches!(a, Err(DeltaError::CopyOutOfRange { .. })));
    assert!(matches!(b, Err(DeltaError::CopyOutOfRange { .. })));
    // A copy longer than the format allows.
    let mut d = header();
    copy(0, u64::MAX, &mut d);
    assert!(matches!(
        both(b"", &d).0,
        Err(DeltaError::OutOfRange {
            field: "copy length",
            ..
        })
    ));
    // The trailer's varint longer than 64 bits.
    let mut d = header();
    d.push(0x00);
    d.extend_from_slice(&[0xff; 11]);
    assert!(matches!(
        both(b"", &d).0,
        Err(DeltaError::OutOfRange { .. })
    ));
}

#[test]
fn copies_out_of_range_and_negative_offsets() {
    let base = b"0123456789";
    for (rel, len) in [(8u64, 3u64), (20, 1), (0, 11), (1, 0)] {
        let mut d = header();
        copy(rel << 1, len, &mut d); // zigzag of a positive offset
        let (a, b) = both(base, &d);
        assert!(a.is_err() && b.is_err(), "copy {rel}+{len} accepted");
    }
    // Offset before the start: zigzag(-1) = 1.
    let mut d = header();
    copy(1, 1, &mut d);
    assert!(matches!(
        both(base, &d).0,
        Err(DeltaError::OutOfRange {
            field: "copy offset",
            ..
        })
    ));
}

#[test]
fn amplification_is_bounded_by_the_caller_limit() {
    // 1000 copies of the whole base: 10 MB from a few kB of delta.
    let base = vec![5u8; 10_000];
    let mut d = header();
    for i in 0..1000 {
        copy(
            if i == 0 { 0 } else { (10_000u64 << 1) - 1 },
            10_000,
            &mut d,
        ); // back to 0
    }
    assert!(matches!(
        apply_slice(&base, &d, 1 << 20),
        Err(DeltaError::OutputTooLarge { .. })
    ));
}

#[test]
fn bad_magic_version_command_and_trailing_data() {
    let (base, _, d) = sample();
    let mut g = d.clone();
    g[0] = b'X';
    assert!(matches!(
        both(&base, &g).0,
        Err(DeltaError::BadMagic { .. })
    ));
    let mut g = d.clone();
    g[3] = 9;
    assert!(matches!(
        both(&base, &g).1,
        Err(DeltaError::UnsupportedVersion { version: 9, .. })
    ));
    let mut g = header();
    g.push(0x3f);
    assert!(matches!(
        both(&base, &g).0,
        Err(DeltaError::UnknownCommand {
            byte: 0x3f,
            offset: 4
        })
    ));
    let mut g = d.clone();
    g.push(0);
    let (a, b) = both(&base, &g);
    assert!(matches!(a, Err(DeltaError::TrailingData { .. })));
    assert!(matches!(b, Err(DeltaError::TrailingData { .. })));
    assert!(both(&base, b"").0.is_err());
}

#[test]
fn garbled_signatures_are_errors() {
    let base = pseudo_random(10_000, 3);
    let sig = Signature::calculate(&base, SignatureOptions::with_block_size(1000)).unwrap();
    let bytes = sig.serialize();
    for cut in 0..bytes.len() {
        assert!(Signature::deserialize(&bytes[..cut]).is_err(), "cut {cut}");
        assert!(Signature::read_from(&bytes[..cut]).is_err(), "cut {cut}");
    }
    let mut extra = bytes.clone();
    extra.push(0);
    assert!(matches!(
        Signature::deserialize(&extra),
        Err(DeltaError::TrailingData { .. })
    ));
    // Huge declared file length: no allocation, just "truncated".
    let mut huge = bytes[..18].to_vec();
    huge[10..18].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(Signature::deserialize(&huge).is_err());
    assert!(matches!(
        Signature::read_from(&huge[..]),
        Err(DeltaError::Truncated { offset: 18, .. })
    ));
    // Fields out of range.
    for (at, value) in [(5usize, 7u8), (5, 17), (4, 2)] {
        let mut g = bytes.clone();
        g[at] = value;
        assert!(Signature::deserialize(&g).is_err(), "byte {at} = {value}");
    }
    let mut g = bytes.clone();
    g[6..10].copy_from_slice(&8u32.to_le_bytes()); // block size below the minimum
    assert!(matches!(
        Signature::deserialize(&g),
        Err(DeltaError::OutOfRange {
            field: "block size",
            ..
        })
    ));
}

#[test]
fn invalid_options_are_errors() {
    for opts in [
        SignatureOptions::with_block_size(0),
        SignatureOptions::with_block_size(u32::MAX),
        SignatureOptions {
            block_size: None,
            strong_len: 4,
        },
    ] {
        assert!(matches!(
            Signature::calculate(b"abc", opts),
            Err(DeltaError::InvalidOption(_))
        ));
    }
}

/// Adversarial base: hundreds of distinct blocks with the same weak checksum must not make the
/// diff quadratic (the index keeps at most 16 per weak value) and the result stays correct.
#[test]
fn many_weak_collisions_stay_correct() {
    // Adding (t, -2t, t) at positions i, i+1, i+2 keeps both rsync sums: a changes by
    // t - 2t + t = 0 and b by (n-i)t - 2(n-i-1)t + (n-i-2)t = 0.
    let mut blocks = Vec::new();
    for i in 0..14 {
        for t in 1..=40u8 {
            let mut b = [100u8; 16];
            b[i] += t;
            b[i + 1] -= 2 * t;
            b[i + 2] += t;
            blocks.push(b);
        }
    }
    let weak = |b: &[u8]| {
        let sig = Signature::calculate(b, SignatureOptions::with_block_size(16)).unwrap();
        sig.serialize()[18..22].to_vec()
    };
    assert!(blocks.iter().all(|b| weak(b) == weak(&blocks[0])));
    let base: Vec<u8> = blocks.concat();
    let mut new: Vec<u8> = blocks.iter().rev().flatten().copied().collect();
    new.extend_from_slice(&pseudo_random(10_000, 5));
    let sig = Signature::calculate(&base, SignatureOptions::with_block_size(16)).unwrap();
    let mut d = Vec::new();
    diff_slice(&sig.index(), &new, &mut d).unwrap();
    assert_eq!(apply_slice(&base, &d, new.len()).unwrap(), new);
}
