//! Frames: a 4-byte big-endian length, then the encoded [`Msg`], then (once the handshake has
//! set session keys) a 16-byte tag.
//!
//! The length is checked against the reader's limit *before* anything is allocated, so a peer
//! cannot make us allocate by lying: before authentication the limit is [`MAX_HANDSHAKE_FRAME`]
//! (an unauthenticated peer gets a few KiB at most), afterwards [`MAX_FRAME`]. A frame that ends
//! early is [`TransferError::Closed`]; one that does not decode is [`TransferError::Codec`].
//!
//! The tag is keyed BLAKE3 (a PRF, usable as a MAC) over a per-direction sequence number and the
//! payload, with per-direction keys derived in [`super::auth`]: replayed, reordered, dropped or
//! altered frames fail with [`TransferError::BadTag`]. BLAKE3 rather than HMAC-SHA256 here
//! because it runs at several GB/s and every byte of file data passes through it.
//!
//! # Hashed data
//!
//! Most file bytes travel in [`Msg::HashedData`] frames, whose tag covers the sequence number,
//! the variant and the length but not the bytes. They carry files the receiver hashes itself,
//! every byte, and checks against the BLAKE3 in the manifest (which came in tagged frames): a
//! whole literal file or a delta stream. An altered byte then fails that check instead of the
//! tag (the file is refused, the round fails, nothing is installed: as with a bad tag), frames
//! still cannot be dropped, replayed, reordered or resized unnoticed (sequence number and
//! length are tagged), and the bulk of a transfer is hashed once on each side instead of twice
//! (tag and content) on the receiver and once (tag) on the sender. Data whose integrity rests on
//! the sender's word, the tail of a resumed file whose hash the receiver takes from the sender,
//! goes in tagged [`Msg::Data`] frames; the receiver refuses `HashedData` there.
//!
//! Compression ([`super::compress`]) is also done here, once negotiated: the writer turns a
//! `Data` message into `Compressed` when that is smaller, the reader turns it back (bounded by
//! [`MAX_FRAME`]), so the round logic only ever sees `Data`.
use std::io::{BufWriter, Read, Write};

use super::compress::{Compressor, Decompressor, Level};
use super::msg::Msg;
use super::TransferError;
use crate::codec;

/// Largest frame accepted after authentication (1 MiB data chunks plus headroom; a manifest part
/// is cut well below it).
pub const MAX_FRAME: usize = 4 << 20;
/// Largest frame accepted before authentication.
pub const MAX_HANDSHAKE_FRAME: usize = 4 << 10;
/// Read buffer of a [`FrameReader`].
const READ_BUF: usize = 64 << 10;
/// Length of the per-frame tag.
pub const TAG_LEN: usize = 16;
/// Bytes read ahead of the rest of a payload: enough for the header of a bulk message (the
/// variant, then a length of at most 9 bytes).
const HEAD: usize = 16;

/// A per-direction MAC state: key and next sequence number.
#[derive(Clone)]
pub struct FrameMac {
    key: [u8; 32],
    seq: u64,
}

impl FrameMac {
    /// Starts a direction with its derived key.
    pub fn new(key: [u8; 32]) -> Self {
        FrameMac { key, seq: 0 }
    }

    fn tag(&mut self, payload: &[u8]) -> [u8; TAG_LEN] {
        self.tag_parts(&[payload])
    }

    /// The tag of a payload given in consecutive parts (the same as of their concatenation:
    /// BLAKE3 is a stream).
    fn tag_parts(&mut self, parts: &[&[u8]]) -> [u8; TAG_LEN] {
        let mut h = blake3::Hasher::new_keyed(&self.key);
        h.update(&self.seq.to_le_bytes());
        for p in parts {
            h.update(p);
        }
        self.seq = self.seq.wrapping_add(1);
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&h.finalize().as_bytes()[..TAG_LEN]);
        out
    }
}

/// Decodes one frame payload (without length prefix and tag) into a message: the entry point
/// of the fuzz target.
pub fn decode_payload(payload: &[u8]) -> Result<Msg, TransferError> {
    Ok(codec::decode(payload)?)
}

/// Reads frames from a byte stream.
pub struct FrameReader<R> {
    /// Buffered: a small file is three or four small frames, which would otherwise cost two
    /// reads each (length, then body); large data frames bypass the buffer.
    inner: std::io::BufReader<R>,
    max: usize,
    mac: Option<FrameMac>,
    bytes: u64,
    buf: Vec<u8>,
    unzstd: Option<Box<Decompressor>>,
    /// A buffer handed back by the consumer of a `Data` message ([`FrameReader::recycle`]),
    /// reused for the next one instead of a fresh allocation per 256 KiB chunk.
    spare: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// A reader with the handshake limit and no tag.
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner: std::io::BufReader::with_capacity(READ_BUF, inner),
            max: MAX_HANDSHAKE_FRAME,
            mac: None,
            bytes: 0,
            buf: Vec::new(),
            unzstd: None,
            spare: Vec::new(),
        }
    }

    /// Accepts `Compressed` data frames from now on (compression was negotiated); before, they
    /// are a protocol error.
    pub fn accept_compressed(&mut self) -> Result<(), TransferError> {
        self.unzstd = Some(Box::new(Decompressor::new()?));
        Ok(())
    }

    /// Gives back the bytes of a `Data` message once used: the next one is read into them.
    pub fn recycle(&mut self, bytes: Vec<u8>) {
        if bytes.capacity() > self.spare.capacity() {
            self.spare = bytes;
        }
    }

    /// After authentication: require tags and allow [`MAX_FRAME`].
    pub fn authenticated(&mut self, mac: FrameMac) {
        self.mac = Some(mac);
        self.max = MAX_FRAME;
    }

    /// Bytes read so far (prefixes, payloads and tags).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Reads the next message; `Ok(None)` on a clean end of stream between frames.
    pub fn read_opt(&mut self) -> Result<Option<Msg>, TransferError> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(TransferError::Closed("in a frame header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TransferError::io("reading frame", e)),
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        let tag_len = if self.mac.is_some() { TAG_LEN } else { 0 };
        if len > self.max || len < tag_len {
            return Err(TransferError::FrameTooLarge {
                len: len as u64,
                max: self.max,
            });
        }
        let body_err = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                TransferError::Closed("in a frame body")
            } else {
                TransferError::io("reading frame", e)
            }
        };
        let payload_len = len - tag_len;
        let mut head = [0u8; HEAD];
        let h = payload_len.min(HEAD);
        let head = head.get_mut(..h).unwrap_or_default();
        self.inner.read_exact(head).map_err(body_err)?;
        self.bytes += 4 + len as u64;
        // A bulk frame, file data: its bytes are read straight into the recycled buffer (one
        // copy out of the socket, no zeroing; see Bulk). Anything else decodes below.
        if let Some((kind, n, body_len)) =
            bulk_header_of(head).filter(|&(_, n, b)| n.checked_add(b) == Some(payload_len))
        {
            let mut bytes = std::mem::take(&mut self.spare);
            // Resized without clearing: what a recycled buffer holds is overwritten below, so
            // only growth is zeroed.
            if bytes.len() > body_len {
                bytes.truncate(body_len);
            } else {
                bytes.resize(body_len, 0);
            }
            let (header, early) = head.split_at(n);
            let (first, rest) = bytes.split_at_mut(early.len().min(body_len));
            first.copy_from_slice(early.get(..first.len()).unwrap_or_default());
            self.inner.read_exact(rest).map_err(body_err)?;
            let mut tag = [0u8; TAG_LEN];
            let tag = tag.get_mut(..tag_len).unwrap_or_default();
            self.inner.read_exact(tag).map_err(body_err)?;
            if let Some(mac) = &mut self.mac {
                let want = match kind {
                    Bulk::Data => mac.tag_parts(&[header, &bytes]),
                    Bulk::Hashed => mac.tag_parts(&[header]),
                };
                // Constant-time comparison: a timing oracle must not reveal a valid tag.
                if !constant_time_eq(&want, tag) {
                    return Err(TransferError::BadTag);
                }
            }
            return Ok(Some(kind.message(bytes)));
        }
        self.buf.clear();
        self.buf.extend_from_slice(head);
        self.buf.resize(len, 0);
        self.inner
            .read_exact(self.buf.get_mut(h..).unwrap_or_default())
            .map_err(body_err)?;
        let (payload, tag) = self.buf.split_at(payload_len);
        if let Some(mac) = &mut self.mac {
            let want = mac.tag(payload);
            // Constant-time comparison: a timing oracle must not reveal a valid tag.
            if !constant_time_eq(&want, tag) {
                return Err(TransferError::BadTag);
            }
        }
        match decode_payload(payload)? {
            Msg::Compressed { raw_len, bytes } => match &mut self.unzstd {
                Some(d) => Ok(Some(Msg::Data {
                    bytes: d.decompress(&bytes, raw_len, MAX_FRAME)?,
                })),
                None => Err(TransferError::Protocol(
                    "a compressed data frame, but compression was not negotiated".into(),
                )),
            },
            msg => Ok(Some(msg)),
        }
    }

    /// Reads the next message; end of stream is an error.
    pub fn read(&mut self) -> Result<Msg, TransferError> {
        self.read_opt()?
            .ok_or(TransferError::Closed("before the expected message"))
    }
}

/// The two bulk messages, file data, which the fast paths read and write without the generic
/// codec: their encoding is a short header (the variant, then the length as bincode's
/// variable-length integer) followed by the bytes themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bulk {
    /// [`Msg::Data`]: the tag covers the bytes.
    Data,
    /// [`Msg::HashedData`]: the tag covers the header only (see the module documentation).
    Hashed,
}

impl Bulk {
    /// The variant bytes that start every encoding of this message: its encoding with no
    /// bytes, less the zero length (one byte, the last). Found once; empty if the encoding is
    /// not of that form, and then no frame takes the fast paths.
    fn variant(self) -> &'static [u8] {
        static DATA: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        static HASHED: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let cell = match self {
            Bulk::Data => &DATA,
            Bulk::Hashed => &HASHED,
        };
        cell.get_or_init(|| match codec::encode(&self.message(Vec::new())) {
            Ok(mut v) if v.last() == Some(&0) => {
                v.pop();
                v
            }
            _ => Vec::new(),
        })
    }

    fn message(self, bytes: Vec<u8>) -> Msg {
        match self {
            Bulk::Data => Msg::Data { bytes },
            Bulk::Hashed => Msg::HashedData { bytes },
        }
    }
}

/// The encoding of a bulk message up to its bytes, built on the stack: the variant, then the
/// length as bincode's variable-length integer (one byte below 251, else a marker and 2, 4 or 8
/// little-endian bytes; the same form [`bulk_header_of`] reads). `None` when the variant is
/// unknown. Tested byte for byte against the encoder.
fn bulk_header(kind: Bulk, len: usize) -> Option<([u8; HEAD], usize)> {
    let variant = kind.variant();
    let mut h = [0u8; HEAD];
    let at = variant.len();
    if at == 0 || at + 9 > h.len() {
        return None;
    }
    h.get_mut(..at)?.copy_from_slice(variant);
    let len = len as u64;
    let width = if len < 251 {
        *h.get_mut(at)? = len as u8;
        1
    } else if let Ok(v) = u16::try_from(len) {
        *h.get_mut(at)? = 251;
        h.get_mut(at + 1..at + 3)?.copy_from_slice(&v.to_le_bytes());
        3
    } else if let Ok(v) = u32::try_from(len) {
        *h.get_mut(at)? = 252;
        h.get_mut(at + 1..at + 5)?.copy_from_slice(&v.to_le_bytes());
        5
    } else {
        *h.get_mut(at)? = 253;
        h.get_mut(at + 1..at + 9)?
            .copy_from_slice(&len.to_le_bytes());
        9
    };
    Some((h, at + width))
}

/// Whether `head`, the start of a payload, is the header of a bulk message: which one, the
/// header's length and the length of the bytes it announces (the header rebuilt from that
/// length must be `head`'s start, so only the encoder's own form is taken). `None` for
/// anything else, which the generic decoder then reads (and rejects if invalid).
fn bulk_header_of(head: &[u8]) -> Option<(Bulk, usize, usize)> {
    [Bulk::Data, Bulk::Hashed].into_iter().find_map(|kind| {
        let variant = kind.variant();
        if variant.is_empty() {
            return None;
        }
        let rest = head.strip_prefix(variant)?;
        let (&first, tail) = rest.split_first()?;
        let len = match first {
            0..=250 => u64::from(first),
            251 => u64::from(u16::from_le_bytes(tail.get(..2)?.try_into().ok()?)),
            252 => u64::from(u32::from_le_bytes(tail.get(..4)?.try_into().ok()?)),
            253 => u64::from_le_bytes(tail.get(..8)?.try_into().ok()?),
            _ => return None,
        };
        let len = usize::try_from(len).ok()?;
        let (header, n) = bulk_header(kind, len)?;
        head.starts_with(header.get(..n)?).then_some((kind, n, len))
    })
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    // black_box keeps the optimiser from turning the fold into an early exit.
    std::hint::black_box(diff) == 0
}

/// Writes frames to a byte stream (buffered; call [`FrameWriter::flush`] at turn changes).
pub struct FrameWriter<W: Write> {
    inner: BufWriter<W>,
    mac: Option<FrameMac>,
    bytes: u64,
    zstd: Option<Box<Compressor>>,
}

impl<W: Write> FrameWriter<W> {
    /// A writer without tags.
    pub fn new(inner: W) -> Self {
        FrameWriter {
            inner: BufWriter::with_capacity(256 << 10, inner),
            mac: None,
            bytes: 0,
            zstd: None,
        }
    }

    /// Compresses `Data` messages at `level` from now on, where that makes them smaller (only
    /// after compression was negotiated in the hellos).
    pub fn compress_data(&mut self, level: Level) -> Result<(), TransferError> {
        self.zstd = Some(Box::new(Compressor::new(level)?));
        Ok(())
    }

    /// After authentication: tag every frame.
    pub fn authenticated(&mut self, mac: FrameMac) {
        self.mac = Some(mac);
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Encodes and writes one message (buffered).
    pub fn write(&mut self, msg: &Msg) -> Result<(), TransferError> {
        if let Msg::HashedData { bytes } = msg {
            return self.write_hashed_data(bytes);
        }
        if let (Some(z), Msg::Data { bytes }) = (&mut self.zstd, msg) {
            if let (Some(c), Ok(raw_len)) = (z.compress(bytes), u32::try_from(bytes.len())) {
                let payload = codec::encode(&Msg::Compressed { raw_len, bytes: c })?;
                return self.write_payload(&payload);
            }
        }
        let payload = codec::encode(msg)?;
        self.write_payload(&payload)
    }

    /// Writes `Msg::Data { bytes }` without building the message: its encoding is a short
    /// header (the variant, then the length) followed by the bytes themselves, so the header
    /// is encoded alone and the bytes go from the caller's buffer to the stream, tagged in
    /// parts. Byte for byte the frame [`FrameWriter::write`] makes of that message (tested),
    /// without copying a 256 KiB chunk twice into fresh buffers. With compression on, the
    /// message is built and compressed as before.
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<(), TransferError> {
        if self.zstd.is_some() {
            return self.write(&Msg::Data {
                bytes: bytes.to_vec(),
            });
        }
        self.write_bulk(Bulk::Data, bytes)
    }

    /// Writes `Msg::HashedData { bytes }` like [`FrameWriter::write_data`], its tag over the
    /// header only: for bytes of a file the receiver hashes whole itself (see the module
    /// documentation). With compression on, a tagged `Compressed` frame as for `Data`.
    pub fn write_hashed_data(&mut self, bytes: &[u8]) -> Result<(), TransferError> {
        if self.zstd.is_some() {
            return self.write_data(bytes);
        }
        self.write_bulk(Bulk::Hashed, bytes)
    }

    fn write_bulk(&mut self, kind: Bulk, bytes: &[u8]) -> Result<(), TransferError> {
        match bulk_header(kind, bytes.len()) {
            Some((header, n)) => {
                let header = header.get(..n).unwrap_or_default();
                let tagged = match kind {
                    Bulk::Data => 2,
                    Bulk::Hashed => 1,
                };
                self.write_parts(&[header, bytes], tagged)
            }
            None => self.write(&kind.message(bytes.to_vec())),
        }
    }

    /// Writes an already encoded payload (tests use this to send hostile frames).
    pub fn write_payload(&mut self, payload: &[u8]) -> Result<(), TransferError> {
        self.write_parts(&[payload], 1)
    }

    /// Writes one frame whose payload is `parts` one after the other: length, the parts, the
    /// tag over the first `tagged` of them.
    fn write_parts(&mut self, parts: &[&[u8]], tagged: usize) -> Result<(), TransferError> {
        let tag = self
            .mac
            .as_mut()
            .map(|m| m.tag_parts(parts.get(..tagged).unwrap_or(parts)));
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + tag.map_or(0, |t| t.len());
        let len32 = u32::try_from(len).map_err(|_| TransferError::FrameTooLarge {
            len: len as u64,
            max: MAX_FRAME,
        })?;
        let w = |r: std::io::Result<()>| r.map_err(|e| TransferError::io("writing frame", e));
        w(self.inner.write_all(&len32.to_be_bytes()))?;
        for p in parts {
            w(self.inner.write_all(p))?;
        }
        if let Some(t) = tag {
            w(self.inner.write_all(&t))?;
        }
        self.bytes += 4 + len as u64;
        Ok(())
    }

    /// Flushes buffered frames to the stream.
    pub fn flush(&mut self) -> Result<(), TransferError> {
        self.inner
            .flush()
            .map_err(|e| TransferError::io("writing frame", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_tags_and_tamper() {
        let key = [7u8; 32];
        let mut w = FrameWriter::new(Vec::new());
        w.authenticated(FrameMac::new(key));
        let m1 = Msg::BatchEnd;
        let m2 = Msg::Data {
            bytes: vec![1, 2, 3],
        };
        w.write(&m1).unwrap();
        w.write(&m2).unwrap();
        w.flush().unwrap();
        let bytes = w.inner.into_inner().unwrap();
        let mut r = FrameReader::new(&bytes[..]);
        r.authenticated(FrameMac::new(key));
        assert_eq!(r.read().unwrap(), m1);
        assert_eq!(r.read().unwrap(), m2);
        assert!(r.read_opt().unwrap().is_none());
        assert_eq!(r.bytes(), bytes.len() as u64);

        // flip a payload bit of the second frame
        let mut bad = bytes.clone();
        let last = bad.len() - TAG_LEN - 1;
        bad[last] ^= 1;
        let mut r = FrameReader::new(&bad[..]);
        r.authenticated(FrameMac::new(key));
        r.read().unwrap();
        assert!(matches!(r.read(), Err(TransferError::BadTag)));

        // dropping the first frame breaks the sequence
        let first_len = 4 + u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        let mut r = FrameReader::new(&bytes[first_len..]);
        r.authenticated(FrameMac::new(key));
        assert!(matches!(r.read(), Err(TransferError::BadTag)));
    }

    #[test]
    fn compressed_data_round_trip_and_refusals() {
        let text: Vec<u8> = b"voice/prompt.wav config line = value\n".repeat(5000);
        let data = Msg::Data {
            bytes: text.clone(),
        };
        let mut w = FrameWriter::new(Vec::new());
        w.compress_data(Level::DEFAULT).unwrap();
        w.write(&data).unwrap();
        w.write(&Msg::BatchEnd).unwrap();
        w.flush().unwrap();
        let wire = w.inner.into_inner().unwrap();
        assert!(
            wire.len() * 10 < text.len(),
            "{} bytes on the wire",
            wire.len()
        );
        // A reader that negotiated it gets the original Data back.
        let mut r = FrameReader::new(&wire[..]);
        r.accept_compressed().unwrap();
        assert_eq!(r.read().unwrap(), data);
        assert_eq!(r.read().unwrap(), Msg::BatchEnd);
        // One that did not refuses the frame.
        let mut r = FrameReader::new(&wire[..]);
        assert!(matches!(r.read(), Err(TransferError::Protocol(_))));
        // A garbage "compressed" frame is a clear error.
        let mut w = FrameWriter::new(Vec::new());
        let bad = codec::encode(&Msg::Compressed {
            raw_len: 1000,
            bytes: vec![0x28, 0xB5, 0x2F, 0xFD, 1, 2, 3, 4, 5],
        })
        .unwrap();
        w.write_payload(&bad).unwrap();
        w.flush().unwrap();
        let wire = w.inner.into_inner().unwrap();
        let mut r = FrameReader::new(&wire[..]);
        r.accept_compressed().unwrap();
        assert!(matches!(r.read(), Err(TransferError::Compression(_))));
    }

    #[test]
    fn write_data_is_the_same_frame_as_write() {
        let key = [9u8; 32];
        for len in [
            0usize,
            1,
            250,
            251,
            252,
            65_535,
            65_536,
            256 << 10,
            (1 << 20) + 3,
        ] {
            let bytes: Vec<u8> = (0..len as u32).map(|i| (i % 251) as u8).collect();
            for kind in [Bulk::Data, Bulk::Hashed] {
                let msg = kind.message(bytes.clone());
                let mut a = FrameWriter::new(Vec::new());
                let mut b = FrameWriter::new(Vec::new());
                a.authenticated(FrameMac::new(key));
                b.authenticated(FrameMac::new(key));
                // Twice each, so the sequence numbers in the tags are exercised too.
                for _ in 0..2 {
                    a.write(&msg).unwrap();
                    match kind {
                        Bulk::Data => b.write_data(&bytes).unwrap(),
                        Bulk::Hashed => b.write_hashed_data(&bytes).unwrap(),
                    }
                }
                a.flush().unwrap();
                b.flush().unwrap();
                assert_eq!(a.bytes(), b.bytes(), "{len}");
                let (wa, wb) = (a.inner.into_inner().unwrap(), b.inner.into_inner().unwrap());
                assert!(wa == wb, "frames differ for {len} bytes");
                // The payload is byte for byte the encoder's.
                let payload = codec::encode(&msg).unwrap();
                assert!(wb.get(4..4 + payload.len()) == Some(&payload[..]), "{len}");
                let mut r = FrameReader::new(&wb[..]);
                r.authenticated(FrameMac::new(key));
                assert_eq!(r.read().unwrap(), msg);
                // The fast path of the reader takes what the generic decoder takes.
                let (k, n, body) = bulk_header_of(&payload[..payload.len().min(HEAD)]).unwrap();
                assert_eq!((k, body), (kind, len));
                assert_eq!(payload.len(), n + len);
                assert_eq!(decode_payload(&payload).unwrap(), msg);
                let mut recycled = r.read().unwrap();
                if let Msg::Data { bytes: b } | Msg::HashedData { bytes: b } = &mut recycled {
                    r.recycle(std::mem::take(b));
                }
                assert_eq!(recycled, kind.message(Vec::new()));
                assert!(r.read_opt().unwrap().is_none());
            }
        }
        // Not a bulk payload: left to the generic decoder.
        let other = codec::encode(&Msg::BatchEnd).unwrap();
        assert_eq!(bulk_header_of(&other), None);
        let lying = |extra: i32| {
            let mut p = codec::encode(&Msg::HashedData {
                bytes: vec![1, 2, 3],
            })
            .unwrap();
            if extra > 0 {
                p.push(0);
            } else {
                p.truncate(p.len() - 2);
            }
            let mut w = FrameWriter::new(Vec::new());
            w.authenticated(FrameMac::new(key));
            w.write_payload(&p).unwrap();
            w.flush().unwrap();
            let mut r = FrameReader::new(std::io::Cursor::new(w.inner.into_inner().unwrap()));
            r.authenticated(FrameMac::new(key));
            r.read()
        };
        // A length that is not the payload's: decoded generically, refused.
        assert!(matches!(lying(1), Err(TransferError::Codec(_))));
        assert!(matches!(lying(-1), Err(TransferError::Codec(_))));
    }

    /// The tag of a `HashedData` frame covers its sequence number, variant and length, not its
    /// bytes (the receiver hashes those itself); a `Data` frame's covers everything.
    #[test]
    fn hashed_data_tag_covers_the_header_only() {
        let key = [5u8; 32];
        let frames = |kind: Bulk| {
            let mut w = FrameWriter::new(Vec::new());
            w.authenticated(FrameMac::new(key));
            w.write(&kind.message(vec![7u8; 1000])).unwrap();
            w.write(&kind.message(vec![8u8; 1000])).unwrap();
            w.flush().unwrap();
            w.inner.into_inner().unwrap()
        };
        let read_all = |wire: &[u8]| -> Result<Vec<Msg>, TransferError> {
            let mut r = FrameReader::new(wire);
            r.authenticated(FrameMac::new(key));
            let mut out = Vec::new();
            while let Some(m) = r.read_opt()? {
                out.push(m);
            }
            Ok(out)
        };
        let frame_len =
            4 + u32::from_be_bytes(frames(Bulk::Data)[..4].try_into().unwrap()) as usize;
        for kind in [Bulk::Data, Bulk::Hashed] {
            let wire = frames(kind);
            assert_eq!(read_all(&wire).unwrap().len(), 2);
            // A body byte flipped: the tag catches it for Data only.
            let mut bad = wire.clone();
            bad[frame_len + 500] ^= 1;
            let got = read_all(&bad);
            match kind {
                Bulk::Data => assert!(matches!(got, Err(TransferError::BadTag))),
                // Delivered altered: the file's hash is the check (see the puller's tests).
                Bulk::Hashed => {
                    let got = got.unwrap();
                    let Msg::HashedData { bytes } = &got[1] else {
                        panic!("{got:?}")
                    };
                    assert_eq!(bytes.iter().filter(|&&b| b != 8).count(), 1);
                }
            }
            // Header (variant and length), order and sequence stay tagged for both.
            let mut bad = wire.clone();
            bad[4] ^= 1;
            assert!(read_all(&bad).is_err(), "{kind:?}: variant");
            let swapped = [&wire[frame_len..], &wire[..frame_len]].concat();
            assert!(
                matches!(read_all(&swapped), Err(TransferError::BadTag)),
                "{kind:?}"
            );
            assert!(
                matches!(read_all(&wire[frame_len..]), Err(TransferError::BadTag)),
                "{kind:?}"
            );
        }
    }

    proptest::proptest! {
        /// Any byte stream, tagged or not: the reader ends in a message or an error, never a
        /// panic, and never hands out more than a frame's worth of bytes.
        #[test]
        fn any_stream_reads_without_panic(wire in proptest::collection::vec(proptest::num::u8::ANY, 0..600), tagged: bool) {
            let mut r = FrameReader::new(&wire[..]);
            if tagged {
                r.authenticated(FrameMac::new([1; 32]));
            }
            while let Ok(Some(m)) = r.read_opt() {
                if let Msg::Data { bytes } | Msg::HashedData { bytes } = &m {
                    proptest::prop_assert!(bytes.len() <= wire.len());
                }
            }
        }

        /// Bulk frames of any sizes and kinds, interleaved with other messages and with their
        /// buffers recycled, read back as written.
        #[test]
        fn bulk_frames_round_trip(sizes in proptest::collection::vec((0usize..70_000, proptest::bool::ANY), 1..8)) {
            let key = [3u8; 32];
            let mut w = FrameWriter::new(Vec::new());
            w.authenticated(FrameMac::new(key));
            let msgs: Vec<Msg> = sizes
                .iter()
                .enumerate()
                .flat_map(|(i, &(len, hashed))| {
                    let bytes: Vec<u8> = (0..len).map(|j| (i * 31 + j) as u8).collect();
                    let kind = if hashed { Bulk::Hashed } else { Bulk::Data };
                    [kind.message(bytes), Msg::FileEnd { hash: [i as u8; 32] }]
                })
                .collect();
            for m in &msgs {
                w.write(m).unwrap();
            }
            w.flush().unwrap();
            let wire = w.inner.into_inner().unwrap();
            let mut r = FrameReader::new(&wire[..]);
            r.authenticated(FrameMac::new(key));
            for m in &msgs {
                let mut got = r.read().unwrap();
                proptest::prop_assert_eq!(&got, m);
                if let Msg::Data { bytes } | Msg::HashedData { bytes } = &mut got {
                    r.recycle(std::mem::take(bytes));
                }
            }
            proptest::prop_assert!(r.read_opt().unwrap().is_none());
        }
    }

    /// A bulk header claiming a length near `usize::MAX` (found by the fuzz target: its sum
    /// with the header's length overflowed, a panic where overflow is checked; unchecked, the
    /// wrapped sum could never equal the frame's length): refused, nothing allocated.
    #[test]
    fn bulk_length_near_the_maximum_is_refused() {
        let wire: &[u8] = &[
            0, 0, 0, 35, 15, 253, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
            255, 255, 255, 217, 219, 217, 217, 217, 217, 217, 217, 217, 217, 217, 0, 8, 0, 24, 0,
            0, 217,
        ];
        let mut r = FrameReader::new(wire);
        assert!(r.read().is_err());
        for kind in [Bulk::Data, Bulk::Hashed] {
            let variant = kind.variant();
            for claim in [u64::MAX, u64::MAX - 8, u64::MAX - variant.len() as u64 - 8] {
                let mut payload = variant.to_vec();
                payload.push(253);
                payload.extend_from_slice(&claim.to_le_bytes());
                payload.extend_from_slice(&[1, 2, 3]);
                let mut w = FrameWriter::new(Vec::new());
                w.write_payload(&payload).unwrap();
                w.flush().unwrap();
                let wire = w.inner.into_inner().unwrap();
                let mut r = FrameReader::new(&wire[..]);
                assert!(r.read().is_err(), "{kind:?} {claim}");
            }
        }
    }

    #[test]
    fn oversized_and_truncated() {
        let mut r = FrameReader::new(&[0xFF, 0xFF, 0xFF, 0xFF][..]);
        assert!(matches!(r.read(), Err(TransferError::FrameTooLarge { .. })));
        let mut r = FrameReader::new(&[0, 0, 0, 10, 1, 2][..]);
        assert!(matches!(r.read(), Err(TransferError::Closed(_))));
        let mut r = FrameReader::new(&[0, 0][..]);
        assert!(matches!(r.read(), Err(TransferError::Closed(_))));
        let mut r = FrameReader::new(&[0, 0, 0, 2, 0xFF, 0xFF][..]);
        assert!(matches!(r.read(), Err(TransferError::Codec(_))));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
