//! Compression on loopback: zstd is used only when both hellos offer it, the tree arrives equal
//! either way (new files whole and changed files as deltas), compressible data costs far fewer
//! bytes on the wire, and a hostile server's compressed frames (garbage, a bomb, a lying length,
//! compression that was not negotiated) are clear errors with nothing applied.
mod transfer_common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;

use sync::transfer::auth::{server_handshake, Identity};
use sync::transfer::compress::{Level, FEATURE_ZSTD};
use sync::transfer::frame::{FrameReader, FrameWriter, MAX_FRAME};
use sync::transfer::msg::{BackupMode, Encoding, Msg};
use sync::transfer::puller::{pull_once, RoundReport};
use sync::transfer::server::ServerHandle;
use sync::transfer::{PullTransport, ServerTransport, TransferError};
use sync::tree::manifest::Manifest;
use sync::tree::store::GenStore;
use transfer_common::fake::{announce, file_entry, manifest};
use transfer_common::*;

fn serve_with(root: &Path, compression: Option<Level>) -> ServerHandle {
    let transport = ServerTransport {
        tls: None,
        compression,
    };
    serve_transport(root, false, transport)
}

/// Configuration-like text: compresses well.
fn config_text(seed: usize, lines: usize) -> Vec<u8> {
    (0..lines)
        .flat_map(|i| {
            format!(
                "[extension-{seed}-{i}]\ntype = desk\nname = \"Extension {i}\"\ncodec = g722\n\
                 voicemail = yes\n"
            )
            .into_bytes()
        })
        .collect()
}

fn build(src: &Path) {
    for f in 0..20 {
        write(src, &format!("etc/users/{f}.conf"), &config_text(f, 400));
    }
    // Already compressed audio: zstd must not make it bigger (it is sent as it is).
    write(src, "voice/greeting.wav", &noise(5, 400_000));
}

/// Pulls `src` into a fresh store through a server with `server` compression and a puller that
/// accepts it or not; checks the tree, then changes a config file inside (a delta) and pulls
/// again. Returns both rounds' reports.
fn pull_pair(src: &Path, server: Option<Level>, puller: bool) -> (RoundReport, RoundReport) {
    let h = serve_with(src, server);
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path()).unwrap();
    let mut cfg = pull_cfg(h.addr, key());
    cfg.transport = PullTransport {
        tls: None,
        compression: puller,
    };
    let first = pull_once(&store, &cfg).unwrap();
    assert!(first.changed);
    let d = tree_diff(src, &current(dst.path()));
    assert!(d.is_empty(), "replica differs: {d:#?}");
    // Change the middle of a config file: it travels as a delta whose literals are compressible.
    let p = src.join("etc/users/7.conf");
    let mut text = std::fs::read(&p).unwrap();
    let mid = text.len() / 2;
    text.splice(mid..mid, config_text(99, 60));
    std::fs::write(&p, &text).unwrap();
    let second = pull_once(&store, &cfg).unwrap();
    assert!(second.changed && second.files_fetched == 1, "{second}");
    let d = tree_diff(src, &current(dst.path()));
    assert!(d.is_empty(), "replica differs after the delta: {d:#?}");
    // Restore the source for the next pair.
    text.drain(mid..mid + config_text(99, 60).len());
    std::fs::write(&p, &text).unwrap();
    h.stop();
    (first, second)
}

#[test]
fn compression_is_used_only_when_both_sides_offer_it() {
    let src = tempfile::tempdir().unwrap();
    build(src.path());
    let (plain1, plain2) = pull_pair(src.path(), None, false);
    let (z1, z2) = pull_pair(src.path(), Some(Level::DEFAULT), true);
    // Mixed peers get plain data: the same bytes as with compression off everywhere.
    let (s_only1, s_only2) = pull_pair(src.path(), Some(Level::DEFAULT), false);
    let (p_only1, p_only2) = pull_pair(src.path(), None, true);
    eprintln!(
        "received: plain {} + {}, compressed {} + {}, server-only {} + {}, puller-only {} + {}",
        plain1.bytes_received,
        plain2.bytes_received,
        z1.bytes_received,
        z2.bytes_received,
        s_only1.bytes_received,
        s_only2.bytes_received,
        p_only1.bytes_received,
        p_only2.bytes_received
    );
    // (A few bytes of slack: the restored file's new mtime may encode one varint longer.)
    for (a, b) in [
        (&s_only1, &plain1),
        (&p_only1, &plain1),
        (&s_only2, &plain2),
        (&p_only2, &plain2),
    ] {
        assert!(
            a.bytes_received.abs_diff(b.bytes_received) <= 16,
            "mixed peers: {} B, plain: {} B",
            a.bytes_received,
            b.bytes_received
        );
    }
    // The config text (about 1.4 MB) shrinks many times; the noise (400 KB) does not, and must
    // not grow: the compressed round carries less than the noise plus a fifth of the text.
    let text: u64 = (0..20).map(|f| config_text(f, 400).len() as u64).sum();
    assert!(
        z1.bytes_received < 400_000 + text / 5,
        "compressed round {} B for {} B text + 400000 B noise",
        z1.bytes_received,
        text
    );
    assert!(z1.bytes_received + text / 2 < plain1.bytes_received);
    // The delta's literals are compressed too.
    assert!(
        z2.bytes_received < plain2.bytes_received,
        "delta round: {} compressed vs {} plain",
        z2.bytes_received,
        plain2.bytes_received
    );
}

/// Plays a server that offers zstd on the first connection to `l`: authenticates, reads the
/// Pull, announces `m`, reads the Fetch and begins file 0 literally. `None` if the handshake
/// failed.
fn zstd_fake_begin_file(
    l: TcpListener,
    m: &Manifest,
) -> Option<(FrameReader<TcpStream>, FrameWriter<TcpStream>)> {
    let (s, _) = l.accept().unwrap();
    let mut r = FrameReader::new(s.try_clone().unwrap());
    let mut w = FrameWriter::new(s);
    let mut me = Identity::new("evil", BackupMode::Active);
    me.features = FEATURE_ZSTD;
    server_handshake(&mut r, &mut w, &key(), &me).ok()?;
    let _ = r.read(); // Pull
    announce(&mut w, m, None);
    let _ = r.read(); // Fetch
    let _ = w.write(&Msg::FileBegin {
        index: 0,
        encoding: Encoding::Literal { offset: 0 },
    });
    Some((r, w))
}

/// A fake server that offers compression, announces one file and answers the fetch with
/// `frame` as its data; returns the puller's error.
fn hostile(frame: Msg) -> (TransferError, tempfile::TempDir) {
    let data = config_text(1, 50);
    let m = manifest(vec![file_entry("a.conf", &data)]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let Some((mut r, mut w)) = zstd_fake_begin_file(l, &m) else {
            return;
        };
        let _ = w.write(&frame);
        let _ = w.write(&Msg::FileEnd {
            hash: *blake3::hash(&data).as_bytes(),
        });
        let _ = w.write(&Msg::BatchEnd);
        let _ = w.flush();
        // Keep the connection until the puller has given up.
        let _ = r.read();
    });
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path()).unwrap();
    let mut cfg = pull_cfg(addr, key());
    cfg.transport = PullTransport {
        tls: None,
        compression: true,
    };
    let err = pull_once(&store, &cfg).unwrap_err();
    // Nothing was applied: no generation, and no file of the set anywhere in the store.
    assert!(store.current_id().unwrap().is_none());
    server.join().unwrap();
    (err, dst)
}

fn compressed(raw_len: u32, bytes: Vec<u8>) -> Msg {
    Msg::Compressed { raw_len, bytes }
}

#[test]
fn hostile_compressed_frames_are_clear_errors_and_nothing_is_applied() {
    let data = config_text(1, 50);
    let ok = zstd::bulk::compress(&data, 3).unwrap();

    // Garbage claiming to be zstd.
    let (err, _d) = hostile(compressed(
        data.len() as u32,
        b"\x28\xb5\x2f\xfdgarbage".to_vec(),
    ));
    assert!(matches!(err, TransferError::Compression(_)), "{err}");

    // A bomb: 64 MiB of zeros in a few KiB, announced as the file's size.
    let bomb = zstd::bulk::compress(&vec![0u8; 64 << 20], 3).unwrap();
    let (err, _d) = hostile(compressed(data.len() as u32, bomb));
    assert!(matches!(err, TransferError::Compression(_)), "{err}");
    assert!(err.to_string().contains("does not decompress"), "{err}");

    // A length beyond the frame bound is refused before allocating.
    let (err, _d) = hostile(compressed(u32::MAX, ok.clone()));
    assert!(matches!(err, TransferError::Compression(_)), "{err}");
    assert!(err.to_string().contains(&MAX_FRAME.to_string()), "{err}");

    // A length that lies low (the data expands beyond it) or high.
    let (err, _d) = hostile(compressed(data.len() as u32 - 1, ok.clone()));
    assert!(matches!(err, TransferError::Compression(_)), "{err}");
    let (err, _d) = hostile(compressed(data.len() as u32 + 1, ok.clone()));
    assert!(matches!(err, TransferError::Compression(_)), "{err}");
}

#[test]
fn compressed_frames_without_negotiation_are_refused() {
    // The puller did not offer compression; the server sends a valid compressed frame anyway.
    let data = config_text(2, 50);
    let ok = zstd::bulk::compress(&data, 3).unwrap();
    let m = manifest(vec![file_entry("a.conf", &data)]);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let len = data.len() as u32;
    let server = std::thread::spawn(move || {
        let (mut r, mut w) =
            zstd_fake_begin_file(l, &m).expect("the puller authenticates with the right key");
        let _ = w.write(&compressed(len, ok));
        let _ = w.flush();
        let _ = r.read();
    });
    let dst = tempfile::tempdir().unwrap();
    let store = GenStore::open(dst.path()).unwrap();
    let err = pull_once(&store, &pull_cfg(addr, key())).unwrap_err();
    assert!(
        matches!(&err, TransferError::Protocol(m) if m.contains("not negotiated")),
        "{err}"
    );
    assert!(store.current_id().unwrap().is_none());
    server.join().unwrap();
}
