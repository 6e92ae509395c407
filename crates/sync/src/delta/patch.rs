//! The patch: rebuilds the new file from the base and a delta, and verifies it.
//!
//! Every command is validated before it is carried out (copies against the base length,
//! literal lengths against [`MAX_LITERAL_LEN`](super::format::MAX_LITERAL_LEN)); data moves in
//! bounded chunks, so memory does not depend on anything the delta declares.
//!
//! **The output is only good once `apply` returns `Ok`.** The whole-file hash can only be checked
//! at the end, after the bytes were written: write to a staging file and rename it into place
//! only on success (the CLI's `patch` and the tree sync do this), never over the live file.
use std::io::{BufReader, Read, Seek, SeekFrom, Write};

use super::error::DeltaError;
use super::format::{Command, DeltaReader};
use super::strong::WholeFileHasher;

const CHUNK: usize = 256 << 10;

/// Applies `delta` to `base`, writing the new file to `out`; returns its length.
///
/// The base must be seekable (copies may go backwards). Bytes after the delta's `END` are an
/// error. On any error, what was written to `out` must be discarded (see the module docs).
pub fn apply(
    mut base: impl Read + Seek,
    delta: impl Read,
    mut out: impl Write,
) -> Result<u64, DeltaError> {
    let base_len = base
        .seek(SeekFrom::End(0))
        .map_err(DeltaError::io("seeking base"))?;
    let mut base_pos = base_len;
    let mut r = DeltaReader::new(BufReader::with_capacity(64 << 10, delta))?;
    let mut hasher = WholeFileHasher::new();
    let mut written = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match r.next()? {
            Command::Copy { offset, len, at } => {
                if offset.checked_add(len).is_none_or(|end| end > base_len) {
                    return Err(DeltaError::CopyOutOfRange { offset, len, at });
                }
                if base_pos != offset {
                    base.seek(SeekFrom::Start(offset))
                        .map_err(DeltaError::io("seeking base"))?;
                }
                let mut left = len;
                while left > 0 {
                    let k = left.min(CHUNK as u64) as usize;
                    let chunk = buf.get_mut(..k).unwrap_or_default();
                    base.read_exact(chunk).map_err(|e| {
                        if e.kind() == std::io::ErrorKind::UnexpectedEof {
                            DeltaError::CopyOutOfRange { offset, len, at }
                        } else {
                            DeltaError::io("reading base")(e)
                        }
                    })?;
                    hasher.update(chunk);
                    out.write_all(chunk)
                        .map_err(DeltaError::io("writing output"))?;
                    left -= k as u64;
                }
                base_pos = offset + len;
                written += len;
            }
            Command::Literal { len } => {
                // `len` <= MAX_LITERAL_LEN <= CHUNK's multiple: read in CHUNK pieces.
                let mut left = len;
                while left > 0 {
                    let k = left.min(CHUNK as u64) as usize;
                    let chunk = buf.get_mut(..k).unwrap_or_default();
                    r.read_literal(chunk)?;
                    hasher.update(chunk);
                    out.write_all(chunk)
                        .map_err(DeltaError::io("writing output"))?;
                    left -= k as u64;
                }
                written += len;
            }
            Command::End { len, hash } => {
                r.expect_eof()?;
                return finish(written, len, hasher.digest128(), hash);
            }
        }
    }
}

/// Applies `delta` to an in-memory base; the result may be at most `max_len` bytes (a delta can
/// ask to copy the same base bytes many times, so the caller bounds the output).
///
/// ```
/// use sync::delta::{apply_slice, diff_slice, Signature, SignatureOptions};
/// let base = b"the quick brown fox jumps over the lazy dog".repeat(100);
/// let new = b"the quick brown cat jumps over the lazy dog".repeat(100);
/// let sig = Signature::calculate(&base, SignatureOptions::with_block_size(64)).unwrap();
/// let mut delta = Vec::new();
/// diff_slice(&sig.index(), &new, &mut delta).unwrap();
/// assert_eq!(apply_slice(&base, &delta, new.len()).unwrap(), new);
/// ```
pub fn apply_slice(base: &[u8], delta: &[u8], max_len: usize) -> Result<Vec<u8>, DeltaError> {
    let mut r = DeltaReader::new(delta)?;
    let mut out: Vec<u8> = Vec::new();
    let limit = max_len as u64;
    let too_large = || DeltaError::OutputTooLarge { limit };
    loop {
        match r.next()? {
            Command::Copy { offset, len, at } => {
                let range = usize::try_from(offset)
                    .ok()
                    .zip(usize::try_from(len).ok())
                    .and_then(|(o, l)| base.get(o..o.checked_add(l)?))
                    .ok_or(DeltaError::CopyOutOfRange { offset, len, at })?;
                if out.len() as u64 + len > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(range);
            }
            Command::Literal { len } => {
                if out.len() as u64 + len > limit {
                    return Err(too_large());
                }
                let start = out.len();
                out.resize(start + len as usize, 0);
                r.read_literal(out.get_mut(start..).unwrap_or_default())?;
            }
            Command::End { len, hash } => {
                r.expect_eof()?;
                let actual = super::strong::whole_file_hash(&out);
                finish(out.len() as u64, len, actual, hash)?;
                return Ok(out);
            }
        }
    }
}

fn finish(written: u64, len: u64, actual: u128, expected: u128) -> Result<u64, DeltaError> {
    if written != len {
        return Err(DeltaError::LengthMismatch {
            expected: len,
            actual: written,
        });
    }
    if actual != expected {
        return Err(DeltaError::HashMismatch { expected, actual });
    }
    Ok(written)
}
