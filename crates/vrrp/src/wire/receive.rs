//! Receive validation of one advertisement (RFC 3768 section 7.1, RFC 5798 section 7.1): the
//! checks a node makes on every packet before the election sees it.
//!
//! Checks that need configuration (the VRID is ours, the password and interval match, the
//! address list matches) are the election's; this module checks everything the packet alone
//! can prove.

use core::net::IpAddr;

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

/// Validates VRRP bytes read from a socket, with the IP metadata the socket reported.
///
/// In order: TTL / hop limit 255; header length; version 2 or 3 (2 over IPv4 only); length
/// exactly as the count implies; checksum (v2 plain; v3 over IPv6 with the pseudo-header;
/// v3 over IPv4 either form, the one that matched is reported); type 1; VRID not 0; v2 auth
/// type 0 or 1. The checksum comes before the field checks so that a corrupted message is
/// reported as corrupted rather than as a strange one.
#[inline]
pub fn validate(vrrp: &[u8], meta: IpMeta) -> Result<Received<'_>, Error> {
    let IpMeta { src, dst, ttl } = meta;
    let family = match (src, dst) {
        (IpAddr::V4(_), IpAddr::V4(_)) => Family::V4,
        (IpAddr::V6(_), IpAddr::V6(_)) => Family::V6,
        _ => return Err(Error::MixedFamilies { src, dst }),
    };
    // RFC 3768 / RFC 5798 section 7.1: a TTL below 255 means a router forwarded it.
    if ttl != TTL {
        return Err(match family {
            Family::V4 => Error::BadTtl(ttl),
            Family::V6 => Error::BadHopLimit(ttl),
        });
    }
    let version = check_structure(vrrp, family)?;
    let found = Packet::new_unchecked(vrrp).checksum();
    let sum = checksum::data(vrrp);
    let checksum_form = match (version, family) {
        (Version::V2, _) => {
            if !checksum::verifies(sum) {
                return Err(Error::BadChecksum {
                    found,
                    computed: expected_checksum(sum, found, 0),
                    form: ChecksumForm::V2,
                });
            }
            ChecksumForm::V2
        }
        (Version::V3, _) => {
            let pseudo = super::packet::pseudo_header(&src, &dst, vrrp.len())?;
            if checksum::verifies(checksum::combine(&[sum, pseudo])) {
                ChecksumForm::PseudoHeader
            } else if family == Family::V4 && checksum::verifies(sum) {
                // RFC 9568 section 5.2.8 notes implementations that leave the IPv4
                // pseudo-header out; accept them and say so.
                ChecksumForm::Plain
            } else if family == Family::V4 {
                return Err(Error::BadChecksumEitherForm {
                    found,
                    pseudo_header: expected_checksum(sum, found, pseudo),
                    plain: expected_checksum(sum, found, 0),
                });
            } else {
                return Err(Error::BadChecksum {
                    found,
                    computed: expected_checksum(sum, found, pseudo),
                    form: ChecksumForm::PseudoHeader,
                });
            }
        }
    };
    let advert = parse_fields(vrrp, version, family)?;
    Ok(Received {
        src,
        dst,
        ttl,
        advert,
        checksum: found,
        checksum_form,
    })
}
