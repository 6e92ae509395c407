//! Optional zstd compression of file data frames.
//!
//! Negotiation: each side sets [`FEATURE_ZSTD`] in its [`super::msg::Hello`] `features` when it
//! is configured for compression (the server: a [`Level`]; the puller: per sync set). Only when
//! both hellos carry it does the server send [`super::msg::Msg::Compressed`] frames; a peer that
//! does not set it gets plain `Data` frames. The hellos are covered by the authenticated
//! handshake transcript, so a man in the middle cannot switch compression on or off.
//!
//! What is compressed: every `Data` frame of at least [`MIN_COMPRESS`] bytes, which carries either
//! new-file data or a delta stream (its literals), and only when the result is smaller. Each
//! frame is compressed on its own (bulk API, one reused context per connection), so a frame can
//! be decoded without any other.
//!
//! Bounds (a decompression bomb cannot make us allocate): a compressed frame announces its
//! decompressed length, which must not exceed [`super::frame::MAX_FRAME`]; exactly that much is
//! allocated and zstd decodes into it in one pass, failing if the data would expand beyond it,
//! and the decoder's window is capped at [`MAX_WINDOW_LOG`]. A frame that does not decode to
//! exactly its announced length is an error, before any of it reaches a file.
//!
//! zstd (the C library, built by the `zstd-sys` crate with `cc`; no cmake, no bindgen) rather
//! than lz4_flex: it builds here without trouble, and at its default level it compresses
//! configuration text about twice as well as LZ4 while still decoding at GB/s. The legacy
//! (pre-1.0) formats are not built in, which keeps the receive path small.
use super::TransferError;

/// Feature bit in the hello: "I can send/receive zstd-compressed data frames".
pub const FEATURE_ZSTD: u32 = 1;

/// Data frames shorter than this are sent as they are (the zstd frame header and the
/// `Compressed` message would eat most of the gain).
pub const MIN_COMPRESS: usize = 64;

/// Largest zstd window accepted (log2 bytes, 8 MiB: above what a 4 MiB frame needs, far below
/// zstd's 128 MiB default limit).
pub const MAX_WINDOW_LOG: u32 = 23;

/// A zstd compression level, 1 (fastest) to 19.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level(i32);

impl Level {
    /// zstd's own default, a good speed/ratio balance for text.
    pub const DEFAULT: Level = Level(3);

    /// A level in 1..=19.
    pub fn new(level: i32) -> Result<Level, TransferError> {
        if (1..=19).contains(&level) {
            Ok(Level(level))
        } else {
            Err(TransferError::Compression(format!(
                "level {level} is out of range 1..=19"
            )))
        }
    }

    /// The numeric level.
    pub fn get(self) -> i32 {
        self.0
    }
}

impl Default for Level {
    fn default() -> Self {
        Level::DEFAULT
    }
}

/// A compression context (reused for every frame of a connection).
pub struct Compressor {
    inner: zstd::bulk::Compressor<'static>,
}

impl Compressor {
    /// A context at `level`.
    pub fn new(level: Level) -> Result<Compressor, TransferError> {
        let inner = zstd::bulk::Compressor::new(level.get())
            .map_err(|e| TransferError::Compression(format!("creating a compressor: {e}")))?;
        Ok(Compressor { inner })
    }

    /// The compressed form of `data`, or `None` when compressing does not pay (too short,
    /// incompressible, or the library failed: the data then goes as it is).
    pub fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < MIN_COMPRESS {
            return None;
        }
        match self.inner.compress(data) {
            Ok(c) if c.len() < data.len() => Some(c),
            Ok(_) => None,
            Err(e) => {
                log::debug!("zstd compression failed ({e}); sending the data as it is");
                None
            }
        }
    }
}

/// A decompression context (reused for every frame of a connection).
pub struct Decompressor {
    inner: zstd::bulk::Decompressor<'static>,
}

impl Decompressor {
    /// A context with the window capped at [`MAX_WINDOW_LOG`].
    pub fn new() -> Result<Decompressor, TransferError> {
        let mut inner = zstd::bulk::Decompressor::new()
            .map_err(|e| TransferError::Compression(format!("creating a decompressor: {e}")))?;
        inner
            .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(MAX_WINDOW_LOG))
            .map_err(|e| TransferError::Compression(format!("capping the window: {e}")))?;
        Ok(Decompressor { inner })
    }

    /// Decompresses one frame's data that announced `raw_len` bytes, refusing more than `max`
    /// (checked before allocating) and any length other than the announced one.
    pub fn decompress(
        &mut self,
        data: &[u8],
        raw_len: u32,
        max: usize,
    ) -> Result<Vec<u8>, TransferError> {
        let want = raw_len as usize;
        if want > max {
            return Err(TransferError::Compression(format!(
                "a frame announces {want} decompressed bytes, more than the limit of {max}"
            )));
        }
        let mut out = vec![0u8; want];
        let got = self
            .inner
            .decompress_to_buffer(data, &mut out[..])
            .map_err(|e| {
                TransferError::Compression(format!(
                    "a frame does not decompress into its announced {want} bytes: {e}"
                ))
            })?;
        if got != want {
            return Err(TransferError::Compression(format!(
                "a frame decompressed to {got} bytes, it announced {want}"
            )));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("extension.{i}.name = \"desk {}\"\n", i % 97).into_bytes())
            .collect();
        let mut c = Compressor::new(Level::DEFAULT).unwrap();
        let z = c.compress(&text).expect("text compresses");
        assert!(z.len() * 4 < text.len(), "{} -> {}", text.len(), z.len());
        let mut d = Decompressor::new().unwrap();
        let len = text.len() as u32;
        assert_eq!(d.decompress(&z, len, 4 << 20).unwrap(), text);
        // Announcing less than it expands to: refused, not truncated.
        assert!(matches!(
            d.decompress(&z, len - 1, 4 << 20),
            Err(TransferError::Compression(_))
        ));
        // Announcing more: the length mismatch is caught.
        assert!(matches!(
            d.decompress(&z, len + 1, 4 << 20),
            Err(TransferError::Compression(_))
        ));
        // Announcing more than the limit: refused before allocating.
        assert!(matches!(
            d.decompress(&z, u32::MAX, 4 << 20),
            Err(TransferError::Compression(_))
        ));
        // Garbage.
        assert!(matches!(
            d.decompress(b"not zstd at all", 100, 4 << 20),
            Err(TransferError::Compression(_))
        ));
        // Short or incompressible data is not compressed.
        assert!(c.compress(b"short").is_none());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                // xorshift64: no structure for zstd to find
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(c.compress(&noise).is_none());
        assert!(Level::new(0).is_err() && Level::new(20).is_err());
        assert_eq!(Level::new(19).unwrap().get(), 19);
    }

    #[test]
    fn a_bomb_is_refused_without_allocating_its_size() {
        // 64 MiB of zeros compress to a few KiB; announced as 1 MiB it must fail.
        let zeros = vec![0u8; 64 << 20];
        let z = zstd::bulk::compress(&zeros, 3).unwrap();
        assert!(z.len() < 64 << 10);
        let mut d = Decompressor::new().unwrap();
        assert!(matches!(
            d.decompress(&z, 1 << 20, 4 << 20),
            Err(TransferError::Compression(_))
        ));
    }
}
