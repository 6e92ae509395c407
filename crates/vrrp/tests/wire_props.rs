//! Properties of the codec over generated inputs: every valid representation survives
//! emit -> validate unchanged, arbitrary bytes never panic and never validate with a checksum
//! that an independent (textbook) RFC 1071 implementation rejects, and corrupted messages do not
//! validate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use vrrp::wire::{
    parse_ip_packet, validate, Addresses, Advertisement, Auth, ChecksumForm, Family, IpMeta,
    Packet, Version,
};

/// The textbook RFC 1071 sum, 16 bits at a time with end-around carry: independent of the
/// crate's 16-bytes-at-a-time implementation.
fn reference_sum(chunks: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for bytes in chunks {
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]);
            let lo = u32::from(pair.get(1).copied().unwrap_or(0));
            sum += hi << 8 | lo;
            sum = (sum & 0xffff) + (sum >> 16);
        }
    }
    sum as u16
}

fn ip_octets(a: &IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

/// Does `message` verify in `form` by the textbook computation?
fn reference_verifies(message: &[u8], form: ChecksumForm, src: &IpAddr, dst: &IpAddr) -> bool {
    let sum = match form {
        ChecksumForm::V2 | ChecksumForm::Plain => reference_sum(&[message]),
        ChecksumForm::PseudoHeader => {
            let (s, d) = (ip_octets(src), ip_octets(dst));
            let tail: Vec<u8> = if s.len() == 4 {
                let len = message.len() as u16;
                vec![0, 112, (len >> 8) as u8, len as u8]
            } else {
                let mut t = (message.len() as u32).to_be_bytes().to_vec();
                t.extend_from_slice(&[0, 0, 0, 112]);
                t
            };
            reference_sum(&[&s, &d, &tail, message])
        }
    };
    sum == 0xffff
}

/// An owned advertisement plus where it travels and how it is checksummed.
#[derive(Clone, Debug)]
struct Case {
    version: Version,
    vrid: u8,
    priority: u8,
    interval_cs: u16,
    auth: Auth,
    family: Family,
    addresses: Vec<u8>,
    form: ChecksumForm,
    src: IpAddr,
    dst: IpAddr,
}

impl Case {
    fn advert(&self) -> Advertisement<'_> {
        Advertisement {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            interval_cs: self.interval_cs,
            auth: self.auth,
            addresses: match self.family {
                Family::V4 => Addresses::V4(&self.addresses),
                Family::V6 => Addresses::V6(&self.addresses),
            },
        }
    }

    fn meta(&self) -> IpMeta {
        IpMeta {
            src: self.src,
            dst: self.dst,
            ttl: 255,
        }
    }
}

fn any_v4() -> impl Strategy<Value = IpAddr> {
    any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
}

fn any_v6() -> impl Strategy<Value = IpAddr> {
    any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

/// Every valid representation: both versions, both families (v2: IPv4 only), 0..=255
/// addresses, every interval the version can carry, both v2 auth types, every allowed form.
fn valid_case() -> impl Strategy<Value = Case> {
    let v2 = (
        1..=255u8,
        any::<u8>(),
        0..=255u16,
        prop_oneof![
            Just(Auth::None),
            any::<[u8; 8]>().prop_map(Auth::SimplePassword)
        ],
        0..=255usize,
        any_v4(),
        any_v4(),
    )
        .prop_flat_map(|(vrid, priority, secs, auth, count, src, dst)| {
            proptest::collection::vec(any::<u8>(), count * 4).prop_map(move |addresses| Case {
                version: Version::V2,
                vrid,
                priority,
                interval_cs: secs * 100,
                auth,
                family: Family::V4,
                addresses,
                form: ChecksumForm::V2,
                src,
                dst,
            })
        });
    let v3_4 = (
        1..=255u8,
        any::<u8>(),
        0..=4095u16,
        0..=255usize,
        prop_oneof![Just(ChecksumForm::PseudoHeader), Just(ChecksumForm::Plain)],
        any_v4(),
        any_v4(),
    )
        .prop_flat_map(|(vrid, priority, interval_cs, count, form, src, dst)| {
            proptest::collection::vec(any::<u8>(), count * 4).prop_map(move |addresses| Case {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                auth: Auth::None,
                family: Family::V4,
                addresses,
                form,
                src,
                dst,
            })
        });
    let v3_6 = (
        1..=255u8,
        any::<u8>(),
        0..=4095u16,
        0..=255usize,
        any_v6(),
        any_v6(),
    )
        .prop_flat_map(|(vrid, priority, interval_cs, count, src, dst)| {
            proptest::collection::vec(any::<u8>(), count * 16).prop_map(move |addresses| Case {
                version: Version::V3,
                vrid,
                priority,
                interval_cs,
                auth: Auth::None,
                family: Family::V6,
                addresses,
                form: ChecksumForm::PseudoHeader,
                src,
                dst,
            })
        });
    prop_oneof![v2, v3_4, v3_6]
}

fn emit(case: &Case) -> Vec<u8> {
    let advert = case.advert();
    let mut buf = vec![0u8; advert.buffer_len()];
    let n = advert
        .emit(&mut buf, case.form, case.src, case.dst)
        .expect("a valid case emits");
    assert_eq!(n, buf.len());
    buf
}

/// The message inside a minimal IP header, as a raw socket or a capture holds it.
fn wrap_in_ip(case: &Case, message: &[u8]) -> Vec<u8> {
    match (case.src, case.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + message.len()) as u16;
            let mut p = vec![0x45, 0xc0];
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0x40, 0, 255, 112, 0, 0]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(message);
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = vec![0x60, 0, 0, 0];
            p.extend_from_slice(&(message.len() as u16).to_be_bytes());
            p.extend_from_slice(&[112, 255]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(message);
            p
        }
        _ => unreachable!("cases never mix families"),
    }
}

/// Every public read path on arbitrary bytes; none may panic. Returns whether validation
/// passed, after checking that a pass is backed by the reference checksum.
fn exercise(bytes: &[u8], meta: IpMeta) -> bool {
    for family in [Family::V4, Family::V6] {
        let _ = Advertisement::parse_bytes(bytes, family).map(|a| a.to_string());
        if let Ok(p) = Packet::new_checked(bytes, family) {
            let _ = (
                p.version(),
                p.msg_type(),
                p.vrid(),
                p.priority(),
                p.auth_type(),
            );
            let _ = (
                p.adver_int(),
                p.max_adver_int(),
                p.checksum(),
                p.auth_data(),
            );
            let _ = p.addresses(family);
        }
    }
    if let Ok(r) = parse_ip_packet(bytes) {
        let _ = r.to_string();
    }
    match validate(bytes, &meta) {
        Ok(r) => {
            assert!(
                reference_verifies(bytes, r.checksum_form, &meta.src, &meta.dst),
                "validated with a checksum the reference rejects: {r}"
            );
            true
        }
        Err(e) => {
            let _ = e.to_string();
            false
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn emit_then_validate_is_identity(case in valid_case()) {
        let advert = case.advert();
        let bytes = emit(&case);
        prop_assert!(reference_verifies(&bytes, case.form, &case.src, &case.dst));

        let received = validate(&bytes, &case.meta()).expect("an emitted message validates");
        prop_assert_eq!(received.advert, advert);
        prop_assert_eq!(received.src, case.src);
        prop_assert_eq!(received.dst, case.dst);
        // Over IPv4 a v3 message may by chance verify in both forms (the pseudo-header sums to
        // zero); the pseudo-header form is then reported.
        if received.checksum_form != case.form {
            prop_assert_eq!(case.form, ChecksumForm::Plain);
            prop_assert!(reference_verifies(&bytes, ChecksumForm::PseudoHeader, &case.src, &case.dst));
        }
        prop_assert_eq!(Advertisement::parse_bytes(&bytes, case.family), Ok(advert));

        let packet = wrap_in_ip(&case, &bytes);
        prop_assert_eq!(parse_ip_packet(&packet), Ok(received));

        // The BytesMut convenience writes the same bytes.
        let owned = advert.to_bytes(case.form, case.src, case.dst).unwrap();
        prop_assert_eq!(&owned[..], &bytes[..]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        v6 in any::<bool>(),
        ttl in prop_oneof![Just(255u8), any::<u8>()],
        s4 in any::<u32>(), d4 in any::<u32>(), s6 in any::<u128>(), d6 in any::<u128>(),
    ) {
        let meta = if v6 {
            IpMeta { src: Ipv6Addr::from(s6).into(), dst: Ipv6Addr::from(d6).into(), ttl }
        } else {
            IpMeta { src: Ipv4Addr::from(s4).into(), dst: Ipv4Addr::from(d4).into(), ttl }
        };
        exercise(&bytes, meta);
    }

    /// Mutations of valid messages reach deep into the checks that random bytes rarely pass.
    #[test]
    fn mutated_messages_never_panic(
        case in valid_case(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = emit(&case);
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        exercise(&bytes, case.meta());
        let mut packet = wrap_in_ip(&case, &bytes);
        if truncate {
            packet.truncate(cut.index(packet.len() + 1));
        }
        let _ = parse_ip_packet(&packet);
    }

    #[test]
    fn corrupted_checksum_never_validates(case in valid_case(), value in any::<u16>()) {
        let bytes = emit(&case);
        // The values that legitimately verify: the field of every form this version and family
        // accept, and its one's complement twin (0x0000 and 0xffff are both zero, RFC 1071).
        let forms: &[ChecksumForm] = match (case.version, case.family) {
            (Version::V2, _) => &[ChecksumForm::V2],
            (Version::V3, Family::V4) => &[ChecksumForm::PseudoHeader, ChecksumForm::Plain],
            (Version::V3, Family::V6) => &[ChecksumForm::PseudoHeader],
        };
        let mut allowed = Vec::new();
        for &form in forms {
            let mut c = bytes.clone();
            Packet::new_unchecked(&mut c[..]).fill_checksum(form, &case.src, &case.dst).unwrap();
            let v = Packet::new_unchecked(&c[..]).checksum();
            allowed.push(v);
            if v == 0 { allowed.push(0xffff) }
        }
        prop_assume!(!allowed.contains(&value));
        let mut corrupted = bytes.clone();
        Packet::new_unchecked(&mut corrupted[..]).set_checksum(value);
        prop_assert!(validate(&corrupted, &case.meta()).is_err());
    }

    /// A single flipped bit anywhere in the message is caught (RFC 1071 detects every
    /// single-bit error). Over IPv4 a v3 flip could make the *other* form verify; that is the
    /// price of accepting both (RFC 9568 section 5.2.8), and then the reported form differs.
    #[test]
    fn single_bit_flips_never_validate_in_the_sent_form(
        case in valid_case(),
        at in any::<prop::sample::Index>(),
        bit in 0..8u8,
    ) {
        let mut bytes = emit(&case);
        let i = at.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(r) = validate(&bytes, &case.meta()) {
            prop_assert_eq!(case.version, Version::V3);
            prop_assert_eq!(case.family, Family::V4);
            prop_assert_ne!(r.checksum_form, case.form);
        }
    }
}
