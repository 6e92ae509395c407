//! From one captured frame to the IP packet inside it, and a first look at that IP header.
//!
//! Only what `decode --pcap` needs to find VRRP: Ethernet (with any number of 802.1Q / 802.1ad
//! tags), Linux cooked capture v1 and v2, and raw IP. The VRRP codec does the real validation of
//! the IP header; this module only decides "is this an IP packet carrying protocol 112, and from
//! where to where", without panicking on any input (every access is checked).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pcap_file::DataLink;

/// EtherType of IPv4 (RFC 894).
const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6 (RFC 2464).
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherTypes of a VLAN tag: 802.1Q C-tag, 802.1ad S-tag, and the old pre-standard QinQ value.
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// Ethernet header length: destination, source, EtherType.
const ETHERNET_HEADER_LEN: usize = 14;
/// Length of one VLAN tag (TCI + inner EtherType).
const VLAN_TAG_LEN: usize = 4;
/// Linux cooked capture v1 header length; the EtherType sits in its last two bytes.
const SLL_HEADER_LEN: usize = 16;
/// Linux cooked capture v2 header length; the EtherType sits in its first two bytes.
const SLL2_HEADER_LEN: usize = 20;
/// IPv6 extension headers walked to find the upper-layer protocol (RFC 8200 section 4):
/// Hop-by-Hop Options, Routing, Destination Options.
const IPV6_EXT_HOP_BY_HOP: u8 = 0;
const IPV6_EXT_ROUTING: u8 = 43;
const IPV6_EXT_FRAGMENT: u8 = 44;
const IPV6_EXT_DEST_OPTS: u8 = 60;
/// At most this many extension headers are walked (a bound against crafted chains).
const IPV6_MAX_EXT_HEADERS: usize = 8;

/// A link-layer header type the decoder understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// LINKTYPE_ETHERNET (1), VLAN tags included.
    Ethernet,
    /// LINKTYPE_LINUX_SLL (113), what `tcpdump -i any` writes with libpcap before 1.10.
    LinuxSll,
    /// LINKTYPE_LINUX_SLL2 (276), what `tcpdump -i any` writes with libpcap 1.10 and later.
    LinuxSll2,
    /// LINKTYPE_RAW (101; also DLT_RAW 12 and OpenBSD's 14): IPv4 or IPv6 by version nibble.
    Raw,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
}

impl LinkType {
    /// The link type of a capture's `DataLink`, or `None` when the decoder cannot walk it.
    pub fn from_datalink(datalink: DataLink) -> Option<LinkType> {
        match datalink {
            DataLink::ETHERNET => Some(LinkType::Ethernet),
            DataLink::LINUX_SLL => Some(LinkType::LinuxSll),
            DataLink::LINUX_SLL2 => Some(LinkType::LinuxSll2),
            DataLink::RAW | DataLink::Unknown(12) | DataLink::Unknown(14) => Some(LinkType::Raw),
            DataLink::IPV4 => Some(LinkType::Ipv4),
            DataLink::IPV6 => Some(LinkType::Ipv6),
            _ => None,
        }
    }
}

/// The IP packet (header included) carried by `frame`, or `None` when the frame does not carry
/// IPv4 or IPv6 (ARP, LLC, a runt frame...).
pub fn ip_packet(link: LinkType, frame: &[u8]) -> Option<&[u8]> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(frame, 12)?;
            after_vlan_tags(ethertype, frame.get(ETHERNET_HEADER_LEN..)?)
        }
        LinkType::LinuxSll => {
            let ethertype = be16(frame, SLL_HEADER_LEN - 2)?;
            after_vlan_tags(ethertype, frame.get(SLL_HEADER_LEN..)?)
        }
        LinkType::LinuxSll2 => {
            let ethertype = be16(frame, 0)?;
            after_vlan_tags(ethertype, frame.get(SLL2_HEADER_LEN..)?)
        }
        LinkType::Raw => match frame.first()? >> 4 {
            4 | 6 => Some(frame),
            _ => None,
        },
        LinkType::Ipv4 => (frame.first()? >> 4 == 4).then_some(frame),
        LinkType::Ipv6 => (frame.first()? >> 4 == 6).then_some(frame),
    }
}

/// Skips VLAN tags: `rest` starts right after an EtherType field holding `ethertype`.
fn after_vlan_tags(mut ethertype: u16, mut rest: &[u8]) -> Option<&[u8]> {
    // A frame has a bounded length, and every tag consumes 4 bytes: the loop ends.
    while ETHERTYPE_VLAN.contains(&ethertype) {
        ethertype = be16(rest, 2)?;
        rest = rest.get(VLAN_TAG_LEN..)?;
    }
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Some(rest),
        _ => None,
    }
}

/// What the decoder needs from an IP header before handing the packet to the codec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpPeek<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// The upper-layer protocol (IPv6: after Hop-by-Hop, Routing, Fragment and Destination
    /// Options headers).
    pub protocol: u8,
    /// The upper-layer payload, cut to the length the IP header gives (so Ethernet padding is
    /// dropped) or to what was captured when that is less.
    pub payload: &'a [u8],
}

/// Reads an IPv4 or IPv6 header; `None` when `packet` is too short for one.
pub fn peek_ip(packet: &[u8]) -> Option<IpPeek<'_>> {
    match packet.first()? >> 4 {
        4 => peek_ipv4(packet),
        6 => peek_ipv6(packet),
        _ => None,
    }
}

fn peek_ipv4(packet: &[u8]) -> Option<IpPeek<'_>> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    if header_len < 20 {
        return None;
    }
    let total_len = usize::from(be16(packet, 2)?);
    // Not `clamp`: a header longer than the capture must give `None` below, not a panic.
    let end = total_len.min(packet.len()).max(header_len);
    Some(IpPeek {
        ttl: *packet.get(8)?,
        protocol: *packet.get(9)?,
        src: IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 12)?)),
        dst: IpAddr::V4(Ipv4Addr::from(array::<4>(packet, 16)?)),
        payload: packet.get(header_len..end)?,
    })
}

fn peek_ipv6(packet: &[u8]) -> Option<IpPeek<'_>> {
    const HEADER_LEN: usize = 40;
    let payload_len = usize::from(be16(packet, 4)?);
    let end = HEADER_LEN.saturating_add(payload_len).min(packet.len());
    let mut next = *packet.get(6)?;
    let mut payload = packet.get(HEADER_LEN..end.max(HEADER_LEN))?;
    for _ in 0..IPV6_MAX_EXT_HEADERS {
        let len = match next {
            IPV6_EXT_HOP_BY_HOP | IPV6_EXT_ROUTING | IPV6_EXT_DEST_OPTS => {
                (usize::from(*payload.get(1)?) + 1) * 8
            }
            IPV6_EXT_FRAGMENT => 8,
            _ => break,
        };
        next = *payload.first()?;
        payload = payload.get(len..)?;
    }
    Some(IpPeek {
        ttl: *packet.get(7)?,
        protocol: next,
        src: IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 8)?)),
        dst: IpAddr::V6(Ipv6Addr::from(array::<16>(packet, 24)?)),
        payload,
    })
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(array::<2>(bytes, at)?))
}

fn array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 VRRP packet (the v2 vector of ENVIRONMENT.md: VRID 51, prio 30, 10.0.1.5) from
    /// 10.99.0.1 to 224.0.0.18, TTL 255. The IP header checksum is not checked here.
    fn ipv4_vrrp() -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 255, 112, 0, 0, 10, 99, 0, 1, 224, 0, 0, 18,
        ];
        p.extend_from_slice(&[0x21, 0x33, 0x1e, 0x01, 0x00, 0x01, 0xb5, 0xc5, 10, 0, 1, 5]);
        p.extend_from_slice(&[0; 8]);
        p
    }

    fn ethernet(ethertype: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x01, 0x00, 0x5e, 0, 0, 0x12, 0x02, 0x99, 0, 0, 0, 0x0a];
        f.extend_from_slice(ethertype);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ethernet_plain_and_tagged_reach_the_ip_header() {
        let ip = ipv4_vrrp();
        let plain = ethernet(&[0x08, 0x00], &ip);
        assert_eq!(ip_packet(LinkType::Ethernet, &plain), Some(&ip[..]));
        // Two tags (802.1ad outer, 802.1Q inner), then IPv4.
        let mut tagged_payload = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x63, 0x08, 0x00];
        tagged_payload.extend_from_slice(&ip);
        let tagged = ethernet(&[0x88, 0xa8], &tagged_payload);
        assert_eq!(ip_packet(LinkType::Ethernet, &tagged), Some(&ip[..]));
    }

    #[test]
    fn non_ip_and_runt_frames_are_not_ip() {
        let arp = ethernet(&[0x08, 0x06], &[0; 28]);
        assert_eq!(ip_packet(LinkType::Ethernet, &arp), None);
        assert_eq!(ip_packet(LinkType::Ethernet, &[0; 13]), None);
        // A VLAN tag cut in the middle.
        assert_eq!(
            ip_packet(LinkType::Ethernet, &ethernet(&[0x81, 0x00], &[0, 1])),
            None
        );
        assert_eq!(ip_packet(LinkType::Raw, &[0x21, 0x33]), None);
        assert_eq!(ip_packet(LinkType::Raw, &[]), None);
        assert_eq!(ip_packet(LinkType::Ipv6, &ipv4_vrrp()), None);
    }

    #[test]
    fn cooked_headers_give_the_ethertype_where_linux_puts_it() {
        let ip = ipv4_vrrp();
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0x99, 0, 0, 0, 0x0a, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        assert_eq!(ip_packet(LinkType::LinuxSll, &sll), Some(&ip[..]));
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0x99, 0, 0, 0, 0x0a, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        assert_eq!(ip_packet(LinkType::LinuxSll2, &sll2), Some(&ip[..]));
    }

    #[test]
    fn ipv4_peek_drops_ethernet_padding() {
        let mut ip = ipv4_vrrp();
        ip.extend_from_slice(&[0xee; 6]);
        let peek = peek_ip(&ip).expect("an IPv4 header");
        assert_eq!(peek.protocol, 112);
        assert_eq!(peek.ttl, 255);
        assert_eq!(peek.src, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(peek.dst, IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18)));
        assert_eq!(peek.payload.len(), 20);
        assert_eq!(peek.payload.first(), Some(&0x21));
    }

    #[test]
    fn ipv6_peek_walks_extension_headers() {
        // IPv6, next header Hop-by-Hop (8 bytes, next = 112), then 4 payload bytes.
        let mut p = vec![0x60, 0, 0, 0, 0, 12, 0, 255];
        p.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12]);
        p.extend_from_slice(&[112, 0, 1, 4, 0, 0, 0, 0]);
        p.extend_from_slice(&[0x31, 1, 2, 3]);
        let peek = peek_ip(&p).expect("an IPv6 header");
        assert_eq!(peek.protocol, 112);
        assert_eq!(peek.payload, &[0x31, 1, 2, 3]);
        assert_eq!(
            peek.dst,
            IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12))
        );
    }

    #[test]
    fn malformed_ip_headers_do_not_panic() {
        for len in 0..60 {
            let mut p = ipv4_vrrp();
            p.resize(len, 0);
            let _ = peek_ip(&p);
            if let Some(b) = p.first_mut() {
                *b = 0x6f;
            }
            let _ = peek_ip(&p);
        }
        // IHL below 5 and a total length below the header.
        assert_eq!(peek_ip(&[0x44; 40]), None);
        let mut short_total = ipv4_vrrp();
        short_total[3] = 4;
        assert_eq!(peek_ip(&short_total).map(|p| p.payload.len()), Some(0));
    }
}
