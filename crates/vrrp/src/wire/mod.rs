//! The advertisement codec: VRRPv2 (RFC 3768 section 5) and VRRPv3 (RFC 5798 / RFC 9568
//! section 5), over IPv4 and IPv6.
//!
//! Shaped like smoltcp's `wire`: a zero-copy [`Packet`]-style view over bytes beside an
//! [`Advertisement`] representation with `parse`, `emit` and `buffer_len`. Nothing here does I/O
//! or allocates on the receive or send path.
//!
//! The types in this file are the contract the election core (`router`) and the Linux node are
//! written against.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod checksum;
mod display;
mod error;
mod ip;
mod packet;
mod receive;
mod repr;

pub use error::Error;
pub use ip::parse_ip_packet;
pub use packet::{
    Packet, AUTH_DATA_LEN, AUTH_TYPE_NONE, AUTH_TYPE_SIMPLE, HEADER_LEN, MAX_ADVER_INT_MASK,
    TYPE_ADVERTISEMENT,
};
pub use receive::{validate, IpMeta, Received};

/// IP protocol number of VRRP (RFC 3768 section 5.2.4, RFC 5798 section 5.1.1.3).
pub const PROTOCOL: u8 = 112;
/// The TTL / hop limit every advertisement is sent with and must arrive with
/// (RFC 3768 section 5.2.3, RFC 5798 section 5.1.1.3 / 5.1.2.3).
pub const TTL: u8 = 255;
/// IPv4 multicast group of VRRP (RFC 3768 section 5.2.2).
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// IPv6 multicast group of VRRP (RFC 5798 section 5.1.2.2).
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);

/// VRRP protocol version (the high nibble of the first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// VRRPv2, RFC 3768: IPv4 only, interval in seconds, optional authentication.
    V2,
    /// VRRPv3, RFC 5798 / RFC 9568: IPv4 and IPv6, interval in centiseconds, no authentication.
    V3,
}

/// Address family of the virtual addresses (and of the IP header carrying the message).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: 4-byte addresses.
    V4,
    /// IPv6: 16-byte addresses (VRRPv3 only).
    V6,
}

/// VRRPv2 authentication (RFC 3768 section 5.3.6 and RFC 2338 section 5.3.6).
/// VRRPv3 has no authentication: its messages always carry [`Auth::None`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Auth type 0: no authentication; the 8 auth-data bytes are zero on send, ignored on receive.
    None,
    /// Auth type 1 (RFC 2338, keepalived `auth_type PASS`): an 8-byte password, zero-padded.
    SimplePassword([u8; 8]),
}

/// Which checksum a message carries (RFC 3768 section 5.3.8, RFC 5798 section 5.2.8,
/// RFC 9568 section 5.2.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// VRRPv2: RFC 1071 checksum over the VRRP message alone.
    V2,
    /// VRRPv3: checksum including the IP pseudo-header (always so for IPv6; keepalived's and
    /// FRR's default for IPv4).
    PseudoHeader,
    /// VRRPv3 over IPv4 without the pseudo-header, as some routers send (RFC 9568 discusses it).
    Plain,
}

/// The virtual addresses exactly as they sit in a message: borrowed bytes, never allocated.
/// The slice length is a multiple of 4 (`V4`) or 16 (`V6`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Addresses<'a> {
    /// Concatenated 4-byte IPv4 addresses.
    V4(&'a [u8]),
    /// Concatenated 16-byte IPv6 addresses.
    V6(&'a [u8]),
}

impl<'a> Addresses<'a> {
    /// The address family.
    pub fn family(&self) -> Family {
        match self {
            Addresses::V4(_) => Family::V4,
            Addresses::V6(_) => Family::V6,
        }
    }

    /// The raw concatenated address bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Addresses::V4(b) | Addresses::V6(b) => b,
        }
    }

    /// Number of addresses (trailing bytes short of a whole address are not counted).
    pub fn len(&self) -> usize {
        match self {
            Addresses::V4(b) => b.len() / 4,
            Addresses::V6(b) => b.len() / 16,
        }
    }

    /// True when the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The addresses, in message order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let (bytes, width) = match *self {
            Addresses::V4(b) => (b, 4),
            Addresses::V6(b) => (b, 16),
        };
        bytes.chunks_exact(width).map(|c| {
            if let Ok(a) = <[u8; 4]>::try_from(c) {
                IpAddr::V4(Ipv4Addr::from(a))
            } else {
                let mut a = [0u8; 16];
                a.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(a))
            }
        })
    }
}

/// One advertisement, decoded (RFC 3768 section 5.3, RFC 5798 section 5.2).
///
/// The same type serves both versions: `interval_cs` is in centiseconds for both (a v2 interval
/// of 1 s is 100), and `auth` is always [`Auth::None`] for v3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Advertisement<'a> {
    /// Protocol version.
    pub version: Version,
    /// Virtual Router Identifier, 1..=255.
    pub vrid: u8,
    /// Priority: 255 address owner, 1..=254 backups, 0 master stepping down.
    pub priority: u8,
    /// Advertisement interval in centiseconds (v2: Adver Int seconds x 100; v3: Max Adver Int).
    pub interval_cs: u16,
    /// Authentication (v2 only).
    pub auth: Auth,
    /// The virtual addresses.
    pub addresses: Addresses<'a>,
}
