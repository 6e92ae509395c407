//! The strong per-block hash and the whole-file hash: XXH3-128 (the `twox-hash` crate, which
//! picks its AVX2 or SSE2 code at run time).
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
use twox_hash::XxHash3_128;

/// Shortest strong hash a signature may carry, in bytes.
pub const MIN_STRONG_LEN: u8 = 8;
/// Longest strong hash (the whole XXH3-128), in bytes.
pub const MAX_STRONG_LEN: u8 = 16;

/// The strong hash of `data`, keeping its low `len` bytes (little-endian byte order, as
/// serialised), the rest zero.
#[inline]
pub fn strong_hash(data: &[u8], len: u8) -> u128 {
    XxHash3_128::oneshot(data) & strong_mask(len)
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
#[inline]
pub fn whole_file_hash(data: &[u8]) -> u128 {
    XxHash3_128::oneshot(data)
}

/// Streaming form of [`whole_file_hash`]: the same value for the same bytes, however they are
/// split into [`WholeFileHasher::update`] calls.
#[derive(Clone, Default)]
pub struct WholeFileHasher(XxHash3_128);

impl WholeFileHasher {
    /// A hasher that has seen no bytes.
    pub fn new() -> WholeFileHasher {
        WholeFileHasher(XxHash3_128::new())
    }

    /// Feeds the next bytes.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        self.0.write(data);
    }

    /// The hash of every byte fed so far.
    pub fn digest128(&self) -> u128 {
        self.0.finish_128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// XXH3-128 of known inputs (seed 0), as xxhash-rust 0.8 (the crate used before) computes
    /// them: a change of hash crate cannot change the format's hash values unnoticed.
    #[test]
    fn known_values() {
        assert_eq!(
            whole_file_hash(b""),
            0x99aa_06d3_0147_98d8_6001_c324_468d_497f
        );
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut h = WholeFileHasher::new();
        for piece in data.chunks(333) {
            h.update(piece);
        }
        assert_eq!(
            whole_file_hash(&data),
            0xd51d_44b0_8a62_40bf_39ac_8aa1_095d_9c0e
        );
        assert_eq!(
            whole_file_hash(&data[..100]),
            0xaf13_948b_337c_6996_8707_69fe_0e9f_581d
        );
        assert_eq!(h.digest128(), whole_file_hash(&data));
        assert_eq!(strong_hash(&data, 16), whole_file_hash(&data));
        assert_eq!(
            strong_hash(&data, 8),
            whole_file_hash(&data) & u128::from(u64::MAX)
        );
    }
}
