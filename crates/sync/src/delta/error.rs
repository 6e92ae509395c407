//! The one error type of the delta engine.
use std::io;

/// Everything that can go wrong while computing, parsing, diffing or patching.
///
/// Variants that come from parsing name the structure (`what`: "signature" or "delta") and the
/// byte offset in it where the problem was found, so a log line points at the broken byte.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// Reading or writing one of the streams failed.
    #[error("{context}: {source}")]
    Io {
        /// Which stream and which step ("reading base", "writing delta", ...).
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The stream does not start with the expected magic bytes.
    #[error("{what}: bad magic {found:02x?} (not a {what} of this engine)")]
    BadMagic {
        /// "signature" or "delta".
        what: &'static str,
        /// The first bytes found.
        found: [u8; 4],
    },
    /// The format version is not one this build understands.
    #[error("{what}: unsupported format version {version}")]
    UnsupportedVersion {
        /// "signature" or "delta".
        what: &'static str,
        /// The version byte found.
        version: u8,
    },
    /// The stream ended in the middle of a structure.
    #[error("{what}: truncated at byte {offset}")]
    Truncated {
        /// "signature" or "delta".
        what: &'static str,
        /// Offset where more bytes were needed.
        offset: u64,
    },
    /// A field holds a value outside its documented range.
    #[error("{what}: {field} = {value} out of range at byte {offset}")]
    OutOfRange {
        /// "signature" or "delta".
        what: &'static str,
        /// Name of the field.
        field: &'static str,
        /// The value read.
        value: u64,
        /// Offset of the field.
        offset: u64,
    },
    /// A command byte that is not part of the format.
    #[error("delta: unknown command byte 0x{byte:02x} at byte {offset}")]
    UnknownCommand {
        /// The byte read.
        byte: u8,
        /// Its offset in the delta.
        offset: u64,
    },
    /// Bytes follow the end of a delta or signature.
    #[error("{what}: trailing bytes after the end at byte {offset}")]
    TrailingData {
        /// "signature" or "delta".
        what: &'static str,
        /// Offset of the first extra byte.
        offset: u64,
    },
    /// A copy command refers to bytes the base does not have.
    #[error("delta: copy of {len} bytes at base offset {offset} is outside the base (command at delta byte {at})")]
    CopyOutOfRange {
        /// Base offset the copy starts at.
        offset: u64,
        /// Length of the copy.
        len: u64,
        /// Offset of the command in the delta.
        at: u64,
    },
    /// The reconstructed file has a different length than the delta declares.
    #[error("patch: reconstructed {actual} bytes but the delta declares {expected}")]
    LengthMismatch {
        /// Length declared in the delta trailer.
        expected: u64,
        /// Length produced.
        actual: u64,
    },
    /// The reconstructed file does not hash to the value the delta carries.
    #[error("patch: whole-file hash mismatch (expected {expected:032x}, got {actual:032x}): the base is not the file the signature was made from, or the delta is corrupt")]
    HashMismatch {
        /// Hash declared in the delta trailer.
        expected: u128,
        /// Hash of the produced output.
        actual: u128,
    },
    /// `apply_slice` would produce more than the caller's output limit.
    #[error("patch: output exceeds the limit of {limit} bytes")]
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Invalid options passed by the caller (not input data).
    #[error("invalid option: {0}")]
    InvalidOption(String),
}

impl DeltaError {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> DeltaError {
        move |source| DeltaError::Io { context, source }
    }
}
