//! Fuzz the advertisement codec: whole IP packets through `parse_ip_packet`, and VRRP bytes
//! with fuzzer-chosen metadata through `validate`. Whatever validates must re-emit and
//! re-validate to the same advertisement.
//!
//! Input layout for the `validate` path: byte 0 picks the family (bit 0) and the TTL (255 unless
//! bit 1 is set, then byte 1), bytes 2..34 hold the source and destination addresses, the rest
//! is the VRRP message.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use vrrp::wire::{parse_ip_packet, validate, ChecksumForm, IpMeta, Received};

/// Largest message: 255 IPv6 addresses after the header (v3), or 255 IPv4 addresses and the
/// auth data (v2).
const MAX_MESSAGE: usize = 8 + 255 * 16;

fn check_re_emit(received: &Received<'_>) {
    let _ = received.to_string();
    let mut buf = [0u8; MAX_MESSAGE];
    let n = received
        .advert
        .emit(&mut buf, received.checksum_form, received.src, received.dst)
        .expect("a validated advertisement re-emits");
    let meta = IpMeta {
        src: received.src,
        dst: received.dst,
        ttl: received.ttl,
    };
    let again = validate(&buf[..n], &meta).expect("a re-emitted advertisement validates");
    assert_eq!(again.advert, received.advert);
    // Re-emitting zeroes reserved bits, so a plain v3/IPv4 message may come back verifying in
    // both forms, and the pseudo-header form is then reported.
    assert!(
        again.checksum_form == received.checksum_form
            || (received.checksum_form == ChecksumForm::Plain
                && again.checksum_form == ChecksumForm::PseudoHeader)
    );
}

fn octets<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = *b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(received) = parse_ip_packet(data) {
        check_re_emit(&received);
    }
    if data.len() >= 34 {
        let (head, message) = data.split_at(34);
        let ttl = if head[0] & 2 != 0 { head[1] } else { 255 };
        let (src, dst): (IpAddr, IpAddr) = if head[0] & 1 == 0 {
            (
                Ipv4Addr::from(octets::<4>(&head[2..6])).into(),
                Ipv4Addr::from(octets::<4>(&head[6..10])).into(),
            )
        } else {
            (
                Ipv6Addr::from(octets::<16>(&head[2..18])).into(),
                Ipv6Addr::from(octets::<16>(&head[18..34])).into(),
            )
        };
        if let Ok(received) = validate(message, &IpMeta { src, dst, ttl }) {
            check_re_emit(&received);
        }
    }
});
