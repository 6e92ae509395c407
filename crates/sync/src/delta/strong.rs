//! The strong per-block hash and the whole-file hash: XXH3-128 (the `xxhash-rust` crate).
//!
//! # Why XXH3-128, and how long
//! XXH3 runs at memory speed on this class of machine (about 8 GB/s from RAM, 17 GB/s from
//! cache), where MD4 (fast_rsync, librsync's old format) and BLAKE2 (librsync's default) run at
//! a few hundred MB/s and BLAKE3 at about 1.4 GB/s on one core; the strong hash is computed for
//! every block of the signature and for every weak-checksum hit in the diff, so it sets the
//! speed of both. Its output is well distributed (it passes SMHasher) but it is **not** a
//! cryptographic hash: it guards against chance collisions and corruption, not against someone
//! who crafts colliding blocks on purpose. Authenticity is the transport's job (the sync
//! protocol authenticates its peer); what an attacker who can write both files could gain is a
//! wrong copy, which the whole-file check below then rejects unless they also collide that.
//!
//! # Collision arithmetic (default: 16 bytes = 128 bits; minimum 8 bytes)
//! A false match needs the 32-bit weak checksum *and* the `8·s`-bit strong hash of a window to
//! equal those of a different block. Given that the weak checksum matched, the strong hash of an
//! unrelated window equals a given value with probability `2^-(8·s)`. The diff computes at most
//! one strong hash per byte offset and compares it with at most [`MAX_CANDIDATES`] blocks, so
//! over a 4 GiB new file there are at most `2^32 · 16 = 2^36` comparisons:
//!
//! | strong length | per-comparison | whole 4 GiB file (union bound) |
//! |---|---|---|
//! | 16 bytes (default) | 2^-128 | 2^-92 (about 2·10^-28) |
//! | 12 bytes | 2^-96 | 2^-60 |
//! | 8 bytes (minimum) | 2^-64 | 2^-28 (about 4·10^-9) |
//!
//! (Only offsets whose weak checksum hits need a comparison, so the real figure is lower by the
//! weak hit rate.) Any undetected false match would still be caught by the whole-file XXH3-128
//! of the new file carried in the delta (a further `2^-128`), turning a silent corruption into
//! a patch error.
//!
//! [`MAX_CANDIDATES`]: super::index::MAX_CANDIDATES
use xxhash_rust::xxh3::xxh3_128;

/// Shortest strong hash a signature may carry, in bytes.
pub const MIN_STRONG_LEN: u8 = 8;
/// Longest strong hash (the whole XXH3-128), in bytes.
pub const MAX_STRONG_LEN: u8 = 16;

/// The strong hash of `data`, keeping its low `len` bytes (little-endian byte order, as
/// serialised), the rest zero.
#[inline]
pub fn strong_hash(data: &[u8], len: u8) -> u128 {
    xxh3_128(data) & strong_mask(len)
}

/// The mask that keeps the low `len` bytes of a strong hash.
#[inline]
pub fn strong_mask(len: u8) -> u128 {
    if len >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * u32::from(len))) - 1
    }
}

/// The whole-file hash (XXH3-128) carried in the delta trailer.
pub use xxhash_rust::xxh3::xxh3_128 as whole_file_hash;
/// Streaming form of [`whole_file_hash`].
pub use xxhash_rust::xxh3::Xxh3 as WholeFileHasher;
