//! Cross-check against scapy, an independent VRRP encoder/decoder (its `VRRP` and `VRRPv3`
//! layers, its own checksum code). Skips with a printed reason when python3 or scapy is missing
//! (`pip install scapy`).
//!
//! * scapy -> us: scapy builds random v2, v3/IPv4 and v3/IPv6 packets; `parse_ip_packet` must
//!   validate each and render exactly the fields scapy was given.
//! * us -> scapy: we emit random advertisements inside IP headers; scapy re-encodes what it
//!   dissects with the checksum recomputed, and must produce the same bytes.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use vrrp::wire::{parse_ip_packet, Addresses, Advertisement, Auth, ChecksumForm, Version};

const SCAPY_TO_US: &str = r#"
import random, ipaddress
from scapy.all import IP, IPv6, VRRP, VRRPv3, raw
rng = random.Random(7)
for i in range(300):
    kind, count = i % 3, rng.randint(0, 20)
    vrid, prio = rng.randint(1, 255), rng.randint(0, 255)
    if kind == 2:
        addrs = [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(count)]
    else:
        addrs = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(count)]
    shown = ",".join(addrs) or "none"
    if kind == 0:
        adv = rng.randint(0, 255)
        pkt = IP(src="10.99.0.1", dst="224.0.0.18", ttl=255) / VRRP(vrid=vrid, priority=prio, adv=adv, addrlist=addrs, ipcount=count)
        want = f"VRRPv2 advertisement vrid {vrid} prio {prio} auth none intvl {adv}s addrs {shown}"
    else:
        adv = rng.randint(0, 4095)
        ip = IPv6(src="fd99::1", dst="ff02::12", hlim=255) if kind == 2 else IP(src="10.99.0.1", dst="224.0.0.18", ttl=255)
        pkt = ip / VRRPv3(vrid=vrid, priority=prio, adv=adv, addrlist=addrs, ipcount=count)
        want = f"VRRPv3 advertisement vrid {vrid} prio {prio} intvl {adv}cs addrs {shown}"
    print(raw(pkt).hex() + "|" + want)
"#;

const US_TO_SCAPY: &str = r#"
import sys
from scapy.all import IP, IPv6, VRRP, VRRPv3, raw
for line in sys.stdin:
    data = bytes.fromhex(line.strip())
    pkt = IP(data) if data[0] >> 4 == 4 else IPv6(data)
    layer = pkt.getlayer(VRRP) or pkt.getlayer(VRRPv3)
    if layer is None:
        print("no VRRP layer"); continue
    del layer.chksum
    print("ok" if raw(pkt) == data else "differs " + raw(pkt).hex())
"#;

fn python_with_scapy() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import scapy.all"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "skipping the scapy cross-check: python3 with scapy not found (pip install scapy)"
        );
    }
    found
}

#[test]
fn scapy_packets_decode_identically() {
    if !python_with_scapy() {
        return;
    }
    let out = Command::new("python3")
        .args(["-c", SCAPY_TO_US])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let (hex, want) = line.split_once('|').unwrap();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let received = parse_ip_packet(&bytes).unwrap_or_else(|e| panic!("{hex}: {e}"));
        assert_eq!(received.advert.to_string(), want, "{hex}");
        n += 1;
    }
    assert_eq!(n, 300);
}

/// A small deterministic generator (no dependency needed for 100 cases).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn ip_header(src: IpAddr, dst: IpAddr, message: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + message.len()) as u16;
            p.extend_from_slice(&[0x45, 0xc0]);
            p.extend_from_slice(&total.to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, 255, 112]);
            let mut header = p.clone();
            header.extend_from_slice(&[0, 0]);
            header.extend_from_slice(&s.octets());
            header.extend_from_slice(&d.octets());
            // IPv4 header checksum, so that scapy's rebuild matches byte for byte.
            let sum = !vrrp::wire::checksum::data(&header);
            p.extend_from_slice(&sum.to_be_bytes());
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            p.extend_from_slice(&[0x60, 0, 0, 0]);
            p.extend_from_slice(&(message.len() as u16).to_be_bytes());
            p.extend_from_slice(&[112, 255]);
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
        }
        _ => unreachable!(),
    }
    p.extend_from_slice(message);
    p
}

#[test]
fn our_packets_re_encode_identically_in_scapy() {
    if !python_with_scapy() {
        return;
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut input = String::new();
    for i in 0..120 {
        // At least one address: scapy's VRRP dispatcher takes a message shorter than 16 bytes
        // (v3 with no address) for v2 and fails to dissect it.
        let count = 1 + (next(&mut state) % 12) as usize;
        let vrid = (next(&mut state) % 255) as u8 + 1;
        let priority = next(&mut state) as u8;
        let (version, family6) = match i % 3 {
            0 => (Version::V2, false),
            1 => (Version::V3, false),
            _ => (Version::V3, true),
        };
        let width = if family6 { 16 } else { 4 };
        let addresses: Vec<u8> = (0..count * width).map(|_| next(&mut state) as u8).collect();
        let (interval_cs, form) = match version {
            Version::V2 => ((next(&mut state) % 256) as u16 * 100, ChecksumForm::V2),
            Version::V3 => ((next(&mut state) % 4096) as u16, ChecksumForm::PseudoHeader),
        };
        let advert = Advertisement {
            version,
            vrid,
            priority,
            interval_cs,
            auth: Auth::None,
            addresses: if family6 {
                Addresses::V6(&addresses)
            } else {
                Addresses::V4(&addresses)
            },
        };
        let (src, dst) = if family6 {
            (
                IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1)),
                IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12)),
            )
        } else {
            (
                IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)),
                IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)),
            )
        };
        let message = advert.to_bytes(form, src, dst).unwrap();
        for b in ip_header(src, dst, &message) {
            input.push_str(&format!("{b:02x}"));
        }
        input.push('\n');
    }
    let mut child = Command::new("python3")
        .args(["-c", US_TO_SCAPY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = verdicts.lines().collect();
    assert_eq!(lines.len(), 120);
    for (line, verdict) in input.lines().zip(&lines) {
        assert_eq!(*verdict, "ok", "scapy re-encodes {line} differently");
    }
}
