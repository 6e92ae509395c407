//! The messages of the pull protocol (encoded by [`crate::codec`], framed by
//! [`super::frame`]).
//!
//! A round, puller's view:
//!
//! ```text
//! -> Hello            <- Hello, Proof        -> Proof            (see super::auth)
//! -> Pull{set, have}  <- Unchanged{gen}                          (nothing changed: done)
//!                     <- ManifestBegin{gen, base, ...}, ManifestPart*
//! -> Fetch{items}     <- per item: FileBegin, (Data | HashedData)*, FileEnd | FileGone;
//!                        then BatchEnd
//!    (repeated for each batch)
//! -> Done{gen}                                                   (server records the puller)
//! ```
use serde::{Deserialize, Serialize};

use crate::tree::manifest::{Entry, GenId, Meta};

/// Version of this protocol; peers with a different one are refused in the hello.
/// 2: the hello carries `features`; `Compressed` data frames.
/// 3: `HashedData` frames.
pub const PROTOCOL_VERSION: u32 = 3;

/// Whether a node is the operational (active) one or the standby (passive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupMode {
    /// Operational node.
    Active,
    /// Standby node.
    Passive,
}

impl std::fmt::Display for BackupMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupMode::Active => "active",
            BackupMode::Passive => "passive",
        })
    }
}

/// The first message of each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol: u32,
    /// The sender's node id.
    pub node_id: String,
    /// The sender's software version.
    pub software: String,
    /// The sender's backup mode.
    pub mode: BackupMode,
    /// Fresh random challenge.
    pub nonce: [u8; 32],
    /// Optional features the sender offers (bit set; unknown bits are ignored):
    /// [`super::compress::FEATURE_ZSTD`]. Used only when both hellos set a bit.
    pub features: u32,
}

/// How a puller can help the server send less for one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchItem {
    /// Path of a file of the announced manifest.
    pub path: String,
    /// The puller already holds the first `.0` bytes, whose BLAKE3 is `.1` (an older version
    /// that may have been appended to, or data left by an interrupted round).
    pub prefix: Option<(u64, [u8; 32])>,
    /// Serialized [`crate::delta::Signature`] of the puller's old version (empty: none).
    #[serde(with = "crate::codec::bytes")]
    pub signature: Vec<u8>,
}

/// How a file's data follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Encoding {
    /// Raw bytes from `offset` on (the puller keeps its first `offset` bytes).
    Literal {
        /// Bytes the puller already has.
        offset: u64,
    },
    /// A delta against the signature the puller sent.
    Delta,
}

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Handshake: who I am, plus a challenge.
    Hello(Hello),
    /// Handshake: HMAC-SHA256 proof of the key over the transcript.
    Proof {
        /// The MAC.
        mac: [u8; 32],
    },
    /// A fatal error; the sender closes the connection after it.
    Error {
        /// What went wrong.
        message: String,
    },
    /// Puller: "my generation of set `set` is `have`".
    Pull {
        /// Name of the sync set.
        set: String,
        /// The puller's current generation, if any.
        have: Option<GenId>,
    },
    /// Server: the puller's generation is current.
    Unchanged {
        /// The generation.
        gen: GenId,
    },
    /// Server: a new generation follows as a difference from `base` (or whole if `None`).
    ManifestBegin {
        /// The new generation.
        gen: GenId,
        /// The generation the difference is against.
        base: Option<GenId>,
        /// The new root directory metadata.
        root: Meta,
        /// Number of upserted entries that follow in parts.
        upserts: u64,
        /// Number of deleted paths that follow in parts.
        deletions: u64,
    },
    /// Server: a part of the manifest difference.
    ManifestPart {
        /// New or changed entries, sorted.
        upserts: Vec<Entry>,
        /// Removed paths, sorted.
        deletions: Vec<String>,
    },
    /// Puller: send me these files.
    Fetch {
        /// The files, answered in order.
        items: Vec<FetchItem>,
    },
    /// Server: data of item `index` of the current fetch follows.
    FileBegin {
        /// Index into the fetch's items.
        index: u32,
        /// How the data is encoded.
        encoding: Encoding,
    },
    /// A piece of file data (literal bytes or delta stream).
    Data {
        /// The bytes.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
    /// Server: the file is complete; BLAKE3 of its whole content as read.
    FileEnd {
        /// Hash of what was sent.
        hash: [u8; 32],
    },
    /// Server: item `index` cannot be sent (vanished, not a file of the manifest, unreadable).
    FileGone {
        /// Index into the fetch's items.
        index: u32,
        /// Why.
        reason: String,
    },
    /// Server: all items of the fetch answered.
    BatchEnd,
    /// Puller: generation `gen` is now current here.
    Done {
        /// The generation.
        gen: GenId,
    },
    /// A [`Msg::Data`] whose bytes are zstd-compressed (only after both hellos offered
    /// [`super::compress::FEATURE_ZSTD`]); the frame reader turns it back into `Data`.
    Compressed {
        /// Length of the data once decompressed (bounded by the frame limit).
        raw_len: u32,
        /// One zstd frame.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
    /// A piece of file data like [`Msg::Data`], for a file whose every byte the receiver
    /// hashes itself and checks against the manifest's BLAKE3 (a whole literal file, or a
    /// delta stream): the frame's tag covers only its sequence number, variant and length,
    /// not the bytes (see [`super::frame`], "Hashed data"). A receiver that would take the
    /// file's hash from the sender instead (a resumed file whose prefix it trusts) refuses it.
    HashedData {
        /// The bytes.
        #[serde(with = "crate::codec::bytes")]
        bytes: Vec<u8>,
    },
}
