//! Receive validation of a whole IP packet carrying VRRP: what an IPv4 raw socket reads
//! (header included) or a capture holds.
//!
//! The IPv4 header checksum is not verified: the kernel drops bad headers before a raw socket
//! sees them, and captures of locally sent packets may hold offloaded (unfilled) values.

use core::net::{Ipv4Addr, Ipv6Addr};

use super::receive::{validate_v4, validate_v6};
use super::{Error, Family, Received, PROTOCOL};

/// Fixed IPv4 header length (RFC 791 section 3.1).
const IPV4_HEADER_LEN: usize = 20;
/// Fixed IPv6 header length (RFC 8200 section 3).
const IPV6_HEADER_LEN: usize = 40;

/// Parses an IPv4 or IPv6 packet carrying one VRRP message and validates it as
/// [`validate`](super::validate) does.
///
/// IPv4: options are skipped as the IHL says; the Total Length must fit the buffer, and bytes
/// after it (Ethernet padding of a short frame) are ignored; fragments are refused.
/// IPv6: the next header must be VRRP itself (extension headers are refused with
/// [`Error::Ipv6ExtensionHeader`]); bytes after the Payload Length are ignored.
#[inline]
pub fn parse_ip_packet(bytes: &[u8]) -> Result<Received<'_>, Error> {
    let first = *bytes.first().ok_or(Error::EmptyIpPacket)?;
    match first >> 4 {
        4 => parse_ipv4(bytes),
        6 => parse_ipv6(bytes),
        other => Err(Error::UnknownIpVersion(other)),
    }
}

#[inline]
fn parse_ipv4(bytes: &[u8]) -> Result<Received<'_>, Error> {
    let len = bytes.len();
    let header = bytes
        .first_chunk::<IPV4_HEADER_LEN>()
        .ok_or(Error::IpHeaderTruncated {
            family: Family::V4,
            len,
            need: IPV4_HEADER_LEN,
        })?;
    let header_len = usize::from(header[0] & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN || header_len > len {
        return Err(Error::BadIpv4HeaderLength { header_len, len });
    }
    let total_len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    if total_len < header_len || total_len > len {
        return Err(Error::BadIpv4TotalLength {
            total_len,
            header_len,
            len,
        });
    }
    let flags_offset = u16::from_be_bytes([header[6], header[7]]);
    let more_fragments = flags_offset & 0x2000 != 0;
    let offset = flags_offset & 0x1fff;
    if more_fragments || offset != 0 {
        return Err(Error::Fragment {
            offset,
            more_fragments,
        });
    }
    if header[9] != PROTOCOL {
        return Err(Error::NotVrrp(header[9]));
    }
    let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    let vrrp = bytes.get(header_len..total_len).unwrap_or_default();
    validate_v4(vrrp, src, dst, header[8])
}

/// IPv6 extension headers (RFC 8200 section 4, IANA "IPv6 Extension Header Types").
fn is_ipv6_extension_header(next_header: u8) -> bool {
    matches!(
        next_header,
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254
    )
}

/// Copies 16 bytes into an array without a panicking path.
fn octets16(bytes: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

#[inline]
fn parse_ipv6(bytes: &[u8]) -> Result<Received<'_>, Error> {
    let len = bytes.len();
    let header = bytes
        .first_chunk::<IPV6_HEADER_LEN>()
        .ok_or(Error::IpHeaderTruncated {
            family: Family::V6,
            len,
            need: IPV6_HEADER_LEN,
        })?;
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let available = len - IPV6_HEADER_LEN;
    if payload_len > available {
        return Err(Error::BadIpv6PayloadLength {
            payload_len,
            available,
        });
    }
    let next_header = header[6];
    if next_header != PROTOCOL {
        return Err(if is_ipv6_extension_header(next_header) {
            Error::Ipv6ExtensionHeader(next_header)
        } else {
            Error::NotVrrp(next_header)
        });
    }
    let src = Ipv6Addr::from(octets16(header.get(8..24).unwrap_or_default()));
    let dst = Ipv6Addr::from(octets16(header.get(24..40).unwrap_or_default()));
    let vrrp = bytes
        .get(IPV6_HEADER_LEN..IPV6_HEADER_LEN + payload_len)
        .unwrap_or_default();
    validate_v6(vrrp, &src, &dst, header[7])
}
