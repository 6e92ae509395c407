//! The signature indexed for lookup by weak checksum.
//!
//! Two levels, both sized from the number of blocks:
//! - a filter of `64 × blocks` bits (at most 4 Mi bits = 512 KiB, the size of L2 on Zen 1), in
//!   32-bit words (the width of an AVX2 gather lane), that answers "can any block have this
//!   weak checksum?" without touching the table: one bit per weak checksum, picked by a 32-bit
//!   Fibonacci hash (its top `log2(bits)` bits: word, then the bit in it), so a lookup is a
//!   multiply, a shift, one load and one bit test. The hash is 32-bit so that the diff can
//!   compute it for several offsets at once in SIMD lanes (there is no 64-bit lane multiply
//!   before AVX-512). An offset where no block starts passes with probability `blocks / bits`,
//!   1/64 (1.6%) up to 64 Ki blocks (256 MiB at 4 KiB blocks). Every pass costs a table probe
//!   (likely a cache miss), so this is what keeps the diff of unrelated data at the speed of the
//!   rolling loop. Measured on the diff of unrelated 256 MiB files (CPU time, same run): 32 and
//!   16 bits per block (smaller filters, 3.1% and 6.1% passes) were slower, 180 and 146 MiB/s
//!   against 215. (A two-bit blocked Bloom filter at 32 bits per block passed fewer offsets,
//!   0.55%, but its mask made the scalar rolling loop 30 instructions per byte against 24);
//! - a bucketed table: entries sorted by bucket, `starts[bucket]..starts[bucket + 1]` indexing
//!   them, one bucket per block on average.
//!
//! Defences against adversarial bases: identical blocks (same weak and strong hash) are kept
//! once (any copy is as good as another); at most [`MAX_CANDIDATES`] different blocks are kept
//! per weak checksum and at most [`MAX_BUCKET`] entries per bucket. Dropping an entry can only
//! make a delta larger, never wrong, and it bounds the work per byte offset of the diff.
use super::signature::Signature;
use super::strong::strong_hash;

/// Most blocks kept for one weak checksum.
pub const MAX_CANDIDATES: usize = 16;
/// Most entries kept in one bucket of the table.
pub const MAX_BUCKET: usize = 64;
const MIN_FILTER_BITS: u32 = 9;
const FILTER_BITS_PER_BLOCK: usize = 64;
const MAX_FILTER_BITS: u32 = 22;

/// Fibonacci hashing of the weak checksum: spreads the (weakly distributed) rsync sum over the
/// top bits used by the table.
#[inline(always)]
fn mix(weak: u32) -> u64 {
    u64::from(weak.wrapping_mul(0x9E37_79B1))
}

/// The multiplier of the filter's Fibonacci hash (`2^32 / φ`, odd).
pub(crate) const FILTER_MUL: u32 = 0x9E37_79B1;

/// The filter position of weak checksum `weak` in a filter of `2^(32 - shift)` bits: the top
/// bits of the 32-bit Fibonacci hash. `position >> 5` is the word, `position & 31` the bit.
#[inline(always)]
pub(crate) fn filter_position(weak: u32, shift: u32) -> u32 {
    weak.wrapping_mul(FILTER_MUL) >> shift
}

/// A borrowed view of the index's filter (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Filter<'f> {
    /// Exactly `2^(32 - shift) / 32` words (checked where a filter is made), so that every
    /// position's word exists.
    words: &'f [u32],
    /// `32 - log2(filter bits)`: how far [`filter_position`] shifts the hash down.
    pub(crate) shift: u32,
}

impl<'f> Filter<'f> {
    /// A filter over `words` (a power of two of them, at least one), for tests of the diff's
    /// kernels.
    #[cfg(test)]
    pub(crate) fn from_words(words: &[u32]) -> Filter<'_> {
        assert!(words.len().is_power_of_two());
        Filter {
            words,
            shift: 32 - 5 - words.len().trailing_zeros(),
        }
    }

    /// The filter's words (`2^(32 - shift) / 32` of them).
    #[inline(always)]
    pub(crate) fn words(self) -> &'f [u32] {
        self.words
    }

    /// Whether some block may have weak checksum `weak` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(self, weak: u32) -> bool {
        self.maybe_at(filter_position(weak, self.shift))
    }

    /// Whether the filter bit at `position` (from [`filter_position`]) is set.
    #[inline(always)]
    pub(crate) fn maybe_at(self, position: u32) -> bool {
        match self.words.get((position >> 5) as usize) {
            Some(word) => (word >> (position & 31)) & 1 != 0,
            None => false,
        }
    }
}

/// A [`Signature`] ready for [`super::diff`] (see the module docs).
#[derive(Debug)]
pub struct IndexedSignature<'a> {
    pub(crate) sig: &'a Signature,
    /// Number of whole blocks (only these are matched while rolling).
    pub(crate) full_blocks: usize,
    filter: Vec<u32>,
    filter_shift: u32,
    starts: Vec<u32>,
    /// (weak checksum, block number) sorted by bucket.
    entries: Vec<(u32, u32)>,
    table_shift: u32,
}

impl Signature {
    /// Builds the lookup structures for [`super::diff`].
    pub fn index(&self) -> IndexedSignature<'_> {
        IndexedSignature::new(self)
    }
}

impl<'a> IndexedSignature<'a> {
    fn new(sig: &'a Signature) -> IndexedSignature<'a> {
        let bs = u64::from(sig.block_size);
        let full_blocks = (sig.file_len / bs) as usize;
        let full_blocks = full_blocks.min(sig.weak.len()).min(u32::MAX as usize);

        let filter_bits = ((full_blocks.max(1) * FILTER_BITS_PER_BLOCK)
            .next_power_of_two()
            .trailing_zeros())
        .clamp(MIN_FILTER_BITS, MAX_FILTER_BITS);
        let mut filter = vec![0u32; 1usize << (filter_bits - 5)];
        let filter_shift = 32 - filter_bits;

        let table_bits = full_blocks.max(1).next_power_of_two().trailing_zeros();
        let table_shift = 32 - table_bits;
        let buckets = 1usize << table_bits;

        // (bucket, weak, block) sorted, so equal weaks are adjacent and the first block of a
        // run of identical blocks comes first.
        let mut all: Vec<(u32, u32, u32)> = (0..full_blocks)
            .map(|i| {
                let w = sig.weak[i];
                ((mix(w) >> table_shift) as u32, w, i as u32)
            })
            .collect();
        all.sort_unstable();

        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(all.len());
        let mut starts = vec![0u32; buckets + 1];
        let mut i = 0;
        while i < all.len() {
            let bucket = all[i].0;
            let mut in_bucket = 0usize;
            let mut j = i;
            while j < all.len() && all[j].0 == bucket {
                // One run of equal weak checksums.
                let w = all[j].1;
                let run_start = entries.len();
                while j < all.len() && all[j].0 == bucket && all[j].1 == w {
                    let blk = all[j].2;
                    let st = sig.strong[blk as usize];
                    let run = &entries[run_start..];
                    let duplicate = run.iter().any(|&(_, b)| sig.strong[b as usize] == st);
                    if !duplicate && run.len() < MAX_CANDIDATES && in_bucket < MAX_BUCKET {
                        entries.push((w, blk));
                        in_bucket += 1;
                        let pos = filter_position(w, filter_shift);
                        if let Some(word) = filter.get_mut((pos >> 5) as usize) {
                            *word |= 1u32 << (pos & 31);
                        }
                    }
                    j += 1;
                }
            }
            starts[bucket as usize + 1] = in_bucket as u32;
            i = j;
        }
        for b in 0..buckets {
            starts[b + 1] += starts[b];
        }
        IndexedSignature {
            sig,
            full_blocks,
            filter,
            filter_shift,
            starts,
            entries,
            table_shift,
        }
    }

    /// The signature this index was built from.
    pub fn signature(&self) -> &'a Signature {
        self.sig
    }

    /// Whether some block may have weak checksum `weak` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(&self, weak: u32) -> bool {
        self.filter().maybe(weak)
    }

    /// The filter alone, as plain locals for the diff's hot loop.
    #[inline(always)]
    pub(crate) fn filter(&self) -> Filter<'_> {
        // `new` made `2^(32 - filter_shift) / 32` words.
        Filter {
            words: &self.filter,
            shift: self.filter_shift,
        }
    }

    /// The block whose weak checksum is `weak` and whose strong hash equals that of `window`
    /// (computed at most once), if any.
    #[inline]
    pub(crate) fn find(&self, weak: u32, window: &[u8]) -> Option<u32> {
        let b = (mix(weak) >> self.table_shift) as usize;
        let start = *self.starts.get(b)? as usize;
        let end = *self.starts.get(b + 1)? as usize;
        let mut strong = None;
        for &(w, blk) in self.entries.get(start..end)? {
            if w == weak {
                let st = *strong.get_or_insert_with(|| strong_hash(window, self.sig.strong_len));
                if self.sig.strong.get(blk as usize) == Some(&st) {
                    return Some(blk);
                }
            }
        }
        None
    }
}
