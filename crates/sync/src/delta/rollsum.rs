//! The rolling weak checksum (rsync's Adler-32-like sum, as in the rsync technical report,
//! Tridgell & Mackerras 1996, section 3).
//!
//! For a window `x[0..n]`: `a = Σ x[i]` and `b = Σ (n - i)·x[i]`, and the weak checksum is
//! `(b << 16) | (a & 0xffff)` in 32 bits, so only `a` and `b` modulo 2^16 reach it. Moving the
//! window one byte (drop `out`, take `in`) is `a += in - out; b += a - n·out`, two additions
//! per byte, which is what makes trying every byte offset affordable.
//!
//! The sums of a whole block (every block of a signature, and the first window after each match
//! in a diff) are computed 32 bytes at a time: with AVX2 when the CPU has it (checked at run
//! time, so one binary serves every x86-64), otherwise with portable code the compiler
//! vectorises for the baseline target. Both return the sums modulo 2^16 and give identical
//! results (a property test checks them against each other and against the definition).

/// The running `(a, b)` sums of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollsum {
    a: u32,
    b: u32,
}

/// Bytes processed per vector step in [`Rollsum::of_block`]; a multiple of every SIMD width.
const LANES: usize = 32;

impl Rollsum {
    /// The sums of a whole block, modulo 2^16 (all that [`Rollsum::digest`] and every later
    /// [`Rollsum::roll`]'s digest depend on; see [`Rollsum::from_digest`]).
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
        Rollsum { a, b }.append(chunks.remainder()).reduced()
    }

    /// The same window state with `a` and `b` taken modulo 2^16 (the state
    /// [`Rollsum::from_digest`] rebuilds from the digest): the normal form
    /// [`Rollsum::of_block`] returns, whatever the implementation.
    #[inline(always)]
    fn reduced(self) -> Rollsum {
        Rollsum::from_digest(self.digest())
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

    /// Horizontal sum of the sixteen 16-bit lanes, modulo 2^16. `madd` with ones reads the
    /// lanes as signed, but a sum modulo 2^16 does not care how its terms are read.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum16(v: __m256i) -> u32 {
        hsum(_mm256_madd_epi16(v, _mm256_set1_epi16(1))) & 0xffff
    }

    /// The AVX2 form of [`Rollsum::of_block`]: the scalar decomposition in 16-bit lanes.
    ///
    /// The checksum keeps `a` and `b` modulo 2^16 only ([`Rollsum::digest`]), so every sum may
    /// wrap at 16 bits. Read as sixteen 16-bit words, a chunk's word `k` is
    /// `x[2k] + 256·x[2k+1]`; its odd bytes alone are `word >> 8`. Per 32-byte chunk the
    /// running sums `l` are added to `v`, then the chunk's words and its odd bytes to `l`:
    /// four additions and a shift, which every vector pipe of Zen 1 but the multiplier runs,
    /// and no mask. The even bytes' sums follow at the end, modulo 2^16, as
    /// `words - 256·odd`. (The earlier form with `sad` / `maddubs` / `madd` put five
    /// operations per 32 bytes on the one multiply pipe: the signature of 256 MiB spent 31%
    /// of its time there; this form 19% of a run that is itself 15% shorter.)
    /// Lane `k` of the even sums holds byte `2k` of every chunk, of the odd sums byte
    /// `2k + 1`, so the final weights `32 - j` are `32 - 2k` and `31 - 2k`.
    #[target_feature(enable = "avx2")]
    pub(super) fn of_block(data: &[u8]) -> Rollsum {
        let mut l_words = _mm256_setzero_si256();
        let mut l_odd = _mm256_setzero_si256();
        let mut v_words = _mm256_setzero_si256();
        let mut v_odd = _mm256_setzero_si256();
        let mut chunks = data.chunks_exact(LANES);
        for chunk in &mut chunks {
            // SAFETY: `chunk` is 32 bytes long, so the unaligned 32-byte load is in bounds.
            let x = unsafe { _mm256_loadu_si256(chunk.as_ptr().cast::<__m256i>()) };
            v_words = _mm256_add_epi16(v_words, l_words);
            v_odd = _mm256_add_epi16(v_odd, l_odd);
            l_words = _mm256_add_epi16(l_words, x);
            l_odd = _mm256_add_epi16(l_odd, _mm256_srli_epi16::<8>(x));
        }
        let l_even = _mm256_sub_epi16(l_words, _mm256_slli_epi16::<8>(l_odd));
        let v_even = _mm256_sub_epi16(v_words, _mm256_slli_epi16::<8>(v_odd));
        let w_even = _mm256_setr_epi16(32, 30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2);
        let w_odd = _mm256_setr_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        let a = hsum16(_mm256_add_epi16(l_even, l_odd));
        let b = hsum16(_mm256_add_epi16(v_even, v_odd))
            .wrapping_mul(LANES as u32)
            .wrapping_add(hsum16(_mm256_add_epi16(
                _mm256_mullo_epi16(l_even, w_even),
                _mm256_mullo_epi16(l_odd, w_odd),
            )));
        Rollsum { a, b }.append(chunks.remainder()).reduced()
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
            assert_eq!(Rollsum::of_block(&ff), naive(&ff).reduced(), "len {len}");
            assert_eq!(
                Rollsum::of_block_scalar(&ff),
                naive(&ff).reduced(),
                "len {len}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The dispatched (AVX2 where the CPU has it) and the scalar block sums equal the
        /// definition for every length, including lengths that are not a multiple of 32 or 64.
        #[test]
        fn simd_and_scalar_match_definition(data in proptest::collection::vec(any::<u8>(), 0..9000)) {
            let want = naive(&data).reduced();
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
                prop_assert_eq!(r.reduced(), naive(&data[p..p + n]).reduced(), "offset {}", p);
            }
        }
    }
}
