//! Differential tests against fast_rsync 0.2 and librsync (the C library through the `librsync`
//! crate): on the same inputs every engine rebuilds the same new file, and at the same block
//! size our delta is no larger than librsync's apart from
//! the verification trailer librsync does not have.
mod delta_common;
use delta_common::pseudo_random;
use std::io::Cursor;

use sync::delta::{apply, diff, Signature, SignatureOptions};

/// (name, base, new) cases: small edit, insertion, deletion, unrelated, text-like, empty.
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let base = pseudo_random(1 << 20, 11);
    let mut edited = base.clone();
    for k in 0..16 {
        let p = k * 65_000 + 777;
        edited[p..p + 4096].copy_from_slice(&pseudo_random(4096, k as u64 + 100));
    }
    edited.splice(500_000..500_000, pseudo_random(1024, 3));
    let mut deleted = base.clone();
    deleted.drain(300_000..310_000);
    let text: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("line {i}: extension {} ringing\n", i % 97).into_bytes())
        .collect();
    let mut text2 = text.clone();
    text2.splice(100_000..100_000, b"inserted line\n".iter().copied());
    vec![
        ("edits", base.clone(), edited),
        ("deletion", base.clone(), deleted),
        ("unrelated", base.clone(), pseudo_random(1 << 20, 12)),
        ("text", text, text2),
        ("empty base", Vec::new(), pseudo_random(5000, 1)),
        ("empty new", pseudo_random(5000, 1), Vec::new()),
        ("identical", base.clone(), base),
    ]
}

/// What our delta carries that librsync's does not: the 16-byte whole-file hash and the new
/// length (varint). Apart from these, our commands must be no larger: the
/// literal bytes are the same and our copy commands are shorter.
fn extra(new: &[u8]) -> usize {
    let mut len_bytes = 1;
    let mut v = new.len() >> 7;
    while v > 0 {
        len_bytes += 1;
        v >>= 7;
    }
    16 + len_bytes
}

fn ours(base: &[u8], new: &[u8], bs: u32) -> (Vec<u8>, usize) {
    let sig = Signature::calculate(base, SignatureOptions::with_block_size(bs)).unwrap();
    let mut d = Vec::new();
    diff(&sig.index(), new, &mut d).unwrap();
    let mut out = Vec::new();
    apply(Cursor::new(base), &d[..], &mut out).unwrap();
    (out, d.len())
}

fn fast_rsync(base: &[u8], new: &[u8], bs: u32) -> Vec<u8> {
    let sig = fast_rsync::Signature::calculate(
        base,
        fast_rsync::SignatureOptions {
            block_size: bs,
            crypto_hash_size: 16,
        },
    );
    let mut d = Vec::new();
    fast_rsync::diff(&sig.index(), new, &mut d).unwrap();
    let mut out = Vec::new();
    fast_rsync::apply(base, &d, &mut out).unwrap();
    out
}

fn librsync(base: &[u8], new: &[u8], bs: u32) -> (Vec<u8>, usize) {
    let mut sig = Vec::new();
    librsync::whole::signature_with_options(
        &mut Cursor::new(base),
        &mut sig,
        bs as usize,
        16,
        librsync::SignatureType::Blake2,
    )
    .unwrap();
    let mut d = Vec::new();
    librsync::whole::delta(&mut Cursor::new(new), &mut &sig[..], &mut d).unwrap();
    let mut out = Vec::new();
    librsync::whole::patch(&mut Cursor::new(base), &mut &d[..], &mut out).unwrap();
    (out, d.len())
}

#[test]
fn same_output_as_fast_rsync_and_librsync() {
    for bs in [512u32, 2048, 4096] {
        for (name, base, new) in cases() {
            let (o, ours_len) = ours(&base, &new, bs);
            assert!(o == new, "{name}/{bs}: ours rebuilt the wrong file");
            assert!(
                fast_rsync(&base, &new, bs) == new,
                "{name}/{bs}: fast_rsync differs"
            );
            let (l, lib_len) = librsync(&base, &new, bs);
            assert!(l == new, "{name}/{bs}: librsync differs");
            assert!(
                ours_len <= lib_len + extra(&new),
                "{name}/{bs}: our delta {ours_len} > librsync's {lib_len} + trailer"
            );
        }
    }
}

/// Our patch applies our delta for inputs created by the peers' own tests' shapes: a base that
/// is a prefix / suffix of the new file.
#[test]
fn prefix_and_suffix_shapes() {
    let base = pseudo_random(100_000, 4);
    let mut appended = base.clone();
    appended.extend_from_slice(&pseudo_random(3000, 5));
    let mut prepended = pseudo_random(3000, 6);
    prepended.extend_from_slice(&base);
    for (i, new) in [
        appended,
        prepended,
        base[..50_000].to_vec(),
        base[50_000..].to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let (o, ours_len) = ours(&base, &new, 1024);
        assert!(o == new);
        let (l, lib_len) = librsync(&base, &new, 1024);
        assert!(l == new);
        assert!(
            ours_len <= lib_len + extra(&new),
            "case {i}: {ours_len} > {lib_len} + trailer"
        );
    }
}
