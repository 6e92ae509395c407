//! One fake server for the hostile-peer tests: it accepts one connection, authenticates the way
//! the case asks (correctly, with the wrong key, or not at all) and then runs the case's script,
//! which tells its lie with the helpers below.
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;

use sync::transfer::auth::{server_handshake, Identity, Key};
use sync::transfer::frame::{FrameReader, FrameWriter};
use sync::transfer::msg::{BackupMode, Encoding, Msg};
use sync::transfer::TransferError;
use sync::tree::manifest::{Entry, EntryKind, GenId, Manifest, Meta};

/// How the fake server authenticates before its script runs.
pub enum Handshake {
    /// With the right key, then it reads the puller's Pull.
    Right,
    /// With another key (the script runs only if the handshake somehow succeeds).
    WrongKey,
    /// Not at all: the script talks first, on a raw connection.
    None,
}

/// What the fake server does after the handshake: frame reader and writer, and the raw stream
/// for bytes that are not frames.
pub type Script =
    Box<dyn FnOnce(&mut FrameReader<TcpStream>, &mut FrameWriter<TcpStream>, TcpStream) + Send>;

/// Starts the fake server; the handle returns the handshake's result.
pub fn fake_server(
    hs: Handshake,
    script: Script,
) -> (SocketAddr, JoinHandle<Result<(), TransferError>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let raw = s.try_clone().unwrap();
        let mut r = FrameReader::new(s.try_clone().unwrap());
        let mut w = FrameWriter::new(s);
        let key = match hs {
            Handshake::None => {
                script(&mut r, &mut w, raw);
                return Ok(());
            }
            Handshake::Right => super::key(),
            Handshake::WrongKey => Key::from_bytes(b"not the key at all!!").unwrap(),
        };
        let me = Identity::new("evil", BackupMode::Active);
        server_handshake(&mut r, &mut w, &key, &me)?;
        match r.read()? {
            Msg::Pull { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
        script(&mut r, &mut w, raw);
        Ok(())
    });
    (addr, h)
}

/// A manifest of `entries` under a default root.
pub fn manifest(entries: Vec<Entry>) -> Manifest {
    Manifest {
        root: Meta::default(),
        entries,
    }
}

/// A file entry with `data`'s size and hash.
pub fn file_entry(path: &str, data: &[u8]) -> Entry {
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

/// Announces `m` whole, under its own id or the id `gen` given instead.
pub fn announce(w: &mut FrameWriter<TcpStream>, m: &Manifest, gen: Option<GenId>) {
    w.write(&Msg::ManifestBegin {
        gen: gen.unwrap_or_else(|| m.id()),
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

/// Waits for the puller's Fetch, then sends file 0 literally as `data`; with `end` it also
/// sends FileEnd claiming hash `end` and ends the batch.
pub fn send_file(
    r: &mut FrameReader<TcpStream>,
    w: &mut FrameWriter<TcpStream>,
    data: Vec<u8>,
    end: Option<[u8; 32]>,
) {
    let _ = r.read();
    w.write(&Msg::FileBegin {
        index: 0,
        encoding: Encoding::Literal { offset: 0 },
    })
    .unwrap();
    w.write(&Msg::Data { bytes: data }).unwrap();
    if let Some(hash) = end {
        w.write(&Msg::FileEnd { hash }).unwrap();
        w.write(&Msg::BatchEnd).unwrap();
    }
    w.flush().unwrap();
}
