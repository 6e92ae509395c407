//! Decode one VRRP advertisement given as hex on the command line.
//!
//! ```text
//! cargo run --example decode_advertisement -- 2133 1e01 0001 b5c5 0a00 0105 0000 0000 0000 0000
//! ```
//!
//! A leading version nibble of 4 or 6 means a whole IP packet (validated as a node would:
//! TTL, lengths, checksum); 2 or 3 means a bare VRRP message, which is parsed without the
//! checks that need the IP header. Spaces and colons between bytes are ignored.

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;

use vrrp::wire::{parse_ip_packet, Advertisement, ChecksumForm, Family, Packet, Version};

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<char> = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s: String = pair.iter().collect();
            u8::from_str_radix(&s, 16).map_err(|_| format!("{s:?} is not a hex byte"))
        })
        .collect()
}

fn print_fields(advert: &Advertisement<'_>) {
    println!("  version     {:?}", advert.version);
    println!("  vrid        {}", advert.vrid);
    println!("  priority    {}", advert.priority);
    println!("  interval    {} cs", advert.interval_cs);
    println!("  auth        {}", advert.auth);
    println!("  count       {}", advert.addresses.len());
    for address in advert.addresses.iter() {
        println!("  address     {address}");
    }
}

fn main() -> ExitCode {
    let text = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let bytes = match parse_hex(&text) {
        Ok(b) if !b.is_empty() => b,
        Ok(_) => {
            eprintln!("usage: decode_advertisement HEX (a VRRP message or a whole IP packet)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("decode_advertisement: {e}");
            return ExitCode::from(2);
        }
    };
    let outcome = match bytes.first().map(|b| b >> 4) {
        Some(4 | 6) => parse_ip_packet(&bytes).map(|received| {
            println!("{received}");
            print_fields(&received.advert);
            println!(
                "  checksum    0x{:04x} ({})",
                received.checksum, received.checksum_form
            );
        }),
        _ => Advertisement::parse_bytes(&bytes, Family::V4)
            .or_else(|e| Advertisement::parse_bytes(&bytes, Family::V6).map_err(|_| e))
            .map(|advert| {
                println!("{advert}");
                print_fields(&advert);
                // v2's checksum needs no IP header (RFC 3768 section 5.3.8); v3's may.
                let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
                let packet = Packet::new_unchecked(&bytes[..]);
                let verdict = match advert.version {
                    Version::V2 if packet.verify_checksum(ChecksumForm::V2, &any, &any) => "good",
                    Version::V2 => "BAD",
                    Version::V3 => "not verified: v3 needs the IP addresses",
                };
                println!("  checksum    0x{:04x} ({verdict})", packet.checksum());
            }),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decode_advertisement: {e}");
            ExitCode::FAILURE
        }
    }
}
