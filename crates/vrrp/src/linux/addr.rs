//! Virtual addresses added to and removed from an interface through rtnetlink, synchronously.
//!
//! Both operations are idempotent: adding an address that is already there (`EEXIST`) and
//! removing one that is not (`EADDRNOTAVAIL`) count as done, so a router can re-apply its
//! wanted state after a restart or a race without failing (RFC 5798 section 6.4.2 / 6.4.3: the
//! Master owns the addresses, a Backup must not).

use std::net::IpAddr;

use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A virtual address with its prefix length, e.g. `10.99.0.100/24`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
}

impl std::fmt::Display for VirtualAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl std::str::FromStr for VirtualAddress {
    type Err = AddrError;

    /// Parses `ADDR/PREFIX`, or a bare address (a host prefix: /32 or /128).
    fn from_str(s: &str) -> Result<Self, AddrError> {
        let bad = || AddrError::Parse(s.to_string());
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match p {
            Some(p) => p.parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix_len > max {
            return Err(bad());
        }
        Ok(VirtualAddress { addr, prefix_len })
    }
}

/// Errors of address management.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    /// Text that is not `ADDR/PREFIX`.
    #[error("`{0}` is not an address with a prefix length (ADDR/PREFIX)")]
    Parse(String),
    /// The netlink socket could not be opened or used.
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    /// The kernel refused a request.
    #[error("{op} {addr} on interface index {ifindex}: {source}")]
    Kernel {
        /// `add` or `remove`.
        op: &'static str,
        /// The address.
        addr: VirtualAddress,
        /// The interface.
        ifindex: u32,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// The kernel's answer could not be decoded.
    #[error("undecodable netlink answer: {0}")]
    Decode(String),
}

/// A synchronous rtnetlink socket for address requests (one request in flight at a time).
pub struct AddressManager {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl AddressManager {
    /// Opens the socket in the calling thread's network namespace.
    pub fn new() -> Result<AddressManager, AddrError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(AddrError::Socket)?;
        socket.bind_auto().map_err(AddrError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(AddrError::Socket)?;
        Ok(AddressManager {
            socket,
            seq: 0,
            buf: vec![0; 8192],
        })
    }

    /// Adds the address to the interface; already present counts as done. IPv6 addresses are
    /// added with `IFA_F_NODAD`: a virtual address must be usable at once on takeover, and the
    /// election already guarantees a single owner.
    pub fn add(&mut self, ifindex: u32, addr: VirtualAddress) -> Result<(), AddrError> {
        let msg = message(ifindex, addr);
        match self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            Err(source) => Err(AddrError::Kernel {
                op: "add",
                addr,
                ifindex,
                source,
            }),
        }
    }

    /// Removes the address from the interface; already absent counts as done.
    pub fn remove(&mut self, ifindex: u32, addr: VirtualAddress) -> Result<(), AddrError> {
        let msg = message(ifindex, addr);
        match self.request(
            RouteNetlinkMessage::DelAddress(msg),
            NLM_F_REQUEST | NLM_F_ACK,
        ) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            // Removing from an interface that vanished: the address is gone too.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            Err(source) => Err(AddrError::Kernel {
                op: "remove",
                addr,
                ifindex,
                source,
            }),
        }
    }

    fn request(&mut self, inner: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = NetlinkMessage::from(inner);
        msg.header.flags = flags;
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let len = msg.buffer_len();
        if len > self.buf.len() {
            return Err(std::io::Error::other("netlink request too large"));
        }
        msg.serialize(&mut self.buf[..len]);
        self.socket.send(&self.buf[..len], 0)?;
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let data = self.buf.get(..n).unwrap_or(&[]);
            let mut off = 0;
            while off < data.len() {
                let rest = data.get(off..).unwrap_or(&[]);
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(rest)
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let step = reply.header.length as usize;
                if reply.header.sequence_number == self.seq {
                    match reply.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(()),
                                Some(_) => Err(e.to_io()),
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(()),
                        _ => {}
                    }
                }
                if step == 0 {
                    break;
                }
                off += (step + 3) & !3;
            }
        }
    }
}

fn message(ifindex: u32, addr: VirtualAddress) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = ifindex;
    msg.header.prefix_len = addr.prefix_len;
    msg.header.family = match addr.addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    msg.attributes.push(AddressAttribute::Local(addr.addr));
    msg.attributes.push(AddressAttribute::Address(addr.addr));
    if addr.addr.is_ipv6() {
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    msg
}

/// The interface index of `name` in the calling thread's namespace.
pub fn interface_index(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: `c` is a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (idx != 0).then_some(idx)
}
