//! `redundancy-cli decode`: prints the VRRP advertisements of a capture file, or one message
//! given in hex, as tcpdump-like lines or as JSON lines.
//!
//! The codec (`vrrp::wire`) does all VRRP and IP validation; this module only walks the
//! capture ([`capture`]) and the link layer ([`link`]) and formats what the codec says.
//!
//! Output contract (`--json`): one object per VRRP frame, with exactly the keys `frame`, `src`,
//! `dst`, `ttl`, `version`, `type`, `vrid`, `priority`, `count`, `auth_type` (null for v3),
//! `interval_cs`, `checksum` (`"0x3e03"`), `checksum_ok`, `checksum_form` (`"v2"`,
//! `"pseudo-header"`, `"plain"`), `addresses`. A frame the codec rejects prints
//! `{"frame": N, "error": "..."}` naming the rule broken, except a bad checksum on an otherwise
//! well-formed message: that still prints the fields, with `checksum_ok` false and
//! `checksum_form` the form that was required (null for VRRPv3 over IPv4, where neither form
//! matched).

mod capture;
mod link;

use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args as ClapArgs};
use serde::Serialize;
use vrrp::wire::{
    self, checksum, Advertisement, Auth, ChecksumForm, Family, IpMeta, Received, Version,
};

use capture::{CaptureError, Frame};
use link::LinkType;

/// Arguments of `decode`.
#[derive(ClapArgs, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["hex", "pcap"])))]
pub struct Args {
    /// One message in hex (whitespace and colons allowed): a VRRP message, or a whole IPv4 /
    /// IPv6 packet carrying one (then fully validated, like a frame of a capture). Without
    /// --src/--dst a VRRPv3 checksum is reported as not checked (it covers the IP
    /// pseudo-header); a VRRPv2 checksum needs no IP context and is always checked.
    pub hex: Option<String>,
    /// A pcap or pcapng capture (Ethernet with or without 802.1Q tags, Linux cooked v1/v2, raw
    /// IP); prints one line per VRRP frame, skipping the others.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// IP source address of a hex VRRP message: with --dst, checks the checksum (and TTL) as
    /// a receiver would.
    #[arg(long, requires = "dst", conflicts_with = "pcap")]
    pub src: Option<IpAddr>,
    /// IP destination address of a hex VRRP message (224.0.0.18, ff02::12 or a unicast peer).
    #[arg(long, requires = "src", conflicts_with = "pcap")]
    pub dst: Option<IpAddr>,
    /// TTL / hop limit the hex message arrived with, checked to be 255 (with --src/--dst).
    #[arg(long, default_value_t = wire::TTL, requires = "src", conflicts_with = "pcap")]
    pub ttl: u8,
}

/// Why `decode` could not read its input at all (per-frame problems are output, not errors).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The capture file could not be read.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The capture uses a link layer the decoder cannot walk.
    #[error(
        "{}: frame {frame} has link type {datalink:?}, which decode does not read \
         (Ethernet, Linux cooked SLL/SLL2, raw IP)",
        path.display()
    )]
    UnsupportedLinkType {
        /// The capture file.
        path: PathBuf,
        /// The first frame with that link type.
        frame: u64,
        /// The link type.
        datalink: pcap_file::DataLink,
    },
    /// The hex argument is not hex.
    #[error("the message is not hex: {0}")]
    BadHex(String),
    /// The hex message does not decode; the reason was printed as its output line.
    #[error("the message is not a valid VRRP advertisement: {0}")]
    InvalidMessage(wire::Error),
    /// Standard output failed (other than a closed pipe).
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
}

/// Runs `decode`: exit 0 when the input was read (frames that fail validation are reported in
/// the output), 1 with one line on stderr when it was not, or when a hex message is invalid.
pub fn run(args: Args) -> ExitCode {
    let out = io::stdout();
    let mut out = BufWriter::new(out.lock());
    let result = match (&args.pcap, &args.hex) {
        (Some(path), _) => decode_pcap(path, args.json, &mut out),
        (None, Some(hex)) => decode_hex(hex, &args, &mut out),
        (None, None) => Ok(()), // clap's required group makes this unreachable
    };
    let result = result.and_then(|()| out.flush().map_err(DecodeError::Output));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `decode ... | head`: the reader left; nothing to report.
        Err(DecodeError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // Whatever was decoded before the failure goes out first, then the one error line.
            let _ = out.flush();
            eprintln!("redundancy-cli decode: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Decodes every VRRP frame of a capture.
fn decode_pcap(
    path: &std::path::Path,
    json: bool,
    out: &mut impl Write,
) -> Result<(), DecodeError> {
    let mut failure: Option<DecodeError> = None;
    let walked = capture::for_each_frame(path, |frame: Frame<'_>| {
        if failure.is_some() {
            return;
        }
        let Some(link) = LinkType::from_datalink(frame.datalink) else {
            failure = Some(DecodeError::UnsupportedLinkType {
                path: path.to_path_buf(),
                frame: frame.number,
                datalink: frame.datalink,
            });
            return;
        };
        let Some(line) = decode_frame(frame.number, link, frame.data) else {
            return;
        };
        if let Err(e) = line.write(json, out) {
            failure = Some(DecodeError::Output(e));
        }
    });
    if let Some(failure) = failure {
        return Err(failure);
    }
    walked.map(|_| ()).map_err(DecodeError::from)
}

/// One output line: a decoded advertisement or a frame the codec rejected.
enum Line<'a> {
    /// A decoded advertisement (perhaps with a bad checksum).
    Advert(Decoded<'a>),
    /// A VRRP frame that failed validation.
    Rejected {
        frame: u64,
        /// Source and destination when the IP header could be read.
        addrs: Option<(IpAddr, IpAddr)>,
        error: wire::Error,
    },
}

/// The fields of one decoded advertisement.
struct Decoded<'a> {
    frame: u64,
    /// IP source, destination and TTL; `None` for a bare hex message.
    ip: Option<(IpAddr, IpAddr, u8)>,
    advert: Advertisement<'a>,
    checksum: u16,
    /// `Ok(form)`: verified in that form. `Err(Some(form))`: did not verify in the one form
    /// allowed. `Err(None)`: not checked (bare v3 message), or wrong in both v3/IPv4 forms.
    verdict: Result<ChecksumForm, Option<ChecksumForm>>,
    /// Why the checksum failed, for the text output.
    checksum_error: Option<wire::Error>,
}

/// Decodes one captured frame; `None` when it is not an IP packet carrying VRRP.
fn decode_frame(number: u64, link: LinkType, data: &[u8]) -> Option<Line<'_>> {
    let ip = link::ip_packet(link, data)?;
    let peek = link::peek_ip(ip)?;
    if peek.protocol != wire::PROTOCOL {
        return None;
    }
    Some(match wire::parse_ip_packet(ip) {
        Ok(received) => Line::Advert(Decoded::from_received(number, received)),
        Err(error) => bad_checksum_fields(number, &peek, &error).map_or(
            Line::Rejected {
                frame: number,
                addrs: Some((peek.src, peek.dst)),
                error,
            },
            Line::Advert,
        ),
    })
}

/// For a message whose only fault is its checksum, the decoded fields (RFC 3768 section 7.1
/// says to discard it; a decoder still shows what it holds).
fn bad_checksum_fields<'a>(
    frame: u64,
    peek: &link::IpPeek<'a>,
    error: &wire::Error,
) -> Option<Decoded<'a>> {
    let required = match error {
        wire::Error::BadChecksum { form, .. } => Some(*form),
        wire::Error::BadChecksumEitherForm { .. } => None,
        _ => return None,
    };
    let family = match peek.src {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    };
    let advert = Advertisement::parse_bytes(peek.payload, family).ok()?;
    Some(Decoded {
        frame,
        ip: Some((peek.src, peek.dst, peek.ttl)),
        advert,
        checksum: stored_checksum(peek.payload)?,
        verdict: Err(required),
        checksum_error: Some(*error),
    })
}

/// The Checksum field of a VRRP message that passed the structure checks.
fn stored_checksum(vrrp: &[u8]) -> Option<u16> {
    let bytes = vrrp.get(6..8)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

impl<'a> Decoded<'a> {
    fn from_received(frame: u64, r: Received<'a>) -> Decoded<'a> {
        Decoded {
            frame,
            ip: Some((r.src, r.dst, r.ttl)),
            advert: r.advert,
            checksum: r.checksum,
            verdict: Ok(r.checksum_form),
            checksum_error: None,
        }
    }
}

/// Decodes the hex argument: a whole IP packet, or a VRRP message with or without --src/--dst.
fn decode_hex(hex: &str, args: &Args, out: &mut impl Write) -> Result<(), DecodeError> {
    let bytes = parse_hex(hex)?;
    let first_nibble = bytes.first().map(|b| b >> 4);
    let line = if matches!(first_nibble, Some(4 | 6)) {
        // An IP packet (a VRRP message starts with version 2 or 3).
        match wire::parse_ip_packet(&bytes) {
            Ok(r) => Line::Advert(Decoded::from_received(1, r)),
            Err(error) => {
                let peek = link::peek_ip(&bytes);
                match peek.and_then(|p| bad_checksum_fields(1, &p, &error)) {
                    Some(d) => Line::Advert(d),
                    None => Line::Rejected {
                        frame: 1,
                        addrs: peek.map(|p| (p.src, p.dst)),
                        error,
                    },
                }
            }
        }
    } else if let (Some(src), Some(dst)) = (args.src, args.dst) {
        match wire::validate(
            &bytes,
            &IpMeta {
                src,
                dst,
                ttl: args.ttl,
            },
        ) {
            Ok(r) => Line::Advert(Decoded::from_received(1, r)),
            Err(error) => {
                let peek = link::IpPeek {
                    src,
                    dst,
                    ttl: args.ttl,
                    protocol: wire::PROTOCOL,
                    payload: &bytes,
                };
                match bad_checksum_fields(1, &peek, &error) {
                    Some(d) => Line::Advert(d),
                    None => Line::Rejected {
                        frame: 1,
                        addrs: Some((src, dst)),
                        error,
                    },
                }
            }
        }
    } else {
        bare_message(&bytes)
    };
    let invalid = match &line {
        Line::Rejected { error, .. } => Some(*error),
        Line::Advert(_) => None,
    };
    line.write(args.json, out).map_err(DecodeError::Output)?;
    match invalid {
        Some(error) => Err(DecodeError::InvalidMessage(error)),
        None => Ok(()),
    }
}

/// A VRRP message with no IP context: the family is the one whose address width makes the
/// length match the count; a v2 checksum is checked (it covers the message alone), a v3 one is
/// not (it covers the IP pseudo-header, RFC 5798 section 5.2.8).
fn bare_message(bytes: &[u8]) -> Line<'_> {
    let advert = match Advertisement::parse_bytes(bytes, Family::V4) {
        Ok(a) => a,
        Err(v4_error) => match Advertisement::parse_bytes(bytes, Family::V6) {
            Ok(a) => a,
            Err(_) => {
                return Line::Rejected {
                    frame: 1,
                    addrs: None,
                    error: v4_error,
                }
            }
        },
    };
    let Some(stored) = stored_checksum(bytes) else {
        // parse_bytes accepted at least the 8-byte header; never taken.
        return Line::Rejected {
            frame: 1,
            addrs: None,
            error: wire::Error::EmptyIpPacket,
        };
    };
    let (verdict, checksum_error) = match advert.version {
        Version::V2 => {
            if checksum::verifies(checksum::data(bytes)) {
                (Ok(ChecksumForm::V2), None)
            } else {
                (Err(Some(ChecksumForm::V2)), None)
            }
        }
        Version::V3 => (Err(None), None),
    };
    Line::Advert(Decoded {
        frame: 1,
        ip: None,
        advert,
        checksum: stored,
        verdict,
        checksum_error,
    })
}

/// Hex digits, with whitespace, colons and a leading `0x` allowed.
fn parse_hex(text: &str) -> Result<Vec<u8>, DecodeError> {
    let text = text.trim();
    let text = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    let mut digits = Vec::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || c == ':' {
            continue;
        }
        let d = c.to_digit(16).ok_or_else(|| {
            DecodeError::BadHex(format!("{c:?} at character {} is not a hex digit", i + 1))
        })?;
        // A hex digit is below 16: it fits a u8.
        digits.push(u8::try_from(d).unwrap_or_default());
    }
    if digits.is_empty() {
        return Err(DecodeError::BadHex("no hex digits".to_string()));
    }
    if digits.len() % 2 != 0 {
        return Err(DecodeError::BadHex(format!(
            "{} hex digits is an odd number: the last byte is incomplete",
            digits.len()
        )));
    }
    Ok(digits
        .chunks_exact(2)
        .map(|p| p.iter().fold(0u8, |acc, d| acc << 4 | d))
        .collect())
}

/// The `--json` object of a decoded advertisement: exactly the documented keys.
#[derive(Serialize)]
struct JsonAdvert {
    frame: u64,
    src: Option<String>,
    dst: Option<String>,
    ttl: Option<u8>,
    version: u8,
    #[serde(rename = "type")]
    msg_type: u8,
    vrid: u8,
    priority: u8,
    count: usize,
    auth_type: Option<u8>,
    interval_cs: u16,
    checksum: String,
    checksum_ok: Option<bool>,
    checksum_form: Option<String>,
    addresses: Vec<String>,
}

/// The `--json` object of a rejected frame.
#[derive(Serialize)]
struct JsonError {
    frame: u64,
    error: String,
}

impl Line<'_> {
    fn write(&self, json: bool, out: &mut impl Write) -> io::Result<()> {
        match (self, json) {
            (Line::Advert(d), true) => {
                let a = &d.advert;
                let value = JsonAdvert {
                    frame: d.frame,
                    src: d.ip.map(|(s, _, _)| s.to_string()),
                    dst: d.ip.map(|(_, t, _)| t.to_string()),
                    ttl: d.ip.map(|(_, _, ttl)| ttl),
                    version: match a.version {
                        Version::V2 => 2,
                        Version::V3 => 3,
                    },
                    // The codec accepts only ADVERTISEMENT (RFC 3768 section 5.3.2).
                    msg_type: wire::TYPE_ADVERTISEMENT,
                    vrid: a.vrid,
                    priority: a.priority,
                    count: a.addresses.len(),
                    auth_type: match (a.version, a.auth) {
                        (Version::V3, _) => None,
                        (Version::V2, Auth::None) => Some(wire::AUTH_TYPE_NONE),
                        (Version::V2, Auth::SimplePassword(_)) => Some(wire::AUTH_TYPE_SIMPLE),
                    },
                    interval_cs: a.interval_cs,
                    checksum: format!("0x{:04x}", d.checksum),
                    checksum_ok: match (d.verdict, d.ip) {
                        (Ok(_), _) => Some(true),
                        (Err(None), None) => None, // bare v3 message: not checked
                        (Err(_), _) => Some(false),
                    },
                    checksum_form: match d.verdict {
                        Ok(form) | Err(Some(form)) => Some(form.to_string()),
                        Err(None) => None,
                    },
                    addresses: a.addresses.iter().map(|x| x.to_string()).collect(),
                };
                write_json(out, &value)
            }
            (Line::Rejected { frame, error, .. }, true) => write_json(
                out,
                &JsonError {
                    frame: *frame,
                    error: error.to_string(),
                },
            ),
            (Line::Advert(d), false) => {
                write!(out, "{:>5} ", d.frame)?;
                if let Some((src, dst, ttl)) = d.ip {
                    write!(out, "{src} > {dst} ttl {ttl}: ")?;
                }
                write!(out, "{} cksum 0x{:04x} ", d.advert, d.checksum)?;
                match (&d.verdict, &d.checksum_error, d.ip) {
                    (Ok(form), _, _) => writeln!(out, "({form})"),
                    (Err(_), Some(error), _) => writeln!(out, "(BAD: {error})"),
                    (Err(Some(form)), None, _) => writeln!(out, "(BAD: wrong {form} checksum)"),
                    (Err(None), None, None) => {
                        writeln!(out, "(not checked: a VRRPv3 checksum covers the IP pseudo-header; give --src and --dst)")
                    }
                    (Err(None), None, Some(_)) => writeln!(out, "(BAD)"),
                }
            }
            (
                Line::Rejected {
                    frame,
                    addrs,
                    error,
                },
                false,
            ) => {
                write!(out, "{frame:>5} ")?;
                if let Some((src, dst)) = addrs {
                    write!(out, "{src} > {dst}: ")?;
                }
                writeln!(out, "invalid VRRP: {error}")
            }
        }
    }
}

fn write_json(out: &mut impl Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_spaces_colons_and_prefix() {
        assert_eq!(
            parse_hex("0x21 33:1e\t01").ok(),
            Some(vec![0x21, 0x33, 0x1e, 0x01])
        );
        assert_eq!(parse_hex("ABcd").ok(), Some(vec![0xab, 0xcd]));
    }

    #[test]
    fn hex_rejects_odd_empty_and_non_hex() {
        assert!(matches!(parse_hex("213"), Err(DecodeError::BadHex(m)) if m.contains("odd")));
        assert!(matches!(parse_hex("  "), Err(DecodeError::BadHex(m)) if m.contains("no hex")));
        assert!(
            matches!(parse_hex("21zz"), Err(DecodeError::BadHex(m)) if m.contains("'z' at character 3"))
        );
    }

    /// The v2 vector of ENVIRONMENT.md: VRID 51, priority 30, VIP 10.0.1.5, checksum 0xb5c5.
    const V2_VECTOR: [u8; 20] = [
        0x21, 0x33, 0x1e, 0x01, 0x00, 0x01, 0xb5, 0xc5, 10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn bare_v2_message_has_its_checksum_checked() {
        let Line::Advert(d) = bare_message(&V2_VECTOR) else {
            panic!("v2 vector rejected")
        };
        assert_eq!(
            (d.advert.vrid, d.advert.priority, d.advert.interval_cs),
            (51, 30, 100)
        );
        assert_eq!(d.checksum, 0xb5c5);
        assert!(matches!(d.verdict, Ok(ChecksumForm::V2)));
        let mut corrupt = V2_VECTOR;
        corrupt[7] ^= 1;
        let Line::Advert(d) = bare_message(&corrupt) else {
            panic!("corrupt v2 rejected")
        };
        assert!(matches!(d.verdict, Err(Some(ChecksumForm::V2))));
    }

    #[test]
    fn bare_v3_message_is_not_checked_and_family_follows_length() {
        // v3, VRID 2, prio 254, 1 cs, two IPv6 addresses (ENVIRONMENT.md), checksum 0x481b.
        let mut m = vec![0x31, 0x02, 0xfe, 0x02, 0x00, 0x01, 0x48, 0x1b];
        for last in [2u8, 3] {
            m.extend_from_slice(&[
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last,
            ]);
        }
        let Line::Advert(d) = bare_message(&m) else {
            panic!("v3 vector rejected")
        };
        assert_eq!(d.advert.addresses.family(), Family::V6);
        assert_eq!(d.advert.addresses.len(), 2);
        assert!(matches!(d.verdict, Err(None)));
        let mut out = Vec::new();
        Line::Advert(d)
            .write(true, &mut out)
            .expect("write to a Vec");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        assert_eq!(v["checksum_ok"], serde_json::Value::Null);
        assert_eq!(v["checksum"], "0x481b");
        assert_eq!(v["interval_cs"], 1);
    }

    #[test]
    fn with_ip_context_the_v3_checksum_is_checked() {
        let mut m = vec![
            0x31, 0x02, 0xfe, 0x02, 0x00, 0x01, 0xb2, 0x5e, 20, 0, 1, 2, 20, 0, 1, 3,
        ];
        let args = Args {
            hex: None,
            pcap: None,
            json: true,
            src: Some("20.0.0.3".parse().expect("address")),
            dst: Some("224.0.0.18".parse().expect("address")),
            ttl: 255,
        };
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        let mut out = Vec::new();
        assert!(decode_hex(&hex, &args, &mut out).is_ok());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        assert_eq!(v["checksum_form"], "pseudo-header");
        assert_eq!(v["checksum_ok"], true);
        // The same message with the plain-form checksum (0xa6f4) is accepted as "plain".
        m[6] = 0xa6;
        m[7] = 0xf4;
        let hex: String = m.iter().map(|b| format!("{b:02x}")).collect();
        let mut out = Vec::new();
        assert!(decode_hex(&hex, &args, &mut out).is_ok());
        let v: serde_json::Value = serde_json::from_slice(&out).expect("one JSON object");
        assert_eq!(v["checksum_form"], "plain");
    }
}
