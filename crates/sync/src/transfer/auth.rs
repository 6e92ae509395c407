//! Hello exchange and mutual authentication with a pre-shared key.
//!
//! ```text
//! puller -> server   Hello{protocol, node id, software, mode, nonce_p}
//! server -> puller   Hello{..., nonce_s}            (or Error on a version mismatch)
//! server -> puller   Proof{HMAC-SHA256(K, "treesync server proof" || T)}
//! puller -> server   Proof{HMAC-SHA256(K, "treesync client proof" || T)}
//! ```
//!
//! `T` is SHA-256 over both encoded hellos, so each proof covers both fresh nonces (no replay)
//! and every field of both hellos (node id and mode cannot be altered in transit). The two
//! proofs use different labels, so one side's proof is never valid as the other's. Proofs are
//! checked with the `hmac` crate's constant-time `verify_slice`. A puller with the wrong key gets
//! an error and no data; a server with the wrong key is refused by the puller before it sends
//! anything but its hello and proof. Per-direction frame keys are then derived as
//! `HMAC(K, "treesync frame key s2c" || T)` and `... c2s ...` (see [`super::frame`]).
use std::io::{Read, Write};
use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use super::frame::{FrameMac, FrameReader, FrameWriter};
use super::msg::{BackupMode, Hello, Msg, PROTOCOL_VERSION};
use super::TransferError;
use crate::codec;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 16;

/// A pre-shared key.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key from raw bytes (at least [`MIN_KEY_LEN`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Key, TransferError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(TransferError::Key {
                path: "(inline)".into(),
                reason: format!("{} bytes, need at least {MIN_KEY_LEN}", bytes.len()),
            });
        }
        Ok(Key(bytes.to_vec()))
    }

    /// Reads a key file; surrounding whitespace (a trailing newline) is not part of the key.
    pub fn load(path: &Path) -> Result<Key, TransferError> {
        let bytes = std::fs::read(path).map_err(|e| TransferError::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let trimmed = bytes.trim_ascii();
        Key::from_bytes(trimmed).map_err(|_| TransferError::Key {
            path: path.display().to_string(),
            reason: format!("{} bytes, need at least {MIN_KEY_LEN}", trimmed.len()),
        })
    }

    fn mac(&self, label: &[u8], transcript: &[u8; 32]) -> [u8; 32] {
        let mut m = self.hmac();
        m.update(label);
        m.update(transcript);
        m.finalize().into_bytes().into()
    }

    fn verify(&self, label: &[u8], transcript: &[u8; 32], proof: &[u8]) -> bool {
        let mut m = self.hmac();
        m.update(label);
        m.update(transcript);
        m.verify_slice(proof).is_ok()
    }

    fn hmac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
        <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new(&Default::default()))
    }
}

/// Who we are, as told in the hello.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Node id.
    pub node_id: String,
    /// Software version.
    pub software: String,
    /// Backup mode.
    pub mode: BackupMode,
    /// Optional features offered in the hello (see [`Hello::features`]); the server and the
    /// puller set them from their transport settings.
    pub features: u32,
}

impl Identity {
    /// An identity with this crate's version as software version.
    pub fn new(node_id: impl Into<String>, mode: BackupMode) -> Self {
        Identity {
            node_id: node_id.into(),
            software: concat!("sync ", env!("CARGO_PKG_VERSION")).into(),
            mode,
            features: 0,
        }
    }

    fn hello(&self) -> Result<Hello, TransferError> {
        Ok(Hello {
            protocol: PROTOCOL_VERSION,
            node_id: self.node_id.chars().take(200).collect(),
            software: self.software.chars().take(200).collect(),
            mode: self.mode,
            nonce: random_nonce()?,
            features: self.features,
        })
    }
}

const SERVER_PROOF: &[u8] = b"treesync server proof";
const CLIENT_PROOF: &[u8] = b"treesync client proof";
const KEY_S2C: &[u8] = b"treesync frame key s2c";
const KEY_C2S: &[u8] = b"treesync frame key c2s";

fn random_nonce() -> Result<[u8; 32], TransferError> {
    let mut n = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut n))
        .map_err(|e| TransferError::io("reading /dev/urandom", e))?;
    Ok(n)
}

fn transcript(client: &Hello, server: &Hello) -> Result<[u8; 32], TransferError> {
    let c = codec::encode(&Msg::Hello(client.clone()))?;
    let s = codec::encode(&Msg::Hello(server.clone()))?;
    let mut h = Sha256::new();
    h.update(b"treesync auth v1");
    h.update((c.len() as u64).to_le_bytes());
    h.update(&c);
    h.update((s.len() as u64).to_le_bytes());
    h.update(&s);
    Ok(h.finalize().into())
}

fn expect_hello(msg: Msg) -> Result<Hello, TransferError> {
    match msg {
        Msg::Hello(h) => Ok(h),
        Msg::Error { message } => Err(TransferError::Remote(message)),
        other => Err(TransferError::Protocol(format!(
            "expected Hello, got {}",
            variant_name(&other)
        ))),
    }
}

fn expect_proof(msg: Msg) -> Result<[u8; 32], TransferError> {
    match msg {
        Msg::Proof { mac } => Ok(mac),
        Msg::Error { message } => Err(TransferError::Remote(message)),
        other => Err(TransferError::Protocol(format!(
            "expected Proof, got {}",
            variant_name(&other)
        ))),
    }
}

/// Short name of a message for errors (never its content).
pub fn variant_name(m: &Msg) -> &'static str {
    match m {
        Msg::Hello(_) => "Hello",
        Msg::Proof { .. } => "Proof",
        Msg::Error { .. } => "Error",
        Msg::Pull { .. } => "Pull",
        Msg::Unchanged { .. } => "Unchanged",
        Msg::ManifestBegin { .. } => "ManifestBegin",
        Msg::ManifestPart { .. } => "ManifestPart",
        Msg::Fetch { .. } => "Fetch",
        Msg::FileBegin { .. } => "FileBegin",
        Msg::Data { .. } => "Data",
        Msg::FileEnd { .. } => "FileEnd",
        Msg::FileGone { .. } => "FileGone",
        Msg::BatchEnd => "BatchEnd",
        Msg::Done { .. } => "Done",
        Msg::Compressed { .. } => "Compressed",
        Msg::HashedData { .. } => "HashedData",
    }
}

/// The puller's side of the handshake; returns the server's hello. On success both halves are
/// switched to authenticated frames.
pub fn client_handshake<R: Read, W: Write>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    key: &Key,
    me: &Identity,
) -> Result<Hello, TransferError> {
    let ours = me.hello()?;
    writer.write(&Msg::Hello(ours.clone()))?;
    writer.flush()?;
    let theirs = expect_hello(reader.read()?)?;
    if theirs.protocol != PROTOCOL_VERSION {
        return Err(TransferError::Version {
            ours: PROTOCOL_VERSION,
            theirs: theirs.protocol,
        });
    }
    let t = transcript(&ours, &theirs)?;
    let proof = expect_proof(reader.read()?)?;
    if !key.verify(SERVER_PROOF, &t, &proof) {
        let _ = writer.write(&Msg::Error {
            message: "authentication failed".into(),
        });
        let _ = writer.flush();
        return Err(TransferError::Auth(format!(
            "server {:?} did not prove the shared key",
            theirs.node_id
        )));
    }
    writer.write(&Msg::Proof {
        mac: key.mac(CLIENT_PROOF, &t),
    })?;
    writer.flush()?;
    writer.authenticated(FrameMac::new(key.mac(KEY_C2S, &t)));
    reader.authenticated(FrameMac::new(key.mac(KEY_S2C, &t)));
    Ok(theirs)
}

/// The server's side of the handshake; returns the puller's hello. Nothing but our hello and
/// proof is sent before the puller has proven the key.
pub fn server_handshake<R: Read, W: Write>(
    reader: &mut FrameReader<R>,
    writer: &mut FrameWriter<W>,
    key: &Key,
    me: &Identity,
) -> Result<Hello, TransferError> {
    let theirs = expect_hello(reader.read()?)?;
    if theirs.protocol != PROTOCOL_VERSION {
        let _ = writer.write(&Msg::Error {
            message: format!(
                "protocol version {} not supported (server speaks {PROTOCOL_VERSION})",
                theirs.protocol
            ),
        });
        let _ = writer.flush();
        return Err(TransferError::Version {
            ours: PROTOCOL_VERSION,
            theirs: theirs.protocol,
        });
    }
    let ours = me.hello()?;
    let t = transcript(&theirs, &ours)?;
    writer.write(&Msg::Hello(ours))?;
    writer.write(&Msg::Proof {
        mac: key.mac(SERVER_PROOF, &t),
    })?;
    writer.flush()?;
    let proof = expect_proof(reader.read()?)?;
    if !key.verify(CLIENT_PROOF, &t, &proof) {
        let _ = writer.write(&Msg::Error {
            message: "authentication failed".into(),
        });
        let _ = writer.flush();
        return Err(TransferError::Auth(format!(
            "puller {:?} did not prove the shared key",
            theirs.node_id
        )));
    }
    writer.authenticated(FrameMac::new(key.mac(KEY_S2C, &t)));
    reader.authenticated(FrameMac::new(key.mac(KEY_C2S, &t)));
    Ok(theirs)
}
