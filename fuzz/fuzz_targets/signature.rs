//! Fuzzes signature parsing: any byte string must parse or give an error, never panic or
//! allocate by a declared length; a parsed signature re-serialises to the same bytes and can be
//! indexed and diffed against.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sync::delta::{diff_slice, Signature};

fuzz_target!(|data: &[u8]| {
    let parsed = Signature::deserialize(data);
    let streamed = Signature::read_from(data);
    if let Ok(sig) = parsed {
        assert_eq!(sig.serialize(), data);
        assert_eq!(streamed.as_ref().ok(), Some(&sig));
        let mut delta = Vec::new();
        diff_slice(
            &sig.index(),
            b"some new file contents, longer than a tiny block",
            &mut delta,
        )
        .expect("diff against a valid signature cannot fail");
    }
});
