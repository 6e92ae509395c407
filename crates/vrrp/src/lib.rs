//! VRRP for a high-availability pair of servers.
//!
//! * [`wire`]: the advertisement codec (VRRPv2, RFC 3768; VRRPv3, RFC 5798 / RFC 9568; IPv4 and
//!   IPv6): a zero-copy packet view, a representation with `parse` / `emit`, receive validation.
//! * [`router`]: one virtual router, the RFC 3768 / RFC 5798 / RFC 9568 election, sans-IO.
//! * [`sim`]: a deterministic simulator running routers over a virtual LAN on a virtual clock.
//!
//! Data flows one way: socket -> `wire` (parse, validate) -> election -> actions -> socket /
//! netlink.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod router;
pub mod sim;
pub mod wire;

#[cfg(feature = "linux")]
pub mod linux;
