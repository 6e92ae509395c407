//! The Internet checksum (RFC 1071) and the pseudo-headers VRRPv3 folds into it
//! (RFC 5798 / RFC 9568 section 5.2.8).
//!
//! Sums are kept unfolded in a `u64` while bytes are added, eight or sixteen at a time: the
//! one's complement sum is associative and commutative (RFC 1071 section 2), so 32-bit halves of
//! big-endian 64-bit words can be added and folded to 16 bits once, at the end.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::PROTOCOL;

/// Adds `data`, read as big-endian 16-bit words (an odd last byte padded with zero, RFC 1071
/// section 4.1), to the unfolded sum `acc`.
///
/// `acc` cannot overflow for any slice that fits in memory: each 16-byte step adds at most
/// 4 * (2^32 - 1).
#[inline]
pub(crate) fn add(mut acc: u64, data: &[u8]) -> u64 {
    let (blocks, rest) = data.as_chunks::<16>();
    let mut acc2 = 0u64;
    for block in blocks {
        // Four 32-bit lanes of one big-endian 128-bit load, split over two accumulators.
        let x = u128::from_be_bytes(*block);
        acc += u64::from((x >> 96) as u32) + u64::from((x >> 64) as u32);
        acc2 += u64::from((x >> 32) as u32) + u64::from(x as u32);
    }
    acc += acc2;
    let (words, rest) = rest.as_chunks::<4>();
    for word in words {
        acc += u64::from(u32::from_be_bytes(*word));
    }
    let (pairs, rest) = rest.as_chunks::<2>();
    for pair in pairs {
        acc += u64::from(u16::from_be_bytes(*pair));
    }
    if let Some(&last) = rest.first() {
        acc += u64::from(last) << 8;
    }
    acc
}

/// Folds an unfolded sum to 16 bits with end-around carry (RFC 1071 section 4.1).
#[inline]
pub(crate) fn fold(sum: u64) -> u16 {
    // 64 to 32 bits: add the halves, then the carry (after a carry out the low half is at
    // most 2^32 - 2, so adding it back cannot carry again).
    let (low, carry) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let sum = low + u32::from(carry);
    // 32 to 16 bits: adding the value to itself rotated by 16 leaves in the upper half
    // high + low + the carry out of the lower half, which is the end-around carry.
    (sum.wrapping_add(sum.rotate_left(16)) >> 16) as u16
}

/// The one's complement sum of `data` (not complemented), as in smoltcp's `checksum::data`.
#[inline]
pub fn data(data: &[u8]) -> u16 {
    fold(add(0, data))
}

/// [`data`] for a slice whose length is a multiple of four, as every validated VRRP message
/// is (the length check comes first), summed a 32-bit word at a time. A length that is not a
/// multiple of four still gives the right sum through [`data`].
#[inline(always)]
pub fn data_words(data: &[u8]) -> u16 {
    let (words, rest) = data.as_chunks::<4>();
    if !rest.is_empty() {
        return self::data(data);
    }
    fold_words(add_words(0, words))
}

/// Adds whole 32-bit words to a sum kept as in [`fold_words`].
///
/// The one's complement sum is independent of byte order (RFC 1071 section 2(B)) and may be
/// taken in 64-bit words with end-around carry (section 2(C)): pairs of words are read as one
/// native-endian 64-bit word and added into a 128-bit accumulator (one add and one
/// add-with-carry each); the carries above bit 64 are folded back once, at the end. A last odd
/// word lands in the low half: the fold adds all four 16-bit lanes, so the half does not
/// matter. The accumulator cannot overflow for any slice that fits in memory.
#[inline(always)]
pub(crate) fn add_words(mut acc: u128, words: &[[u8; 4]]) -> u128 {
    // Whole words: what is left after the 8-byte steps is one word or nothing.
    let (quads, rest) = words.as_flattened().as_chunks::<8>();
    for q in quads {
        acc += u128::from(u64::from_ne_bytes(*q));
    }
    if let Some(word) = rest.first_chunk::<4>() {
        acc += u128::from(u32::from_ne_bytes(*word));
    }
    acc
}

/// Adds 8 bytes (read as one native-endian 64-bit word) to a sum kept as in [`fold_words`].
#[inline(always)]
pub(crate) fn add_u64_ne(acc: u128, bytes: &[u8; 8]) -> u128 {
    acc + u128::from(u64::from_ne_bytes(*bytes))
}

/// The big-endian 16-bit one's complement sum of everything [`add_words`] and [`add_u64_ne`]
/// added: folded with end-around carry (RFC 1071 section 4.1) and swapped from native order.
#[inline(always)]
pub(crate) fn fold_words(acc: u128) -> u16 {
    u16::from_be(fold(fold_u128(acc)))
}

/// Folds a 128-bit sum of 64-bit words to a 64-bit one with end-around carry (RFC 1071
/// section 4.1). The result may be 2^64 - 1, which [`fold`] handles.
#[inline(always)]
fn fold_u128(acc: u128) -> u64 {
    let (low, carry) = (acc as u64).overflowing_add((acc >> 64) as u64);
    // No second carry: after a carry out, `low` is at most 2^64 - 2.
    low + u64::from(carry)
}

/// The one's complement sum of several partial sums (not complemented).
#[inline]
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// Sum of the IPv4 pseudo-header used by VRRPv3 over IPv4 (RFC 5798 section 5.2.8): source,
/// destination, a zero byte, protocol 112 and the VRRP message length.
#[inline]
pub fn pseudo_header_v4(src: &Ipv4Addr, dst: &Ipv4Addr, length: u16) -> u16 {
    let s = u64::from(src.to_bits());
    let d = u64::from(dst.to_bits());
    fold(s + d + u64::from(PROTOCOL) + u64::from(length))
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1, formerly RFC 2460 section 8.1, used by
/// RFC 5798 section 5.2.8): source, destination, the 32-bit upper-layer length, three zero
/// bytes and next header 112.
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, length: u32) -> u16 {
    // The addresses as big-endian numbers, in 64-bit halves: a sum of 16-bit words may be
    // taken in any wider word with end-around carry (RFC 1071 section 2(C)).
    let (s, d) = (src.to_bits(), dst.to_bits());
    let acc = u128::from(s as u64)
        + u128::from((s >> 64) as u64)
        + u128::from(d as u64)
        + u128::from((d >> 64) as u64)
        + u128::from(length)
        + u128::from(PROTOCOL);
    fold(fold_u128(acc))
}

/// True when a one's complement sum taken over a message *including* its checksum field (and
/// any pseudo-header) verifies, i.e. is all ones (RFC 1071 section 1, step 3).
///
/// As in RFC 1071, a field of 0xffff stands for the same value as 0x0000 (both are zero in one's
/// complement), so either verifies when the other is the computed checksum.
#[inline]
pub fn verifies(sum: u16) -> bool {
    sum == 0xffff
}

/// The checksum to store in a field, from the sum over the message with that field zero
/// (RFC 1071 section 1, step 2: the one's complement of the sum).
#[inline]
pub fn finish(sum: u16) -> u16 {
    !sum
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slow textbook version: 16-bit words, end-around carry after every addition.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for chunk in data.chunks(2) {
            let word = u32::from(chunk[0]) << 8 | u32::from(chunk.get(1).copied().unwrap_or(0));
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn data_words_equals_data_for_every_length() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let bytes: Vec<u8> = (0..300)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for len in 0..bytes.len() {
            assert_eq!(
                data_words(&bytes[..len]),
                reference(&bytes[..len]),
                "len {len}"
            );
        }
        assert_eq!(data_words(&[0xff; 4000]), reference(&[0xff; 4000]));
    }

    #[test]
    fn word_sums_of_parts_equal_the_sum_of_the_whole() {
        let bytes: Vec<u8> = (0u32..200).map(|i| (i * 37 + 11) as u8).collect();
        let (words, _) = bytes.as_chunks::<4>();
        for split in 0..=words.len() {
            let acc = add_words(add_words(0, &words[..split]), &words[split..]);
            assert_eq!(fold_words(acc), reference(&bytes), "split {split}");
        }
        let (head, tail) = bytes.split_first_chunk::<8>().unwrap();
        let (rest, _) = tail.as_chunks::<4>();
        assert_eq!(
            fold_words(add_words(add_u64_ne(0, head), rest)),
            reference(&bytes)
        );
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn matches_reference_for_every_length_and_alignment() {
        let bytes: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(167) ^ (i >> 3)) as u8)
            .collect();
        for start in 0..17 {
            for end in start..bytes.len() {
                let slice = &bytes[start..end];
                assert_eq!(data(slice), reference(slice), "bytes {start}..{end}");
            }
        }
        let ones = [0xffu8; 4096];
        assert_eq!(data(&ones), reference(&ones));
    }

    #[test]
    fn pseudo_headers_equal_their_byte_forms() {
        let s4 = Ipv4Addr::new(20, 0, 0, 3);
        let d4 = Ipv4Addr::new(224, 0, 0, 18);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s4.octets());
        bytes.extend_from_slice(&d4.octets());
        bytes.extend_from_slice(&[0, PROTOCOL, 0, 16]);
        assert_eq!(pseudo_header_v4(&s4, &d4, 16), reference(&bytes));

        let s6: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let d6: Ipv6Addr = "ff02::12".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s6.octets());
        bytes.extend_from_slice(&d6.octets());
        bytes.extend_from_slice(&0x0001_0028u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, PROTOCOL]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 0x0001_0028), reference(&bytes));
    }

    #[test]
    fn fold_equals_the_textbook_fold() {
        // End-around carry 16 bits at a time until nothing is left above bit 16.
        fn textbook(mut x: u64) -> u16 {
            while x > 0xffff {
                x = (x & 0xffff) + (x >> 16);
            }
            x as u16
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let edges = [
            0,
            1,
            0xffff,
            0x1_0000,
            0xffff_ffff,
            0x1_0000_0000,
            u64::MAX,
            u64::MAX - 1,
        ];
        for v in edges.into_iter().chain((0..100_000).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x >> (x % 48)
        })) {
            assert_eq!(fold(v), textbook(v), "{v:#x}");
        }
    }

    #[test]
    fn fold_handles_extremes() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(u64::MAX), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }
}
