//! The delta round trip with fuzzer-chosen files: signature of a base, diff of a new file
//! against it, patch of the base with that delta must give the new file exactly (both patch
//! paths). `patch` already covers delta *decoding* of arbitrary bytes; this target covers the
//! encoder side (signature, index, rolling search, delta writer) that a hostile *file* reaches.
//!
//! Input layout: byte 0 picks the block size (16..=79), bytes 1..3 the split point; the rest is
//! the base followed by the new file.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sync::delta::{apply, apply_slice, diff_slice, diff_with_window, Signature, SignatureOptions};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // The smallest block size a signature allows is 16.
    let block = u32::from(data[0] % 64) + 16;
    let split = usize::from(u16::from_le_bytes([data[1], data[2]]));
    let rest = &data[3..];
    let (base, new) = rest.split_at(split.min(rest.len()));
    let sig = Signature::calculate(base, SignatureOptions::with_block_size(block))
        .expect("a signature of any bytes");
    let parsed = Signature::deserialize(&sig.serialize()).expect("own signature parses");
    assert_eq!(parsed, sig);
    let index = sig.index();
    let mut delta = Vec::new();
    diff_slice(&index, new, &mut delta).expect("diff into memory");
    let out = apply_slice(base, &delta, new.len() + 1).expect("own delta applies");
    assert_eq!(out, new);
    // The streaming diff with the smallest window must agree on the result.
    let mut delta2 = Vec::new();
    diff_with_window(&index, new, &mut delta2, 1).expect("streaming diff");
    let mut out2 = Vec::new();
    apply(Cursor::new(base), &delta2[..], &mut out2).expect("own streamed delta applies");
    assert_eq!(out2, new);
});
