//! The signature indexed for lookup by weak checksum.
//!
//! Two levels, both sized from the number of blocks:
//! - a filter of `64 × blocks` bits (at most 4 Mi bits = 512 KiB, the size of L2 on Zen 1), in
//!   32-bit words, that answers "can any block have this weak checksum?" without touching the
//!   table: a blocked Bloom filter with two bits per checksum in one word, both picked by a
//!   32-bit Fibonacci hash `h` (the word from its top bits, the two bits from `h ^ (h >> 16)`),
//!   so a lookup is a multiply, a few shifts, one load and one mask test. The hash is 32-bit
//!   so that the diff computes it for many offsets at once in SIMD lanes. An offset where no
//!   block starts passes with probability about 0.27% at 64 bits per block (one bit: 1.55%),
//!   up to 64 Ki blocks (256 MiB at 4 KiB blocks). Every pass costs a table probe (likely a
//!   cache miss, about 24 ns measured), so this is what keeps the diff of unrelated data at the
//!   speed of the rolling loop. Measured on the diff of unrelated 256 MiB files (Zen 5, same
//!   run, with the two-phase kernels of `scan`): 32 and 16 bits per block (0.69% and 1.9%
//!   passes) were no faster, 8 bits (5.7%) was 1.7 times slower. The second bit is nearly free
//!   there: the vector kernels compute the mask in SIMD lanes, and the scalar rolling loop
//!   only runs on short tails and on CPUs without AVX2;
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

/// Where weak checksum `weak` lives in a filter of `2^(32 - shift)` words: the word (the top
/// bits of the 32-bit Fibonacci hash `h`) and the two bits in it that a block with this
/// checksum sets (from `h ^ (h >> 16)`, whose low bits depend on every bit of `weak`, unlike
/// the low bits of the product itself). A checksum may be present only if both bits are set.
#[inline(always)]
pub(crate) fn filter_probe(weak: u32, shift: u32) -> (u32, u32) {
    let h = weak.wrapping_mul(FILTER_MUL);
    let g = h ^ (h >> 16);
    // In 64 bits so that a one-word filter (`shift` 32) gives word 0, as the vector shifts do.
    let word = (u64::from(h) >> shift) as u32;
    (word, (1 << (g & 31)) | (1 << ((g >> 5) & 31)))
}

/// A borrowed view of the index's filter (see the module docs).
#[derive(Clone, Copy)]
pub(crate) struct Filter<'f> {
    /// Exactly `2^(32 - shift)` words (checked where a filter is made), so that every
    /// probe's word exists.
    words: &'f [u32],
    /// `32 - log2(words)`: how far [`filter_probe`] shifts the hash down for the word.
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
            shift: 32 - words.len().trailing_zeros(),
        }
    }

    /// The filter's words (`2^(32 - shift)` of them).
    #[inline(always)]
    pub(crate) fn words(self) -> &'f [u32] {
        self.words
    }

    /// Whether the filter has exactly `2^(32 - shift)` words, so that every word index
    /// [`filter_probe`] computes is in bounds (the vector kernels check this once, then probe
    /// without bounds checks).
    #[inline(always)]
    pub(crate) fn exact(self) -> bool {
        (1..=32).contains(&self.shift) && self.words.len() as u64 == 1u64 << (32 - self.shift)
    }

    /// Whether some block may have weak checksum `weak` (no false negatives).
    #[inline(always)]
    pub(crate) fn maybe(self, weak: u32) -> bool {
        let (word, bits) = filter_probe(weak, self.shift);
        match self.words.get(word as usize) {
            Some(w) => w & bits == bits,
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
        let filter_shift = 32 - (filter_bits - 5);

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
                        let (word, bits) = filter_probe(w, filter_shift);
                        if let Some(word) = filter.get_mut(word as usize) {
                            *word |= bits;
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
