//! Frame decoding as a peer can reach it: the input is read as one payload, as a stream of
//! untagged (handshake) frames and as a stream of tagged frames, each with and without
//! compression negotiated (so `Compressed` frames reach the bounded zstd decoder). Nothing may
//! panic, and nothing may allocate beyond the frame limits whatever the lengths claim.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sync::transfer::frame::{decode_payload, FrameMac, FrameReader};

fuzz_target!(|data: &[u8]| {
    let _ = decode_payload(data);
    for compressed in [false, true] {
        let mut r = FrameReader::new(data);
        if compressed && r.accept_compressed().is_err() {
            return;
        }
        while let Ok(Some(_)) = r.read_opt() {}
        let mut r = FrameReader::new(data);
        r.authenticated(FrameMac::new([0; 32]));
        if compressed && r.accept_compressed().is_err() {
            return;
        }
        while let Ok(Some(_)) = r.read_opt() {}
    }
});
