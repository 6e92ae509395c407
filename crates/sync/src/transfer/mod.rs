//! The authenticated, framed transport and the pull protocol.
//!
//! * [`frame`]: length-prefixed frames carrying [`msg::Msg`] values (serde + bincode via
//!   [`crate::codec`]), bounded in size, authenticated per frame once the handshake is done.
//! * [`auth`]: hello exchange with a version check, then mutual HMAC-SHA256 challenge-response
//!   with a pre-shared key, before any data.
//! * [`server`]: serves named plain directory trees to pullers and records each puller.
//! * [`puller`]: one pull round into a [`crate::tree::store::GenStore`].
//!
//! * [`tls`]: the connection under the frames, plain TCP or TLS (rustls, optional).
//! * [`compress`]: optional zstd compression of file data frames, negotiated in the hello.
//!
//! The pre-shared key authenticates both ends and every frame after the handshake carries a keyed
//! BLAKE3 tag, with or without TLS: a man in the middle can neither learn the key nor alter data
//! undetected, and without the key there is no data. (The tag of a `HashedData` frame covers its
//! header only: its bytes belong to a file the puller hashes whole and checks against the
//! manifest, which came tagged; see [`frame`], "Hashed data".) TLS, when configured ([`ServerTransport`],
//! [`PullTransport`]), adds confidentiality; the key-based handshake still runs inside it, so
//! a valid certificate alone gets nothing.
pub mod auth;
pub mod compress;
pub mod frame;
mod install;
pub mod msg;
mod prefix;
pub mod puller;
pub mod server;
pub mod tls;

pub use tls::{Conn, TlsClient, TlsServer};

/// Optional transport features of a server.
#[derive(Clone, Debug, Default)]
pub struct ServerTransport {
    /// Serve over TLS with this certificate (pullers must then use TLS too).
    pub tls: Option<TlsServer>,
    /// Offer zstd compression of file data at this level; used with pullers that accept it.
    pub compression: Option<compress::Level>,
}

/// Optional transport features of a puller.
#[derive(Clone, Debug, Default)]
pub struct PullTransport {
    /// Pull over TLS, trusting this CA and checking this server name.
    pub tls: Option<TlsClient>,
    /// Accept zstd-compressed file data (used when the server offers it).
    pub compression: bool,
}

use crate::codec::CodecError;
use crate::delta::DeltaError;
use crate::tree::TreeError;

/// What went wrong in a transfer, on either side.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// A network or file operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What we were doing, with the peer or path.
        op: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed the connection in the middle of a frame or exchange.
    #[error("connection closed by peer {0}")]
    Closed(&'static str),
    /// A frame announced more bytes than allowed (nothing was allocated for it).
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Announced length.
        len: u64,
        /// Limit in force.
        max: usize,
    },
    /// A frame did not decode.
    #[error("bad frame: {0}")]
    Codec(#[from] CodecError),
    /// A frame's authentication tag did not verify (altered or injected data).
    #[error("frame authentication failed (data altered in transit or wrong session)")]
    BadTag,
    /// The peer sent something the protocol does not allow at this point.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peers speak different protocol versions.
    #[error("protocol version mismatch: ours {ours}, peer {theirs}")]
    Version {
        /// Our version.
        ours: u32,
        /// The peer's version.
        theirs: u32,
    },
    /// The peer did not prove knowledge of the key (or we could not prove ours).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The key file is unusable.
    #[error("key file {path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A TLS certificate, key or CA file is unusable.
    #[error("TLS file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS layer failed (handshake, certificate check, plain peer at a TLS end).
    #[error("TLS with {peer}: {reason}")]
    Tls {
        /// The peer's address.
        peer: String,
        /// What went wrong.
        reason: String,
    },
    /// A compressed frame did not decompress within its bounds.
    #[error("compressed data: {0}")]
    Compression(String),
    /// The peer reported an error.
    #[error("peer reported: {0}")]
    Remote(String),
    /// A file changed on the serving side while it was being sent; the round is retried later.
    #[error("{0} changed on the serving side during the round; will retry")]
    SourceChanged(String),
    /// The received data does not match the manifest.
    #[error("received {path}: {reason}")]
    Integrity {
        /// The file.
        path: String,
        /// What did not match.
        reason: String,
    },
    /// A tree operation failed (store, scan, manifest validation).
    #[error(transparent)]
    Tree(#[from] TreeError),
    /// The delta engine failed.
    #[error("delta: {0}")]
    Delta(#[from] DeltaError),
}

impl TransferError {
    /// Wraps an I/O error with what we were doing.
    pub fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        TransferError::Io {
            op: op.into(),
            source,
        }
    }
}
