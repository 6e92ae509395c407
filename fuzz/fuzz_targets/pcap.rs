//! `redundancy-cli decode --pcap FILE`: the capture walker and link-layer decoder of the CLI
//! (its own modules, compiled in here by path) on a fuzzer-made pcap/pcapng file, then the
//! advertisement codec on every IP packet carrying VRRP, as `decode_frame` does.
//!
//! The walker reads the input from memory through the same buffered reader it uses on files.
#![no_main]
#![allow(dead_code)]

#[path = "../../crates/redundancy-cli/src/cmd_decode/capture.rs"]
mod capture;
#[path = "../../crates/redundancy-cli/src/cmd_decode/link.rs"]
mod link;

use std::net::IpAddr;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vrrp::wire::{self, Advertisement, Family};

fuzz_target!(|data: &[u8]| {
    let mut frames = 0u64;
    let walked = capture::for_each_frame_in(Path::new("fuzz.pcap"), data, |frame| {
        frames += 1;
        assert_eq!(frame.number, frames, "frames are numbered 1, 2, 3...");
        assert!(frame.data.len() <= data.len(), "a frame is never larger than the file");
        let Some(link) = link::LinkType::from_datalink(frame.datalink) else {
            return;
        };
        let Some(ip) = link::ip_packet(link, frame.data) else {
            return;
        };
        let Some(peek) = link::peek_ip(ip) else {
            return;
        };
        if peek.protocol != wire::PROTOCOL {
            return;
        }
        match wire::parse_ip_packet(ip) {
            Ok(r) => {
                let _ = r.to_string();
            }
            Err(_) => {
                let family = match peek.src {
                    IpAddr::V4(_) => Family::V4,
                    IpAddr::V6(_) => Family::V6,
                };
                if let Ok(a) = Advertisement::parse_bytes(peek.payload, family) {
                    let _ = format!("{a:?}");
                }
            }
        }
    });
    match walked {
        Ok(n) => assert_eq!(n, frames),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
