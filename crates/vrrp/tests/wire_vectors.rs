//! The codec against the known advertisement bytes of ENVIRONMENT.md (checked by hand, by
//! keepalived 2.2.7 and by Wireshark), plus one test per error variant.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vrrp::wire::{
    parse_ip_packet, validate, Addresses, Advertisement, Auth, ChecksumForm, Error, Family, IpMeta,
    Packet, Version,
};

fn v4(a: [u8; 4]) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(a))
}

fn v6(s: &str) -> IpAddr {
    IpAddr::V6(s.parse::<Ipv6Addr>().unwrap())
}

fn meta(src: IpAddr, dst: IpAddr) -> IpMeta {
    IpMeta { src, dst, ttl: 255 }
}

const GROUP4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

/// v2, VRID 51, priority 30, VIP 10.0.1.5, no auth, interval 1 s: checksum 0xb5c5.
const V2_B5C5: [u8; 20] = [
    0x21, 0x33, 0x1e, 0x01, 0x00, 0x01, 0xb5, 0xc5, 0x0a, 0x00, 0x01, 0x05, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// v3 over IPv4, VRID 2, priority 254, 1 cs, VIPs 20.0.1.2 and 20.0.1.3, without checksum.
fn v3_ipv4_body(checksum: u16) -> Vec<u8> {
    let mut b = vec![0x31, 0x02, 0xfe, 0x02, 0x00, 0x01];
    b.extend_from_slice(&checksum.to_be_bytes());
    b.extend_from_slice(&[20, 0, 1, 2, 20, 0, 1, 3]);
    b
}

fn v3_ipv6_bytes(checksum: u16) -> Vec<u8> {
    let mut b = vec![0x31, 0x02, 0xfe, 0x02, 0x00, 0x01];
    b.extend_from_slice(&checksum.to_be_bytes());
    b.extend_from_slice(&v6_octets("2001:db8::2"));
    b.extend_from_slice(&v6_octets("2001:db8::3"));
    b
}

fn v6_octets(s: &str) -> [u8; 16] {
    s.parse::<Ipv6Addr>().unwrap().octets()
}

/// An IPv4 header (no options unless given) around `payload`, protocol 112.
fn ipv4_packet(src: [u8; 4], dst: [u8; 4], ttl: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let header_len = 20 + options.len();
    let total = (header_len + payload.len()) as u16;
    let mut p = vec![0x40 | (header_len / 4) as u8, 0xc0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x00, 0x00, ttl, 112, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(options);
    p.extend_from_slice(payload);
    p
}

fn ipv6_packet(src: &str, dst: &str, hop_limit: u8, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, hop_limit]);
    p.extend_from_slice(&v6_octets(src));
    p.extend_from_slice(&v6_octets(dst));
    p.extend_from_slice(payload);
    p
}

#[test]
fn v2_vector_b5c5_parses_validates_and_re_emits() {
    let src = v4([10, 0, 1, 1]);
    let received = validate(&V2_B5C5, &meta(src, GROUP4)).unwrap();
    assert_eq!(received.checksum, 0xb5c5);
    assert_eq!(received.checksum_form, ChecksumForm::V2);
    let advert = received.advert;
    assert_eq!(advert.version, Version::V2);
    assert_eq!(advert.vrid, 51);
    assert_eq!(advert.priority, 30);
    assert_eq!(advert.interval_cs, 100);
    assert_eq!(advert.auth, Auth::None);
    assert_eq!(
        advert.addresses.iter().collect::<Vec<_>>(),
        vec![v4([10, 0, 1, 5])]
    );
    assert_eq!(
        advert.to_string(),
        "VRRPv2 advertisement vrid 51 prio 30 auth none intvl 1s addrs 10.0.1.5"
    );
    assert_eq!(
        received.to_string(),
        "10.0.1.1 > 224.0.0.18 ttl 255: VRRPv2 advertisement vrid 51 prio 30 auth none \
         intvl 1s addrs 10.0.1.5 cksum 0xb5c5 (v2)"
    );

    let mut buf = [0xaau8; 32];
    assert_eq!(advert.buffer_len(), 20);
    let n = advert
        .emit(&mut buf, ChecksumForm::V2, src, GROUP4)
        .unwrap();
    assert_eq!(&buf[..n], &V2_B5C5);
    assert_eq!(buf[n], 0xaa, "emit wrote past the message");
    assert_eq!(
        &advert.to_bytes(ChecksumForm::V2, src, GROUP4).unwrap()[..],
        &V2_B5C5
    );
}

#[test]
fn v2_keepalived_vector_3e03() {
    let advert = Advertisement {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V4(&[10, 99, 0, 100]),
    };
    let src = v4([10, 99, 0, 1]);
    let bytes = advert.to_bytes(ChecksumForm::V2, src, GROUP4).unwrap();
    assert_eq!(Packet::new_unchecked(&bytes[..]).checksum(), 0x3e03);
    assert_eq!(validate(&bytes, &meta(src, GROUP4)).unwrap().advert, advert);
}

#[test]
fn v3_ipv4_vectors_both_forms() {
    let src = v4([20, 0, 0, 3]);
    for (sum, form) in [
        (0xb25e, ChecksumForm::PseudoHeader),
        (0xa6f4, ChecksumForm::Plain),
    ] {
        let bytes = v3_ipv4_body(sum);
        let received = validate(&bytes, &meta(src, GROUP4)).unwrap();
        assert_eq!(received.checksum_form, form);
        assert_eq!(received.checksum, sum);
        let advert = received.advert;
        assert_eq!(advert.version, Version::V3);
        assert_eq!(advert.vrid, 2);
        assert_eq!(advert.priority, 254);
        assert_eq!(advert.interval_cs, 1);
        assert_eq!(advert.addresses, Addresses::V4(&[20, 0, 1, 2, 20, 0, 1, 3]));
        assert_eq!(
            advert.to_string(),
            "VRRPv3 advertisement vrid 2 prio 254 intvl 1cs addrs 20.0.1.2,20.0.1.3"
        );
        let emitted = advert.to_bytes(form, src, GROUP4).unwrap();
        assert_eq!(&emitted[..], &bytes[..], "{form}");
        assert!(Packet::new_unchecked(&bytes[..]).verify_checksum(form, &src, &GROUP4));
    }
    // The wrong form does not verify.
    let pseudo = v3_ipv4_body(0xb25e);
    assert!(!Packet::new_unchecked(&pseudo[..]).verify_checksum(
        ChecksumForm::Plain,
        &src,
        &GROUP4
    ));
}

#[test]
fn v3_ipv6_vector_481b() {
    let src = v6("2001:db8::1");
    let dst = v6("ff02::12");
    let bytes = v3_ipv6_bytes(0x481b);
    let received = validate(&bytes, &meta(src, dst)).unwrap();
    assert_eq!(received.checksum_form, ChecksumForm::PseudoHeader);
    assert_eq!(received.advert.family(), Family::V6);
    assert_eq!(
        received.advert.to_string(),
        "VRRPv3 advertisement vrid 2 prio 254 intvl 1cs addrs 2001:db8::2,2001:db8::3"
    );
    let emitted = received
        .advert
        .to_bytes(ChecksumForm::PseudoHeader, src, dst)
        .unwrap();
    assert_eq!(&emitted[..], &bytes[..]);

    // The same message in a whole IPv6 packet, with trailing padding.
    let mut packet = ipv6_packet("2001:db8::1", "ff02::12", 255, 112, &bytes);
    packet.extend_from_slice(&[0; 6]);
    let whole = parse_ip_packet(&packet).unwrap();
    assert_eq!(whole, received);
}

#[test]
fn whole_ipv4_packet_with_options_and_ethernet_padding() {
    let options = [0x94, 0x04, 0x00, 0x00]; // Router Alert, as some stacks add
    let mut packet = ipv4_packet([10, 0, 1, 1], [224, 0, 0, 18], 255, &options, &V2_B5C5);
    packet.extend_from_slice(&[0u8; 6]); // a 60-byte Ethernet frame's padding
    let received = parse_ip_packet(&packet).unwrap();
    assert_eq!(received.src, v4([10, 0, 1, 1]));
    assert_eq!(received.dst, GROUP4);
    assert_eq!(received.ttl, 255);
    assert_eq!(received.advert.vrid, 51);
    assert_eq!(received.advert.addresses.as_bytes(), &[10, 0, 1, 5]);
}

#[test]
fn v2_simple_password_round_trips_and_displays() {
    let advert = Advertisement {
        version: Version::V2,
        vrid: 7,
        priority: 100,
        interval_cs: 300,
        auth: Auth::SimplePassword(*b"secret\0\0"),
        addresses: Addresses::V4(&[10, 99, 0, 100, 10, 99, 0, 101]),
    };
    let src = v4([10, 99, 0, 1]);
    let bytes = advert.to_bytes(ChecksumForm::V2, src, GROUP4).unwrap();
    assert_eq!(bytes[4], 1, "auth type 1");
    assert_eq!(&bytes[16..24], b"secret\0\0");
    let received = validate(&bytes, &meta(src, GROUP4)).unwrap();
    assert_eq!(received.advert, advert);
    assert_eq!(
        advert.to_string(),
        "VRRPv2 advertisement vrid 7 prio 100 auth simple \"secret\" intvl 3s \
         addrs 10.99.0.100,10.99.0.101"
    );
}

#[test]
fn v2_auth_data_is_ignored_for_auth_type_none_and_zeroed_on_send() {
    let mut bytes = V2_B5C5;
    bytes[12..20].copy_from_slice(b"garbage!");
    Packet::new_unchecked(&mut bytes[..])
        .fill_checksum(ChecksumForm::V2, &GROUP4, &GROUP4)
        .unwrap();
    let received = validate(&bytes, &meta(v4([10, 0, 1, 1]), GROUP4)).unwrap();
    assert_eq!(received.advert.auth, Auth::None);
    let emitted = received
        .advert
        .to_bytes(ChecksumForm::V2, GROUP4, GROUP4)
        .unwrap();
    assert_eq!(&emitted[..], &V2_B5C5);
}

#[test]
fn v3_reserved_bits_ignored_on_receive_and_zero_on_send() {
    let src = v4([20, 0, 0, 3]);
    let mut bytes = v3_ipv4_body(0);
    bytes[4] |= 0xf0;
    Packet::new_unchecked(&mut bytes[..])
        .fill_checksum(ChecksumForm::PseudoHeader, &src, &GROUP4)
        .unwrap();
    let packet = Packet::new_checked(&bytes[..], Family::V4).unwrap();
    assert_eq!(packet.reserved(), 0xf);
    assert_eq!(packet.max_adver_int(), 1);
    let advert = validate(&bytes, &meta(src, GROUP4)).unwrap().advert;
    assert_eq!(advert.interval_cs, 1);
    let emitted = advert
        .to_bytes(ChecksumForm::PseudoHeader, src, GROUP4)
        .unwrap();
    assert_eq!(&emitted[..], &v3_ipv4_body(0xb25e)[..]);
}

#[test]
fn packet_accessors_and_setters_agree() {
    let mut buf = [0u8; 20];
    let mut p = Packet::new_unchecked(&mut buf[..]);
    p.set_version_and_type(2, 1);
    p.set_vrid(51);
    p.set_priority(30);
    p.set_count_ip_addrs(1);
    p.set_auth_type(0);
    p.set_adver_int(1);
    p.body_mut()[..4].copy_from_slice(&[10, 0, 1, 5]);
    p.fill_checksum(ChecksumForm::V2, &GROUP4, &GROUP4).unwrap();
    assert_eq!(p.checksum(), 0xb5c5);
    assert_eq!(buf, V2_B5C5);
    let p = Packet::new_checked(&buf[..], Family::V4).unwrap();
    assert_eq!(
        (p.version(), p.msg_type(), p.vrid(), p.priority()),
        (2, 1, 51, 30)
    );
    assert_eq!(
        (p.count_ip_addrs(), p.auth_type(), p.adver_int()),
        (1, 0, 1)
    );
    assert_eq!(p.addresses(Family::V4), &[10, 0, 1, 5]);
    assert_eq!(p.auth_data(), Some([0; 8]));
    assert_eq!(p.message_len(Family::V4), 20);
    // v3: 12-bit interval, reserved bits cleared by the setter.
    let mut buf = [0xffu8; 8];
    let mut p = Packet::new_unchecked(&mut buf[..]);
    p.set_max_adver_int(0xffff);
    assert_eq!(p.max_adver_int(), 0x0fff);
    assert_eq!(p.reserved(), 0);
}

#[test]
fn variable_parts_never_panic_on_short_buffers() {
    let short = [0x21, 0x33, 0x1e, 0xff, 0, 1, 0, 0, 10];
    let p = Packet::new_unchecked(&short[..]);
    assert_eq!(p.addresses(Family::V4), &[10]);
    assert_eq!(p.auth_data(), None);
    assert!(matches!(
        Packet::new_checked(&short[..], Family::V4),
        Err(Error::CountMismatch { count: 255, .. })
    ));
}

// ----- one test per error variant -----

fn bad(bytes: &[u8], m: IpMeta) -> Error {
    validate(bytes, &m).unwrap_err()
}

fn m4() -> IpMeta {
    meta(v4([10, 0, 1, 1]), GROUP4)
}

/// V2_B5C5 with one byte changed and the checksum refilled.
fn v2_with(index: usize, value: u8) -> Vec<u8> {
    let mut b = V2_B5C5.to_vec();
    b[index] = value;
    Packet::new_unchecked(&mut b[..])
        .fill_checksum(ChecksumForm::V2, &GROUP4, &GROUP4)
        .unwrap();
    b
}

#[test]
fn error_truncated() {
    let e = bad(&V2_B5C5[..7], m4());
    assert_eq!(e, Error::Truncated { len: 7 });
    assert!(e.to_string().contains("RFC 3768 section 7.1"), "{e}");
}

#[test]
fn error_unknown_version() {
    assert_eq!(bad(&v2_with(0, 0x41), m4()), Error::UnknownVersion(4));
    assert_eq!(bad(&v2_with(0, 0x11), m4()), Error::UnknownVersion(1));
}

#[test]
fn error_v2_over_ipv6() {
    let m = meta(v6("fe80::1"), v6("ff02::12"));
    assert_eq!(bad(&V2_B5C5, m), Error::V2OverIpv6);
    let advert = Advertisement::parse_bytes(&V2_B5C5, Family::V4).unwrap();
    let v6_advert = Advertisement {
        addresses: Addresses::V6(&[0; 16]),
        ..advert
    };
    assert_eq!(
        v6_advert.to_bytes(ChecksumForm::V2, GROUP4, GROUP4),
        Err(Error::V2OverIpv6)
    );
}

#[test]
fn error_unknown_type() {
    let e = bad(&v2_with(0, 0x22), m4());
    assert_eq!(e, Error::UnknownType(2));
    assert!(e.to_string().contains("RFC 3768 section 5.3.2"), "{e}");
}

#[test]
fn error_zero_vrid() {
    assert_eq!(bad(&v2_with(1, 0), m4()), Error::ZeroVrid);
    let advert = Advertisement {
        vrid: 0,
        ..Advertisement::parse_bytes(&V2_B5C5, Family::V4).unwrap()
    };
    assert_eq!(
        advert.emit(&mut [0; 20], ChecksumForm::V2, GROUP4, GROUP4),
        Err(Error::ZeroVrid)
    );
}

#[test]
fn error_count_mismatch_short_and_long() {
    let long = v2_with(3, 0);
    assert_eq!(
        bad(&long, m4()),
        Error::CountMismatch {
            version: Version::V2,
            family: Family::V4,
            count: 0,
            expected: 16,
            len: 20
        }
    );
    let e = bad(&v2_with(3, 2), m4());
    assert!(
        matches!(
            e,
            Error::CountMismatch {
                expected: 24,
                len: 20,
                ..
            }
        ),
        "{e}"
    );
    // v3 over IPv6 counts 16-byte addresses.
    let bytes = v3_ipv6_bytes(0x481b);
    let m = meta(v6("2001:db8::1"), v6("ff02::12"));
    assert!(matches!(
        bad(&bytes[..bytes.len() - 1], m),
        Error::CountMismatch {
            expected: 40,
            len: 39,
            ..
        }
    ));
}

#[test]
fn error_unsupported_auth_type() {
    let e = bad(&v2_with(4, 2), m4());
    assert_eq!(e, Error::UnsupportedAuthType(2));
    assert!(e.to_string().contains("RFC 3768 section 5.3.6"), "{e}");
    assert_eq!(bad(&v2_with(4, 254), m4()), Error::UnsupportedAuthType(254));
}

#[test]
fn error_bad_checksum_v2() {
    let mut b = V2_B5C5;
    b[7] ^= 0x01;
    let e = bad(&b, m4());
    assert_eq!(
        e,
        Error::BadChecksum {
            found: 0xb5c4,
            computed: 0xb5c5,
            form: ChecksumForm::V2
        }
    );
    assert!(e.to_string().contains("0xb5c5"), "{e}");
}

#[test]
fn error_bad_checksum_v3_ipv6() {
    let bytes = v3_ipv6_bytes(0x481c);
    let m = meta(v6("2001:db8::1"), v6("ff02::12"));
    assert_eq!(
        bad(&bytes, m),
        Error::BadChecksum {
            found: 0x481c,
            computed: 0x481b,
            form: ChecksumForm::PseudoHeader
        }
    );
    // The plain form is not accepted over IPv6.
    let mut plain = v3_ipv6_bytes(0);
    Packet::new_unchecked(&mut plain[..])
        .fill_checksum(ChecksumForm::Plain, &GROUP4, &GROUP4)
        .unwrap();
    assert!(matches!(bad(&plain, m), Error::BadChecksum { .. }));
}

#[test]
fn error_bad_checksum_either_form() {
    let bytes = v3_ipv4_body(0x1234);
    let e = bad(&bytes, meta(v4([20, 0, 0, 3]), GROUP4));
    assert_eq!(
        e,
        Error::BadChecksumEitherForm {
            found: 0x1234,
            pseudo_header: 0xb25e,
            plain: 0xa6f4
        }
    );
    // The pseudo-header binds the addresses: another source breaks it.
    let good = v3_ipv4_body(0xb25e);
    assert!(matches!(
        bad(&good, meta(v4([20, 0, 0, 4]), GROUP4)),
        Error::BadChecksumEitherForm { .. }
    ));
}

#[test]
fn error_bad_ttl_and_hop_limit() {
    let e = bad(&V2_B5C5, IpMeta { ttl: 64, ..m4() });
    assert_eq!(e, Error::BadTtl(64));
    assert_eq!(
        e.to_string(),
        "TTL 64 is not 255 (RFC 3768 section 7.1, RFC 5798 section 7.1)"
    );
    let packet = ipv4_packet([10, 0, 1, 1], [224, 0, 0, 18], 1, &[], &V2_B5C5);
    assert_eq!(parse_ip_packet(&packet), Err(Error::BadTtl(1)));
    let packet = ipv6_packet("2001:db8::1", "ff02::12", 254, 112, &v3_ipv6_bytes(0x481b));
    assert_eq!(parse_ip_packet(&packet), Err(Error::BadHopLimit(254)));
}

#[test]
fn error_mixed_families() {
    let e = bad(&V2_B5C5, meta(v4([10, 0, 1, 1]), v6("ff02::12")));
    assert!(matches!(e, Error::MixedFamilies { .. }), "{e}");
}

#[test]
fn error_ip_level() {
    assert_eq!(parse_ip_packet(&[]), Err(Error::EmptyIpPacket));
    assert_eq!(
        parse_ip_packet(&[0x50; 40]),
        Err(Error::UnknownIpVersion(5))
    );
    assert_eq!(
        parse_ip_packet(&[0x45; 19]),
        Err(Error::IpHeaderTruncated {
            family: Family::V4,
            len: 19,
            need: 20
        })
    );
    assert!(matches!(
        parse_ip_packet(&[0x60; 39]),
        Err(Error::IpHeaderTruncated {
            family: Family::V6,
            ..
        })
    ));

    let good = ipv4_packet([10, 0, 1, 1], [224, 0, 0, 18], 255, &[], &V2_B5C5);
    let mut p = good.clone();
    p[0] = 0x44;
    assert_eq!(
        parse_ip_packet(&p),
        Err(Error::BadIpv4HeaderLength {
            header_len: 16,
            len: 40
        })
    );
    p[0] = 0x4f;
    assert!(matches!(
        parse_ip_packet(&p),
        Err(Error::BadIpv4HeaderLength { header_len: 60, .. })
    ));

    let mut p = good.clone();
    p[3] = 41; // total length one byte past the buffer
    assert!(matches!(
        parse_ip_packet(&p),
        Err(Error::BadIpv4TotalLength { total_len: 41, .. })
    ));
    p[3] = 19;
    assert!(matches!(
        parse_ip_packet(&p),
        Err(Error::BadIpv4TotalLength { total_len: 19, .. })
    ));
    p[3] = 39; // shorter than the VRRP message: the count no longer matches
    assert!(matches!(
        parse_ip_packet(&p),
        Err(Error::CountMismatch { len: 19, .. })
    ));

    let mut p = good.clone();
    p[6] = 0x20; // more fragments
    assert_eq!(
        parse_ip_packet(&p),
        Err(Error::Fragment {
            offset: 0,
            more_fragments: true
        })
    );
    p[6] = 0x00;
    p[7] = 0x03;
    assert_eq!(
        parse_ip_packet(&p),
        Err(Error::Fragment {
            offset: 3,
            more_fragments: false
        })
    );
    p[7] = 0;
    p[6] = 0x40; // don't fragment is fine
    assert!(parse_ip_packet(&p).is_ok());

    let mut p = good.clone();
    p[9] = 17;
    assert_eq!(parse_ip_packet(&p), Err(Error::NotVrrp(17)));

    let payload = v3_ipv6_bytes(0x481b);
    let p = ipv6_packet("2001:db8::1", "ff02::12", 255, 0, &payload);
    let e = parse_ip_packet(&p).unwrap_err();
    assert_eq!(e, Error::Ipv6ExtensionHeader(0));
    assert!(e.to_string().contains("extension header"), "{e}");
    let p = ipv6_packet("2001:db8::1", "ff02::12", 255, 58, &payload);
    assert_eq!(parse_ip_packet(&p), Err(Error::NotVrrp(58)));
    let mut p = ipv6_packet("2001:db8::1", "ff02::12", 255, 112, &payload);
    p.truncate(p.len() - 1);
    assert_eq!(
        parse_ip_packet(&p),
        Err(Error::BadIpv6PayloadLength {
            payload_len: 40,
            available: 39
        })
    );
}

#[test]
fn emit_errors() {
    let base = Advertisement::parse_bytes(&V2_B5C5, Family::V4).unwrap();
    let (s, d) = (v4([10, 0, 1, 1]), GROUP4);

    assert_eq!(
        base.emit(&mut [0u8; 19], ChecksumForm::V2, s, d),
        Err(Error::BufferTooSmall { need: 20, have: 19 })
    );
    for interval_cs in [150, 25600] {
        let a = Advertisement {
            interval_cs,
            ..base
        };
        assert_eq!(
            a.to_bytes(ChecksumForm::V2, s, d),
            Err(Error::V2IntervalNotRepresentable(interval_cs))
        );
    }
    let v3 = Advertisement {
        version: Version::V3,
        interval_cs: 4096,
        ..base
    };
    assert_eq!(
        v3.to_bytes(ChecksumForm::PseudoHeader, s, d),
        Err(Error::V3IntervalTooLong(4096))
    );
    let v3 = Advertisement {
        version: Version::V3,
        auth: Auth::SimplePassword(*b"pass\0\0\0\0"),
        ..base
    };
    assert_eq!(
        v3.to_bytes(ChecksumForm::PseudoHeader, s, d),
        Err(Error::V3Authentication)
    );
    let a = Advertisement {
        addresses: Addresses::V4(&[1, 2, 3]),
        ..base
    };
    assert_eq!(
        a.to_bytes(ChecksumForm::V2, s, d),
        Err(Error::PartialAddress {
            len: 3,
            family: Family::V4
        })
    );
    let many = vec![7u8; 256 * 4];
    let a = Advertisement {
        addresses: Addresses::V4(&many),
        ..base
    };
    assert_eq!(
        a.to_bytes(ChecksumForm::V2, s, d),
        Err(Error::TooManyAddresses(256))
    );
    // Forms: v2 needs V2; v3/IPv6 needs the pseudo-header.
    assert!(matches!(
        base.to_bytes(ChecksumForm::PseudoHeader, s, d),
        Err(Error::ChecksumFormMismatch { .. })
    ));
    let v3_6 = Advertisement {
        version: Version::V3,
        addresses: Addresses::V6(&[0; 16]),
        ..base
    };
    for form in [ChecksumForm::V2, ChecksumForm::Plain] {
        assert!(matches!(
            v3_6.to_bytes(form, s, d),
            Err(Error::ChecksumFormMismatch { .. })
        ));
    }
    assert_eq!(
        v3_6.to_bytes(ChecksumForm::PseudoHeader, s, d),
        Err(Error::PseudoHeaderFamily {
            src: s,
            dst: d,
            family: Family::V6
        })
    );
    // A pseudo-header length field cannot describe a buffer beyond 65535 bytes.
    let huge = vec![0u8; 70_000];
    assert!(!Packet::new_unchecked(&huge[..]).verify_checksum(ChecksumForm::PseudoHeader, &s, &d));
    let mut huge = huge;
    assert_eq!(
        Packet::new_unchecked(&mut huge[..]).fill_checksum(ChecksumForm::PseudoHeader, &s, &d),
        Err(Error::MessageTooLong(70_000))
    );
}
