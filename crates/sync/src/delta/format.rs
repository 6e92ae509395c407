//! The delta format: how a new file is rebuilt from copies of the base and literal bytes.
//!
//! # Layout (version 1)
//! A header, then commands, each starting with one command byte, the last being `END`.
//! Fixed-width fields are little-endian; the command byte says how wide each is (`w` codes
//! `0, 1, 2, 3` mean 1, 2, 4, 8 bytes), so every command is as short as librsync's for the same
//! values, and in-order copies are shorter. *zigzag* maps signed to unsigned
//! (`0, -1, 1, -2 → 0, 1, 2, 3`); *varint* is unsigned LEB128 (at most 10 bytes).
//!
//! | bytes | field | valid values |
//! |---|---|---|
//! | 3 | magic | `b"pbD"` |
//! | 1 | version | `1` |
//! | 1 | `COPY`: `0x10 | (wo << 2) | wl` | |
//! | 1/2/4/8 (`wo`) | zigzag(base offset − end of the previous copy; 0 before the first) | result in `0..=base length` |
//! | 1/2/4/8 (`wl`) | length | `1..=2^62`, and `offset + length <= base length` |
//! | 1 | `COPY_ABS`: `0x20 | (wo << 2) | wl` | |
//! | 1/2/4/8 (`wo`) | base offset | as for `COPY` |
//! | 1/2/4/8 (`wl`) | length | as for `COPY` |
//! | 1 | `LITERAL`: `0x01`, `0x02`, `0x03` for a 1, 2, 4-byte length | |
//! | 1/2/4 | length `k` | `1..=`[`MAX_LITERAL_LEN`] (1 MiB) |
//! | `k` | the bytes | |
//! | 1 | `SHORT_LITERAL`: `0x40 + k − 1` | `k` in `1..=64` (a literal with its length inline) |
//! | `k` | the bytes | |
//! | 1 | `END` = `0x00` | must be the last command |
//! | varint | length of the new file | must equal the bytes produced |
//! | 16 | XXH3-128 of the new file, little-endian | must equal the hash of the bytes produced |
//!
//! Any other command byte is an error. Adjacent copies are merged into one command, so an
//! unchanged file is one `COPY` and `END`. The writer picks `COPY` (relative) unless the
//! absolute offset is shorter (a jump back). Nothing may follow `END`.
use std::io::{self, BufRead, Write};

use super::error::DeltaError;

/// The delta format version this build writes and reads.
pub const DELTA_VERSION: u8 = 1;
/// Magic bytes at the start of a delta: `b"pbD"` and the version.
pub const DELTA_MAGIC: [u8; 4] = [b'p', b'b', b'D', DELTA_VERSION];
/// Longest literal one command may carry; longer runs are split.
pub const MAX_LITERAL_LEN: u64 = 1 << 20;
/// Longest copy one command may carry.
pub const MAX_COPY_LEN: u64 = 1 << 62;
pub(crate) const CMD_END: u8 = 0x00;
pub(crate) const CMD_LITERAL: u8 = 0x01;
pub(crate) const CMD_COPY: u8 = 0x10;
pub(crate) const CMD_COPY_ABS: u8 = 0x20;
pub(crate) const CMD_SHORT_LITERAL: u8 = 0x40;
const SHORT_LITERAL_MAX: usize = 64;
const WHAT: &str = "delta";
/// Instruction bytes are gathered up to this much before a write.
const OUT_BUF: usize = 64 << 10;
/// Literals shorter than this are copied into the instruction buffer; longer ones are written
/// straight through.
const INLINE_LITERAL: usize = 4096;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Width code (0..=3 for 1, 2, 4, 8 bytes) of the narrowest field that holds `v`.
fn width_code(v: u64) -> u8 {
    if v <= 0xff {
        0
    } else if v <= 0xffff {
        1
    } else if v <= 0xffff_ffff {
        2
    } else {
        3
    }
}

fn put_fixed(out: &mut Vec<u8>, v: u64, code: u8) {
    out.extend_from_slice(&v.to_le_bytes()[..1usize << code]);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// What the diff produced, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Length of the new file.
    pub new_len: u64,
    /// Bytes of the new file expressed as copies of the base.
    pub copied: u64,
    /// Bytes of the new file sent as literals.
    pub literal: u64,
    /// Length of the delta written.
    pub delta_len: u64,
}

/// Encodes commands, merging adjacent copies and batching small writes.
pub(crate) struct DeltaWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    pending: Option<(u64, u64)>,
    prev_end: u64,
    pub(crate) stats: DiffStats,
}

impl<W: Write> DeltaWriter<W> {
    pub(crate) fn new(out: W) -> Self {
        let mut buf = Vec::with_capacity(OUT_BUF + 64);
        buf.extend_from_slice(&DELTA_MAGIC);
        DeltaWriter {
            out,
            buf,
            pending: None,
            prev_end: 0,
            stats: DiffStats::default(),
        }
    }

    fn flush_buf(&mut self) -> Result<(), DeltaError> {
        self.stats.delta_len += self.buf.len() as u64;
        self.out
            .write_all(&self.buf)
            .map_err(DeltaError::io("writing delta"))?;
        self.buf.clear();
        Ok(())
    }

    fn flush_copy(&mut self) {
        if let Some((off, len)) = self.pending.take() {
            let rel = zigzag(off.wrapping_sub(self.prev_end) as i64);
            let wl = width_code(len);
            let (cmd, value) = if width_code(rel) <= width_code(off) {
                (CMD_COPY, rel)
            } else {
                (CMD_COPY_ABS, off)
            };
            let wo = width_code(value);
            self.buf.push(cmd | (wo << 2) | wl);
            put_fixed(&mut self.buf, value, wo);
            put_fixed(&mut self.buf, len, wl);
            self.prev_end = off + len;
        }
    }

    /// Copy `len` bytes of the base starting at `off`.
    #[inline]
    pub(crate) fn copy(&mut self, off: u64, len: u64) -> Result<(), DeltaError> {
        self.stats.copied += len;
        match &mut self.pending {
            Some((p_off, p_len)) if *p_off + *p_len == off && *p_len + len <= MAX_COPY_LEN => {
                *p_len += len;
                return Ok(());
            }
            _ => {}
        }
        self.flush_copy();
        self.pending = Some((off, len));
        if self.buf.len() >= OUT_BUF {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// Literal bytes, split into commands of at most [`MAX_LITERAL_LEN`].
    pub(crate) fn literal(&mut self, bytes: &[u8]) -> Result<(), DeltaError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flush_copy();
        self.stats.literal += bytes.len() as u64;
        for chunk in bytes.chunks(MAX_LITERAL_LEN as usize) {
            if chunk.len() <= SHORT_LITERAL_MAX {
                self.buf.push(CMD_SHORT_LITERAL + (chunk.len() - 1) as u8);
            } else {
                // chunk.len() <= 1 MiB: width code 0, 1 or 2.
                let wl = width_code(chunk.len() as u64);
                self.buf.push(CMD_LITERAL + wl);
                put_fixed(&mut self.buf, chunk.len() as u64, wl);
            }
            if chunk.len() < INLINE_LITERAL {
                self.buf.extend_from_slice(chunk);
                if self.buf.len() >= OUT_BUF {
                    self.flush_buf()?;
                }
            } else {
                self.flush_buf()?;
                self.out
                    .write_all(chunk)
                    .map_err(DeltaError::io("writing delta"))?;
                self.stats.delta_len += chunk.len() as u64;
            }
        }
        Ok(())
    }

    /// Writes `END` with the new file's length and hash and flushes.
    pub(crate) fn finish(mut self, new_len: u64, hash: u128) -> Result<DiffStats, DeltaError> {
        self.flush_copy();
        self.buf.push(CMD_END);
        put_varint(&mut self.buf, new_len);
        self.buf.extend_from_slice(&hash.to_le_bytes());
        self.flush_buf()?;
        self.out.flush().map_err(DeltaError::io("writing delta"))?;
        self.stats.new_len = new_len;
        Ok(self.stats)
    }
}

/// One decoded command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Copy `len` bytes of the base from `offset`; `at` is the command's offset in the delta.
    Copy { offset: u64, len: u64, at: u64 },
    /// `len` literal bytes follow; read them with [`DeltaReader::read_literal`].
    Literal { len: u64 },
    /// The end: declared new length and whole-file hash.
    End { len: u64, hash: u128 },
}

/// Decodes commands from a buffered stream, validating every field before it is used.
pub(crate) struct DeltaReader<R: BufRead> {
    input: R,
    offset: u64,
    prev_end: u64,
}

impl<R: BufRead> DeltaReader<R> {
    /// Checks the header.
    pub(crate) fn new(input: R) -> Result<Self, DeltaError> {
        let mut r = DeltaReader {
            input,
            offset: 0,
            prev_end: 0,
        };
        let mut magic = [0u8; 4];
        let got = r.read_some(&mut magic)?;
        let n = got.min(3);
        if magic[..n] != DELTA_MAGIC[..n] {
            return Err(DeltaError::BadMagic {
                what: WHAT,
                found: magic,
            });
        }
        if got < 4 {
            return Err(r.truncated());
        }
        let version = magic[3];
        if version != DELTA_VERSION {
            return Err(DeltaError::UnsupportedVersion {
                what: WHAT,
                version,
            });
        }
        Ok(r)
    }

    fn truncated(&self) -> DeltaError {
        DeltaError::Truncated {
            what: WHAT,
            offset: self.offset,
        }
    }

    /// Reads up to `buf.len()` bytes, fewer only at the end of the stream.
    fn read_some(&mut self, buf: &mut [u8]) -> Result<usize, DeltaError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DeltaError::io("reading delta")(e)),
            }
        }
        self.offset += filled as u64;
        Ok(filled)
    }

    fn byte(&mut self) -> Result<u8, DeltaError> {
        let mut b = [0u8; 1];
        if self.read_some(&mut b)? == 1 {
            Ok(b[0])
        } else {
            Err(self.truncated())
        }
    }

    /// A little-endian field of 1, 2, 4 or 8 bytes (width code 0..=3).
    fn fixed(&mut self, code: u8) -> Result<u64, DeltaError> {
        let mut b = [0u8; 8];
        let n = 1usize << (code & 3);
        let field = b.get_mut(..n).unwrap_or_default();
        if self.read_some(field)? < n {
            return Err(self.truncated());
        }
        Ok(u64::from_le_bytes(b))
    }

    fn varint(&mut self, field: &'static str) -> Result<u64, DeltaError> {
        let at = self.offset;
        let mut v = 0u64;
        for i in 0..10 {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                break;
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DeltaError::OutOfRange {
            what: WHAT,
            field,
            value: v,
            offset: at,
        })
    }

    fn out_of_range(field: &'static str, value: u64, offset: u64) -> DeltaError {
        DeltaError::OutOfRange {
            what: WHAT,
            field,
            value,
            offset,
        }
    }

    /// The next command.
    pub(crate) fn next(&mut self) -> Result<Command, DeltaError> {
        let at = self.offset;
        match self.byte()? {
            cmd @ 0x10..=0x2f => {
                let wo = (cmd >> 2) & 3;
                let wl = cmd & 3;
                let off_at = self.offset;
                let raw = self.fixed(wo)?;
                let offset = if cmd & 0xf0 == CMD_COPY_ABS {
                    raw
                } else {
                    let rel = unzigzag(raw);
                    let offset = i128::from(self.prev_end) + i128::from(rel);
                    u64::try_from(offset)
                        .map_err(|_| Self::out_of_range("copy offset", raw, off_at))?
                };
                let len_at = self.offset;
                let len = self.fixed(wl)?;
                if len == 0 || len > MAX_COPY_LEN {
                    return Err(Self::out_of_range("copy length", len, len_at));
                }
                let end = offset.checked_add(len).ok_or(DeltaError::CopyOutOfRange {
                    offset,
                    len,
                    at,
                })?;
                self.prev_end = end;
                Ok(Command::Copy { offset, len, at })
            }
            cmd @ CMD_LITERAL..=0x03 => {
                let len_at = self.offset;
                let len = self.fixed(cmd - CMD_LITERAL)?;
                if len == 0 || len > MAX_LITERAL_LEN {
                    return Err(Self::out_of_range("literal length", len, len_at));
                }
                Ok(Command::Literal { len })
            }
            b @ CMD_SHORT_LITERAL..=0x7f => Ok(Command::Literal {
                len: u64::from(b - CMD_SHORT_LITERAL) + 1,
            }),
            CMD_END => {
                let len = self.varint("new file length")?;
                let mut h = [0u8; 16];
                if self.read_some(&mut h)? < 16 {
                    return Err(self.truncated());
                }
                Ok(Command::End {
                    len,
                    hash: u128::from_le_bytes(h),
                })
            }
            byte => Err(DeltaError::UnknownCommand { byte, offset: at }),
        }
    }

    /// Reads literal bytes into `buf` (exactly `buf.len()` of them).
    pub(crate) fn read_literal(&mut self, buf: &mut [u8]) -> Result<(), DeltaError> {
        if self.read_some(buf)? < buf.len() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// Errors if anything follows `END`.
    pub(crate) fn expect_eof(&mut self) -> Result<(), DeltaError> {
        let more = self
            .input
            .fill_buf()
            .map_err(DeltaError::io("reading delta"))?;
        if more.is_empty() {
            Ok(())
        } else {
            Err(DeltaError::TrailingData {
                what: WHAT,
                offset: self.offset,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn width_codes_fit_their_values() {
        for (v, code) in [
            (0u64, 0u8),
            (255, 0),
            (256, 1),
            (65_535, 1),
            (65_536, 2),
            (1 << 32, 3),
        ] {
            assert_eq!(width_code(v), code, "{v}");
            let mut b = Vec::new();
            put_fixed(&mut b, v, code);
            let mut d = DELTA_MAGIC.to_vec();
            d.extend_from_slice(&b);
            assert_eq!(DeltaReader::new(&d[..]).unwrap().fixed(code).unwrap(), v);
        }
    }

    #[test]
    fn zigzag_round_trips() {
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
    }

    #[test]
    fn varint_round_trips_and_rejects_overflow() {
        for v in [0u64, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut d = DELTA_MAGIC.to_vec();
            d.extend_from_slice(&b);
            let mut r = DeltaReader::new(&d[..]).unwrap();
            assert_eq!(r.varint("x").unwrap(), v);
        }
        let mut d = DELTA_MAGIC.to_vec();
        d.extend_from_slice(&[0xff; 9]);
        d.push(0x02); // 10th byte may only carry 1 bit
        let mut r = DeltaReader::new(&d[..]).unwrap();
        assert!(matches!(r.varint("x"), Err(DeltaError::OutOfRange { .. })));
    }
}
