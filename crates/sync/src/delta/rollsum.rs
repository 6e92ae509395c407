//! The rolling weak checksum (rsync's Adler-32-like sum, as in the rsync technical report,
//! Tridgell & Mackerras 1996, section 3).
//!
//! For a window `x[0..n]`: `a = Σ x[i]` and `b = Σ (n - i)·x[i]`, both modulo 2^32, and the
//! weak checksum is `(b << 16) | (a & 0xffff)`. Moving the window one byte (drop `out`, take
//! `in`) is `a += in - out; b += a - n·out`, two additions per byte, which is what makes trying
//! every byte offset affordable.

/// The running `(a, b)` sums of one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rollsum {
    a: u32,
    b: u32,
}

/// Bytes processed per vector step in [`Rollsum::of_block`]; a multiple of every SIMD width.
const LANES: usize = 32;

impl Rollsum {
    /// The sums of a whole block, computed without the per-byte dependency chain so that the
    /// compiler can vectorise it.
    ///
    /// Per lane `j` (byte `32c + j` of chunk `c`): `l[j] = Σ_c x`, and `v[j]` accumulates `l[j]`
    /// *before* each chunk is added, so after `C` chunks `v[j] = Σ_c (C-1-c)·x`. Because
    /// `n - i = 32·(C-1-c) + (32 - j)`, `b = 32·Σ v[j] + Σ (32-j)·l[j]`. Bytes past the last whole
    /// chunk are added one at a time.
    #[inline]
    pub fn of_block(data: &[u8]) -> Rollsum {
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
        let mut sum = Rollsum { a, b };
        for &x in chunks.remainder() {
            sum.a = sum.a.wrapping_add(u32::from(x));
            sum.b = sum.b.wrapping_add(sum.a);
        }
        sum
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

/// The weak checksum of a block (shorthand for `Rollsum::of_block(data).digest()`).
#[inline]
pub fn weak_checksum(data: &[u8]) -> u32 {
    Rollsum::of_block(data).digest()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &[u8]) -> u32 {
        let n = data.len() as u32;
        let mut a = 0u32;
        let mut b = 0u32;
        for (i, &x) in data.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((n - i as u32).wrapping_mul(u32::from(x)));
        }
        (b << 16) | (a & 0xffff)
    }

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn block_sum_matches_definition() {
        for len in [0, 1, 31, 32, 33, 64, 100, 4096, 4099, 70_000] {
            let data = pseudo_random(len, len as u64 + 7);
            assert_eq!(weak_checksum(&data), naive(&data), "len {len}");
        }
        // All 0xff: exercises wrapping of the lane sums.
        let ff = vec![0xffu8; 1 << 20];
        assert_eq!(weak_checksum(&ff), naive(&ff));
    }

    #[test]
    fn rolling_matches_recomputation() {
        let data = pseudo_random(5000, 3);
        let n = 333usize;
        let mut r = Rollsum::of_block(&data[..n]);
        for p in 1..data.len() - n {
            r.roll(n as u32, data[p - 1], data[p + n - 1]);
            assert_eq!(r.digest(), naive(&data[p..p + n]), "offset {p}");
        }
    }
}
