//! The VRRP transport: a raw socket for IP protocol 112 bound to one interface.
//!
//! * Multicast (default): joins 224.0.0.18 (RFC 3768 section 5.2.2) or ff02::12 (RFC 5798
//!   section 5.1.2.2) on the interface and sends there.
//! * Unicast peers (for networks that drop multicast, as keepalived's `unicast_peer`): sends to
//!   each peer and accepts only packets whose source is one of them.
//! * Every packet is sent with TTL / hop limit 255, and every packet received with less is
//!   dropped and counted (RFC 3768 section 7.1, RFC 5798 section 7.1: the check proves the sender
//!   is on the link). IPv4 reads the TTL from the header the raw socket returns; IPv6 from the
//!   `IPV6_HOPLIMIT` control message, and the destination from `IPV6_PKTINFO`.
//!
//! The receive path allocates nothing: the caller lends the buffer.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};

use crate::wire::{Family, MULTICAST_V4, MULTICAST_V6, PROTOCOL, TTL};

/// Errors of the VRRP transport.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The interface does not exist in this namespace.
    #[error("interface `{0}` not found")]
    NoInterface(String),
    /// The interface has no address to send from (IPv4 primary, or IPv6 link-local).
    #[error("interface `{interface}` has no {family} source address")]
    NoSourceAddress {
        /// The interface.
        interface: String,
        /// `IPv4` or `IPv6 link-local`.
        family: &'static str,
    },
    /// A unicast peer of the other family.
    #[error("unicast peer {0} is not of the socket's address family")]
    PeerFamily(IpAddr),
    /// A socket operation failed.
    #[error("VRRP socket on `{interface}`: {what}: {source}")]
    Io {
        /// The interface.
        interface: String,
        /// The operation.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Counters of what the socket dropped before parsing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Packets handed to the caller.
    pub received: u64,
    /// Dropped: TTL / hop limit below 255.
    pub bad_ttl: u64,
    /// Dropped: unicast mode and the source is not a configured peer.
    pub unknown_source: u64,
    /// Dropped: truncated or unreadable IP header / control data.
    pub malformed: u64,
    /// Packets sent.
    pub sent: u64,
}

/// One received VRRP packet with the IP facts the receive checks need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram<'b> {
    /// IP source address.
    pub src: IpAddr,
    /// IP destination address.
    pub dst: IpAddr,
    /// IPv4 TTL or IPv6 hop limit (always 255 here: lower ones are dropped).
    pub ttl: u8,
    /// The VRRP message (after the IP header).
    pub vrrp: &'b [u8],
}

/// Receive and send buffer size asked for each VRRP socket: room for a burst of adverts from
/// all 255 VRIDs several times over (each small packet costs about 1 KiB of buffer).
const SOCKET_BUFFER: i32 = 4 << 20;

/// Sets a socket buffer size with the privileged option, falling back to the plain one. A
/// failure leaves the default size, which works for a few VRIDs: not an error.
fn set_buffer(socket: &Socket, forced: i32, plain: i32, bytes: i32) {
    if set_int(socket, libc::SOL_SOCKET, forced, bytes).is_err() {
        let _ = set_int(socket, libc::SOL_SOCKET, plain, bytes);
    }
}

/// A raw VRRP socket on one interface for one address family.
pub struct VrrpSocket {
    socket: Socket,
    interface: String,
    ifindex: u32,
    family: Family,
    source: IpAddr,
    destinations: Vec<IpAddr>,
    unicast: bool,
    stats: SocketStats,
}

impl VrrpSocket {
    /// Opens the socket in the calling thread's network namespace. With `unicast_peers` empty
    /// it joins the VRRP multicast group on the interface; otherwise it talks to those peers
    /// only. The socket is non-blocking: the runtime polls it.
    pub fn open(
        interface: &str,
        family: Family,
        unicast_peers: &[IpAddr],
    ) -> Result<VrrpSocket, SocketError> {
        let ifindex = super::addr::interface_index(interface)
            .ok_or_else(|| SocketError::NoInterface(interface.to_string()))?;
        let io = |what: &'static str| {
            let interface = interface.to_string();
            move |source| SocketError::Io {
                interface,
                what,
                source,
            }
        };
        if let Some(p) = unicast_peers
            .iter()
            .find(|p| p.is_ipv4() != (family == Family::V4))
        {
            return Err(SocketError::PeerFamily(*p));
        }
        let source = source_address(interface, family)?;
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let socket = Socket::new(domain, Type::RAW, Some(Protocol::from(i32::from(PROTOCOL))))
            .map_err(io("create raw socket (needs CAP_NET_RAW)"))?;
        socket
            .bind_device(Some(interface.as_bytes()))
            .map_err(io("SO_BINDTODEVICE"))?;
        let unicast = !unicast_peers.is_empty();
        match (family, source) {
            (Family::V4, IpAddr::V4(src)) => {
                // No bind(2) to the source address: a raw IPv4 socket bound to an address only
                // receives packets sent to it, which would shut out 224.0.0.18. The kernel
                // takes the source from IP_MULTICAST_IF (multicast) or the route (unicast),
                // both the interface's primary address.
                socket.set_ttl_v4(u32::from(TTL)).map_err(io("IP_TTL"))?;
                socket
                    .set_multicast_ttl_v4(u32::from(TTL))
                    .map_err(io("IP_MULTICAST_TTL"))?;
                socket
                    .set_multicast_loop_v4(false)
                    .map_err(io("IP_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_all_v4(false)
                    .map_err(io("IP_MULTICAST_ALL"))?;
                socket
                    .set_multicast_if_v4(&src)
                    .map_err(io("IP_MULTICAST_IF"))?;
                if !unicast {
                    socket
                        .join_multicast_v4_n(
                            &MULTICAST_V4,
                            &InterfaceIndexOrAddress::Index(ifindex),
                        )
                        .map_err(io("join 224.0.0.18"))?;
                }
            }
            (Family::V6, IpAddr::V6(src)) => {
                socket
                    .bind(&SockAddr::from(SocketAddrV6::new(src, 0, 0, ifindex)))
                    .map_err(io("bind to the link-local source address"))?;
                socket
                    .set_unicast_hops_v6(u32::from(TTL))
                    .map_err(io("IPV6_UNICAST_HOPS"))?;
                socket
                    .set_multicast_hops_v6(u32::from(TTL))
                    .map_err(io("IPV6_MULTICAST_HOPS"))?;
                socket
                    .set_multicast_loop_v6(false)
                    .map_err(io("IPV6_MULTICAST_LOOP"))?;
                socket
                    .set_multicast_all_v6(false)
                    .map_err(io("IPV6_MULTICAST_ALL"))?;
                socket
                    .set_multicast_if_v6(ifindex)
                    .map_err(io("IPV6_MULTICAST_IF"))?;
                set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)
                    .map_err(io("IPV6_RECVHOPLIMIT"))?;
                set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
                    .map_err(io("IPV6_RECVPKTINFO"))?;
                if !unicast {
                    socket
                        .join_multicast_v6(&MULTICAST_V6, ifindex)
                        .map_err(io("join ff02::12"))?;
                }
            }
            _ => {
                return Err(SocketError::NoSourceAddress {
                    interface: interface.to_string(),
                    family: "matching",
                })
            }
        }
        socket.set_nonblocking(true).map_err(io("O_NONBLOCK"))?;
        // Many VRIDs share this socket and their adverts leave and arrive in bursts (255 VRIDs
        // at one interval: 255 packets within microseconds). The default buffers (about
        // 212 KB, some 160 small packets) overflow on such a burst, and every dropped advert
        // moves a backup closer to a spurious takeover. Ask for more; the forced forms need
        // CAP_NET_ADMIN, and the plain ones (capped by net.core.[rw]mem_max) are the fallback.
        set_buffer(
            &socket,
            libc::SO_RCVBUFFORCE,
            libc::SO_RCVBUF,
            SOCKET_BUFFER,
        );
        set_buffer(
            &socket,
            libc::SO_SNDBUFFORCE,
            libc::SO_SNDBUF,
            SOCKET_BUFFER,
        );
        let destinations = if unicast {
            unicast_peers.to_vec()
        } else {
            vec![match family {
                Family::V4 => IpAddr::V4(MULTICAST_V4),
                Family::V6 => IpAddr::V6(MULTICAST_V6),
            }]
        };
        Ok(VrrpSocket {
            socket,
            interface: interface.to_string(),
            ifindex,
            family,
            source,
            destinations,
            unicast,
            stats: SocketStats::default(),
        })
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The source address of every sent packet (needed for the VRRPv3 pseudo-header checksum).
    pub fn source(&self) -> IpAddr {
        self.source
    }

    /// Where advertisements go: the multicast group, or the unicast peers.
    pub fn destinations(&self) -> &[IpAddr] {
        &self.destinations
    }

    /// Whether the socket is in unicast-peer mode.
    pub fn is_unicast(&self) -> bool {
        self.unicast
    }

    /// The drop and traffic counters.
    pub fn stats(&self) -> SocketStats {
        self.stats
    }

    /// Sends one VRRP message (no IP header: the kernel adds it with TTL 255) to `dst`.
    pub fn send_to(&mut self, vrrp: &[u8], dst: IpAddr) -> Result<(), SocketError> {
        let addr = match dst {
            IpAddr::V4(a) => SockAddr::from(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => SockAddr::from(SocketAddrV6::new(a, 0, 0, self.ifindex)),
        };
        self.socket
            .send_to(vrrp, &addr)
            .map_err(|source| SocketError::Io {
                interface: self.interface.clone(),
                what: "send",
                source,
            })?;
        self.stats.sent += 1;
        Ok(())
    }

    /// Reads the next acceptable packet into `buf`; `Ok(None)` when nothing is waiting.
    /// Packets with a TTL / hop limit below 255, from a non-peer in unicast mode, or with an
    /// unreadable header are dropped and counted, and reading goes on.
    pub fn recv<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<Datagram<'b>>, SocketError> {
        let (src, dst, ttl, start, end) = loop {
            let meta = match self.recv_raw(buf) {
                Ok(Some(m)) => m,
                Ok(None) => return Ok(None),
                Err(source) => {
                    return Err(SocketError::Io {
                        interface: self.interface.clone(),
                        what: "receive",
                        source,
                    })
                }
            };
            let Some((src, dst, ttl, start, end)) = meta else {
                self.stats.malformed += 1;
                continue;
            };
            if ttl != TTL {
                self.stats.bad_ttl += 1;
                continue;
            }
            if self.unicast && !self.destinations.contains(&src) {
                self.stats.unknown_source += 1;
                continue;
            }
            if start > end || end > buf.len() {
                self.stats.malformed += 1;
                continue;
            }
            break (src, dst, ttl, start, end);
        };
        self.stats.received += 1;
        Ok(Some(Datagram {
            src,
            dst,
            ttl,
            vrrp: buf.get(start..end).unwrap_or(&[]),
        }))
    }

    /// One `recvmsg`: `Ok(None)` = would block; `Ok(Some(None))` = malformed.
    #[allow(clippy::type_complexity)]
    fn recv_raw(
        &self,
        buf: &mut [u8],
    ) -> std::io::Result<Option<Option<(IpAddr, IpAddr, u8, usize, usize)>>> {
        // Room for IPV6_HOPLIMIT and IPV6_PKTINFO control messages, 8-byte aligned.
        let mut control = [0u64; 16];
        let mut from: MaybeUninit<libc::sockaddr_storage> = MaybeUninit::zeroed();
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the fields are set below.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = from.as_mut_ptr().cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: every pointer in `msg` refers to a live local buffer of the stated length.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.kind() {
                std::io::ErrorKind::WouldBlock => Ok(None),
                std::io::ErrorKind::Interrupted => Ok(Some(None)),
                _ => Err(e),
            };
        }
        let n = (n as usize).min(buf.len());
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Ok(Some(None));
        }
        match self.family {
            Family::V4 => Ok(Some(parse_ipv4_header(buf.get(..n).unwrap_or(&[])))),
            Family::V6 => {
                // SAFETY: the kernel filled `from` with a sockaddr_in6 for an AF_INET6 socket.
                let from = unsafe { from.assume_init() };
                if from.ss_family != libc::AF_INET6 as libc::sa_family_t {
                    return Ok(Some(None));
                }
                // SAFETY: ss_family says the storage holds a sockaddr_in6.
                let sin6: libc::sockaddr_in6 =
                    unsafe { std::ptr::read((&from as *const libc::sockaddr_storage).cast()) };
                let src = IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr));
                let (mut hops, mut dst) = (None, None);
                // SAFETY: `msg` describes the control buffer the kernel just filled; the
                // CMSG_* helpers stay within msg_controllen.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(&msg);
                    while !c.is_null() {
                        let h = &*c;
                        if h.cmsg_level == libc::IPPROTO_IPV6 {
                            if h.cmsg_type == libc::IPV6_HOPLIMIT {
                                let v = std::ptr::read_unaligned(
                                    libc::CMSG_DATA(c).cast::<libc::c_int>(),
                                );
                                hops = u8::try_from(v).ok();
                            } else if h.cmsg_type == libc::IPV6_PKTINFO {
                                let p = std::ptr::read_unaligned(
                                    libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(),
                                );
                                dst = Some(IpAddr::V6(Ipv6Addr::from(p.ipi6_addr.s6_addr)));
                            }
                        }
                        c = libc::CMSG_NXTHDR(&msg, c);
                    }
                }
                Ok(Some(match (hops, dst) {
                    (Some(h), Some(d)) => Some((src, d, h, 0, n)),
                    _ => None,
                }))
            }
        }
    }
}

impl AsRawFd for VrrpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

/// Reads source, destination and TTL from an IPv4 header and the VRRP message's byte range.
fn parse_ipv4_header(p: &[u8]) -> Option<(IpAddr, IpAddr, u8, usize, usize)> {
    let first = *p.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    let ttl = *p.get(8)?;
    let src = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(12..16)?).ok()?);
    let dst = Ipv4Addr::from(<[u8; 4]>::try_from(p.get(16..20)?).ok()?);
    let total = usize::from(u16::from_be_bytes([*p.get(2)?, *p.get(3)?]));
    // The kernel may report total length in host order on some raw paths; trust the read size
    // when the header's figure does not fit.
    let end = if total >= ihl && total <= p.len() {
        total
    } else {
        p.len()
    };
    Some((IpAddr::V4(src), IpAddr::V4(dst), ttl, ihl, end))
}

fn set_int(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    v: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: `v` is a live c_int and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The address an advertisement is sent from: the interface's primary IPv4 address
/// (RFC 3768 section 5.2.1) or its IPv6 link-local address (RFC 5798 section 5.1.2.1).
pub fn source_address(interface: &str, family: Family) -> Result<IpAddr, SocketError> {
    let none = || SocketError::NoSourceAddress {
        interface: interface.to_string(),
        family: match family {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6 link-local",
        },
    };
    interface_addresses(interface)
        .into_iter()
        .find(|a| match (family, a) {
            (Family::V4, IpAddr::V4(_)) => true,
            (Family::V6, IpAddr::V6(v6)) => v6.segments()[0] & 0xffc0 == 0xfe80,
            _ => false,
        })
        .ok_or_else(none)
}

/// Every address on `interface` in the calling thread's namespace, in the kernel's order
/// (primary IPv4 first).
pub fn interface_addresses(interface: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `ifap` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut ifap) } != 0 {
        return out;
    }
    let mut cur = ifap;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, alive until freeifaddrs.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) };
        if name.to_bytes() != interface.as_bytes() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and its sa_family tells its real type.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if family == libc::AF_INET as libc::sa_family_t {
            // SAFETY: AF_INET means a sockaddr_in.
            let sin = unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>()) };
            out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))));
        } else if family == libc::AF_INET6 as libc::sa_family_t {
            // SAFETY: AF_INET6 means a sockaddr_in6.
            let sin6 =
                unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>()) };
            out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
        }
    }
    // SAFETY: `ifap` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(ifap) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_fields_and_payload_range() {
        let mut p = [0u8; 32];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&32u16.to_be_bytes());
        p[8] = 255;
        p[9] = 112;
        p[12..16].copy_from_slice(&[10, 99, 0, 1]);
        p[16..20].copy_from_slice(&[224, 0, 0, 18]);
        let (src, dst, ttl, start, end) = parse_ipv4_header(&p).expect("valid header");
        assert_eq!(src, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(dst, IpAddr::V4(MULTICAST_V4));
        assert_eq!((ttl, start, end), (255, 20, 32));
        assert!(parse_ipv4_header(&p[..10]).is_none(), "truncated");
        p[0] = 0x65;
        assert!(parse_ipv4_header(&p).is_none(), "not IPv4");
        p[0] = 0x4f; // IHL 60 > length
        assert!(parse_ipv4_header(&p).is_none());
    }
}
