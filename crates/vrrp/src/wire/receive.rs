//! Receive validation of one advertisement (RFC 3768 section 7.1, RFC 5798 section 7.1): the
//! checks a node makes on every packet before the election sees it.
//!
//! Checks that need configuration (the VRID is ours, the password and interval match, the
//! address list matches) are the election's; this module checks everything the packet alone
//! can prove.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::packet::{AUTH_TYPE_NONE, AUTH_TYPE_SIMPLE, HEADER_LEN, TYPE_ADVERTISEMENT};
use super::repr::{check_structure, parse_fields};
use super::{
    checksum, Addresses, Advertisement, Auth, ChecksumForm, Error, Family, Packet, Version,
    AUTH_DATA_LEN, TTL,
};

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
///
/// `meta` is borrowed: it is 35 bytes, and only the fields the family needs are read.
//
// Always inlined, with the IPv4 path in it: out of line, the whole `Received` would be
// returned through memory, while a caller usually reads a few fields of it. The IPv6 and the
// general IPv4 paths are out of line.
#[inline(always)]
pub fn validate<'a>(vrrp: &'a [u8], meta: &IpMeta) -> Result<Received<'a>, Error> {
    // Split by family first: each path then reads only the address bytes it needs and the
    // family-dependent checks fold away.
    match (&meta.src, &meta.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => validate_v4(vrrp, *src, *dst, meta.ttl),
        (IpAddr::V6(src), IpAddr::V6(dst)) => validate_v6(vrrp, src, dst, meta.ttl),
        _ => Err(mixed_families(meta)),
    }
}

#[cold]
#[inline(never)]
fn mixed_families(meta: &IpMeta) -> Error {
    Error::MixedFamilies {
        src: meta.src,
        dst: meta.dst,
    }
}

/// [`validate`] for a message that arrived over IPv4.
///
/// Always inlined: the fast path is a few dozen instructions, and out of line the whole
/// [`Received`] would travel through memory; the general path stays out of line.
#[inline(always)]
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
    let (advert, checksum, checksum_form) = match accept_v2(vrrp) {
        Some((advert, checksum)) => (advert, checksum, ChecksumForm::V2),
        None => checked_v4(vrrp, src, dst)?,
    };
    Ok(Received {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        ttl,
        advert,
        checksum,
        checksum_form,
    })
}

/// The common case first: a well-formed VRRPv2 advertisement over IPv4 (what every node of a
/// v2 pair receives once per interval), checked in one pass over the fixed header.
///
/// It makes every RFC 3768 section 7.1 check [`checked_v4`] makes (version 2, type 1, VRID not
/// 0, auth type 0 or 1, length exactly 16 + 4 * count, checksum) and accepts exactly the
/// VRRPv2 messages that [`checked_v4`] accepts, with the same result; it returns `None` for
/// everything else (VRRPv3, and every message that breaks a rule), which then goes through
/// [`checked_v4`] to be read or to get its precise error. The TTL is the caller's.
#[inline(always)]
pub(crate) fn accept_v2(vrrp: &[u8]) -> Option<(Advertisement<'_>, u16)> {
    let (header, body) = vrrp.split_first_chunk::<HEADER_LEN>()?;
    let [ver_type, vrid, priority, count, auth_type, adver_int, c0, c1] = *header;
    // Version 2 and type 1 (ADVERTISEMENT) in one byte (RFC 3768 sections 5.3.1, 5.3.2);
    // VRID 1..=255 (5.3.3); auth type 0 or 1 (5.3.6, RFC 2338 section 5.3.6.1).
    if ver_type != (2 << 4 | TYPE_ADVERTISEMENT) || vrid == 0 || auth_type > AUTH_TYPE_SIMPLE {
        return None;
    }
    // The length the count implies (RFC 3768 section 7.1): count addresses, then 8 auth bytes.
    let (addresses, auth_data) = body.split_last_chunk::<AUTH_DATA_LEN>()?;
    let (words, partial) = addresses.as_chunks::<4>();
    if !partial.is_empty() || words.len() != usize::from(count) {
        return None;
    }
    // The checksum over the whole message (RFC 3768 section 5.3.8), summed from the parts
    // already in hand: the header and the auth data are one 64-bit word each.
    let sum = checksum::add_u64_ne(checksum::add_u64_ne(0, header), auth_data);
    if !checksum::verifies(checksum::fold_words(checksum::add_words(sum, words))) {
        return None;
    }
    let auth = if auth_type == AUTH_TYPE_NONE {
        // Auth data is ignored on receive (RFC 3768 section 5.3.10).
        Auth::None
    } else {
        Auth::SimplePassword(*auth_data)
    };
    let advert = Advertisement {
        version: Version::V2,
        vrid,
        priority,
        interval_cs: u16::from(adver_int) * 100,
        auth,
        addresses: Addresses::V4(addresses),
    };
    Some((advert, u16::from_be_bytes([c0, c1])))
}

/// Every check of a message over IPv4 but the TTL, in the order [`validate`] documents, with
/// a precise error for each: the general path behind [`accept_v2`]. Returns the advertisement,
/// the Checksum field and the form that verified.
#[inline(never)]
pub(crate) fn checked_v4(
    vrrp: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Result<(Advertisement<'_>, u16, ChecksumForm), Error> {
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
    Ok((advert, found, checksum_form))
}

/// [`validate`] for a message that arrived over IPv6 (VRRPv3 only, RFC 5798 section 5.1.2).
#[inline(never)]
pub(crate) fn validate_v6<'a>(
    vrrp: &'a [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    hop_limit: u8,
) -> Result<Received<'a>, Error> {
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
    let pseudo = checksum::pseudo_header_v6(src, dst, vrrp.len() as u32);
    if !checksum::verifies(checksum::combine(&[sum, pseudo])) {
        return Err(bad_v3_checksum_v6(sum, found, pseudo));
    }
    let advert = parse_fields(vrrp, Version::V3, Family::V6)?;
    Ok(Received {
        src: IpAddr::V6(*src),
        dst: IpAddr::V6(*dst),
        ttl: hop_limit,
        advert,
        checksum: found,
        checksum_form: ChecksumForm::PseudoHeader,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);

    /// A VRRPv2 message from its fields, with a correct checksum.
    fn v2_message(header: [u8; 8], addresses: &[u8], auth_data: [u8; 8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(addresses);
        bytes.extend_from_slice(&auth_data);
        refill(&mut bytes);
        bytes
    }

    /// Rewrites the checksum of a message of at least 8 bytes, so that the checks after the
    /// checksum are reached.
    fn refill(bytes: &mut [u8]) {
        if bytes.len() >= HEADER_LEN {
            let (s, d) = (IpAddr::V4(SRC), IpAddr::V4(DST));
            let mut packet = Packet::new_unchecked(bytes);
            packet.fill_checksum(ChecksumForm::V2, &s, &d).unwrap();
        }
    }

    /// The fast path accepts exactly the VRRPv2 messages the general path accepts, with the
    /// same result, and [`validate_v4`] always answers what the general path answers.
    fn assert_agree(bytes: &[u8]) {
        let general = checked_v4(bytes, SRC, DST);
        match accept_v2(bytes) {
            Some((advert, found)) => {
                assert_eq!(
                    general,
                    Ok((advert, found, ChecksumForm::V2)),
                    "{bytes:02x?}"
                )
            }
            None => assert!(
                !matches!(general, Ok((a, _, _)) if a.version == Version::V2),
                "the fast path refused a valid v2 message {bytes:02x?}: {general:?}"
            ),
        }
        let whole = validate_v4(bytes, SRC, DST, TTL);
        let expected = general.map(|(advert, checksum, checksum_form)| Received {
            src: IpAddr::V4(SRC),
            dst: IpAddr::V4(DST),
            ttl: TTL,
            advert,
            checksum,
            checksum_form,
        });
        assert_eq!(whole, expected, "{bytes:02x?}");
    }

    #[test]
    fn fast_path_agrees_on_every_header_byte_value() {
        let base = v2_message(
            [0x21, 51, 150, 2, 1, 1, 0, 0],
            &[10, 99, 0, 100, 10, 99, 0, 101],
            *b"secret\0\0",
        );
        assert!(accept_v2(&base).is_some());
        for i in 0..HEADER_LEN {
            for value in 0..=255u8 {
                let mut bytes = base.clone();
                bytes[i] = value;
                // As received (a corrupted checksum, unless the byte is the checksum) ...
                assert_agree(&bytes);
                // ... and with the checksum made right, so that the field checks decide.
                refill(&mut bytes);
                assert_agree(&bytes);
            }
        }
    }

    #[test]
    fn fast_path_agrees_on_every_length() {
        let base = v2_message(
            [0x21, 1, 100, 3, 0, 1, 0, 0],
            &[10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 3],
            [0; 8],
        );
        for len in 0..base.len() + 12 {
            let mut bytes = base.clone();
            bytes.resize(len, 0xa5);
            assert_agree(&bytes);
            refill(&mut bytes);
            assert_agree(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn fast_path_agrees_on_arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            fix in any::<bool>(),
        ) {
            let mut bytes = bytes;
            if fix {
                refill(&mut bytes);
            }
            assert_agree(&bytes);
        }

        /// Valid v2 messages (0 to 255 addresses, both auth types) and their mutations: byte
        /// edits, truncation and extension, each with the checksum as it falls and refilled.
        #[test]
        fn fast_path_agrees_on_mutated_messages(
            vrid in any::<u8>(),
            priority in any::<u8>(),
            count in 0..=255usize,
            auth_type in 0..3u8,
            adver_int in any::<u8>(),
            auth_data in any::<[u8; 8]>(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
            resize in prop_oneof![Just(None), (0..1100usize).prop_map(Some)],
            fix in any::<bool>(),
        ) {
            let addresses: Vec<u8> = (0..count * 4).map(|i| (i * 7 + 3) as u8).collect();
            let header = [0x21, vrid, priority, count as u8, auth_type, adver_int, 0, 0];
            let mut bytes = v2_message(header, &addresses, auth_data);
            assert_agree(&bytes);
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(len) = resize {
                bytes.resize(len, 0);
            }
            if fix {
                refill(&mut bytes);
            }
            assert_agree(&bytes);
        }

        /// VRRPv3 over IPv4 is never the fast path's: it goes to the general path.
        #[test]
        fn fast_path_leaves_v3_to_the_general_path(
            count in 0..=255usize,
            interval_cs in 0..=0x0fffu16,
            plain in any::<bool>(),
        ) {
            let addresses: Vec<u8> = (0..count * 4).map(|i| i as u8).collect();
            let advert = Advertisement {
                version: Version::V3,
                vrid: 7,
                priority: 100,
                interval_cs,
                auth: Auth::None,
                addresses: Addresses::V4(&addresses),
            };
            let form = if plain { ChecksumForm::Plain } else { ChecksumForm::PseudoHeader };
            let bytes = advert.to_bytes(form, IpAddr::V4(SRC), IpAddr::V4(DST)).unwrap();
            prop_assert!(accept_v2(&bytes).is_none());
            prop_assert_eq!(validate_v4(&bytes, SRC, DST, TTL).map(|r| r.advert), Ok(advert));
            assert_agree(&bytes);
        }
    }
}
