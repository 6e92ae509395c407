//! Receive validation of one advertisement (RFC 3768 section 7.1, RFC 5798 section 7.1): the
//! checks a node makes on every packet before the election sees it.
//!
//! Checks that need configuration (the VRID is ours, the password and interval match, the
//! address list matches) are the election's; this module checks everything the packet alone
//! can prove.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::repr::{check_structure, parse_fields};
use super::{checksum, Advertisement, ChecksumForm, Error, Family, Packet, Version, TTL};

/// What the socket says about a received VRRP message: the IP addresses and the TTL (IPv4) or
/// hop limit (IPv6) it arrived with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IpMeta {
    /// IP source address (the sending router's primary address).
    pub src: IpAddr,
    /// IP destination address (224.0.0.18 / ff02::12, or a unicast peer).
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// A received advertisement that passed every check the packet alone allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Received<'a> {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (always 255 once validated).
    pub ttl: u8,
    /// The decoded message.
    pub advert: Advertisement<'a>,
    /// The Checksum field as received.
    pub checksum: u16,
    /// The checksum form that verified: [`ChecksumForm::V2`] for v2, [`ChecksumForm::PseudoHeader`]
    /// for v3 over IPv6, either v3 form over IPv4 (the pseudo-header form when both verify).
    pub checksum_form: ChecksumForm,
}

/// The checksum a message should carry, from the sum over it *with* its checksum field
/// `found` and the pseudo-header sum `pseudo` (0 for none): subtracting `found` is adding its
/// complement in one's complement arithmetic (RFC 1071 section 2).
fn expected_checksum(sum_with_field: u16, found: u16, pseudo: u16) -> u16 {
    checksum::finish(checksum::combine(&[sum_with_field, !found, pseudo]))
}

// The error constructors are out of line and cold: a node validates every packet, and keeping
// the failure paths out of the hot function keeps it small enough to run from registers.

#[cold]
#[inline(never)]
fn bad_v2_checksum(sum: u16, found: u16) -> Error {
    Error::BadChecksum {
        found,
        computed: expected_checksum(sum, found, 0),
        form: ChecksumForm::V2,
    }
}

#[cold]
#[inline(never)]
fn bad_v3_checksum_v4(sum: u16, found: u16, pseudo: u16) -> Error {
    Error::BadChecksumEitherForm {
        found,
        pseudo_header: expected_checksum(sum, found, pseudo),
        plain: expected_checksum(sum, found, 0),
    }
}

#[cold]
#[inline(never)]
fn bad_v3_checksum_v6(sum: u16, found: u16, pseudo: u16) -> Error {
    Error::BadChecksum {
        found,
        computed: expected_checksum(sum, found, pseudo),
        form: ChecksumForm::PseudoHeader,
    }
}

/// Validates VRRP bytes read from a socket, with the IP metadata the socket reported.
///
/// In order: TTL / hop limit 255; header length; version 2 or 3 (2 over IPv4 only); length
/// exactly as the count implies; checksum (v2 plain; v3 over IPv6 with the pseudo-header;
/// v3 over IPv4 either form, the one that matched is reported); type 1; VRID not 0; v2 auth
/// type 0 or 1. The checksum comes before the field checks so that a corrupted message is
/// reported as corrupted rather than as a strange one.
#[inline]
pub fn validate(vrrp: &[u8], meta: IpMeta) -> Result<Received<'_>, Error> {
    // Split by family first: each path then reads only the address bytes it needs and the
    // family-dependent checks fold away.
    match (meta.src, meta.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => validate_v4(vrrp, src, dst, meta.ttl),
        (IpAddr::V6(src), IpAddr::V6(dst)) => validate_v6(vrrp, src, dst, meta.ttl),
        (src, dst) => Err(Error::MixedFamilies { src, dst }),
    }
}

/// [`validate`] for a message that arrived over IPv4.
#[inline]
pub(crate) fn validate_v4(
    vrrp: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
) -> Result<Received<'_>, Error> {
    // RFC 3768 / RFC 5798 section 7.1: a TTL below 255 means a router forwarded it.
    if ttl != TTL {
        return Err(Error::BadTtl(ttl));
    }
    let version = check_structure(vrrp, Family::V4)?;
    let found = Packet::new_unchecked(vrrp).checksum();
    // check_structure proved the length is 16 + 4n (v2) or 8 + 4n (v3): whole 32-bit words.
    let sum = checksum::data_words(vrrp);
    let checksum_form = match version {
        Version::V2 => {
            if !checksum::verifies(sum) {
                return Err(bad_v2_checksum(sum, found));
            }
            ChecksumForm::V2
        }
        Version::V3 => {
            // At most 8 + 255 * 4 bytes: the length always fits the pseudo-header's 16 bits.
            let pseudo = checksum::pseudo_header_v4(&src, &dst, vrrp.len() as u16);
            if checksum::verifies(checksum::combine(&[sum, pseudo])) {
                ChecksumForm::PseudoHeader
            } else if checksum::verifies(sum) {
                // RFC 9568 section 5.2.8 notes implementations that leave the IPv4
                // pseudo-header out; accept them and say so.
                ChecksumForm::Plain
            } else {
                return Err(bad_v3_checksum_v4(sum, found, pseudo));
            }
        }
    };
    let advert = parse_fields(vrrp, version, Family::V4)?;
    Ok(Received {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl,
        advert,
        checksum: found,
        checksum_form,
    })
}

/// [`validate`] for a message that arrived over IPv6 (VRRPv3 only, RFC 5798 section 5.1.2).
#[inline]
pub(crate) fn validate_v6(
    vrrp: &[u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    hop_limit: u8,
) -> Result<Received<'_>, Error> {
    // RFC 5798 section 7.1: a hop limit below 255 means a router forwarded it.
    if hop_limit != TTL {
        return Err(Error::BadHopLimit(hop_limit));
    }
    // Rejects version 2 over IPv6.
    check_structure(vrrp, Family::V6)?;
    let found = Packet::new_unchecked(vrrp).checksum();
    // 8 + 16n bytes: whole 32-bit words.
    let sum = checksum::data_words(vrrp);
    // At most 8 + 255 * 16 bytes: fits the pseudo-header's 32-bit length.
    let pseudo = checksum::pseudo_header_v6(&src, &dst, vrrp.len() as u32);
    if !checksum::verifies(checksum::combine(&[sum, pseudo])) {
        return Err(bad_v3_checksum_v6(sum, found, pseudo));
    }
    let advert = parse_fields(vrrp, Version::V3, Family::V6)?;
    Ok(Received {
        src: IpAddr::V6(src),
        dst: IpAddr::V6(dst),
        ttl: hop_limit,
        advert,
        checksum: found,
        checksum_form: ChecksumForm::PseudoHeader,
    })
}
