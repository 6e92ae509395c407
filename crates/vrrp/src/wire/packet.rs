//! A zero-copy view of a VRRP message (RFC 3768 section 5.1, RFC 5798 section 5.1), shaped
//! like smoltcp's `wire` packets.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version| Type  | Virtual Rtr ID|   Priority    | Count IP Addrs|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   Auth Type   |   Adver Int   |          Checksum             |   v2
//! |(rsvd) |     Max Adver Int     |          Checksum             |   v3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 IPv4 / IPv6 address(es) ...                   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Authentication Data (8 bytes, v2 only)               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The view's buffer is the whole VRRP message: the checksum covers all of it.

use core::net::IpAddr;

use super::{checksum, ChecksumForm, Error, Family};

/// Byte offsets of the fields.
mod field {
    use core::ops::Range;
    pub const VER_TYPE: usize = 0;
    pub const VRID: usize = 1;
    pub const PRIORITY: usize = 2;
    pub const COUNT: usize = 3;
    /// v2: Auth Type. v3: reserved nibble and the high nibble of Max Adver Int.
    pub const AUTH_TYPE: usize = 4;
    /// v2: Adver Int (seconds).
    pub const ADVER_INT: usize = 5;
    /// v3: 4 reserved bits + 12-bit Max Adver Int (centiseconds).
    pub const MAX_ADVER_INT: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const ADDRESSES: usize = 8;
}

/// Length of the fixed header before the addresses.
pub const HEADER_LEN: usize = field::ADDRESSES;
/// Length of the VRRPv2 Authentication Data trailer (RFC 3768 section 5.3.10).
pub const AUTH_DATA_LEN: usize = 8;
/// The only message type defined: ADVERTISEMENT (RFC 3768 section 5.3.2).
pub const TYPE_ADVERTISEMENT: u8 = 1;
/// VRRPv2 Auth Type 0: no authentication (RFC 3768 section 5.3.6).
pub const AUTH_TYPE_NONE: u8 = 0;
/// VRRPv2 Auth Type 1: simple text password (RFC 2338 section 5.3.6.1).
pub const AUTH_TYPE_SIMPLE: u8 = 1;
/// The 12 bits of the VRRPv3 Max Adver Int (RFC 5798 section 5.2.7).
pub const MAX_ADVER_INT_MASK: u16 = 0x0fff;

/// A read/write view of a VRRP message in a byte buffer.
///
/// Accessors of the fixed header index the buffer directly: call them after
/// [`check_len`](Packet::check_len) (or build the view with [`new_checked`](Packet::new_checked)),
/// or they panic on a buffer shorter than 8 bytes. The variable-length parts
/// ([`addresses`](Packet::addresses), [`auth_data`](Packet::auth_data)) never panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking its length.
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer and checks it with [`check_len`](Packet::check_len).
    #[inline]
    pub fn new_checked(buffer: T, family: Family) -> Result<Packet<T>, Error> {
        let packet = Packet::new_unchecked(buffer);
        packet.check_len(family)?;
        Ok(packet)
    }

    /// Checks that the buffer holds the header and everything the count (and, for version 2,
    /// the authentication trailer) implies, so that no accessor panics.
    ///
    /// Longer buffers pass; [`Advertisement::parse`](super::Advertisement::parse) insists on
    /// the exact length (RFC 3768 section 7.1).
    #[inline]
    pub fn check_len(&self, family: Family) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated { len });
        }
        let expected = self.message_len(family);
        if len < expected {
            return Err(Error::CountMismatch {
                version: self.version_or_v3(),
                family,
                count: self.count_ip_addrs(),
                expected,
                len,
            });
        }
        Ok(())
    }

    /// Gives the buffer back.
    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version 2 when the nibble says so, otherwise 3 (for error reports only).
    fn version_or_v3(&self) -> super::Version {
        if self.version() == 2 {
            super::Version::V2
        } else {
            super::Version::V3
        }
    }

    /// Width of one address: 4 for version 2 (IPv4 only) and for IPv4, 16 for IPv6.
    #[inline]
    pub fn address_width(&self, family: Family) -> usize {
        match (self.version(), family) {
            (_, Family::V4) | (2, _) => 4,
            (_, Family::V6) => 16,
        }
    }

    /// The message length the header implies: header, count addresses, and for version 2 the
    /// authentication data.
    #[inline]
    pub fn message_len(&self, family: Family) -> usize {
        let trailer = if self.version() == 2 {
            AUTH_DATA_LEN
        } else {
            0
        };
        HEADER_LEN + usize::from(self.count_ip_addrs()) * self.address_width(family) + trailer
    }

    /// The Version field (high nibble of byte 0).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The Type field (low nibble of byte 0); 1 is ADVERTISEMENT.
    #[inline]
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// The Virtual Rtr ID field.
    #[inline]
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// The Priority field.
    #[inline]
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// The Count IP Addrs (v2) / Count IPvX Addr (v3) field.
    #[inline]
    pub fn count_ip_addrs(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// The VRRPv2 Auth Type field (meaningless for v3).
    #[inline]
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// The VRRPv2 Adver Int field, in seconds (meaningless for v3).
    #[inline]
    pub fn adver_int(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT]
    }

    /// The VRRPv3 Max Adver Int field, in centiseconds; the 4 reserved bits before it are
    /// ignored as RFC 5798 section 5.2.6 requires of a receiver.
    #[inline]
    pub fn max_adver_int(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([
            b[field::MAX_ADVER_INT.start],
            b[field::MAX_ADVER_INT.start + 1],
        ]) & MAX_ADVER_INT_MASK
    }

    /// The 4 reserved bits of a VRRPv3 header (zero when sent by a conforming router).
    #[inline]
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::MAX_ADVER_INT.start] >> 4
    }

    /// The Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::CHECKSUM.start], b[field::CHECKSUM.start + 1]])
    }

    /// The VRRPv2 Authentication Data after the addresses, or `None` when the buffer is too
    /// short to hold it. Only meaningful for version 2.
    #[inline]
    pub fn auth_data(&self) -> Option<[u8; AUTH_DATA_LEN]> {
        let start = HEADER_LEN + usize::from(self.count_ip_addrs()) * 4;
        let bytes = self.buffer.as_ref().get(start..start + AUTH_DATA_LEN)?;
        <[u8; AUTH_DATA_LEN]>::try_from(bytes).ok()
    }

    /// The one's complement sum over the whole message plus the pseudo-header `form` asks for.
    fn sum_with(&self, form: ChecksumForm, src: &IpAddr, dst: &IpAddr) -> Result<u16, Error> {
        let bytes = self.buffer.as_ref();
        let data = checksum::data(bytes);
        Ok(match form {
            ChecksumForm::V2 | ChecksumForm::Plain => data,
            ChecksumForm::PseudoHeader => {
                checksum::combine(&[data, pseudo_header(src, dst, bytes.len())?])
            }
        })
    }

    /// True when the Checksum field verifies in `form` (RFC 1071; `src` and `dst` are used
    /// only for [`ChecksumForm::PseudoHeader`]). Mismatched address families do not verify.
    pub fn verify_checksum(&self, form: ChecksumForm, src: &IpAddr, dst: &IpAddr) -> bool {
        self.sum_with(form, src, dst).is_ok_and(checksum::verifies)
    }
}

/// The pseudo-header sum for a message of `len` bytes between `src` and `dst`
/// (RFC 5798 section 5.2.8).
#[inline]
pub(crate) fn pseudo_header(src: &IpAddr, dst: &IpAddr, len: usize) -> Result<u16, Error> {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let len = u16::try_from(len).map_err(|_| Error::MessageTooLong(len))?;
            Ok(checksum::pseudo_header_v4(s, d, len))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let len = u32::try_from(len).map_err(|_| Error::MessageTooLong(len))?;
            Ok(checksum::pseudo_header_v6(s, d, len))
        }
        _ => Err(Error::MixedFamilies {
            src: *src,
            dst: *dst,
        }),
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The address bytes the count announces, borrowed for the buffer's lifetime; shorter when
    /// the buffer is (never panics).
    #[inline]
    pub fn addresses(&self, family: Family) -> &'a [u8] {
        let bytes = self.buffer.as_ref();
        let end = HEADER_LEN + usize::from(self.count_ip_addrs()) * self.address_width(family);
        bytes.get(HEADER_LEN..end.min(bytes.len())).unwrap_or(&[])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Version and Type fields.
    #[inline]
    pub fn set_version_and_type(&mut self, version: u8, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    /// Sets the Virtual Rtr ID field.
    #[inline]
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the Priority field.
    #[inline]
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the Count IP Addrs field.
    #[inline]
    pub fn set_count_ip_addrs(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// Sets the VRRPv2 Auth Type field.
    #[inline]
    pub fn set_auth_type(&mut self, auth_type: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = auth_type;
    }

    /// Sets the VRRPv2 Adver Int field (seconds).
    #[inline]
    pub fn set_adver_int(&mut self, seconds: u8) {
        self.buffer.as_mut()[field::ADVER_INT] = seconds;
    }

    /// Sets the VRRPv3 Max Adver Int (centiseconds, 12 bits) and zeroes the 4 reserved bits
    /// (RFC 5798 section 5.2.6: "MUST be set to zero on transmission").
    #[inline]
    pub fn set_max_adver_int(&mut self, centiseconds: u16) {
        let bytes = (centiseconds & MAX_ADVER_INT_MASK).to_be_bytes();
        self.buffer.as_mut()[field::MAX_ADVER_INT].copy_from_slice(&bytes);
    }

    /// Sets the Checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// The bytes after the fixed header (addresses, then for v2 the authentication data),
    /// empty when the buffer is too short.
    #[inline]
    pub fn body_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(HEADER_LEN..)
            .unwrap_or(&mut [])
    }

    /// Computes the checksum over the whole buffer in `form` and stores it (RFC 1071; `src`
    /// and `dst` feed the pseudo-header of [`ChecksumForm::PseudoHeader`] only).
    pub fn fill_checksum(
        &mut self,
        form: ChecksumForm,
        src: &IpAddr,
        dst: &IpAddr,
    ) -> Result<(), Error> {
        self.set_checksum(0);
        let sum = self.sum_with(form, src, dst)?;
        self.set_checksum(checksum::finish(sum));
        Ok(())
    }
}
