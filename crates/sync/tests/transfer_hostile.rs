//! Hostile peers: a fake server that authenticates correctly and then lies (traversal paths,
//! escaping symlinks, oversized lengths, truncated and corrupted frames, more data than
//! announced), and a fake server that lies before authentication. Every case must end in a
//! clear error with nothing written outside the store and no generation switched.
mod transfer_common;

use std::io::Write;

use sync::transfer::msg::{Encoding, Msg};
use sync::transfer::puller::pull_once;
use sync::transfer::TransferError;
use sync::tree::manifest::{Entry, EntryKind, GenId, Meta};
use sync::tree::store::GenStore;
use transfer_common::fake::{
    announce, fake_server, file_entry, manifest, send_file, Handshake, Script,
};
use transfer_common::*;

/// Pulls from a fake server running `script` after `hs`; checks that nothing was switched,
/// staged or written outside the store, and returns the puller's error and the handshake's
/// result on the server side (`None` if the fake server's script failed: the puller may hang up
/// in the middle of a lie).
fn run(hs: Handshake, script: Script) -> (TransferError, Option<Result<(), TransferError>>) {
    let dst = tempfile::tempdir().unwrap();
    let (addr, h) = fake_server(hs, script);
    let store = GenStore::open(dst.path().join("store")).unwrap();
    let err = pull_once(&store, &pull_cfg(addr, key())).unwrap_err();
    let server = h.join().ok();
    assert!(
        store.current_id().unwrap().is_none(),
        "a generation was switched after: {err}"
    );
    let staging: Vec<_> = std::fs::read_dir(dst.path().join("store/.gens"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(staging.is_empty(), "leftovers after {err}: {staging:?}");
    // Nothing escaped next to the store.
    let outside: Vec<_> = std::fs::read_dir(dst.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("store")],
        "after {err}"
    );
    (err, server)
}

/// Authenticates correctly, then runs `script`.
fn lie(script: Script) -> TransferError {
    run(Handshake::Right, script).0
}

/// Announces a manifest of the one entry `e`.
fn announce_entry(e: Entry) -> Script {
    Box::new(move |_, w, _| announce(w, &manifest(vec![e]), None))
}

#[test]
fn traversal_path_is_refused() {
    let err = lie(announce_entry(file_entry("../evil", b"x")));
    assert!(
        err.to_string().contains("..") || err.to_string().contains("unsafe"),
        "{err}"
    );
}

#[test]
fn absolute_path_is_refused() {
    let err = lie(announce_entry(file_entry("/tmp/evil", b"x")));
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn escaping_symlink_is_refused() {
    let err = lie(announce_entry(Entry {
        path: "link".into(),
        kind: EntryKind::Symlink {
            target: "../../etc/passwd".into(),
        },
        meta: Meta::default(),
    }));
    assert!(err.to_string().contains("leaves the tree"), "{err}");
}

#[test]
fn wrong_generation_id_is_refused() {
    let err = lie(Box::new(|_, w, _| {
        let m = manifest(vec![file_entry("a", b"x")]);
        announce(w, &m, Some(GenId([9; 32])));
    }));
    assert!(matches!(err, TransferError::Integrity { .. }), "{err}");
}

#[test]
fn more_data_than_announced_is_refused() {
    let err = lie(Box::new(|r, w, _| {
        announce(w, &manifest(vec![file_entry("a", b"four")]), None);
        send_file(r, w, vec![0; 1 << 20], None);
    }));
    assert!(err.to_string().contains("more than the manifest"), "{err}");
}

#[test]
fn wrong_content_is_refused() {
    let err = lie(Box::new(|r, w, _| {
        announce(w, &manifest(vec![file_entry("a", b"four")]), None);
        // Claims the right hash: our own hash of what arrived must catch it.
        let claimed = *blake3::hash(b"four").as_bytes();
        send_file(r, w, b"FOUR".to_vec(), Some(claimed));
    }));
    assert!(matches!(err, TransferError::Integrity { .. }), "{err}");
}

/// `HashedData` frames are not tagged over their bytes: what guards them is the puller's own
/// hash of the file, checked against the manifest. A server (or anyone on the path: the tag
/// does not cover these bytes) sending other bytes under the right claimed hash is caught there.
#[test]
fn altered_hashed_data_is_refused_by_the_content_hash() {
    let err = lie(Box::new(|r, w, _| {
        announce(w, &manifest(vec![file_entry("a", b"four")]), None);
        let _ = r.read();
        w.write(&Msg::FileBegin {
            index: 0,
            encoding: Encoding::Literal { offset: 0 },
        })
        .unwrap();
        w.write(&Msg::HashedData {
            bytes: b"FOUR".to_vec(),
        })
        .unwrap();
        w.write(&Msg::FileEnd {
            hash: *blake3::hash(b"four").as_bytes(),
        })
        .unwrap();
        w.write(&Msg::BatchEnd).unwrap();
        w.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::Integrity { .. }), "{err}");
}

/// Pulls once into `store` from a fake server running `script` (which reads the puller's
/// `Done` at the end when there is one).
fn pull_from(store: &GenStore, script: Script) -> Result<(), TransferError> {
    let (addr, h) = fake_server(Handshake::Right, script);
    let r = pull_once(store, &pull_cfg(addr, key())).map(|_| ());
    let _ = h.join();
    r
}

/// The tail of a resumed file whose prefix the puller trusts is checked only by the server's
/// hash of the whole file: its bytes must come in tagged `Data` frames, and `HashedData` there
/// is refused, the generation kept. The same tail tagged is taken (the case can fail).
#[test]
fn a_resumed_tail_must_come_in_tagged_frames() {
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path().join("store")).unwrap();
    let hash = |d: &[u8]| *blake3::hash(d).as_bytes();
    pull_from(
        &store,
        Box::new(move |r, w, _| {
            announce(w, &manifest(vec![file_entry("a", b"four")]), None);
            send_file(r, w, b"four".to_vec(), Some(hash(b"four")));
            let _ = r.read();
        }),
    )
    .unwrap();
    let first = store.current_id().unwrap();
    let grown = |tagged: bool| -> Script {
        Box::new(move |r, w, _| {
            announce(w, &manifest(vec![file_entry("a", b"four more")]), None);
            let Ok(Msg::Fetch { items }) = r.read() else {
                panic!("no fetch")
            };
            assert_eq!(items[0].prefix, Some((4, hash(b"four"))));
            w.write(&Msg::FileBegin {
                index: 0,
                encoding: Encoding::Literal { offset: 4 },
            })
            .unwrap();
            let bytes = b" more".to_vec();
            let tail = if tagged {
                Msg::Data { bytes }
            } else {
                Msg::HashedData { bytes }
            };
            w.write(&tail).unwrap();
            w.write(&Msg::FileEnd {
                hash: hash(b"four more"),
            })
            .unwrap();
            w.write(&Msg::BatchEnd).unwrap();
            w.flush().unwrap();
            let _ = r.read();
        })
    };
    let err = pull_from(&store, grown(false)).unwrap_err();
    assert!(matches!(err, TransferError::Protocol(_)), "{err}");
    assert_eq!(store.current_id().unwrap(), first);
    pull_from(&store, grown(true)).unwrap();
    assert_ne!(store.current_id().unwrap(), first);
    assert_eq!(
        std::fs::read(store.current_path().join("a")).unwrap(),
        b"four more"
    );
}

#[test]
fn oversized_frame_length_is_refused_without_allocating() {
    let err = lie(Box::new(|_, _, mut raw| {
        raw.write_all(&[0xFF, 0xFF, 0xFF, 0xF0]).unwrap();
        raw.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn truncated_frame_is_an_error() {
    let err = lie(Box::new(|_, _, mut raw| {
        raw.write_all(&[0, 0, 0, 100, 1, 2, 3]).unwrap();
        raw.flush().unwrap();
        raw.shutdown(std::net::Shutdown::Both).unwrap();
    }));
    assert!(matches!(err, TransferError::Closed(_)), "{err}");
}

#[test]
fn corrupted_frame_fails_its_tag() {
    let err = lie(Box::new(|_, _, mut raw| {
        // A well-formed length and 40 bytes of garbage: payload plus a tag that cannot verify.
        raw.write_all(&[0, 0, 0, 40]).unwrap();
        raw.write_all(&[0x5A; 40]).unwrap();
        raw.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::BadTag), "{err}");
}

#[test]
fn unauthenticated_server_cannot_send_big_frames() {
    let (err, _) = run(
        Handshake::None,
        Box::new(|_, _, mut raw| {
            // Before any handshake: a 1 MiB "hello".
            raw.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
            let _ = raw.write_all(&[0; 1024]);
        }),
    );
    assert!(matches!(err, TransferError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn server_with_wrong_key_is_refused_before_any_data() {
    let (err, server) = run(Handshake::WrongKey, Box::new(|_, _, _| {}));
    assert!(matches!(err, TransferError::Auth(_)), "{err}");
    // The impostor, in turn, saw the puller refuse: it never got a Pull.
    assert!(matches!(server, Some(Err(_))), "{server:?}");
}
