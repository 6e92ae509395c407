//! The delta format: how a new file is rebuilt from copies of the base and literal bytes.
//!
//! # Layout (version 1)
//! A header, then commands, each starting with one command byte, the last being `END`.
//! Integers marked *varint* are unsigned LEB128 (7 bits per byte, low first, at most 10
//! bytes); *zigzag* maps signed to unsigned (`0, -1, 1, -2 → 0, 1, 2, 3`) before LEB128.
//!
//! | bytes | field | valid values |
//! |---|---|---|
//! | 4 | magic | `b"pbxD"` |
//! | 1 | version | `1` |
//! | 1 | `COPY` = `0x01` | |
//! | varint, zigzag | base offset minus the end of the previous copy (0 before the first) | result in `0..=base length` |
//! | varint | length | `1..=2^62`, and `offset + length <= base length` |
//! | 1 | `LITERAL` = `0x02` | |
//! | varint | length `k` | `1..=`[`MAX_LITERAL_LEN`] (1 MiB) |
//! | `k` | the bytes | |
//! | 1 | `END` = `0x00` | must be the last command |
//! | varint | length of the new file | must equal the bytes produced |
//! | 16 | XXH3-128 of the new file, little-endian | must equal the hash of the bytes produced |
//!
//! Adjacent copies are merged into one command, so an unchanged file is one `COPY` and `END`.
//! Offsets are relative to the previous copy's end, so in-order copies cost 1 byte of offset.
//! Nothing may follow `END`.
use std::io::{self, BufRead, Write};

use super::error::DeltaError;

/// Magic bytes at the start of a delta.
pub const DELTA_MAGIC: [u8; 4] = *b"pbxD";
/// The delta format version this build writes and reads.
pub const DELTA_VERSION: u8 = 1;
/// Longest literal one command may carry; longer runs are split.
pub const MAX_LITERAL_LEN: u64 = 1 << 20;
/// Longest copy one command may carry.
pub const MAX_COPY_LEN: u64 = 1 << 62;
pub(crate) const CMD_END: u8 = 0x00;
pub(crate) const CMD_COPY: u8 = 0x01;
pub(crate) const CMD_LITERAL: u8 = 0x02;
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
        buf.push(DELTA_VERSION);
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
            self.buf.push(CMD_COPY);
            put_varint(
                &mut self.buf,
                zigzag(off.wrapping_sub(self.prev_end) as i64),
            );
            put_varint(&mut self.buf, len);
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
            self.buf.push(CMD_LITERAL);
            put_varint(&mut self.buf, chunk.len() as u64);
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
        if magic[..got] != DELTA_MAGIC[..got] {
            return Err(DeltaError::BadMagic {
                what: WHAT,
                found: magic,
            });
        }
        if got < 4 {
            return Err(r.truncated());
        }
        let version = r.byte()?;
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
            CMD_COPY => {
                let off_at = self.offset;
                let rel = unzigzag(self.varint("copy offset")?);
                let offset = i128::from(self.prev_end) + i128::from(rel);
                let offset = u64::try_from(offset)
                    .map_err(|_| Self::out_of_range("copy offset", rel as u64, off_at))?;
                let len_at = self.offset;
                let len = self.varint("copy length")?;
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
            CMD_LITERAL => {
                let len_at = self.offset;
                let len = self.varint("literal length")?;
                if len == 0 || len > MAX_LITERAL_LEN {
                    return Err(Self::out_of_range("literal length", len, len_at));
                }
                Ok(Command::Literal { len })
            }
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
            d.push(DELTA_VERSION);
            d.extend_from_slice(&b);
            let mut r = DeltaReader::new(&d[..]).unwrap();
            assert_eq!(r.varint("x").unwrap(), v);
        }
        let mut d = DELTA_MAGIC.to_vec();
        d.push(DELTA_VERSION);
        d.extend_from_slice(&[0xff; 9]);
        d.push(0x02); // 10th byte may only carry 1 bit
        let mut r = DeltaReader::new(&d[..]).unwrap();
        assert!(matches!(r.varint("x"), Err(DeltaError::OutOfRange { .. })));
    }
}
