//! Manifest decoding as a peer or the store can reach it: the bytes are decoded as a stored
//! [`Manifest`] (what `Store::load_manifest` reads from disk) and as a [`ManifestDelta`] (what a
//! puller assembles from `ManifestBegin`/`ManifestPart` frames), then validated and applied.
//!
//! Oracles: nothing panics; a manifest that validates re-encodes and decodes to itself, and the
//! difference from a fixed base, applied to that base, gives back the same manifest with the
//! same generation id.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sync::codec;
use sync::tree::manifest::{Entry, EntryKind, Limits, Manifest, ManifestDelta, Meta};

fn base() -> Manifest {
    let meta = Meta::default();
    Manifest {
        root: meta,
        entries: vec![
            Entry {
                path: "a".into(),
                kind: EntryKind::Dir,
                meta,
            },
            Entry {
                path: "a/f".into(),
                kind: EntryKind::File {
                    size: 3,
                    hash: [7; 32],
                },
                meta,
            },
            Entry {
                path: "l".into(),
                kind: EntryKind::Symlink {
                    target: "a/f".into(),
                },
                meta,
            },
        ],
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_entries: 10_000,
        max_file_size: 1 << 40,
    };
    let base = base();
    if let Ok(m) = codec::decode::<Manifest>(data) {
        if m.validate(&limits).is_ok() {
            let again = codec::encode(&m).expect("a decoded manifest encodes");
            assert_eq!(codec::decode::<Manifest>(&again).ok().as_ref(), Some(&m));
            let d = m.delta_from(&base);
            let back = base.apply_delta(d).expect("a computed difference applies");
            assert_eq!(back.id(), m.id());
            assert_eq!(back, m);
            let _ = m.files_by_hash();
            let _ = m.total_file_bytes();
            for e in &m.entries {
                assert!(m.get(&e.path).is_some());
            }
        }
    }
    if let Ok(d) = codec::decode::<ManifestDelta>(data) {
        if let Ok(m) = base.apply_delta(d) {
            let _ = m.validate(&limits);
            let _ = m.id();
        }
    }
});
