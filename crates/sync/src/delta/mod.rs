//! The delta engine: rsync's algorithm (Tridgell & Mackerras, "The rsync algorithm", 1996),
//! streaming and fast.
//!
//! The holder of the old file (the *base*) computes a [`Signature`]: per block a rolling weak
//! checksum ([`rollsum`]) and a strong hash ([`strong`]). The holder of the new file indexes it
//! ([`Signature::index`]) and runs [`diff`], which finds base blocks at every byte offset of the
//! new file and writes a delta of copy and literal commands ([`format`](mod@format)). The base
//! holder runs [`apply`], which rebuilds the new file and checks it against the whole-file hash
//! carried in the delta.
//!
//! ```
//! use sync::delta::{apply, diff, Signature, SignatureOptions};
//! use std::io::Cursor;
//!
//! let base: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
//! let mut new = base.clone();
//! new.splice(50_000..50_000, *b"inserted");
//!
//! // On the base's side: signature, sent over the wire as bytes.
//! let sig_bytes = Signature::calculate_from(&base[..], SignatureOptions::default())?.serialize();
//! // On the new file's side: parse, index, diff.
//! let sig = Signature::deserialize(&sig_bytes)?;
//! let mut delta = Vec::new();
//! let stats = diff(&sig.index(), &new[..], &mut delta)?;
//! assert!(stats.literal < 5_000);
//! // Back on the base's side: patch (into a staging file in real use) and verify.
//! let mut out = Vec::new();
//! apply(Cursor::new(&base), &delta[..], &mut out)?;
//! assert_eq!(out, new);
//! # Ok::<(), sync::delta::DeltaError>(())
//! ```
//!
//! Memory: signature 20 bytes per block (default block size about `sqrt(len)`), index about 12
//! bytes per block plus a filter of at most 512 KiB, diff a window of `max(4 MiB, 4 blocks)`
//! and a list of at most 4096 filter candidates (32 KiB), patch 256 KiB; nothing grows with the
//! data streamed through.
mod diff;
mod error;
pub mod format;
pub mod index;
mod patch;
pub mod rollsum;
mod scan;
pub mod signature;
pub mod strong;

pub use diff::{diff, diff_slice, diff_with_window};
pub use error::DeltaError;
pub use format::{DiffStats, DELTA_MAGIC, DELTA_VERSION, MAX_LITERAL_LEN};
pub use index::IndexedSignature;
pub use patch::{apply, apply_slice};
pub use signature::{block_size_for, Signature, SignatureOptions};
