//! The diff's inner loop: roll the weak checksum over the new file until the index's filter
//! says a block may start here (rsync technical report, section 3: "the weak checksum can be
//! computed for every byte offset cheaply").
//!
//! Where nothing matches (unrelated data, the bulk of a changed file) this loop is the whole
//! cost of the diff. The scalar form rolls one byte at a time: two dependent additions, a
//! multiplication and a filter probe per byte. The SIMD form computes the checksums of eight
//! consecutive offsets at once:
//!
//! - only `a` and `b` modulo 2^16 reach the checksum (`(b << 16) | (a & 0xffff)`), so the sums
//!   live in 16-bit lanes;
//! - with `d_j = in_j - out_j` (the bytes entering and leaving at offset `j`), the rolling rule
//!   `a_{j+1} = a_j + d_j`, `b_{j+1} = b_j + a_{j+1} - n·out_j` unrolls to prefix sums:
//!   `a_{j+1} = a_0 + Σ_{m<=j} d_m` and, with `e_j = a_{j+1} - n·out_j`,
//!   `b_{j+1} = b_0 + Σ_{m<=j} e_m`. An inclusive prefix sum of eight 16-bit lanes is three
//!   shift-and-add steps inside one register;
//! - interleaving the `a` and `b` lanes gives the eight 32-bit checksums, one multiply and one
//!   shift give their filter positions (`index::filter_position`), one 8-lane gather fetches
//!   their filter words, a variable shift and `movemask` give the eight filter bits.
//!
//! Every window whose bit is set is reported, in order, with its checksum, exactly as the
//! scalar loop reports them (a property test checks both forms against a byte-at-a-time
//! reference); the diff then tries them in order, so a match is still found at the first offset
//! where one exists. Scanning a run of windows rather than stopping at the first candidate keeps
//! the vector state across candidates: about one offset in 64 passes the filter on unrelated
//! data, and restarting the vectors there cost as much as the scanning itself. The vectors are
//! 128 bits wide on purpose (but for the hash and the gather): Zen 1 (the project's machine)
//! executes a 256-bit operation as two 128-bit halves, and 16 lanes would need extra
//! cross-half steps for the prefix sums. The gathers are the bulk of the cost: without them
//! the vector part runs at about twice the speed.
use super::index::Filter;
use super::rollsum::Rollsum;

/// Which implementation of [`candidates`] to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// One byte at a time, any CPU.
    Scalar,
    /// Eight offsets at a time with AVX2-era instructions (only when the CPU has AVX2).
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Kernel {
    /// The fastest kernel this CPU runs (checked at run time).
    pub(crate) fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Scalar
    }
}

/// A window the filter passed: its offset from the start of the scanned run and its weak
/// checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Offset of the window from the first one scanned.
    pub(crate) offset: u32,
    /// Its weak checksum.
    pub(crate) weak: u32,
}

/// Most windows one call of [`candidates`] scans (so offsets fit a `u32` and the list of
/// candidates stays small: at most this many entries, 8 bytes each).
pub(crate) const MAX_SCAN: usize = 4096;

/// Rolls the window over `outs[k]` (leaving) / `ins[k]` (entering) for
/// `k < min(outs.len(), ins.len(), MAX_SCAN)`, appends every window whose weak checksum the
/// filter passes to `found` (in order of offset; the window at offset `k` is the one before
/// the `k`-th roll), and returns the window state after the last roll (not yet tested).
#[inline]
pub(crate) fn candidates(
    kernel: Kernel,
    filter: Filter<'_>,
    roll: Rollsum,
    n: u32,
    outs: &[u8],
    ins: &[u8],
    found: &mut Vec<Candidate>,
) -> Rollsum {
    let len = outs.len().min(ins.len()).min(MAX_SCAN);
    let (outs, ins) = (&outs[..len], &ins[..len]);
    match kernel {
        Kernel::Scalar => scan_scalar(filter, roll, n, outs, ins, 0, found),
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx2` is only chosen by `Kernel::detect` when the CPU has AVX2
        // (or by tests that checked it the same way).
        Kernel::Avx2 => unsafe { avx2::scan(filter, roll, n, outs, ins, found) },
    }
}

/// The scalar form: one roll, one hash and one filter probe per byte; offsets reported from
/// `first`.
#[inline(never)]
fn scan_scalar(
    filter: Filter<'_>,
    mut roll: Rollsum,
    n: u32,
    outs: &[u8],
    ins: &[u8],
    first: u32,
    found: &mut Vec<Candidate>,
) -> Rollsum {
    for (k, (&out, &inb)) in (first..).zip(outs.iter().zip(ins)) {
        let weak = roll.digest();
        if filter.maybe(weak) {
            found.push(Candidate { offset: k, weak });
        }
        roll.roll(n, out, inb);
    }
    roll
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{scan_scalar, Candidate, Filter, Rollsum};
    use std::arch::x86_64::*;

    /// Offsets per vector step.
    const STEP: usize = 8;

    /// Inclusive prefix sum of the eight 16-bit lanes (wrapping): lane `j` becomes
    /// `x_0 + … + x_j`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn prefix_sum(x: __m128i) -> __m128i {
        let x = _mm_add_epi16(x, _mm_slli_si128::<2>(x));
        let x = _mm_add_epi16(x, _mm_slli_si128::<4>(x));
        _mm_add_epi16(x, _mm_slli_si128::<8>(x))
    }

    /// The vector form of [`scan_scalar`] (see the module docs for the algebra); `outs` and
    /// `ins` have the same length, at most [`super::MAX_SCAN`].
    #[inline(never)]
    #[target_feature(enable = "avx2")]
    pub(super) fn scan(
        filter: Filter<'_>,
        roll: Rollsum,
        n: u32,
        outs: &[u8],
        ins: &[u8],
        found: &mut Vec<Candidate>,
    ) -> Rollsum {
        let words = filter.words();
        // The gathers below read `words[position >> 5]` without a bounds check; positions are
        // below `2^(32 - shift)`, so that is in bounds when the filter has its documented
        // length. Checked here rather than trusted.
        let bits = 1u64.checked_shl(32 - filter.shift.min(32)).unwrap_or(0);
        if (words.len() as u64).checked_mul(32) != Some(bits) || filter.shift > 27 {
            return scan_scalar(filter, roll, n, outs, ins, 0, found);
        }
        let table = words.as_ptr().cast::<i32>();
        let start = roll.digest();
        // Every lane holds the state of the first offset of the step: a_0 and b_0 mod 2^16.
        let mut a = _mm_set1_epi16(start as u16 as i16);
        let mut b = _mm_set1_epi16((start >> 16) as u16 as i16);
        let nv = _mm_set1_epi16(n as u16 as i16);
        let mul = _mm256_set1_epi32(super::super::index::FILTER_MUL as i32);
        let shift = _mm_cvtsi32_si128(filter.shift as i32);
        let low5 = _mm256_set1_epi32(31);
        // Byte indices that copy 16-bit lane 7 into every lane.
        let lane7 = _mm_set_epi8(
            15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14,
        );
        let steps = outs.chunks_exact(STEP).zip(ins.chunks_exact(STEP));
        let mut offset = 0u32;
        for (out8, in8) in steps {
            // SAFETY: both chunks are exactly 8 bytes, which is what the 64-bit loads read.
            let (out, inn) = unsafe {
                (
                    _mm_cvtepu8_epi16(_mm_loadl_epi64(out8.as_ptr().cast())),
                    _mm_cvtepu8_epi16(_mm_loadl_epi64(in8.as_ptr().cast())),
                )
            };
            let d = _mm_sub_epi16(inn, out);
            // Lane j: a_{j+1}; the checksum of offset j needs a_j = a_{j+1} - d_j.
            let a_next = _mm_add_epi16(a, prefix_sum(d));
            let a_here = _mm_sub_epi16(a_next, d);
            let e = _mm_sub_epi16(a_next, _mm_mullo_epi16(out, nv));
            let b_next = _mm_add_epi16(b, prefix_sum(e));
            let b_here = _mm_sub_epi16(b_next, e);
            a = _mm_shuffle_epi8(a_next, lane7);
            b = _mm_shuffle_epi8(b_next, lane7);
            // (b << 16) | a per offset: offsets 0..4, then 4..8.
            let d_lo = _mm_unpacklo_epi16(a_here, b_here);
            let d_hi = _mm_unpackhi_epi16(a_here, b_here);
            // Filter positions of the eight checksums, their words (one 8-lane gather: on
            // Zen 1 a little faster than two 4-lane ones), and bit `p & 31` of each word moved
            // to the sign bit for `movemask`.
            let p = _mm256_srl_epi32(_mm256_mullo_epi32(_mm256_set_m128i(d_hi, d_lo), mul), shift);
            // SAFETY: every lane of `p >> 5` is below `2^(27 - shift)` = `words.len()` (checked
            // before the loop), so each gathered 32-bit word lies inside `words`.
            let words8 = unsafe { _mm256_i32gather_epi32::<4>(table, _mm256_srli_epi32::<5>(p)) };
            let bits = _mm256_srlv_epi32(words8, _mm256_and_si256(p, low5));
            let mut mask = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32::<31>(bits)));
            if mask != 0 {
                let mut digests = [0u32; STEP];
                // SAFETY: `digests` is 8 u32 = 32 bytes; the unaligned stores write 16 bytes
                // each at offsets 0 and 16.
                unsafe {
                    let dp = digests.as_mut_ptr().cast::<__m128i>();
                    _mm_storeu_si128(dp, d_lo);
                    _mm_storeu_si128(dp.add(1), d_hi);
                }
                while mask != 0 {
                    let j = mask.trailing_zeros();
                    mask &= mask - 1;
                    let weak = digests.get(j as usize).copied().unwrap_or_default();
                    debug_assert!(filter.maybe(weak));
                    found.push(Candidate {
                        offset: offset + j,
                        weak,
                    });
                }
            }
            offset += STEP as u32;
        }
        let done = outs.len() - outs.len() % STEP;
        let a0 = _mm_extract_epi16::<0>(a) as u32 & 0xffff;
        let b0 = _mm_extract_epi16::<0>(b) as u32 & 0xffff;
        scan_scalar(
            filter,
            Rollsum::from_digest((b0 << 16) | a0),
            n,
            outs.get(done..).unwrap_or_default(),
            ins.get(done..).unwrap_or_default(),
            offset,
            found,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn filter_of(words: &[u32]) -> Filter<'_> {
        Filter::from_words(words)
    }

    /// The reference: roll one byte at a time, test every offset.
    fn reference(words: &[u32], roll: Rollsum, n: u32, data: &[u8]) -> (Vec<Candidate>, u32) {
        let f = filter_of(words);
        let len = (data.len() - n as usize).min(MAX_SCAN);
        let mut r = roll;
        let mut found = Vec::new();
        for k in 0..len {
            if f.maybe(r.digest()) {
                found.push(Candidate {
                    offset: k as u32,
                    weak: r.digest(),
                });
            }
            r.roll(n, data[k], data[k + n as usize]);
        }
        (found, r.digest())
    }

    /// Random words with about one bit in `2^density_log2` set.
    fn words_with(density_log2: u32, seed: u64, count: usize) -> Vec<u32> {
        let mut s = seed | 1;
        (0..count)
            .map(|_| {
                let mut w = u32::MAX;
                for _ in 0..density_log2 {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    w &= s as u32;
                }
                w
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Every kernel this CPU runs reports the same candidates (offsets and checksums, in
        /// order) and the same final window as the byte-at-a-time reference, for filters from
        /// empty to full and random or repeating data.
        #[test]
        fn kernels_match_reference(
            bytes in proptest::collection::vec(any::<u8>(), 0..700),
            repeat in 1usize..8,
            n in 1u32..200,
            density in 0u32..12,
            seed in any::<u64>(),
            words_log2 in 0u32..9,
        ) {
            // Short repeating patterns as well as random bytes (repeat 1 = as drawn), and runs
            // longer than MAX_SCAN.
            let data: Vec<u8> = bytes.iter().copied().cycle().take(bytes.len() * repeat).collect();
            let n = n.min(data.len().saturating_sub(1) as u32).max(1);
            prop_assume!(data.len() > n as usize);
            let words = if density == 11 { vec![0u32; 1 << words_log2] } else { words_with(density, seed, 1 << words_log2) };
            let start = Rollsum::of_block(&data[..n as usize]);
            let want = reference(&words, start, n, &data);
            let outs = &data[..data.len() - n as usize];
            let ins = &data[n as usize..];
            let mut kernels = vec![Kernel::Scalar];
            if Kernel::detect() != Kernel::Scalar {
                kernels.push(Kernel::detect());
            }
            for kernel in kernels {
                let mut found = Vec::new();
                let end = candidates(kernel, filter_of(&words), start, n, outs, ins, &mut found);
                prop_assert_eq!(&found, &want.0, "kernel {:?}", kernel);
                prop_assert_eq!(end.digest(), want.1, "kernel {:?}", kernel);
            }
        }
    }
}
