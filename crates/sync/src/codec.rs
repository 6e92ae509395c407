//! The one place that knows the byte encoding: serde + bincode 2 (`standard()` config:
//! little-endian, variable-length integers).
//!
//! bincode is pinned at `=2.0.1` (3.0.0 is a placeholder that refuses to compile, and the crate is
//! unmaintained, RUSTSEC-2025-0141); keeping it behind this module means a later swap touches one
//! file. Decoding is bounded twice: by the input slice (callers never read more than a bounded
//! frame) and by bincode's allocation limit [`DECODE_LIMIT`], so a length field that lies cannot
//! make us allocate more than the frame we already hold. Trailing bytes after a value are an error.
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Upper bound on what bincode may allocate while decoding one value.
pub const DECODE_LIMIT: usize = 64 << 20;

/// An encoding or decoding failure.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded.
    #[error("encode: {0}")]
    Encode(String),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(String),
    /// A valid value was followed by extra bytes.
    #[error("decode: {0} trailing bytes after the value")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_LIMIT>()
}

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decodes exactly one value from `bytes` (no trailing bytes allowed).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (v, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len().saturating_sub(used)));
    }
    Ok(v)
}

/// serde helper for `Vec<u8>` fields: encode as one byte string (a length and a memcpy) instead
/// of a sequence of single-byte elements. Use with `#[serde(with = "crate::codec::bytes")]`.
pub mod bytes {
    use serde::{Deserializer, Serializer};

    /// Serializes as a byte string.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Deserializes a byte string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "super::bytes")]
        data: Vec<u8>,
        n: u64,
    }

    #[test]
    fn round_trip_and_rejects() {
        let t = T {
            data: vec![1, 2, 3],
            n: 300,
        };
        let b = encode(&t).unwrap();
        assert_eq!(decode::<T>(&b).unwrap(), t);
        let mut longer = b.clone();
        longer.push(0);
        assert!(matches!(decode::<T>(&longer), Err(CodecError::Trailing(1))));
        assert!(decode::<T>(&b[..b.len() - 1]).is_err());
        // A byte-string length claiming far more than the input must fail, not allocate.
        let lie = [0xFC, 0xFF, 0xFF, 0xFF, 0x7F, 0];
        assert!(decode::<T>(&lie).is_err());
    }
}
