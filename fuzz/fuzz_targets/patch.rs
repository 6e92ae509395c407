//! Fuzzes delta decoding and patching: any byte string given as a delta must give `Ok` or an
//! error, never a panic, and both patch paths (slice and streaming) must agree.
#![no_main]
use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use sync::delta::{apply, apply_slice};

/// A fixed base the copies can refer to.
const BASE: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-the base file";

fuzz_target!(|data: &[u8]| {
    let slice = apply_slice(BASE, data, 1 << 20);
    let mut out = Vec::new();
    let streamed = apply(Cursor::new(BASE), data, &mut out).map(|_| out);
    // Both verify the whole-file hash; they may fail differently on a hostile delta that
    // exceeds the slice limit, but when both succeed the outputs are the same file.
    if let (Ok(a), Ok(b)) = (&slice, &streamed) {
        assert_eq!(a, b);
    }
});
