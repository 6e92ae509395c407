//! The advertisement codec's hot paths against a baseline on the same bytes.
//!
//! * `parse_validate`: what a node does per received packet. Ours: `wire::validate` (VRRP bytes
//!   plus socket metadata) and `wire::parse_ip_packet` (a whole IPv4/IPv6 packet). Baseline:
//!   `vrrp_packet` 0.1 (pnet-macro generated VRRPv2 view) with the same checks made by hand and
//!   the checksum verified by `pnet_packet::util::checksum`.
//! * `emit_checksum`: building a message and its checksum into a caller's buffer. Baseline:
//!   `vrrp_packet`'s `MutableVrrpPacket` setters and `pnet_packet::util::checksum`.
//!
//! The baseline handles VRRPv2 only, so the v3/IPv6 rows have no baseline.
//!
//! Run: `cargo bench -p pbx-redundancy --bench codec`.
//!
//! Instruction counts (exact on a loaded machine, where times are not): with `CODEC_COUNT` set
//! to a criterion id, e.g. `parse_validate/v2_1addr/wire_validate`, the binary runs only that
//! routine, `CODEC_COUNT_ITERS` times (default 10000), each call through the one out-of-line
//! function `counted`; callgrind's total with collection toggled on that function, divided by
//! the iterations, is the cost of one call (the call itself included, the same for both sides):
//!
//! ```text
//! cargo bench -p pbx-redundancy --bench codec --no-run   # prints the binary's path
//! CODEC_COUNT=parse_validate/v2_1addr/wire_validate valgrind --tool=callgrind \
//!     --toggle-collect='*counted*' --callgrind-out-file=/tmp/cg target/release/deps/codec-HASH
//! callgrind_annotate /tmp/cg | grep 'PROGRAM TOTALS'      # Ir / 10000 = per call
//! ```
//!
//! Both sides get their inputs the same way: the message (or buffer and addresses) through
//! `black_box`, and ours its socket metadata by reference through `black_box` as
//! `wire::validate` takes it.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, Criterion};
use vrrp::wire::{
    parse_ip_packet, validate, Addresses, Advertisement, Auth, ChecksumForm, IpMeta, Version,
};
use vrrp_packet::{MutableVrrpPacket, VrrpPacket};

const SRC4: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
const GROUP4: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
const SRC6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
const GROUP6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12));

fn v4_addresses(n: u8) -> Vec<u8> {
    (1..=n).flat_map(|i| [10, 99, 0, 100 + i]).collect()
}

fn v6_addresses(n: u8) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, u16::from(i)).octets())
        .collect()
}

fn v2(addresses: &[u8]) -> Advertisement<'_> {
    Advertisement {
        version: Version::V2,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V4(addresses),
    }
}

fn v3_6(addresses: &[u8]) -> Advertisement<'_> {
    Advertisement {
        version: Version::V3,
        vrid: 51,
        priority: 150,
        interval_cs: 100,
        auth: Auth::None,
        addresses: Addresses::V6(addresses),
    }
}

fn ipv4_packet(message: &[u8]) -> Vec<u8> {
    let total = (20 + message.len()) as u16;
    let mut p = vec![0x45, 0xc0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 255, 112, 0, 0, 10, 99, 0, 1, 224, 0, 0, 18]);
    p.extend_from_slice(message);
    p
}

fn ipv6_packet(message: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(message.len() as u16).to_be_bytes());
    p.extend_from_slice(&[112, 255]);
    if let (IpAddr::V6(s), IpAddr::V6(d)) = (SRC6, GROUP6) {
        p.extend_from_slice(&s.octets());
        p.extend_from_slice(&d.octets());
    }
    p.extend_from_slice(message);
    p
}

/// The baseline receive path: the same RFC 3768 section 7.1 checks as `validate` (TTL,
/// version, type, VRID, count vs length, auth type, checksum), on `vrrp_packet`'s view.
/// Returns the priority so that nothing is optimised away.
#[inline(never)]
fn baseline_validate(bytes: &[u8], ttl: u8) -> Option<u8> {
    if ttl != 255 {
        return None;
    }
    let p = VrrpPacket::new(bytes)?;
    let count = usize::from(p.get_count_ip());
    if p.get_version() != 2
        || p.get_header_type() != 1
        || p.get_vrid() == 0
        || bytes.len() != 16 + 4 * count
        || p.get_auth_type() > 1
    {
        return None;
    }
    if pnet_packet::util::checksum(bytes, 3) != p.get_checksum() {
        return None;
    }
    let addresses = p.get_ip_addresses_raw();
    black_box(addresses);
    Some(p.get_priority())
}

/// The baseline send path: header setters, addresses, zero auth data, pnet's checksum.
#[inline(never)]
fn baseline_emit(buf: &mut [u8], addresses: &[u8]) -> Option<usize> {
    let len = 16 + addresses.len();
    let buf = buf.get_mut(..len)?;
    let mut p = MutableVrrpPacket::new(&mut *buf)?;
    p.set_version(2);
    p.set_header_type(1);
    p.set_vrid(51);
    p.set_priority(150);
    p.set_count_ip((addresses.len() / 4) as u8);
    p.set_auth_type(0);
    p.set_advert_int(1);
    p.set_checksum(0);
    p.set_ip_addresses(addresses);
    p.set_auth_data(0);
    p.set_auth_data2(0);
    drop(p);
    let sum = pnet_packet::util::checksum(buf, 3);
    MutableVrrpPacket::new(buf)?.set_checksum(sum);
    Some(len)
}

fn parse_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_validate");
    for n in [1u8, 8] {
        let addresses = v4_addresses(n);
        let message = v2(&addresses)
            .to_bytes(ChecksumForm::V2, SRC4, GROUP4)
            .unwrap();
        let packet = ipv4_packet(&message);
        let meta = IpMeta {
            src: SRC4,
            dst: GROUP4,
            ttl: 255,
        };
        assert!(validate(&message, &meta).is_ok());
        assert!(parse_ip_packet(&packet).is_ok());
        assert_eq!(baseline_validate(&message, 255), Some(150));

        group.bench_function(format!("v2_{n}addr/wire_validate"), |b| {
            b.iter(|| validate(black_box(&message), black_box(&meta)).map(|r| r.advert.priority))
        });
        group.bench_function(format!("v2_{n}addr/wire_parse_ip_packet"), |b| {
            b.iter(|| parse_ip_packet(black_box(&packet)).map(|r| r.advert.priority))
        });
        group.bench_function(format!("v2_{n}addr/vrrp_packet"), |b| {
            b.iter(|| baseline_validate(black_box(&message), black_box(255)))
        });
    }
    let addresses = v6_addresses(8);
    let message = v3_6(&addresses)
        .to_bytes(ChecksumForm::PseudoHeader, SRC6, GROUP6)
        .unwrap();
    let packet = ipv6_packet(&message);
    let meta = IpMeta {
        src: SRC6,
        dst: GROUP6,
        ttl: 255,
    };
    assert!(validate(&message, &meta).is_ok());
    assert!(parse_ip_packet(&packet).is_ok());
    group.bench_function("v3_ipv6_8addr/wire_validate", |b| {
        b.iter(|| validate(black_box(&message), black_box(&meta)).map(|r| r.advert.priority))
    });
    group.bench_function("v3_ipv6_8addr/wire_parse_ip_packet", |b| {
        b.iter(|| parse_ip_packet(black_box(&packet)).map(|r| r.advert.priority))
    });
    group.finish();
}

fn emit_checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("emit_checksum");
    let mut buf = [0u8; 8 + 255 * 16];
    for n in [1u8, 8] {
        let addresses = v4_addresses(n);
        let advert = v2(&addresses);
        let mut theirs = [0u8; 64];
        let len = baseline_emit(&mut theirs, &addresses).unwrap();
        let ours = advert.to_bytes(ChecksumForm::V2, SRC4, GROUP4).unwrap();
        assert_eq!(
            &theirs[..len],
            &ours[..],
            "both encoders write the same bytes"
        );

        group.bench_function(format!("v2_{n}addr/wire_emit"), |b| {
            b.iter(|| {
                black_box(&advert).emit(
                    black_box(&mut buf),
                    ChecksumForm::V2,
                    black_box(SRC4),
                    black_box(GROUP4),
                )
            })
        });
        group.bench_function(format!("v2_{n}addr/vrrp_packet"), |b| {
            b.iter(|| baseline_emit(black_box(&mut buf), black_box(&addresses)))
        });
    }
    let addresses = v6_addresses(8);
    let advert = v3_6(&addresses);
    group.bench_function("v3_ipv6_8addr/wire_emit", |b| {
        b.iter(|| {
            black_box(&advert).emit(
                black_box(&mut buf),
                ChecksumForm::PseudoHeader,
                black_box(SRC6),
                black_box(GROUP6),
            )
        })
    });
    group.finish();
}

/// One call of the routine being counted; out of line so that callgrind can collect it alone.
#[inline(never)]
fn counted<R>(routine: &mut impl FnMut() -> R) -> R {
    routine()
}

/// Runs `routine` `iters` times through [`counted`].
fn repeat<R>(iters: u64, mut routine: impl FnMut() -> R) {
    for _ in 0..iters {
        black_box(counted(&mut routine));
    }
}

/// The `CODEC_COUNT` mode: the routine of one criterion id, each call as criterion's closure
/// makes it. Returns false for an unknown id.
fn count(id: &str, iters: u64) -> bool {
    let mut buf = [0u8; 8 + 255 * 16];
    let v4 = |n: u8| {
        let addresses = v4_addresses(n);
        let message = v2(&addresses)
            .to_bytes(ChecksumForm::V2, SRC4, GROUP4)
            .unwrap()
            .to_vec();
        (addresses, message)
    };
    let meta4 = IpMeta {
        src: SRC4,
        dst: GROUP4,
        ttl: 255,
    };
    let meta6 = IpMeta {
        src: SRC6,
        dst: GROUP6,
        ttl: 255,
    };
    let addresses6 = v6_addresses(8);
    let message6 = v3_6(&addresses6)
        .to_bytes(ChecksumForm::PseudoHeader, SRC6, GROUP6)
        .unwrap()
        .to_vec();
    let n = if id.contains("_8addr/") { 8 } else { 1 };
    let (addresses, message) = v4(n);
    let packet = ipv4_packet(&message);
    let packet6 = ipv6_packet(&message6);
    let advert = v2(&addresses);
    let advert6 = v3_6(&addresses6);
    match id
        .split_once('/')
        .map(|(g, rest)| (g, rest.split_once('/')))
    {
        Some(("parse_validate", Some(("v2_1addr" | "v2_8addr", imp)))) => match imp {
            "wire_validate" => repeat(iters, || {
                validate(black_box(&message), black_box(&meta4)).map(|r| r.advert.priority)
            }),
            "wire_parse_ip_packet" => repeat(iters, || {
                parse_ip_packet(black_box(&packet)).map(|r| r.advert.priority)
            }),
            "vrrp_packet" => repeat(iters, || {
                baseline_validate(black_box(&message), black_box(255))
            }),
            _ => return false,
        },
        Some(("parse_validate", Some(("v3_ipv6_8addr", imp)))) => match imp {
            "wire_validate" => repeat(iters, || {
                validate(black_box(&message6), black_box(&meta6)).map(|r| r.advert.priority)
            }),
            "wire_parse_ip_packet" => repeat(iters, || {
                parse_ip_packet(black_box(&packet6)).map(|r| r.advert.priority)
            }),
            _ => return false,
        },
        Some(("emit_checksum", Some(("v2_1addr" | "v2_8addr", imp)))) => match imp {
            "wire_emit" => repeat(iters, || {
                black_box(&advert).emit(
                    black_box(&mut buf),
                    ChecksumForm::V2,
                    black_box(SRC4),
                    black_box(GROUP4),
                )
            }),
            "vrrp_packet" => repeat(iters, || {
                baseline_emit(black_box(&mut buf), black_box(&addresses))
            }),
            _ => return false,
        },
        Some(("emit_checksum", Some(("v3_ipv6_8addr", "wire_emit")))) => repeat(iters, || {
            black_box(&advert6).emit(
                black_box(&mut buf),
                ChecksumForm::PseudoHeader,
                black_box(SRC6),
                black_box(GROUP6),
            )
        }),
        _ => return false,
    }
    true
}

criterion_group!(benches, parse_validate, emit_checksum);

fn main() {
    if let Ok(id) = std::env::var("CODEC_COUNT") {
        let iters = std::env::var("CODEC_COUNT_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10_000);
        if !count(&id, iters) {
            eprintln!(
                "CODEC_COUNT: no routine {id:?} (e.g. parse_validate/v2_1addr/wire_validate)"
            );
            std::process::exit(2);
        }
        println!("{id}: {iters} calls through `counted`");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
