//! The codec's one error type: every way a received packet can break a rule of RFC 3768,
//! RFC 5798 / RFC 9568 (or of the IP header carrying it), and every way a representation can be
//! impossible to send.

use core::net::IpAddr;

use super::{ChecksumForm, Family, Version};

/// What went wrong while parsing, validating or emitting an advertisement.
///
/// Each variant names the rule that was broken, so that a log line or a decoder's output says
/// why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    // ----- the VRRP message -----
    /// Fewer bytes than the fixed 8-byte VRRP header.
    #[error(
        "VRRP message of {len} bytes is shorter than the 8-byte header \
         (RFC 3768 section 7.1, RFC 5798 section 7.1)"
    )]
    Truncated {
        /// Bytes available.
        len: usize,
    },
    /// The version nibble is neither 2 nor 3.
    #[error(
        "VRRP version {0} is neither 2 nor 3 (RFC 3768 section 5.3.1, RFC 5798 section 5.2.1)"
    )]
    UnknownVersion(u8),
    /// A VRRPv2 message arrived over IPv6 (or was to be sent with IPv6 addresses).
    #[error("VRRPv2 is IPv4 only; IPv6 needs VRRPv3 (RFC 3768 section 1, RFC 5798 section 5.2.1)")]
    V2OverIpv6,
    /// The type nibble is not 1 (ADVERTISEMENT), the only type defined.
    #[error(
        "VRRP type {0} is not 1 (ADVERTISEMENT) (RFC 3768 section 5.3.2, RFC 5798 section 5.2.2)"
    )]
    UnknownType(u8),
    /// Virtual Router Identifier 0, which no router may use.
    #[error(
        "VRID 0 is not a valid virtual router identifier 1..=255 \
         (RFC 3768 section 5.3.3, RFC 5798 section 5.2.3)"
    )]
    ZeroVrid,
    /// The message length does not match the Count IP Addrs field.
    #[error(
        "{version} message of {len} bytes does not match count {count}: {count} {family} \
         address(es) make {expected} bytes (RFC 3768 section 7.1, RFC 5798 section 7.1)"
    )]
    CountMismatch {
        /// The protocol version read from the message.
        version: Version,
        /// The address family of the carrying IP header.
        family: Family,
        /// The Count IP Addrs field.
        count: u8,
        /// The length that count implies.
        expected: usize,
        /// The length received.
        len: usize,
    },
    /// A VRRPv2 authentication type other than 0 (none) or 1 (simple password).
    #[error(
        "VRRPv2 auth type {0} is not supported: only 0 (none) and 1 (simple password, \
         RFC 2338 section 5.3.6) are; type 2 (IP Authentication Header) was removed \
         (RFC 3768 section 5.3.6)"
    )]
    UnsupportedAuthType(u8),
    /// The checksum does not verify in the one form the version and family allow.
    #[error(
        "checksum 0x{found:04x} is wrong: the {form} checksum is 0x{computed:04x} \
         (RFC 3768 section 5.3.8, RFC 5798 section 5.2.8)"
    )]
    BadChecksum {
        /// The Checksum field.
        found: u16,
        /// The checksum the message should carry.
        computed: u16,
        /// The form checked.
        form: ChecksumForm,
    },
    /// A VRRPv3-over-IPv4 checksum verifies neither with nor without the pseudo-header.
    #[error(
        "checksum 0x{found:04x} is wrong in both VRRPv3-over-IPv4 forms: 0x{pseudo_header:04x} \
         with the IPv4 pseudo-header, 0x{plain:04x} without \
         (RFC 5798 section 5.2.8, RFC 9568 section 5.2.8)"
    )]
    BadChecksumEitherForm {
        /// The Checksum field.
        found: u16,
        /// The checksum with the IPv4 pseudo-header.
        pseudo_header: u16,
        /// The checksum over the VRRP message alone.
        plain: u16,
    },

    // ----- the IP header and socket metadata -----
    /// IPv4 TTL other than 255: the packet may have been forwarded.
    #[error("TTL {0} is not 255 (RFC 3768 section 7.1, RFC 5798 section 7.1)")]
    BadTtl(u8),
    /// IPv6 hop limit other than 255: the packet may have been forwarded.
    #[error("hop limit {0} is not 255 (RFC 5798 section 7.1)")]
    BadHopLimit(u8),
    /// Source and destination addresses of different families in the metadata.
    #[error("source {src} and destination {dst} are not of the same address family")]
    MixedFamilies {
        /// Source address.
        src: IpAddr,
        /// Destination address.
        dst: IpAddr,
    },
    /// An empty buffer where an IP packet was expected.
    #[error("empty IP packet")]
    EmptyIpPacket,
    /// The IP version nibble is neither 4 nor 6.
    #[error("IP version {0} is neither 4 nor 6")]
    UnknownIpVersion(u8),
    /// Fewer bytes than the fixed IP header.
    #[error("{family} packet of {len} bytes is shorter than its {need}-byte header")]
    IpHeaderTruncated {
        /// IPv4 or IPv6.
        family: Family,
        /// Bytes available.
        len: usize,
        /// Header length needed.
        need: usize,
    },
    /// IPv4 Internet Header Length below 5 words or beyond the bytes available.
    #[error(
        "IPv4 header length {header_len} bytes is not within 20..={len} bytes available \
         (RFC 791 section 3.1)"
    )]
    BadIpv4HeaderLength {
        /// IHL x 4.
        header_len: usize,
        /// Bytes available.
        len: usize,
    },
    /// IPv4 Total Length shorter than the header or longer than the bytes available.
    #[error(
        "IPv4 total length {total_len} is not within the header length {header_len}..={len} \
         bytes available (RFC 791 section 3.1)"
    )]
    BadIpv4TotalLength {
        /// The Total Length field.
        total_len: usize,
        /// IHL x 4.
        header_len: usize,
        /// Bytes available.
        len: usize,
    },
    /// IPv6 Payload Length longer than the bytes after the header.
    #[error(
        "IPv6 payload length {payload_len} exceeds the {available} bytes after the header \
         (RFC 8200 section 3)"
    )]
    BadIpv6PayloadLength {
        /// The Payload Length field.
        payload_len: usize,
        /// Bytes available after the 40-byte header.
        available: usize,
    },
    /// An IPv4 fragment: advertisements are small and never fragmented, and validating a
    /// fragment's bytes would check the wrong message.
    #[error(
        "IPv4 fragment (offset {offset}, more fragments {more_fragments}): advertisements are \
         never fragmented; reassemble before validating"
    )]
    Fragment {
        /// Fragment offset in 8-byte units.
        offset: u16,
        /// The More Fragments flag.
        more_fragments: bool,
    },
    /// IPv4 protocol or IPv6 next header is not 112.
    #[error(
        "IP protocol {0} is not VRRP (112) (RFC 3768 section 5.2.4, RFC 5798 section 5.1.1.4)"
    )]
    NotVrrp(u8),
    /// An IPv6 extension header precedes the VRRP message.
    #[error(
        "IPv6 extension header {0} before VRRP is not supported: next header must be 112 \
         (RFC 5798 section 5.1.2.4)"
    )]
    Ipv6ExtensionHeader(u8),

    // ----- emitting -----
    /// A message too long for the pseudo-header's length field.
    #[error("VRRP message of {0} bytes is too long for the pseudo-header length field")]
    MessageTooLong(usize),
    /// The caller's buffer cannot hold the message.
    #[error("buffer of {have} bytes is too small for the {need}-byte advertisement")]
    BufferTooSmall {
        /// Bytes needed ([`Advertisement::buffer_len`](super::Advertisement::buffer_len)).
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A VRRPv2 interval that is not a whole number of seconds 0..=255.
    #[error(
        "interval {0} cs cannot be sent in VRRPv2: Adver Int is whole seconds 0..=255 \
         (RFC 3768 section 5.3.7)"
    )]
    V2IntervalNotRepresentable(u16),
    /// A VRRPv3 interval beyond the 12-bit Max Adver Int.
    #[error(
        "interval {0} cs exceeds the 12-bit VRRPv3 Max Adver Int of 4095 cs \
         (RFC 5798 section 5.2.7)"
    )]
    V3IntervalTooLong(u16),
    /// Authentication asked for in VRRPv3, which has none.
    #[error("VRRPv3 has no authentication (RFC 5798 section 9)")]
    V3Authentication,
    /// Address bytes that are not a whole number of addresses.
    #[error("{len} address bytes are not a whole number of {family} addresses")]
    PartialAddress {
        /// Length of the address bytes.
        len: usize,
        /// Their family.
        family: Family,
    },
    /// More addresses than the 8-bit Count IP Addrs field can carry.
    #[error(
        "{0} virtual addresses exceed the 255 that Count IP Addrs can carry \
         (RFC 3768 section 5.3.5, RFC 5798 section 5.2.5)"
    )]
    TooManyAddresses(usize),
    /// A checksum form the version and family do not allow.
    #[error(
        "the {form} checksum form does not apply to {version} over {family} \
         (RFC 3768 section 5.3.8, RFC 5798 section 5.2.8)"
    )]
    ChecksumFormMismatch {
        /// The form asked for.
        form: ChecksumForm,
        /// The message's version.
        version: Version,
        /// The message's address family.
        family: Family,
    },
    /// Pseudo-header addresses of another family than the message.
    #[error(
        "pseudo-header addresses {src} -> {dst} are not {family} addresses \
         (RFC 5798 section 5.2.8)"
    )]
    PseudoHeaderFamily {
        /// Source address given.
        src: IpAddr,
        /// Destination address given.
        dst: IpAddr,
        /// The message's address family.
        family: Family,
    },
}
