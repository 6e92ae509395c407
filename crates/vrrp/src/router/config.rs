//! The configuration of one virtual router, validated up front.
//!
//! Every rule lives in [`Config::validate`]; [`VirtualRouter::new`](super::VirtualRouter::new)
//! calls it, so a router never runs on a configuration that breaks one. Each
//! [`ConfigError`] names the field and the rule it broke.

use core::net::IpAddr;
use core::time::Duration;

use crate::wire::{Auth, ChecksumForm, Family, Version};

/// The longest interval, delay or refresh period accepted anywhere in the configuration.
/// Keeps every `Instant + Duration` far from overflow and catches unit mistakes (ms vs s).
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The largest IP packet an advertisement may need (Ethernet MTU). The address list is
/// limited so that the whole message fits one unfragmented packet.
pub const MAX_PACKET: usize = 1500;

/// Whether a router in the Backup state takes part in the election.
///
/// Beyond the RFC: the products this crate serves want a backup that never takes the
/// virtual addresses by itself (an operator decides).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// The RFC behaviour: a backup listens and takes over when the master is lost.
    #[default]
    Active,
    /// A passive backup neither listens to advertisements nor runs a Master_Down_Timer: it
    /// becomes master only on an explicit [`Input::Takeover`](super::Input::Takeover). A
    /// passive router that is already master behaves as a master until it steps down.
    Passive,
}

/// When the master announces its virtual addresses (gratuitous ARP for IPv4, unsolicited
/// Neighbor Advertisement for IPv6; RFC 5798 section 6.4.2 (380)-(395)).
///
/// The RFC asks for one announcement on becoming master; switches and phones that missed it
/// keep a stale entry, so products repeat it (keepalived: `garp_master_repeat`,
/// `garp_master_delay`, `garp_master_refresh`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AnnounceSchedule {
    /// Announcements per address in each burst (0 disables announcing altogether).
    pub burst: u8,
    /// A second burst this long after becoming master (`None`: no repeat).
    pub repeat_after: Option<Duration>,
    /// While master, a burst every this long after the initial one(s) (`None`: no refresh).
    pub refresh: Option<Duration>,
}

impl Default for AnnounceSchedule {
    /// Five announcements on becoming master, five more after 5 s, no periodic refresh
    /// (keepalived's defaults).
    fn default() -> Self {
        AnnounceSchedule {
            burst: 5,
            repeat_after: Some(Duration::from_secs(5)),
            refresh: None,
        }
    }
}

/// The configuration of one virtual router (one VRID on one interface).
///
/// Build it with [`Config::new`] and adjust the public fields; [`Config::validate`] checks
/// every rule. The address family is that of [`Config::primary_address`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Virtual Router Identifier, 1..=255 (RFC 5798 section 5.2.3).
    pub vrid: u8,
    /// Priority, 1..=255; 255 means this router owns the virtual addresses and goes straight to
    /// Master on startup (RFC 5798 section 5.2.4, 6.4.1).
    pub priority: u8,
    /// Protocol version: [`Version::V2`] (RFC 3768, IPv4 only) or [`Version::V3`].
    pub version: Version,
    /// Advertisement_Interval: v2 whole seconds 1..=255 s; v3 a multiple of 10 ms from 10 ms to
    /// 40.95 s (RFC 3768 section 5.3.7, RFC 5798 section 5.2.7).
    pub advertisement_interval: Duration,
    /// The virtual addresses, all of the primary address's family; 1..=255 of them and few
    /// enough that an advertisement fits a 1500-byte packet.
    pub virtual_addresses: Vec<IpAddr>,
    /// The address advertisements are sent from and compared on for the tie-break
    /// (RFC 5798 section 6.4.3 (735)): the interface's primary IPv4 address, or its IPv6
    /// link-local address (RFC 5798 section 5.1.2.1).
    pub primary_address: IpAddr,
    /// Preempt_Mode (RFC 5798 section 6.1): a higher-priority backup takes over from a
    /// lower-priority master. Default true.
    pub preempt: bool,
    /// How long a preempting backup keeps yielding after it first sees a lower-priority master
    /// (beyond the RFC, as keepalived's `preempt_delay`; zero: RFC behaviour).
    pub preempt_delay: Duration,
    /// Accept_Mode (RFC 5798 section 6.1): whether a non-owner master accepts packets sent to
    /// the virtual addresses. The router only carries it; the runtime applies it.
    pub accept_mode: bool,
    /// VRRPv2 authentication (must be [`Auth::None`] for v3).
    pub auth: Auth,
    /// Checksum form sent by VRRPv3 over IPv4: [`ChecksumForm::PseudoHeader`] (default,
    /// keepalived and FRR) or [`ChecksumForm::Plain`]. v2 always uses [`ChecksumForm::V2`] and
    /// IPv6 always the pseudo-header, whatever this says.
    pub v3_ipv4_checksum: ChecksumForm,
    /// When to announce the addresses while master.
    pub announce: AnnounceSchedule,
    /// The mode the router starts in ([`Mode::Active`] by default).
    pub mode: Mode,
}

impl Config {
    /// A configuration with the defaults: priority 100, VRRPv3, 1 s interval, preempt on
    /// without delay, accept mode off, no authentication, pseudo-header checksum, the default
    /// announcement schedule, active mode, and no virtual addresses yet (add at least one).
    pub fn new(vrid: u8, primary_address: IpAddr) -> Config {
        Config {
            vrid,
            priority: 100,
            version: Version::V3,
            advertisement_interval: Duration::from_secs(1),
            virtual_addresses: Vec::new(),
            primary_address,
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept_mode: false,
            auth: Auth::None,
            v3_ipv4_checksum: ChecksumForm::PseudoHeader,
            announce: AnnounceSchedule::default(),
            mode: Mode::Active,
        }
    }

    /// The address family: that of the primary address.
    pub fn family(&self) -> Family {
        match self.primary_address {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// True when this router owns the virtual addresses (priority 255).
    pub fn is_owner(&self) -> bool {
        self.priority == 255
    }

    /// The checksum form advertisements are sent with (RFC 3768 section 5.3.8,
    /// RFC 5798 section 5.2.8).
    pub fn checksum_form(&self) -> ChecksumForm {
        match (self.version, self.family()) {
            (Version::V2, _) => ChecksumForm::V2,
            (Version::V3, Family::V6) => ChecksumForm::PseudoHeader,
            (Version::V3, Family::V4) => self.v3_ipv4_checksum,
        }
    }

    /// The advertisement interval in centiseconds, as the message carries it.
    /// Only meaningful on a validated configuration.
    pub fn interval_cs(&self) -> u16 {
        u16::try_from(self.advertisement_interval.as_millis() / 10).unwrap_or(u16::MAX)
    }

    /// Checks every rule; the first one broken comes back as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vrid == 0 {
            return Err(ConfigError::Vrid(self.vrid));
        }
        if self.priority == 0 {
            return Err(ConfigError::Priority(self.priority));
        }
        let family = self.family();
        if self.version == Version::V2 && family == Family::V6 {
            return Err(ConfigError::V2NeedsIpv4);
        }
        self.validate_interval()?;
        self.validate_primary()?;
        self.validate_addresses(family)?;
        if self.version == Version::V3 && self.auth != Auth::None {
            return Err(ConfigError::AuthNeedsV2);
        }
        if self.v3_ipv4_checksum == ChecksumForm::V2 {
            return Err(ConfigError::ChecksumForm);
        }
        if self.preempt_delay > MAX_DELAY {
            return Err(ConfigError::TooLong {
                field: "preempt_delay",
                value: self.preempt_delay,
            });
        }
        self.validate_announce()
    }

    fn validate_interval(&self) -> Result<(), ConfigError> {
        let i = self.advertisement_interval;
        match self.version {
            Version::V2 => {
                // RFC 3768 section 5.3.7: an 8-bit count of seconds, 1 s by default.
                if i.subsec_nanos() != 0 || i.as_secs() == 0 || i.as_secs() > 255 {
                    return Err(ConfigError::IntervalV2(i));
                }
            }
            Version::V3 => {
                // RFC 5798 section 5.2.7: a 12-bit count of centiseconds.
                let whole_cs = i.as_nanos().is_multiple_of(10_000_000);
                let cs = i.as_nanos() / 10_000_000;
                if !whole_cs || cs == 0 || cs > 4095 {
                    return Err(ConfigError::IntervalV3(i));
                }
            }
        }
        Ok(())
    }

    fn validate_primary(&self) -> Result<(), ConfigError> {
        let ok = match self.primary_address {
            IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
            // RFC 5798 section 5.1.2.1: the source is the interface's link-local address.
            IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
        };
        if ok {
            Ok(())
        } else {
            Err(ConfigError::PrimaryAddress(self.primary_address))
        }
    }

    fn validate_addresses(&self, family: Family) -> Result<(), ConfigError> {
        let n = self.virtual_addresses.len();
        if n == 0 {
            return Err(ConfigError::NoVirtualAddress);
        }
        let width = match family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        // IP header + VRRP fixed header (8) + addresses + v2 authentication data (8).
        let ip_header = match family {
            Family::V4 => 20,
            Family::V6 => 40,
        };
        let auth = if self.version == Version::V2 { 8 } else { 0 };
        if n > 255 || ip_header + 8 + n * width + auth > MAX_PACKET {
            return Err(ConfigError::TooManyAddresses(n));
        }
        for (i, a) in self.virtual_addresses.iter().enumerate() {
            let same_family = matches!(
                (a, family),
                (IpAddr::V4(_), Family::V4) | (IpAddr::V6(_), Family::V6)
            );
            if !same_family {
                return Err(ConfigError::AddressFamily(*a));
            }
            if a.is_unspecified() || a.is_multicast() || a.is_loopback() {
                return Err(ConfigError::VirtualAddress(*a));
            }
            if self.virtual_addresses.iter().take(i).any(|b| b == a) {
                return Err(ConfigError::DuplicateAddress(*a));
            }
        }
        Ok(())
    }

    fn validate_announce(&self) -> Result<(), ConfigError> {
        let s = &self.announce;
        for (field, value) in [
            ("announce.repeat_after", s.repeat_after),
            ("announce.refresh", s.refresh),
        ] {
            if let Some(v) = value {
                if v.is_zero() {
                    return Err(ConfigError::ZeroPeriod { field });
                }
                if v > MAX_DELAY {
                    return Err(ConfigError::TooLong { field, value: v });
                }
            }
        }
        Ok(())
    }
}

/// A configuration rule that was broken: which field, which rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `vrid` is outside 1..=255.
    #[error("vrid {0}: must be 1..=255")]
    Vrid(u8),
    /// `priority` is outside 1..=255 (0 is reserved for a master stepping down).
    #[error("priority {0}: must be 1..=255 (0 is reserved for a master stepping down)")]
    Priority(u8),
    /// `version` is 2 but the primary address is IPv6.
    #[error("version: VRRPv2 carries IPv4 only; use version 3 for IPv6")]
    V2NeedsIpv4,
    /// `advertisement_interval` is not whole seconds in 1..=255 s (VRRPv2).
    #[error("advertisement_interval {0:?}: VRRPv2 needs whole seconds from 1 s to 255 s")]
    IntervalV2(Duration),
    /// `advertisement_interval` is not a multiple of 10 ms in 10 ms..=40.95 s (VRRPv3).
    #[error(
        "advertisement_interval {0:?}: VRRPv3 needs a multiple of 10 ms from 10 ms to 40.95 s"
    )]
    IntervalV3(Duration),
    /// `primary_address` is not a usable source (IPv4 unicast, or IPv6 link-local).
    #[error(
        "primary_address {0}: must be a unicast IPv4 address or an IPv6 link-local (fe80::/10)"
    )]
    PrimaryAddress(IpAddr),
    /// `virtual_addresses` is empty.
    #[error("virtual_addresses: at least one is needed")]
    NoVirtualAddress,
    /// `virtual_addresses` holds more than 255 or more than one 1500-byte packet can carry.
    #[error("virtual_addresses: {0} addresses do not fit one advertisement (at most 255 and a 1500-byte packet)")]
    TooManyAddresses(usize),
    /// A virtual address is not of the primary address's family.
    #[error("virtual_addresses: {0} is not of the primary address's family")]
    AddressFamily(IpAddr),
    /// A virtual address is unspecified, multicast or loopback.
    #[error("virtual_addresses: {0} must be a unicast address")]
    VirtualAddress(IpAddr),
    /// A virtual address is listed twice.
    #[error("virtual_addresses: {0} is listed twice")]
    DuplicateAddress(IpAddr),
    /// `auth` is set with version 3, which has no authentication (RFC 5798 section 9).
    #[error("auth: VRRPv3 has no authentication; use Auth::None or version 2")]
    AuthNeedsV2,
    /// `v3_ipv4_checksum` is [`ChecksumForm::V2`].
    #[error("v3_ipv4_checksum: must be PseudoHeader or Plain")]
    ChecksumForm,
    /// A delay or period is zero where zero means nothing (use `None`).
    #[error("{field}: must be greater than zero (use None to disable)")]
    ZeroPeriod {
        /// The field.
        field: &'static str,
    },
    /// A delay or period exceeds [`MAX_DELAY`].
    #[error("{field} {value:?}: must be at most 24 h")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The value given.
        value: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    fn v4() -> Config {
        let mut c = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
        c.virtual_addresses
            .push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)));
        c
    }

    #[test]
    fn defaults_validate() {
        assert_eq!(v4().validate(), Ok(()));
        assert_eq!(v4().checksum_form(), ChecksumForm::PseudoHeader);
        assert_eq!(v4().interval_cs(), 100);
    }

    #[test]
    fn each_rule_names_its_field() {
        let mut c = v4();
        c.vrid = 0;
        assert_eq!(c.validate(), Err(ConfigError::Vrid(0)));
        let mut c = v4();
        c.priority = 0;
        assert_eq!(c.validate(), Err(ConfigError::Priority(0)));
        let mut c = v4();
        c.version = Version::V2;
        c.advertisement_interval = Duration::from_millis(1500);
        assert!(matches!(c.validate(), Err(ConfigError::IntervalV2(_))));
        c.advertisement_interval = Duration::from_secs(256);
        assert!(matches!(c.validate(), Err(ConfigError::IntervalV2(_))));
        c.advertisement_interval = Duration::from_secs(255);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.checksum_form(), ChecksumForm::V2);
        let mut c = v4();
        c.advertisement_interval = Duration::from_millis(15);
        assert!(matches!(c.validate(), Err(ConfigError::IntervalV3(_))));
        c.advertisement_interval = Duration::from_millis(40_960);
        assert!(matches!(c.validate(), Err(ConfigError::IntervalV3(_))));
        c.advertisement_interval = Duration::from_millis(40_950);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.interval_cs(), 4095);
        let mut c = v4();
        c.virtual_addresses.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoVirtualAddress));
        let mut c = v4();
        c.virtual_addresses.push(c.virtual_addresses[0]);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::DuplicateAddress(_))
        ));
        let mut c = v4();
        c.virtual_addresses.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(matches!(c.validate(), Err(ConfigError::AddressFamily(_))));
        let mut c = v4();
        c.auth = Auth::SimplePassword(*b"secret\0\0");
        assert_eq!(c.validate(), Err(ConfigError::AuthNeedsV2));
        c.version = Version::V2;
        assert_eq!(c.validate(), Ok(()));
        let mut c = v4();
        c.v3_ipv4_checksum = ChecksumForm::V2;
        assert_eq!(c.validate(), Err(ConfigError::ChecksumForm));
        let mut c = v4();
        c.announce.refresh = Some(Duration::ZERO);
        assert!(matches!(c.validate(), Err(ConfigError::ZeroPeriod { .. })));
        let mut c = v4();
        c.preempt_delay = Duration::from_secs(100_000);
        assert!(matches!(c.validate(), Err(ConfigError::TooLong { .. })));
    }

    #[test]
    fn ipv6_needs_link_local_primary_and_v3() {
        let mut c = Config::new(1, IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 1)));
        c.virtual_addresses
            .push(IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 100)));
        assert!(matches!(c.validate(), Err(ConfigError::PrimaryAddress(_))));
        c.primary_address = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));
        assert_eq!(c.validate(), Ok(()));
        c.version = Version::V2;
        assert_eq!(c.validate(), Err(ConfigError::V2NeedsIpv4));
        c.version = Version::V3;
        // 90 IPv6 addresses fit a 1500-byte packet (40 + 8 + 90 * 16 = 1488); 91 do not.
        c.virtual_addresses = (1..=91u16)
            .map(|i| IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, i)))
            .collect();
        assert_eq!(c.validate(), Err(ConfigError::TooManyAddresses(91)));
        c.virtual_addresses.pop();
        assert_eq!(c.validate(), Ok(()));
    }
}
