//! Announcing that this node now owns the virtual addresses (RFC 5798 section 6.4.1 / 6.4.2,
//! RFC 3768 section 6.4.1): gratuitous ARP for IPv4 (through pnet_datalink) and unsolicited
//! Neighbor Advertisements for IPv6 (RFC 4861 section 7.2.6, through an ICMPv6 raw socket with
//! hop limit 255, which RFC 4861 section 7.1.2 requires of receivers).
//!
//! Gratuitous ARP goes out through an `AF_PACKET` socket opened with protocol 0: such a
//! socket receives nothing (no frame is copied to it), so it is opened once and kept. The
//! earlier form, a pnet_datalink channel opened per burst, bound to every protocol and, on
//! close, made the kernel wait for an RCU grace period (`synchronize_net`): 10 ms or more per
//! announcement on a VM, which serialised 255 VRIDs' takeovers behind one another and stalled
//! their adverts long enough for the peer to take over spuriously. pnet_datalink still finds
//! the interface and its MAC; pnet_packet builds the frame.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6};

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use pnet_datalink::{MacAddr, NetworkInterface};
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Errors while announcing.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The interface does not exist in this namespace or has no MAC address.
    #[error("interface `{0}` not found or without a MAC address")]
    NoInterface(String),
    /// The link-layer channel could not be opened or used.
    #[error("gratuitous ARP on `{interface}`: {source}")]
    Arp {
        /// The interface.
        interface: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The ICMPv6 socket could not be opened or used.
    #[error("neighbour advertisement on `{interface}`: {what}: {source}")]
    Na {
        /// The interface.
        interface: String,
        /// The operation.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

const ARP_FRAME_LEN: usize = 14 + 28;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Sends announcements for addresses on one interface.
pub struct Announcer {
    interface: NetworkInterface,
    mac: MacAddr,
    packet: Option<OwnedFd>,
    icmp6: Option<Socket>,
}

const ETH_P_ARP: u16 = 0x0806;

/// An `AF_PACKET` raw socket bound to no protocol: it can send frames and never receives any.
fn open_send_only_packet_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Announcer {
    /// Looks the interface up in the calling thread's namespace.
    pub fn new(interface: &str) -> Result<Announcer, AnnounceError> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == interface)
            .ok_or_else(|| AnnounceError::NoInterface(interface.to_string()))?;
        let mac = iface
            .mac
            .filter(|m| *m != MacAddr::zero())
            .ok_or_else(|| AnnounceError::NoInterface(interface.to_string()))?;
        Ok(Announcer {
            interface: iface,
            mac,
            packet: None,
            icmp6: None,
        })
    }

    /// The interface's MAC address (the sender of every announcement).
    pub fn mac(&self) -> [u8; 6] {
        self.mac.octets()
    }

    /// Announces every address once: a gratuitous ARP request per IPv4 address (one channel
    /// for the whole burst) and an unsolicited NA per IPv6 address.
    pub fn announce(&mut self, addresses: &[IpAddr]) -> Result<(), AnnounceError> {
        let v4: Vec<Ipv4Addr> = addresses
            .iter()
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        if !v4.is_empty() {
            self.gratuitous_arp(&v4)?;
        }
        for a in addresses {
            if let IpAddr::V6(a) = a {
                self.unsolicited_na(*a)?;
            }
        }
        Ok(())
    }

    fn gratuitous_arp(&mut self, addresses: &[Ipv4Addr]) -> Result<(), AnnounceError> {
        let arp_err = |source| AnnounceError::Arp {
            interface: self.interface.name.clone(),
            source,
        };
        if self.packet.is_none() {
            self.packet = Some(open_send_only_packet_socket().map_err(arp_err)?);
        }
        let Some(fd) = self.packet.as_ref() else {
            return Ok(());
        };
        let mut frame = [0u8; ARP_FRAME_LEN];
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value before filling it in.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_ARP.to_be();
        to.sll_ifindex = i32::try_from(self.interface.index).unwrap_or(0);
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        for a in addresses {
            build_gratuitous_arp(&mut frame, self.mac, *a);
            // SAFETY: `frame` and `to` are live for the call and their lengths are passed.
            let rc = unsafe {
                libc::sendto(
                    fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&to as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                return Err(arp_err(std::io::Error::last_os_error()));
            }
        }
        Ok(())
    }

    fn unsolicited_na(&mut self, target: Ipv6Addr) -> Result<(), AnnounceError> {
        let name = self.interface.name.clone();
        let na_err = |what: &'static str| {
            let interface = name.clone();
            move |source| AnnounceError::Na {
                interface,
                what,
                source,
            }
        };
        if self.icmp6.is_none() {
            let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
                .map_err(na_err("create ICMPv6 socket"))?;
            s.bind_device(Some(name.as_bytes()))
                .map_err(na_err("SO_BINDTODEVICE"))?;
            s.set_multicast_hops_v6(255)
                .map_err(na_err("IPV6_MULTICAST_HOPS"))?;
            s.set_multicast_if_v6(self.interface.index)
                .map_err(na_err("IPV6_MULTICAST_IF"))?;
            s.set_multicast_loop_v6(false)
                .map_err(na_err("IPV6_MULTICAST_LOOP"))?;
            self.icmp6 = Some(s);
        }
        let Some(s) = self.icmp6.as_ref() else {
            return Ok(());
        };
        let msg = build_unsolicited_na(self.mac, target);
        // The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets (RFC 3542 section 3.1).
        s.send_to(
            &msg,
            &SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.interface.index)),
        )
        .map_err(na_err("send"))?;
        Ok(())
    }
}

/// A gratuitous ARP request (RFC 5227 section 3 "ARP Announcement"): broadcast, sender and
/// target protocol address both the virtual address, target hardware address zero.
fn build_gratuitous_arp(frame: &mut [u8; ARP_FRAME_LEN], mac: MacAddr, addr: Ipv4Addr) {
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame[..]) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[14..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(addr);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(addr);
    }
}

/// An unsolicited Neighbor Advertisement (RFC 4861 section 4.4 / 7.2.6): Override set,
/// Solicited clear, with the Target Link-Layer Address option. Checksum left zero for the
/// kernel.
fn build_unsolicited_na(mac: MacAddr, target: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // Neighbor Advertisement
    m[4] = 0x20; // O flag
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // Target Link-Layer Address option
    m[25] = 1; // length in units of 8 octets
    m[26..32].copy_from_slice(&mac.octets());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gratuitous_arp_bytes() {
        let mac = MacAddr::new(2, 0, 0, 0, 0, 1);
        let mut f = [0u8; ARP_FRAME_LEN];
        build_gratuitous_arp(&mut f, mac, Ipv4Addr::new(10, 99, 0, 100));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[14..22], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&f[28..32], &[10, 99, 0, 100]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 99, 0, 100]);
    }

    #[test]
    fn unsolicited_na_bytes() {
        let t: Ipv6Addr = "fd99::100".parse().expect("address");
        let m = build_unsolicited_na(MacAddr::new(2, 0, 0, 0, 0, 1), t);
        assert_eq!(m[0], 136);
        assert_eq!(m[4], 0x20);
        assert_eq!(&m[8..24], &t.octets());
        assert_eq!(&m[24..32], &[2, 1, 2, 0, 0, 0, 0, 1]);
    }
}
