//! The Linux node: everything that touches the operating system.
//!
//! * [`socket`]: the raw IP protocol 112 transport (multicast or unicast peers, TTL 255).
//! * [`addr`]: virtual addresses through rtnetlink, idempotent.
//! * [`announce`]: gratuitous ARP and unsolicited Neighbor Advertisements.
//! * [`runtime`]: the thread driving the routers ([`runtime::Node`]).
//! * [`track`]: interface link state and health checks; [`hooks`]: notify commands.
//!
//! Sockets are opened in the network namespace of the thread that creates them and stay
//! there, so a test can build a node inside a namespace from a thread that entered it.

pub mod addr;
pub mod announce;
pub mod hooks;
pub mod runtime;
pub mod socket;
pub mod track;

pub use addr::VirtualAddress;
pub use runtime::{
    block_termination_signals, Command, Drops, Event, InstanceConfig, Node, Options, Status,
};
