//! Hostile peers: a fake server that authenticates correctly and then lies (traversal paths,
//! escaping symlinks, oversized lengths, truncated and corrupted frames, more data than
//! announced), and a fake server that lies before authentication. Every case must end in a
//! clear error with nothing written outside the store and no generation switched.
mod transfer_common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;

use sync::transfer::auth::{server_handshake, Identity};
use sync::transfer::frame::{FrameReader, FrameWriter};
use sync::transfer::msg::{BackupMode, Encoding, Msg};
use sync::transfer::puller::pull_once;
use sync::transfer::TransferError;
use sync::tree::manifest::{Entry, EntryKind, Manifest, Meta};
use sync::tree::store::GenStore;
use transfer_common::*;

type Script =
    Box<dyn FnOnce(&mut FrameReader<TcpStream>, &mut FrameWriter<TcpStream>, TcpStream) + Send>;

/// Accepts one connection, authenticates with the right key, reads the Pull, runs `script`.
fn fake_server(script: Script) -> (std::net::SocketAddr, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let raw = s.try_clone().unwrap();
        let mut r = FrameReader::new(s.try_clone().unwrap());
        let mut w = FrameWriter::new(s);
        let me = Identity::new("evil", BackupMode::Active);
        server_handshake(&mut r, &mut w, &key(), &me).unwrap();
        match r.read().unwrap() {
            Msg::Pull { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        script(&mut r, &mut w, raw);
    });
    (addr, h)
}

fn file_entry(path: &str, data: &[u8]) -> Entry {
    Entry {
        path: path.into(),
        kind: EntryKind::File {
            size: data.len() as u64,
            hash: *blake3::hash(data).as_bytes(),
        },
        meta: Meta {
            mode: 0o644,
            ..Meta::default()
        },
    }
}

fn announce(w: &mut FrameWriter<TcpStream>, m: &Manifest) {
    w.write(&Msg::ManifestBegin {
        gen: m.id(),
        base: None,
        root: m.root,
        upserts: m.entries.len() as u64,
        deletions: 0,
    })
    .unwrap();
    w.write(&Msg::ManifestPart {
        upserts: m.entries.clone(),
        deletions: vec![],
    })
    .unwrap();
    w.flush().unwrap();
}

fn run(script: Script) -> (TransferError, tempfile::TempDir) {
    let dst = tempfile::tempdir().unwrap();
    let (addr, h) = fake_server(script);
    let store = GenStore::open(dst.path().join("store")).unwrap();
    let err = pull_once(&store, &pull_cfg(addr, key())).unwrap_err();
    let _ = h.join();
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
    (err, dst)
}

#[test]
fn traversal_path_is_refused() {
    let (err, _d) = run(Box::new(|_, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![file_entry("../evil", b"x")],
        };
        announce(w, &m);
    }));
    assert!(
        err.to_string().contains("..") || err.to_string().contains("unsafe"),
        "{err}"
    );
}

#[test]
fn absolute_path_is_refused() {
    let (err, _d) = run(Box::new(|_, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![file_entry("/tmp/evil", b"x")],
        };
        announce(w, &m);
    }));
    assert!(err.to_string().contains("absolute"), "{err}");
}

#[test]
fn escaping_symlink_is_refused() {
    let (err, _d) = run(Box::new(|_, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![Entry {
                path: "link".into(),
                kind: EntryKind::Symlink {
                    target: "../../etc/passwd".into(),
                },
                meta: Meta::default(),
            }],
        };
        announce(w, &m);
    }));
    assert!(err.to_string().contains("leaves the tree"), "{err}");
}

#[test]
fn wrong_generation_id_is_refused() {
    let (err, _d) = run(Box::new(|_, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![file_entry("a", b"x")],
        };
        w.write(&Msg::ManifestBegin {
            gen: sync::tree::manifest::GenId([9; 32]),
            base: None,
            root: m.root,
            upserts: 1,
            deletions: 0,
        })
        .unwrap();
        w.write(&Msg::ManifestPart {
            upserts: m.entries.clone(),
            deletions: vec![],
        })
        .unwrap();
        w.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::Integrity { .. }), "{err}");
}

#[test]
fn more_data_than_announced_is_refused() {
    let (err, _d) = run(Box::new(|r, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![file_entry("a", b"four")],
        };
        announce(w, &m);
        let _ = r.read();
        w.write(&Msg::FileBegin {
            index: 0,
            encoding: Encoding::Literal { offset: 0 },
        })
        .unwrap();
        w.write(&Msg::Data {
            bytes: vec![0; 1 << 20],
        })
        .unwrap();
        w.flush().unwrap();
    }));
    assert!(err.to_string().contains("more than the manifest"), "{err}");
}

#[test]
fn wrong_content_is_refused() {
    let (err, _d) = run(Box::new(|r, w, _| {
        let m = Manifest {
            root: Meta::default(),
            entries: vec![file_entry("a", b"four")],
        };
        announce(w, &m);
        let _ = r.read();
        w.write(&Msg::FileBegin {
            index: 0,
            encoding: Encoding::Literal { offset: 0 },
        })
        .unwrap();
        w.write(&Msg::Data {
            bytes: b"FOUR".to_vec(),
        })
        .unwrap();
        // Claims the right hash: our own hash of what arrived must catch it.
        w.write(&Msg::FileEnd {
            hash: *blake3::hash(b"four").as_bytes(),
        })
        .unwrap();
        w.write(&Msg::BatchEnd).unwrap();
        w.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::Integrity { .. }), "{err}");
}

#[test]
fn oversized_frame_length_is_refused_without_allocating() {
    let (err, _d) = run(Box::new(|_, _, mut raw| {
        raw.write_all(&[0xFF, 0xFF, 0xFF, 0xF0]).unwrap();
        raw.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn truncated_frame_is_an_error() {
    let (err, _d) = run(Box::new(|_, _, mut raw| {
        raw.write_all(&[0, 0, 0, 100, 1, 2, 3]).unwrap();
        raw.flush().unwrap();
        raw.shutdown(std::net::Shutdown::Both).unwrap();
    }));
    assert!(matches!(err, TransferError::Closed(_)), "{err}");
}

#[test]
fn corrupted_frame_fails_its_tag() {
    let (err, _d) = run(Box::new(|_, _, mut raw| {
        // A well-formed length and 40 bytes of garbage: payload plus a tag that cannot verify.
        raw.write_all(&[0, 0, 0, 40]).unwrap();
        raw.write_all(&[0x5A; 40]).unwrap();
        raw.flush().unwrap();
    }));
    assert!(matches!(err, TransferError::BadTag), "{err}");
}

#[test]
fn unauthenticated_server_cannot_send_big_frames() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        // Before any handshake: a 1 MiB "hello".
        s.write_all(&(1u32 << 20).to_be_bytes()).unwrap();
        let _ = s.write_all(&[0; 1024]);
    });
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path()).unwrap();
    let err = pull_once(&store, &pull_cfg(addr, key())).unwrap_err();
    let _ = h.join();
    assert!(matches!(err, TransferError::FrameTooLarge { .. }), "{err}");
}

#[test]
fn server_with_wrong_key_is_refused_before_any_data() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = FrameReader::new(s.try_clone().unwrap());
        let mut w = FrameWriter::new(s);
        let wrong = sync::transfer::auth::Key::from_bytes(b"not the key at all!!").unwrap();
        let me = Identity::new("impostor", BackupMode::Active);
        server_handshake(&mut r, &mut w, &wrong, &me)
    });
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path()).unwrap();
    let err = pull_once(&store, &pull_cfg(addr, key())).unwrap_err();
    assert!(matches!(err, TransferError::Auth(_)), "{err}");
    // The impostor, in turn, saw the puller refuse: it never got a Pull.
    assert!(h.join().unwrap().is_err());
}
