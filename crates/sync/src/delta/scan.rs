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
//! - interleaving the `a` and `b` lanes gives the eight 32-bit checksums; a multiply and a few
//!   shifts give their filter probes (`index::filter_probe`: a word and a two-bit mask).
//!
//! The probes are tested in a second phase: the vector loop stores the probes and checksums
//! of 512 offsets, then scalar code loads each probe's filter word and tests its mask, eight
//! offsets per branch. Gathers would test eight or sixteen probes in one instruction, but
//! they are slow on the AMD cores measured: microcoded on Zen 1, and on Zen 5 (this machine,
//! same run, 256 MiB of unrelated data, filter in L1) the AVX-512 kernel took 0.42 s with
//! gathers against 0.10 s with the probes left untested; with the scalar phase it takes
//! 0.24 s. Moving lanes to the integer side one by one (`vpextrd`, what the compiler makes of
//! a plain loop over the lanes) or loading a probe right after the vector store that wrote it
//! stalls; a pass later they are plain L1 loads, and the integer units would be idle anyway.
//!
//! Every window whose probe passes is reported, in order, with its checksum, exactly as the
//! scalar loop reports them (a property test checks every kernel against a byte-at-a-time
//! reference); the diff then tries them in order, so a match is still found at the first offset
//! where one exists. Scanning a run of windows rather than stopping at the first candidate keeps
//! the vector state across candidates.
//!
//! Kernels: scalar (any CPU), AVX2 (8 offsets per step in 128-bit lanes: Zen 1 executes a
//! 256-bit operation as two 128-bit halves, and 16 lanes would need cross-half steps for the
//! prefix sums) and AVX-512 (32 offsets per step across a 512-bit register, five permuted adds
//! per prefix sum: on Zen 4/5 and recent Intel a 512-bit operation costs about what a 128-bit
//! one does). [`Kernel::detect`] picks the widest the CPU has, at run time.
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
    /// Thirty-two offsets at a time with AVX-512 (F and BW; only when the CPU has them).
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The fastest kernel this CPU runs (checked at run time).
    pub(crate) fn detect() -> Kernel {
        Kernel::available().pop().unwrap_or(Kernel::Scalar)
    }

    /// Every kernel this CPU runs, slowest first.
    pub(crate) fn available() -> Vec<Kernel> {
        #[allow(unused_mut)]
        let mut all = vec![Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("bmi1")
            {
                all.push(Kernel::Avx2);
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                {
                    all.push(Kernel::Avx512);
                }
            }
        }
        all
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
        // SAFETY: `Kernel::Avx2` is only chosen by `Kernel::available` when the CPU has AVX2
        // and BMI1.
        Kernel::Avx2 => unsafe { avx2::scan(filter, roll, n, outs, ins, found) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Kernel::Avx512` is only chosen by `Kernel::available` when the CPU has
        // AVX2, AVX-512F, AVX-512BW and BMI1.
        Kernel::Avx512 => unsafe { avx512::scan(filter, roll, n, outs, ins, found) },
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

/// Offsets per pass of the vector kernels' two phases: the probe buffers of one pass, 6 KiB,
/// stay in L1.
#[cfg(target_arch = "x86_64")]
const PASS: usize = 512;

/// What the vector phase stores per offset: its filter word, the two bits to test in it, and
/// its checksum.
#[cfg(target_arch = "x86_64")]
struct Probes {
    word: [u32; PASS],
    bits: [u32; PASS],
    digest: [u32; PASS],
}

#[cfg(target_arch = "x86_64")]
impl Probes {
    fn new() -> Probes {
        Probes {
            word: [0; PASS],
            bits: [0; PASS],
            digest: [0; PASS],
        }
    }

    /// The scalar phase of the vector kernels: tests the first `len` stored probes (offsets
    /// from `first`; `len` a multiple of 8, as the kernels' steps are) against the filter
    /// `words` and reports the offsets that pass. Every stored word index must be below
    /// `words.len()`: the kernels check the filter once ([`Filter::exact`]) and compute the
    /// indices as `h >> shift`.
    ///
    /// Eight offsets per group, so that the common case (no offset passes) is straight-line
    /// code: two loads and an `andn` per offset, one branch per group. Inlined into each
    /// kernel, so it is compiled with the kernel's instruction set.
    #[inline(always)]
    fn test(&self, words: &[u32], len: usize, first: u32, found: &mut Vec<Candidate>) {
        debug_assert!(len.is_multiple_of(8));
        let groups = (self.word.get(..len).unwrap_or_default().chunks_exact(8))
            .zip(self.bits.chunks_exact(8))
            .zip(self.digest.chunks_exact(8));
        for (g, ((w8, m8), d8)) in groups.enumerate() {
            let mut hits = 0u32;
            for (j, (&w, &m)) in w8.iter().zip(m8).enumerate() {
                debug_assert!((w as usize) < words.len());
                // SAFETY: the kernels' word indices are below `words.len()` (see above).
                let have = unsafe { *words.get_unchecked(w as usize) };
                hits |= u32::from(!have & m == 0) << j;
            }
            while hits != 0 {
                let j = hits.trailing_zeros() as usize;
                hits &= hits - 1;
                found.push(Candidate {
                    offset: first + (g * 8 + j) as u32,
                    weak: d8.get(j).copied().unwrap_or_default(),
                });
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{scan_scalar, Candidate, Filter, Probes, Rollsum, PASS};
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
    ///
    /// Two phases per [`PASS`] offsets (see the module docs): the vector units roll the
    /// checksums of every offset and store each one's filter probe (`index::filter_probe`: the
    /// word `h >> shift` and the mask of its two bits) and its checksum, then
    /// [`Probes::test`] tests them with scalar loads.
    #[inline(never)]
    #[target_feature(enable = "avx2,bmi1")]
    pub(super) fn scan(
        filter: Filter<'_>,
        roll: Rollsum,
        n: u32,
        outs: &[u8],
        ins: &[u8],
        found: &mut Vec<Candidate>,
    ) -> Rollsum {
        // The probes read `words[h >> shift]` without a bounds check.
        if !filter.exact() {
            return scan_scalar(filter, roll, n, outs, ins, 0, found);
        }
        let mut probes = Probes::new();
        scan_with(filter, roll, n, outs, ins, found, &mut probes)
    }

    /// [`scan`] with the probe buffers given (the AVX-512 kernel lends its own for its tail);
    /// `filter` must be [`Filter::exact`].
    #[inline]
    #[target_feature(enable = "avx2,bmi1")]
    pub(super) fn scan_with(
        filter: Filter<'_>,
        roll: Rollsum,
        n: u32,
        outs: &[u8],
        ins: &[u8],
        found: &mut Vec<Candidate>,
        probes: &mut Probes,
    ) -> Rollsum {
        let words = filter.words();
        let start = roll.digest();
        let mut state = State {
            // Every lane holds the state of the first offset of the step: a_0 and b_0 mod 2^16.
            a: _mm_set1_epi16(start as u16 as i16),
            b: _mm_set1_epi16((start >> 16) as u16 as i16),
        };
        let consts = Consts {
            n: _mm_set1_epi16(n as u16 as i16),
            mul: _mm256_set1_epi32(super::super::index::FILTER_MUL as i32),
            shift: _mm_cvtsi32_si128(filter.shift as i32),
            low5: _mm256_set1_epi32(31),
            one: _mm256_set1_epi32(1),
        };
        let whole = outs.len() - outs.len() % STEP;
        let mut offset = 0u32;
        for (outs, ins) in outs[..whole].chunks(PASS).zip(ins[..whole].chunks(PASS)) {
            let len = outs.len();
            roll_pass(&mut state, &consts, outs, ins, probes);
            probes.test(words, len, offset, found);
            offset += len as u32;
        }
        let a0 = _mm_extract_epi16::<0>(state.a) as u32 & 0xffff;
        let b0 = _mm_extract_epi16::<0>(state.b) as u32 & 0xffff;
        scan_scalar(
            filter,
            Rollsum::from_digest((b0 << 16) | a0),
            n,
            outs.get(whole..).unwrap_or_default(),
            ins.get(whole..).unwrap_or_default(),
            offset,
            found,
        )
    }

    /// The rolling state between steps: `a` and `b` (mod 2^16) of the next offset, in every
    /// lane.
    struct State {
        a: __m128i,
        b: __m128i,
    }

    /// Loop invariants of [`roll_pass`].
    struct Consts {
        /// The block length in every 16-bit lane.
        n: __m128i,
        /// [`super::super::index::FILTER_MUL`] in every 32-bit lane.
        mul: __m256i,
        /// The filter's word shift.
        shift: __m128i,
        low5: __m256i,
        one: __m256i,
    }

    /// The vector phase of [`scan`]: rolls over `outs` / `ins` (a multiple of [`STEP`] bytes,
    /// at most [`PASS`]), storing the probe and the checksum of every offset.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn roll_pass(state: &mut State, c: &Consts, outs: &[u8], ins: &[u8], probes: &mut Probes) {
        // Byte indices that copy 16-bit lane 7 into every lane.
        let lane7 = _mm_set_epi8(
            15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14,
        );
        let (mut a, mut b) = (state.a, state.b);
        let steps = outs.chunks_exact(STEP).zip(ins.chunks_exact(STEP));
        let slots = (probes.word.chunks_exact_mut(STEP))
            .zip(probes.bits.chunks_exact_mut(STEP))
            .zip(probes.digest.chunks_exact_mut(STEP));
        for ((out8, in8), ((word8, bits8), digest8)) in steps.zip(slots) {
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
            let e = _mm_sub_epi16(a_next, _mm_mullo_epi16(out, c.n));
            let b_next = _mm_add_epi16(b, prefix_sum(e));
            let b_here = _mm_sub_epi16(b_next, e);
            a = _mm_shuffle_epi8(a_next, lane7);
            b = _mm_shuffle_epi8(b_next, lane7);
            // (b << 16) | a per offset: offsets 0..4, then 4..8.
            let d_lo = _mm_unpacklo_epi16(a_here, b_here);
            let d_hi = _mm_unpackhi_epi16(a_here, b_here);
            // The probes: word `h >> shift`, bits `g & 31` and `(g >> 5) & 31` of
            // `g = h ^ (h >> 16)`.
            let digest = _mm256_set_m128i(d_hi, d_lo);
            let h = _mm256_mullo_epi32(digest, c.mul);
            let word = _mm256_srl_epi32(h, c.shift);
            let g = _mm256_xor_si256(h, _mm256_srli_epi32::<16>(h));
            let bits = _mm256_or_si256(
                _mm256_sllv_epi32(c.one, _mm256_and_si256(g, c.low5)),
                _mm256_sllv_epi32(c.one, _mm256_and_si256(_mm256_srli_epi32::<5>(g), c.low5)),
            );
            // SAFETY: `word8`, `bits8` and `digest8` are 8 u32 (32 bytes) each; the unaligned
            // stores write exactly those.
            unsafe {
                _mm256_storeu_si256(word8.as_mut_ptr().cast(), word);
                _mm256_storeu_si256(bits8.as_mut_ptr().cast(), bits);
                _mm256_storeu_si256(digest8.as_mut_ptr().cast(), digest);
            }
        }
        state.a = a;
        state.b = b;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Candidate, Filter, Probes, Rollsum, PASS};
    use std::arch::x86_64::*;

    /// Offsets per vector step: 32 16-bit lanes.
    const STEP: usize = 32;
    /// Loop invariants of [`roll_pass`], made once per [`scan`].
    struct Consts {
        n: __m512i,
        mul: __m512i,
        shift: __m128i,
        low5: __m512i,
        one: __m512i,
        /// Permutation indices: lane `i` - 1, 2, 4, 8, 16 (for the prefix sums).
        up: [__m512i; 5],
        /// 31 in every lane (broadcast the last lane).
        last: __m512i,
        /// Interleave lanes 0..16 / 16..32 of `a` and `b` into 32-bit (b << 16) | a.
        pair_lo: __m512i,
        pair_hi: __m512i,
    }

    /// Lanes shifted up by `K` 16-bit positions across the whole register, zeros shifted in
    /// (`index` holds `i - K` in lane `i`; the mask zeroes lanes below `K`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn shift_up<const K: u32>(x: __m512i, index: __m512i) -> __m512i {
        _mm512_maskz_permutexvar_epi16(!0u32 << K, index, x)
    }

    /// The same algebra as the AVX2 kernel (see the module docs) on 32 offsets per step with
    /// 512-bit registers: the prefix sums run across the whole register (five shifted adds).
    /// Two phases per [`PASS`] offsets, as in the AVX2 kernel: the vector units store every
    /// offset's filter probe and checksum, then [`Probes::test`] tests them.
    #[inline(never)]
    #[target_feature(enable = "avx2,avx512f,avx512bw,bmi1")]
    pub(super) fn scan(
        filter: Filter<'_>,
        roll: Rollsum,
        n: u32,
        outs: &[u8],
        ins: &[u8],
        found: &mut Vec<Candidate>,
    ) -> Rollsum {
        let words = filter.words();
        // The probes read `words[h >> shift]` without a bounds check.
        if !filter.exact() {
            return super::scan_scalar(filter, roll, n, outs, ins, 0, found);
        }
        let start = roll.digest();
        let mut a = _mm512_set1_epi16(start as u16 as i16);
        let mut b = _mm512_set1_epi16((start >> 16) as u16 as i16);
        let lane: [i16; 32] = std::array::from_fn(|i| i as i16);
        let pair: [i16; 32] =
            std::array::from_fn(|i| (i / 2) as i16 + if i % 2 == 1 { 32 } else { 0 });
        // SAFETY: both arrays are 32 i16 = 64 bytes, what the loads read.
        let (lanes, pair_lo) = unsafe {
            (
                _mm512_loadu_si512(lane.as_ptr().cast()),
                _mm512_loadu_si512(pair.as_ptr().cast()),
            )
        };
        let up = |k: i16| _mm512_sub_epi16(lanes, _mm512_set1_epi16(k));
        let c = Consts {
            n: _mm512_set1_epi16(n as u16 as i16),
            mul: _mm512_set1_epi32(super::super::index::FILTER_MUL as i32),
            shift: _mm_cvtsi32_si128(filter.shift as i32),
            low5: _mm512_set1_epi32(31),
            one: _mm512_set1_epi32(1),
            up: [up(1), up(2), up(4), up(8), up(16)],
            last: _mm512_set1_epi16(31),
            pair_lo,
            pair_hi: _mm512_add_epi16(pair_lo, _mm512_set1_epi16(16)),
        };
        let mut probes = Probes::new();
        let whole = outs.len() - outs.len() % STEP;
        let mut offset = 0u32;
        for (outs, ins) in outs[..whole].chunks(PASS).zip(ins[..whole].chunks(PASS)) {
            let len = outs.len();
            roll_pass(&mut a, &mut b, &c, outs, ins, &mut probes);
            probes.test(words, len, offset, found);
            offset += len as u32;
        }
        let a0 = _mm_extract_epi16::<0>(_mm512_castsi512_si128(a)) as u32 & 0xffff;
        let b0 = _mm_extract_epi16::<0>(_mm512_castsi512_si128(b)) as u32 & 0xffff;
        let before = found.len();
        let end = super::avx2::scan_with(
            filter,
            Rollsum::from_digest((b0 << 16) | a0),
            n,
            outs.get(whole..).unwrap_or_default(),
            ins.get(whole..).unwrap_or_default(),
            found,
            &mut probes,
        );
        for c in found.get_mut(before..).unwrap_or_default() {
            c.offset += whole as u32;
        }
        end
    }

    /// The vector phase of [`scan`]: rolls over `outs` / `ins` (a multiple of [`STEP`] bytes,
    /// at most [`PASS`]), storing the probe and the checksum of every offset; `a` and `b` carry
    /// the sums of the next offset in every lane.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn roll_pass(
        a: &mut __m512i,
        b: &mut __m512i,
        c: &Consts,
        outs: &[u8],
        ins: &[u8],
        probes: &mut Probes,
    ) {
        let prefix_sum = |x: __m512i| {
            let x = _mm512_add_epi16(x, shift_up::<1>(x, c.up[0]));
            let x = _mm512_add_epi16(x, shift_up::<2>(x, c.up[1]));
            let x = _mm512_add_epi16(x, shift_up::<4>(x, c.up[2]));
            let x = _mm512_add_epi16(x, shift_up::<8>(x, c.up[3]));
            _mm512_add_epi16(x, shift_up::<16>(x, c.up[4]))
        };
        // The probe of 16 checksums: word `h >> shift`, bits `g & 31` and `(g >> 5) & 31` of
        // `g = h ^ (h >> 16)` (`index::filter_probe`).
        let probe = |digest: __m512i| {
            let h = _mm512_mullo_epi32(digest, c.mul);
            let word = _mm512_srl_epi32(h, c.shift);
            let g = _mm512_xor_si512(h, _mm512_srli_epi32::<16>(h));
            let bits = _mm512_or_si512(
                _mm512_sllv_epi32(c.one, _mm512_and_si512(g, c.low5)),
                _mm512_sllv_epi32(c.one, _mm512_and_si512(_mm512_srli_epi32::<5>(g), c.low5)),
            );
            (word, bits)
        };
        let (mut sa, mut sb) = (*a, *b);
        let steps = outs.chunks_exact(STEP).zip(ins.chunks_exact(STEP));
        let slots = (probes.word.chunks_exact_mut(STEP))
            .zip(probes.bits.chunks_exact_mut(STEP))
            .zip(probes.digest.chunks_exact_mut(STEP));
        for ((out32, in32), ((word32, bits32), digest32)) in steps.zip(slots) {
            // SAFETY: both chunks are exactly 32 bytes, what the loads read.
            let (out, inn) = unsafe {
                (
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(out32.as_ptr().cast())),
                    _mm512_cvtepu8_epi16(_mm256_loadu_si256(in32.as_ptr().cast())),
                )
            };
            let d = _mm512_sub_epi16(inn, out);
            let a_next = _mm512_add_epi16(sa, prefix_sum(d));
            let a_here = _mm512_sub_epi16(a_next, d);
            let e = _mm512_sub_epi16(a_next, _mm512_mullo_epi16(out, c.n));
            let b_next = _mm512_add_epi16(sb, prefix_sum(e));
            let b_here = _mm512_sub_epi16(b_next, e);
            sa = _mm512_permutexvar_epi16(c.last, a_next);
            sb = _mm512_permutexvar_epi16(c.last, b_next);
            // (b << 16) | a of offsets 0..16 and 16..32, in order.
            let d_lo = _mm512_permutex2var_epi16(a_here, c.pair_lo, b_here);
            let d_hi = _mm512_permutex2var_epi16(a_here, c.pair_hi, b_here);
            let (w_lo, m_lo) = probe(d_lo);
            let (w_hi, m_hi) = probe(d_hi);
            // SAFETY: each chunk is 32 u32 = 128 bytes; the stores write 64 bytes each at
            // offsets 0 and 64 of them.
            unsafe {
                let (wp, mp, dp) = (
                    word32.as_mut_ptr().cast::<__m512i>(),
                    bits32.as_mut_ptr().cast::<__m512i>(),
                    digest32.as_mut_ptr().cast::<__m512i>(),
                );
                _mm512_storeu_si512(wp.cast(), w_lo);
                _mm512_storeu_si512(wp.add(1).cast(), w_hi);
                _mm512_storeu_si512(mp.cast(), m_lo);
                _mm512_storeu_si512(mp.add(1).cast(), m_hi);
                _mm512_storeu_si512(dp.cast(), d_lo);
                _mm512_storeu_si512(dp.add(1).cast(), d_hi);
            }
        }
        *a = sa;
        *b = sb;
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
            for kernel in Kernel::available() {
                let mut found = Vec::new();
                let end = candidates(kernel, filter_of(&words), start, n, outs, ins, &mut found);
                prop_assert_eq!(&found, &want.0, "kernel {:?}", kernel);
                prop_assert_eq!(end.digest(), want.1, "kernel {:?}", kernel);
            }
        }
    }
}
