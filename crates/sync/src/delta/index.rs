//! The signature indexed for lookup by weak checksum.
//!
//! Two levels, both sized from the number of blocks:
//! - a filter of `64 × blocks` bits (at most 4 Mi bits = 512 KiB, so it stays in L2) that answers
//!   "can any block have this weak checksum?" without touching the table: one bit per weak
//!   checksum, picked by a 64-bit Fibonacci hash (word from the top bits, bit from the next 6),
//!   so a lookup is a multiply, one load and one bit test. An offset where no block starts
//!   passes with probability `blocks / bits`, 1/64 (1.6%) up to 64 Ki blocks (256 MiB at 4 KiB
//!   blocks). Every pass costs a table probe (likely a cache miss), so this is what keeps the
//!   diff of unrelated data at the speed of the rolling loop. (A two-bit blocked Bloom filter at
//!   32 bits per block passed fewer offsets, 0.55%, but its mask made the rolling loop 30
//!   instructions per byte against 24, measured with callgrind);
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

/// The 64-bit Fibonacci hash used by the filter: its top 16 bits pick the word (masked to the
/// filter's length), the 6 bits below them the bit in it.
#[inline(always)]
fn filter_hash(weak: u32) -> u64 {
    u64::from(weak).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The bit of its word that `filter_hash` value `h` stands for.
#[inline(always)]
fn filter_bit(h: u64) -> u32 {
    ((h >> 42) & 63) as u32
}

/// Which filter word `filter_hash` value `h` falls in.
#[inline(always)]
fn filter_word(h: u64, mask: usize) -> usize {
    (h >> 48) as usize & mask
}

/// A borrowed view of the index's filter (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Filter<'f> {
    words: &'f [u64],
    /// `words.len() - 1` (the length is a power of two).
    mask: usize,
}

impl Filter<'_> {
    /// Whether some block may have weak checksum `weak` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(self, weak: u32) -> bool {
        let h = filter_hash(weak);
        match self.words.get(filter_word(h, self.mask)) {
            Some(word) => (word >> filter_bit(h)) & 1 != 0,
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
    filter: Vec<u64>,
    filter_mask: usize,
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
        let mut filter = vec![0u64; 1usize << (filter_bits - 6)];
        let filter_mask = filter.len() - 1;

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
                        let h = filter_hash(w);
                        if let Some(word) = filter.get_mut(filter_word(h, filter_mask)) {
                            *word |= 1u64 << filter_bit(h);
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
            filter_mask,
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
        // Exactly `mask + 1` words (it is), so that the compiler sees every `x & mask` in bounds.
        let words = self.filter.get(..=self.filter_mask).unwrap_or(&[0]);
        Filter {
            words,
            mask: words.len() - 1,
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
