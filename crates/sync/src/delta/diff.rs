//! The diff: finds the blocks of the base in the new file at every byte offset and writes a
//! delta (rsync technical report, section 3).
//!
//! Per byte offset the cost is one roll of the weak checksum and one bit test in the index's
//! cache-resident filter; only filter hits touch the table and compute a strong hash. After a
//! match the next window is the next base block in most real edits, so the diff first checks
//! the strong hash of the following window against block `i + 1` directly, skipping the roll
//! and the table: unchanged regions cost one XXH3 pass.
//!
//! The new file is read through a window buffer of `max(4 MiB, 4 blocks)`, so memory does not
//! depend on its length.
use std::io::{self, Read, Write};

use super::error::DeltaError;
use super::format::{DeltaWriter, DiffStats};
use super::index::{Filter, IndexedSignature};
use super::rollsum::Rollsum;
use super::strong::{strong_hash, whole_file_hash, WholeFileHasher};

const MIN_WINDOW_BUF: usize = 4 << 20;

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
    let mut buf = vec![0u8; cap];
    let mut filled = 0usize;
    let mut p = 0usize;
    let mut eof = false;
    let mut hasher = WholeFileHasher::new();
    let mut total = 0u64;
    let mut w = DeltaWriter::new(out);
    let mut m = Matcher::new(sig);
    loop {
        while filled < cap && !eof {
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
    let mut w = DeltaWriter::new(out);
    let mut m = Matcher::new(sig);
    m.scan(new, 0, &mut w)?;
    m.finish(new, &mut w)?;
    w.finish(new.len() as u64, whole_file_hash(new))
}

/// Rolls the window over `outs[k]` (leaving) / `ins[k]` (entering) until the filter passes the
/// window's weak checksum; returns the sums there and the number of bytes rolled
/// (`outs.len()` when the filter passed none).
///
/// This is the per-byte cost of the diff wherever nothing matches: one roll (two adds and a
/// multiply), one multiply to hash, one load from the cache-resident filter and one rarely
/// taken branch. Not inlined, so that its dozen live values get the registers (inlined into
/// `scan`, two of them were spilled to the stack).
#[inline(never)]
fn roll_to_candidate(
    filter: Filter<'_>,
    mut roll: Rollsum,
    n: u32,
    outs: &[u8],
    ins: &[u8],
) -> (Rollsum, usize) {
    let len = outs.len().min(ins.len());
    let (outs, ins) = (&outs[..len], &ins[..len]);
    for k in 0..len {
        if filter.maybe(roll.digest()) {
            return (roll, k);
        }
        roll.roll(n, outs[k], ins[k]);
    }
    (roll, len)
}

/// The matching state carried across window refills.
struct Matcher<'s, 'a> {
    idx: &'s IndexedSignature<'a>,
    n: usize,
    roll: Rollsum,
    roll_valid: bool,
    /// Start of the bytes not yet emitted (they become a literal).
    lit_start: usize,
}

impl<'s, 'a> Matcher<'s, 'a> {
    fn new(idx: &'s IndexedSignature<'a>) -> Self {
        Matcher {
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
        while p + n <= data.len() {
            if !self.roll_valid {
                self.roll = Rollsum::of_block(&data[p..p + n]);
                self.roll_valid = true;
            }
            // The hot loop: roll until the filter says "maybe" or the data runs out.
            let last = data.len() - n; // last window start that fits
            let outs = data.get(p..last).unwrap_or_default();
            let ins = data.get(p + n..).unwrap_or_default();
            let (roll, k) = roll_to_candidate(idx.filter(), self.roll, nn, outs, ins);
            p += k;
            self.roll = roll;
            let window = &data[p..p + n];
            let weak = roll.digest();
            let found = if idx.maybe(weak) {
                idx.find(weak, window)
            } else {
                None
            };
            match found {
                Some(mut blk) => {
                    self.flush_literal(data, p, w)?;
                    self.emit_block(w, blk)?;
                    p += n;
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
                }
                None => {
                    if p >= last {
                        // Window at `p` checked; the next needs one more byte.
                        return Ok(p);
                    }
                    self.roll.roll(nn, data[p], data[p + n]);
                    p += 1;
                }
            }
        }
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
