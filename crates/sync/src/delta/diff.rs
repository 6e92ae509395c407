//! The diff: finds the blocks of the base in the new file at every byte offset and writes a
//! delta (rsync technical report, section 3).
//!
//! Per byte offset the cost is one roll of the weak checksum and one probe of the index's
//! filter, done for eight offsets at a time where the CPU has AVX2 and 32 where it has
//! AVX-512 ([`super::scan`]); the filter's candidates of a run of up to 4096 windows are then
//! tried in order, and only they touch the table and compute a strong hash. After a match the
//! next window is the next base block in most real edits, so the diff first checks
//! the strong hash of the following window against block `i + 1` directly, skipping the roll
//! and the table: unchanged regions cost one XXH3 pass.
//!
//! The new file is read through a window buffer of `max(4 MiB, 4 blocks)`, so memory does not
//! depend on its length. The buffer grows with what is read (from 64 KiB), so a small file
//! costs a small buffer: a server diffing a hundred 2 KiB configuration files used to zero
//! 4 MiB for each of them.
use std::io::{self, Read, Write};

use super::error::DeltaError;
use super::format::{DeltaWriter, DiffStats};
use super::index::IndexedSignature;
use super::rollsum::Rollsum;
use super::scan::{candidates, Candidate, Kernel, MAX_SCAN};
use super::strong::{strong_hash, whole_file_hash, WholeFileHasher};

const MIN_WINDOW_BUF: usize = 4 << 20;
/// The window buffer's first size; it doubles while the input fills it, up to the window.
const FIRST_WINDOW_BUF: usize = 64 << 10;

/// Writes the delta that turns the signature's base into `new`, reading `new` as a stream.
///
/// ```
/// use sync::delta::{apply_slice, diff, Signature, SignatureOptions};
/// let base = vec![7u8; 10_000];
/// let mut new = base.clone();
/// new[5_000] = 8;
/// let sig = Signature::calculate(&base, SignatureOptions::default()).unwrap();
/// let mut delta = Vec::new();
/// diff(&sig.index(), &new[..], &mut delta).unwrap();
/// assert_eq!(apply_slice(&base, &delta, 1 << 20).unwrap(), new);
/// ```
pub fn diff(
    sig: &IndexedSignature<'_>,
    new: impl Read,
    out: impl Write,
) -> Result<DiffStats, DeltaError> {
    let n = sig.sig.block_size as usize;
    diff_with_window(sig, new, out, MIN_WINDOW_BUF.max(4 * n))
}

/// [`diff`] with a chosen window buffer length (at least two blocks are used); for tests that
/// exercise the window sliding on small inputs.
#[doc(hidden)]
pub fn diff_with_window(
    sig: &IndexedSignature<'_>,
    mut new: impl Read,
    out: impl Write,
    window: usize,
) -> Result<DiffStats, DeltaError> {
    let n = sig.sig.block_size as usize;
    let cap = window.max(2 * n);
    let mut buf = Vec::new();
    let mut filled = 0usize;
    let mut p = 0usize;
    let mut eof = false;
    let mut hasher = WholeFileHasher::new();
    let mut total = 0u64;
    let mut w = DeltaWriter::new(out);
    let mut m = Matcher::new(sig, Kernel::detect());
    loop {
        while filled < cap && !eof {
            if filled == buf.len() {
                buf.resize((buf.len() * 2).max(FIRST_WINDOW_BUF).min(cap), 0);
            }
            let dst = buf.get_mut(filled..).unwrap_or_default();
            match new.read(dst) {
                Ok(0) => eof = true,
                Ok(k) => {
                    hasher.update(dst.get(..k).unwrap_or_default());
                    filled += k;
                    total += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DeltaError::io("reading new file")(e)),
            }
        }
        let data = buf.get(..filled).unwrap_or_default();
        p = m.scan(data, p, &mut w)?;
        if eof {
            m.finish(data, &mut w)?;
            return w.finish(total, hasher.digest128());
        }
        // Keep the current window, emit the literal bytes before it, slide.
        m.flush_literal(data, p, &mut w)?;
        buf.copy_within(p..filled, 0);
        filled -= p;
        p = 0;
        m.lit_start = 0;
    }
}

/// [`diff`] for a new file already in memory (no copy into a window buffer).
pub fn diff_slice(
    sig: &IndexedSignature<'_>,
    new: &[u8],
    out: impl Write,
) -> Result<DiffStats, DeltaError> {
    diff_slice_with(sig, new, out, Kernel::detect())
}

/// [`diff_slice`] with a chosen rolling kernel (tests compare the kernels' deltas).
fn diff_slice_with(
    sig: &IndexedSignature<'_>,
    new: &[u8],
    out: impl Write,
    kernel: Kernel,
) -> Result<DiffStats, DeltaError> {
    let mut w = DeltaWriter::new(out);
    let mut m = Matcher::new(sig, kernel);
    m.scan(new, 0, &mut w)?;
    m.finish(new, &mut w)?;
    w.finish(new.len() as u64, whole_file_hash(new))
}

/// The matching state carried across window refills.
struct Matcher<'s, 'a> {
    idx: &'s IndexedSignature<'a>,
    n: usize,
    roll: Rollsum,
    roll_valid: bool,
    /// The rolling loop's implementation (SIMD where the CPU has it).
    kernel: Kernel,
    /// The filter's candidates of the current run of windows (kept for its allocation).
    found: Vec<Candidate>,
    /// Start of the bytes not yet emitted (they become a literal).
    lit_start: usize,
}

impl<'s, 'a> Matcher<'s, 'a> {
    fn new(idx: &'s IndexedSignature<'a>, kernel: Kernel) -> Self {
        Matcher {
            kernel,
            found: Vec::with_capacity(MAX_SCAN),
            idx,
            n: idx.sig.block_size as usize,
            roll: Rollsum::default(),
            roll_valid: false,
            lit_start: 0,
        }
    }

    fn emit_block(&self, w: &mut DeltaWriter<impl Write>, blk: u32) -> Result<(), DeltaError> {
        w.copy(u64::from(blk) * self.n as u64, self.n as u64)
    }

    fn flush_literal(
        &mut self,
        data: &[u8],
        upto: usize,
        w: &mut DeltaWriter<impl Write>,
    ) -> Result<(), DeltaError> {
        if let Some(lit) = data.get(self.lit_start..upto) {
            w.literal(lit)?;
        }
        self.lit_start = upto;
        Ok(())
    }

    /// Matches windows starting at `p` while a whole window fits in `data`; returns the offset
    /// of the first window not yet decided (its sums are kept in `self.roll`).
    fn scan(
        &mut self,
        data: &[u8],
        mut p: usize,
        w: &mut DeltaWriter<impl Write>,
    ) -> Result<usize, DeltaError> {
        let n = self.n;
        let idx = self.idx;
        if idx.full_blocks == 0 {
            // Nothing to roll for: all of it is literal (bar the tail check in `finish`).
            return Ok(data.len().max(p));
        }
        let strong = &idx.sig.strong;
        let strong_len = idx.sig.strong_len;
        let nn = n as u32;
        let mut found = std::mem::take(&mut self.found);
        'windows: while p + n <= data.len() {
            if !self.roll_valid {
                self.roll = Rollsum::of_block(&data[p..p + n]);
                self.roll_valid = true;
            }
            let last = data.len() - n; // last window start that fits
                                       // The hot loop: the windows at p..p+run that the filter passes, in order, and the
                                       // sums at p+run. The window at `last` is tested on its own (rolling past it needs
                                       // a byte that is not there yet).
            let run = (last - p).min(MAX_SCAN);
            found.clear();
            let outs = data.get(p..p + run).unwrap_or_default();
            let ins = data.get(p + n..p + n + run).unwrap_or_default();
            let after = candidates(
                self.kernel,
                idx.filter(),
                self.roll,
                nn,
                outs,
                ins,
                &mut found,
            );
            if run == 0 {
                let weak = self.roll.digest();
                if idx.maybe(weak) {
                    found.push(Candidate { offset: 0, weak });
                }
            }
            for c in &found {
                let q = p + c.offset as usize;
                let Some(mut blk) = idx.find(c.weak, &data[q..q + n]) else {
                    continue;
                };
                self.flush_literal(data, q, w)?;
                self.emit_block(w, blk)?;
                p = q + n;
                // Follow the base block by block while it keeps matching.
                while (blk as usize + 1) < idx.full_blocks && p + n <= data.len() {
                    let want = strong.get(blk as usize + 1).copied();
                    if want != Some(strong_hash(&data[p..p + n], strong_len)) {
                        break;
                    }
                    blk += 1;
                    self.emit_block(w, blk)?;
                    p += n;
                }
                self.lit_start = p;
                self.roll_valid = false;
                continue 'windows;
            }
            if run == 0 {
                // Window at `p` checked; the next needs one more byte.
                break;
            }
            p += run;
            self.roll = after;
        }
        self.found = found;
        Ok(p)
    }

    /// At the end of the new file: try the base's short last block against the tail, then
    /// emit what is left as a literal.
    fn finish(&mut self, data: &[u8], w: &mut DeltaWriter<impl Write>) -> Result<(), DeltaError> {
        let sig = self.idx.sig;
        let n = self.n as u64;
        let last_len = (sig.file_len % n) as usize;
        let last_blk = sig.weak.len().saturating_sub(1);
        if last_len > 0 && data.len() >= last_len {
            let s = data.len() - last_len;
            if s >= self.lit_start {
                let tail = &data[s..];
                let matches = sig.weak.get(last_blk) == Some(&super::rollsum::weak_checksum(tail))
                    && sig.strong.get(last_blk) == Some(&strong_hash(tail, sig.strong_len));
                if matches {
                    self.flush_literal(data, s, w)?;
                    w.copy(last_blk as u64 * n, last_len as u64)?;
                    self.lit_start = data.len();
                    return Ok(());
                }
            }
        }
        self.flush_literal(data, data.len(), w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::{apply_slice, Signature, SignatureOptions};
    use proptest::prelude::*;

    /// Bytes from a small alphabet, so that windows repeat and weak checksums collide.
    fn shaped(seed: &[u8], alphabet: u8, len: usize) -> Vec<u8> {
        seed.iter()
            .cycle()
            .take(len)
            .map(|&x| if alphabet == 0 { x } else { x % alphabet })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The SIMD rolling kernel gives byte for byte the delta of the scalar one: random,
        /// repetitive (alphabet of 1..4 symbols, short periods) and edited inputs, block sizes
        /// from the minimum up. Both deltas also rebuild the new file.
        #[test]
        fn kernels_give_identical_deltas(
            seed in proptest::collection::vec(any::<u8>(), 1..700),
            alphabet in prop_oneof![Just(0u8), 1u8..4],
            base_len in 0usize..6000,
            edits in proptest::collection::vec((any::<u16>(), any::<u8>(), 0usize..40), 0..6),
            block in 16u32..200,
            period_shift in 0usize..50,
        ) {
            let base = shaped(&seed, alphabet, base_len);
            // The new file: the base shifted by a few bytes, with overwrites and insertions.
            let mut new: Vec<u8> = base.iter().skip(period_shift.min(base.len())).copied().collect();
            for &(at, byte, ins) in &edits {
                let at = usize::from(at) % (new.len() + 1);
                new.splice(at..at, std::iter::repeat_n(byte, ins));
                if let Some(x) = new.get_mut(at / 2) {
                    *x ^= byte;
                }
            }
            let sig = Signature::calculate(&base, SignatureOptions::with_block_size(block)).unwrap();
            let idx = sig.index();
            let mut scalar = Vec::new();
            diff_slice_with(&idx, &new, &mut scalar, Kernel::Scalar).unwrap();
            let mut detected = Vec::new();
            diff_slice_with(&idx, &new, &mut detected, Kernel::detect()).unwrap();
            prop_assert_eq!(&detected, &scalar);
            prop_assert_eq!(apply_slice(&base, &detected, 1 << 24).unwrap(), new);
        }
    }

    /// Adversarial: every window of a constant file has the same weak checksum, so every
    /// offset passes the filter; and a file of period 2 against a base of period 2 shifted by
    /// one. Both kernels agree.
    #[test]
    fn kernels_agree_on_adversarial_files() {
        let cases: [(Vec<u8>, Vec<u8>); 3] = [
            (vec![7u8; 5000], vec![7u8; 7777]),
            (
                (0..6000).map(|i| (i % 2) as u8).collect(),
                (1..9001).map(|i| (i % 2) as u8).collect(),
            ),
            (
                (0..6000u32).map(|i| (i * 31 % 7) as u8).collect(),
                (0..6000u32).map(|i| (i * 31 % 5) as u8).collect(),
            ),
        ];
        for (base, new) in cases {
            for block in [16u32, 17, 64, 1000] {
                let sig =
                    Signature::calculate(&base, SignatureOptions::with_block_size(block)).unwrap();
                let idx = sig.index();
                let mut scalar = Vec::new();
                diff_slice_with(&idx, &new, &mut scalar, Kernel::Scalar).unwrap();
                let mut detected = Vec::new();
                diff_slice_with(&idx, &new, &mut detected, Kernel::detect()).unwrap();
                assert_eq!(detected, scalar, "block {block}");
                assert_eq!(apply_slice(&base, &detected, 1 << 24).unwrap(), new);
            }
        }
    }
}
