//! One-line, tcpdump-like renderings of the codec's types, e.g.
//! `VRRPv2 advertisement vrid 51 prio 100 auth none intvl 1s addrs 10.0.0.1`.

use core::fmt;

use super::{Addresses, Advertisement, Auth, ChecksumForm, Family, Received, Version};

impl fmt::Display for Version {
    /// `VRRPv2` or `VRRPv3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V2 => "VRRPv2",
            Version::V3 => "VRRPv3",
        })
    }
}

impl fmt::Display for Family {
    /// `IPv4` or `IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

impl fmt::Display for ChecksumForm {
    /// `v2`, `pseudo-header` or `plain` (the names the decoder's JSON uses).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumForm::V2 => "v2",
            ChecksumForm::PseudoHeader => "pseudo-header",
            ChecksumForm::Plain => "plain",
        })
    }
}

impl fmt::Display for Auth {
    /// `none`, or `simple "password"` with the zero padding removed and non-printable bytes
    /// escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("none"),
            Auth::SimplePassword(bytes) => {
                let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
                let password = bytes.get(..end).unwrap_or_default();
                write!(f, "simple \"{}\"", password.escape_ascii())
            }
        }
    }
}

impl fmt::Display for Addresses<'_> {
    /// The addresses separated by commas, or `none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, address) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{address}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Advertisement<'_> {
    /// `VRRPv2 advertisement vrid 51 prio 100 auth none intvl 1s addrs 10.0.0.1` or
    /// `VRRPv3 advertisement vrid 2 prio 254 intvl 100cs addrs 2001:db8::2,2001:db8::3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} advertisement vrid {} prio {}",
            self.version, self.vrid, self.priority
        )?;
        match self.version {
            Version::V2 => {
                write!(f, " auth {}", self.auth)?;
                if self.interval_cs.is_multiple_of(100) {
                    write!(f, " intvl {}s", self.interval_cs / 100)?;
                } else {
                    write!(f, " intvl {}cs", self.interval_cs)?;
                }
            }
            Version::V3 => write!(f, " intvl {}cs", self.interval_cs)?,
        }
        write!(f, " addrs {}", self.addresses)
    }
}

impl fmt::Display for Received<'_> {
    /// `10.0.0.2 > 224.0.0.18 ttl 255: VRRPv2 advertisement ... cksum 0xb5c5 (v2)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} > {} ttl {}: {} cksum 0x{:04x} ({})",
            self.src, self.dst, self.ttl, self.advert, self.checksum, self.checksum_form
        )
    }
}
