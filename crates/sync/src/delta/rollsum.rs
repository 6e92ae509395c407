//! The rolling weak checksum (rsync's Adler-32-like sum, as in the rsync technical report,
//! Tridgell & Mackerras 1996, section 3).
//!
//! For a window `x[0..n]`: `a = Σ x[i]` and `b = Σ (n - i)·x[i]`, both modulo 2^32, and the
//! weak checksum is `(b << 16) | (a & 0xffff)`. Moving the window one byte (drop `out`, take
//! `in`) is `a += in - out; b += a - n·out`, two additions per byte, which is what makes trying
//! every byte offset affordable.
//!
//! The sums of a whole block (every block of a signature, and the first window after each match
//! in a diff) are computed 32 bytes at a time: with AVX2 when the CPU has it (checked at run
//! time, so one binary serves every x86-64), otherwise with portable code the compiler
//! vectorises for the baseline target. Both give identical results (a property test checks
//! them against each other and against the definition).

/// The running `(a, b)` sums of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollsum {
    a: u32,
    b: u32,
}

/// Bytes processed per vector step in [`Rollsum::of_block`]; a multiple of every SIMD width.
const LANES: usize = 32;

impl Rollsum {
    /// The sums of a whole block.
    ///
    /// Per 32-byte chunk `c` of `C` and byte `j` in it (byte `i = 32c + j`), the weight
    /// `n - i` splits as `32·(C-1-c) + (32-j)`: `b = 32·Σ_c (C-1-c)·s_c + Σ (32-j)·x`, where
    /// `s_c` is the byte sum of chunk `c`. `Σ_c (C-1-c)·s_c` is the sum, over the chunks, of
    /// the running byte sum *before* each chunk is added, so no multiplication by a position is
    /// needed. Bytes past the last whole chunk are appended one at a time (`a += x; b += a`).
    #[inline]
    pub fn of_block(data: &[u8]) -> Rollsum {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above), which is all
                // `of_block_avx2` requires.
                return unsafe { avx2::of_block(data) };
            }
        }
        Self::of_block_scalar(data)
    }

    /// [`Rollsum::of_block`] without SIMD intrinsics (the fallback, and the reference the
    /// AVX2 code is tested against). Written lane-wise so the compiler vectorises it.
    pub fn of_block_scalar(data: &[u8]) -> Rollsum {
        // Per lane `j`: `l[j]` sums byte `j` of every chunk so far, and `v[j]` accumulates
        // `l[j]` before each chunk is added.
        let mut l = [0u32; LANES];
        let mut v = [0u32; LANES];
        let mut chunks = data.chunks_exact(LANES);
        for chunk in &mut chunks {
            for j in 0..LANES {
                v[j] = v[j].wrapping_add(l[j]);
                l[j] = l[j].wrapping_add(u32::from(chunk[j]));
            }
        }
        let mut a = 0u32;
        let mut b = 0u32;
        for j in 0..LANES {
            a = a.wrapping_add(l[j]);
            b = b
                .wrapping_add(v[j].wrapping_mul(LANES as u32))
                .wrapping_add(l[j].wrapping_mul((LANES - j) as u32));
        }
        Rollsum { a, b }.append(chunks.remainder())
    }

    /// The sums of the window extended by `tail` at its end.
    #[inline]
    fn append(mut self, tail: &[u8]) -> Rollsum {
        for &x in tail {
            self.a = self.a.wrapping_add(u32::from(x));
            self.b = self.b.wrapping_add(self.a);
        }
        self
    }

    /// A window state with the given weak checksum. The checksum holds `a` and `b` modulo
    /// 2^16, and that is all the checksum of this or any later window (after [`Rollsum::roll`])
    /// depends on, since the low 16 bits of a sum or product depend only on the low 16 bits of
    /// its operands. So the diff may resume rolling from a checksum alone.
    #[inline(always)]
    pub fn from_digest(digest: u32) -> Rollsum {
        Rollsum {
            a: digest & 0xffff,
            b: digest >> 16,
        }
    }

    /// The weak checksum of the current window.
    #[inline(always)]
    pub fn digest(self) -> u32 {
        (self.b << 16) | (self.a & 0xffff)
    }

    /// Moves a window of `n` bytes one byte on: `out` leaves at the front, `inb` enters.
    #[inline(always)]
    pub fn roll(&mut self, n: u32, out: u8, inb: u8) {
        self.a = self
            .a
            .wrapping_add(u32::from(inb))
            .wrapping_sub(u32::from(out));
        self.b = self
            .b
            .wrapping_add(self.a)
            .wrapping_sub(n.wrapping_mul(u32::from(out)));
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Rollsum, LANES};
    use std::arch::x86_64::*;

    /// Horizontal sum of the eight 32-bit lanes, modulo 2^32.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> u32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s) as u32
    }

    /// The AVX2 form of [`Rollsum::of_block`] (same decomposition as the scalar code).
    ///
    /// Per 32-byte chunk: `_mm256_sad_epu8` against zero gives the byte sums of its four
    /// 8-byte quarters (in the low 32 bits of each 64-bit lane, the high bits stay zero), and
    /// `_mm256_maddubs_epi16` with the weights `32..=1` then `_mm256_madd_epi16` with ones
    /// gives the weighted sums `Σ (32-j)·x` in 32-bit lanes (a pair is at most
    /// `32·255 + 31·255 = 16065`, inside i16, so nothing saturates). All lane additions wrap
    /// modulo 2^32 like the scalar sums, so the horizontal totals are equal.
    #[target_feature(enable = "avx2")]
    pub(super) fn of_block(data: &[u8]) -> Rollsum {
        let zero = _mm256_setzero_si256();
        let ones = _mm256_set1_epi16(1);
        let weights = _mm256_setr_epi8(
            32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11,
            10, 9, 8, 7, 6, 5, 4, 3, 2, 1,
        );
        // Two chunks per iteration with separate weighted accumulators, so the adds of one
        // chunk do not wait for the other's.
        let mut sum = zero; // Σ bytes so far (per 64-bit lane)
        let mut prefix = zero; // Σ over chunks of `sum` before the chunk
        let mut weighted0 = zero;
        let mut weighted1 = zero;
        let mut pairs = data.chunks_exact(2 * LANES);
        for pair in &mut pairs {
            // SAFETY: `pair` is 64 bytes long, so both unaligned 32-byte loads are in bounds.
            let (x0, x1) = unsafe {
                let p = pair.as_ptr().cast::<__m256i>();
                (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
            };
            let s0 = _mm256_sad_epu8(x0, zero);
            let s1 = _mm256_sad_epu8(x1, zero);
            // prefix += sum (before chunk 0) + (sum + s0) (before chunk 1)
            prefix = _mm256_add_epi32(prefix, _mm256_add_epi32(_mm256_add_epi32(sum, sum), s0));
            sum = _mm256_add_epi32(sum, _mm256_add_epi32(s0, s1));
            // The two chunks' 16-bit pair sums are added before widening: each is at most
            // 16065, their sum 32130, still inside i16; one `madd` per 64 bytes instead of two
            // (it shares the multiply pipe with `maddubs` on Zen 1).
            let pairs16 = _mm256_add_epi16(
                _mm256_maddubs_epi16(x0, weights),
                _mm256_maddubs_epi16(x1, weights),
            );
            weighted1 = _mm256_add_epi32(weighted1, _mm256_madd_epi16(pairs16, ones));
        }
        let mut rest = pairs.remainder();
        if rest.len() >= LANES {
            // SAFETY: at least 32 bytes remain, so the unaligned 32-byte load is in bounds.
            let x0 = unsafe { _mm256_loadu_si256(rest.as_ptr().cast::<__m256i>()) };
            prefix = _mm256_add_epi32(prefix, sum);
            sum = _mm256_add_epi32(sum, _mm256_sad_epu8(x0, zero));
            weighted0 = _mm256_add_epi32(
                weighted0,
                _mm256_madd_epi16(_mm256_maddubs_epi16(x0, weights), ones),
            );
            rest = rest.get(LANES..).unwrap_or_default();
        }
        let a = hsum(sum);
        let b = hsum(prefix)
            .wrapping_mul(LANES as u32)
            .wrapping_add(hsum(_mm256_add_epi32(weighted0, weighted1)));
        Rollsum { a, b }.append(rest)
    }
}

/// The weak checksum of a block (shorthand for `Rollsum::of_block(data).digest()`).
#[inline]
pub fn weak_checksum(data: &[u8]) -> u32 {
    Rollsum::of_block(data).digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, term by term.
    fn naive(data: &[u8]) -> Rollsum {
        let n = data.len() as u32;
        let mut a = 0u32;
        let mut b = 0u32;
        for (i, &x) in data.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((n - i as u32).wrapping_mul(u32::from(x)));
        }
        Rollsum { a, b }
    }

    #[test]
    fn all_ones_wrap_the_sums() {
        // 0xff everywhere drives every lane sum past 2^32 (b ~ 255·n²/2 for n = 16 MiB).
        for len in [(1 << 24) + 37, 1 << 20, 4096, 63] {
            let ff = vec![0xffu8; len];
            assert_eq!(Rollsum::of_block(&ff), naive(&ff), "len {len}");
            assert_eq!(Rollsum::of_block_scalar(&ff), naive(&ff), "len {len}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The dispatched (AVX2 where the CPU has it) and the scalar block sums equal the
        /// definition for every length, including lengths that are not a multiple of 32 or 64.
        #[test]
        fn simd_and_scalar_match_definition(data in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let want = naive(&data);
            prop_assert_eq!(Rollsum::of_block_scalar(&data), want);
            prop_assert_eq!(Rollsum::of_block(&data), want);
            // Every shorter prefix too: covers every remainder length on the same bytes.
            for cut in [1usize, 31, 32, 33, 63, 64, 65, 95, 127] {
                if let Some(d) = data.get(..data.len().saturating_sub(cut)) {
                    prop_assert_eq!(Rollsum::of_block(d), Rollsum::of_block_scalar(d));
                }
            }
        }

        /// Rolling one byte at a time equals recomputing the window from scratch.
        #[test]
        fn rolling_matches_recomputation(
            data in proptest::collection::vec(any::<u8>(), 2..3000),
            n in 1usize..400,
        ) {
            let n = n.min(data.len() - 1);
            let mut r = Rollsum::of_block(&data[..n]);
            for p in 1..=data.len() - n {
                r.roll(n as u32, data[p - 1], data[p + n - 1]);
                prop_assert_eq!(r, naive(&data[p..p + n]), "offset {}", p);
            }
        }
    }
}
