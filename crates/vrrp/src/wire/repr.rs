//! [`Advertisement`] as a representation: parse it from a [`Packet`], emit it into a buffer.

use core::net::IpAddr;

use bytes::BytesMut;

use super::checksum;
use super::packet::{AUTH_TYPE_NONE, AUTH_TYPE_SIMPLE, HEADER_LEN, TYPE_ADVERTISEMENT};
use super::{
    Addresses, Advertisement, Auth, ChecksumForm, Error, Family, Packet, Version, AUTH_DATA_LEN,
};

/// The largest VRRPv3 interval: Max Adver Int is 12 bits (RFC 5798 section 5.2.7).
const V3_MAX_INTERVAL_CS: u16 = 0x0fff;
/// The largest VRRPv2 interval: Adver Int is one byte of seconds (RFC 3768 section 5.3.7).
const V2_MAX_INTERVAL_CS: u16 = 255 * 100;

/// Checks the parts of a message that decide how to read the rest: the header is there, the
/// version is known and fits the family, and the length is exactly what the count implies
/// (RFC 3768 section 7.1, RFC 5798 section 7.1).
///
/// Works on the fixed 8-byte header as an array, so the field reads that follow need no bounds
/// checks: this runs for every packet a node receives.
#[inline(always)]
pub(crate) fn check_structure(bytes: &[u8], family: Family) -> Result<Version, Error> {
    let len = bytes.len();
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated { len });
    };
    let version = match header[0] >> 4 {
        2 => Version::V2,
        3 => Version::V3,
        other => return Err(Error::UnknownVersion(other)),
    };
    let count = header[3];
    let expected = match (version, family) {
        (Version::V2, Family::V6) => return Err(Error::V2OverIpv6),
        (Version::V2, Family::V4) => HEADER_LEN + usize::from(count) * 4 + AUTH_DATA_LEN,
        (Version::V3, Family::V4) => HEADER_LEN + usize::from(count) * 4,
        (Version::V3, Family::V6) => HEADER_LEN + usize::from(count) * 16,
    };
    if len != expected {
        return Err(Error::CountMismatch {
            version,
            family,
            count,
            expected,
            len,
        });
    }
    Ok(version)
}

/// Reads the fields of a message that passed [`check_structure`].
#[inline(always)]
pub(crate) fn parse_fields<'a>(
    bytes: &'a [u8],
    version: Version,
    family: Family,
) -> Result<Advertisement<'a>, Error> {
    let Some(header) = bytes.first_chunk::<HEADER_LEN>() else {
        return Err(Error::Truncated { len: bytes.len() });
    };
    let msg_type = header[0] & 0x0f;
    if msg_type != TYPE_ADVERTISEMENT {
        return Err(Error::UnknownType(msg_type));
    }
    let vrid = header[1];
    if vrid == 0 {
        return Err(Error::ZeroVrid);
    }
    let width = match (version, family) {
        (Version::V3, Family::V6) => 16,
        _ => 4,
    };
    let end = HEADER_LEN + usize::from(header[3]) * width;
    // check_structure proved the length; `get` keeps this function safe on its own.
    let address_bytes = bytes.get(HEADER_LEN..end).unwrap_or_default();
    let (auth, interval_cs) = match version {
        Version::V2 => {
            let auth = match header[4] {
                // Auth data is ignored on receive (RFC 3768 section 5.3.10).
                AUTH_TYPE_NONE => Auth::None,
                AUTH_TYPE_SIMPLE => Auth::SimplePassword(
                    bytes
                        .get(end..)
                        .and_then(|t| t.first_chunk::<AUTH_DATA_LEN>())
                        .copied()
                        .unwrap_or_default(),
                ),
                other => return Err(Error::UnsupportedAuthType(other)),
            };
            (auth, u16::from(header[5]) * 100)
        }
        // RFC 5798 section 5.2.6: the 4 reserved bits are ignored on receive.
        Version::V3 => (
            Auth::None,
            u16::from_be_bytes([header[4], header[5]]) & V3_MAX_INTERVAL_CS,
        ),
    };
    let addresses = match (version, family) {
        (Version::V3, Family::V6) => Addresses::V6(address_bytes),
        _ => Addresses::V4(address_bytes),
    };
    Ok(Advertisement {
        version,
        vrid,
        priority: header[2],
        interval_cs,
        auth,
        addresses,
    })
}

/// Copies the address bytes (`dst` and `src` have the same length). Up to 32 bytes, the
/// usual one to eight IPv4 addresses or two IPv6 ones, it is two overlapping fixed-size moves
/// (first and last 4, 8 or 16 bytes) instead of a call to `memcpy`.
#[inline(always)]
fn copy_words(dst: &mut [u8], src: &[u8]) {
    fn ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
        if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
            *d = *s;
        }
        if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
            *d = *s;
        }
    }
    match src.len() {
        0 => {}
        4..=7 => ends::<4>(dst, src),
        8..=15 => ends::<8>(dst, src),
        16..=32 => ends::<16>(dst, src),
        _ => {
            if let Some(dst) = dst.get_mut(..src.len()) {
                dst.copy_from_slice(src);
            }
        }
    }
}

impl<'a> Advertisement<'a> {
    /// Decodes a VRRP message carried over `family` (which decides the address width of
    /// VRRPv3), checking version, type, VRID, auth type and that the buffer is exactly as long
    /// as the count says.
    ///
    /// The checksum and the IP-level rules need the IP header: [`validate`](super::validate)
    /// and [`parse_ip_packet`](super::parse_ip_packet) check those too. The reserved bits of a
    /// v3 header and the auth data of a v2 message with auth type 0 are ignored
    /// (RFC 5798 section 5.2.6, RFC 3768 section 5.3.10).
    #[inline]
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        family: Family,
    ) -> Result<Advertisement<'a>, Error> {
        Self::parse_bytes(packet.clone().into_inner().as_ref(), family)
    }

    /// [`parse`](Advertisement::parse) on a byte slice.
    #[inline]
    pub fn parse_bytes(bytes: &'a [u8], family: Family) -> Result<Advertisement<'a>, Error> {
        let version = check_structure(bytes, family)?;
        parse_fields(bytes, version, family)
    }

    /// The address family of the virtual addresses.
    #[inline]
    pub fn family(&self) -> Family {
        self.addresses.family()
    }

    /// The form an advertisement is sent with unless configured otherwise: plain RFC 1071
    /// for v2, with the pseudo-header for v3 (RFC 5798 section 5.2.8; what keepalived and
    /// FRR send).
    #[inline]
    pub fn default_checksum_form(&self) -> ChecksumForm {
        match self.version {
            Version::V2 => ChecksumForm::V2,
            Version::V3 => ChecksumForm::PseudoHeader,
        }
    }

    /// The length of the message [`emit`](Advertisement::emit) writes.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        let trailer = match self.version {
            Version::V2 => AUTH_DATA_LEN,
            Version::V3 => 0,
        };
        HEADER_LEN + self.addresses.as_bytes().len() + trailer
    }

    /// Checks that the representation can be sent with `form`; returns the address count.
    fn check_emittable(&self, form: ChecksumForm) -> Result<u8, Error> {
        let family = self.family();
        if self.vrid == 0 {
            return Err(Error::ZeroVrid);
        }
        let form_ok = match self.version {
            Version::V2 => {
                if family == Family::V6 {
                    return Err(Error::V2OverIpv6);
                }
                if !self.interval_cs.is_multiple_of(100) || self.interval_cs > V2_MAX_INTERVAL_CS {
                    return Err(Error::V2IntervalNotRepresentable(self.interval_cs));
                }
                form == ChecksumForm::V2
            }
            Version::V3 => {
                if self.interval_cs > V3_MAX_INTERVAL_CS {
                    return Err(Error::V3IntervalTooLong(self.interval_cs));
                }
                if self.auth != Auth::None {
                    return Err(Error::V3Authentication);
                }
                // RFC 5798 section 5.2.8: IPv6 always includes the pseudo-header.
                matches!(
                    (form, family),
                    (ChecksumForm::PseudoHeader, _) | (ChecksumForm::Plain, Family::V4)
                )
            }
        };
        if !form_ok {
            return Err(Error::ChecksumFormMismatch {
                form,
                version: self.version,
                family,
            });
        }
        let len = self.addresses.as_bytes().len();
        let width = match family {
            Family::V4 => 4,
            Family::V6 => 16,
        };
        if !len.is_multiple_of(width) {
            return Err(Error::PartialAddress { len, family });
        }
        u8::try_from(len / width).map_err(|_| Error::TooManyAddresses(len / width))
    }

    /// Writes the message into the start of `buf` and returns its length
    /// ([`buffer_len`](Advertisement::buffer_len)). Reserved bits are zero, v2 auth data is
    /// zero for [`Auth::None`], and the checksum is computed in `form` (`src` and `dst` are
    /// the IP addresses the message will travel between; only the pseudo-header uses them).
    ///
    /// Fails without writing when the representation cannot be encoded (see [`Error`]) or the
    /// buffer is too small. Never allocates. Bytes of `buf` after the message are not touched.
    //
    // Always inlined: the VRRPv2 fast path is a few dozen instructions and folds with a
    // constant `form`; the general path is out of line.
    #[inline(always)]
    pub fn emit(
        &self,
        buf: &mut [u8],
        form: ChecksumForm,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<usize, Error> {
        // The common case, a VRRPv2 advertisement, is written straight away; everything else
        // (and every representation that cannot be sent) takes the general path.
        if let (Version::V2, ChecksumForm::V2, Addresses::V4(addresses)) =
            (self.version, form, self.addresses)
        {
            if let Some(len) = self.emit_v2(buf, addresses) {
                return Ok(len);
            }
        }
        self.emit_checked(buf, form, src, dst)
    }

    /// [`emit`](Advertisement::emit) of a VRRPv2 advertisement (RFC 3768 section 5.3) with
    /// IPv4 `addresses`, in one pass: every check [`check_emittable`] makes for it comes first
    /// (VRID not 0, whole addresses, at most 255 of them, interval in whole seconds up to 255,
    /// room in `buf`), then the header is assembled in registers, the checksum summed from the
    /// parts, and the message written. Returns `None`, having written nothing, when any check
    /// fails: [`emit_checked`](Advertisement::emit_checked) then says which.
    #[inline(always)]
    pub(crate) fn emit_v2(&self, buf: &mut [u8], addresses: &[u8]) -> Option<usize> {
        let (words, partial) = addresses.as_chunks::<4>();
        let count = u8::try_from(words.len()).ok()?;
        let seconds = self.interval_cs / 100;
        if self.vrid == 0 || !partial.is_empty() || seconds * 100 != self.interval_cs {
            return None;
        }
        let seconds = u8::try_from(seconds).ok()?;
        let (auth_type, auth_data) = match self.auth {
            // RFC 3768 section 5.3.10: SHOULD be zero on transmission.
            Auth::None => (AUTH_TYPE_NONE, [0; AUTH_DATA_LEN]),
            Auth::SimplePassword(password) => (AUTH_TYPE_SIMPLE, password),
        };
        let need = HEADER_LEN + addresses.len() + AUTH_DATA_LEN;
        let (header_field, body) = buf.get_mut(..need)?.split_first_chunk_mut::<HEADER_LEN>()?;
        let (address_field, trailer) = body.split_last_chunk_mut::<AUTH_DATA_LEN>()?;
        let header = [
            2 << 4 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            count,
            auth_type,
            seconds,
            0,
            0,
        ];
        // RFC 3768 section 5.3.8, summed from the parts before anything is written (reading
        // back the bytes just stored would stall on store-to-load forwarding).
        let sum = checksum::add_u64_ne(checksum::add_u64_ne(0, &header), &auth_data);
        let [c0, c1] =
            checksum::finish(checksum::fold_words(checksum::add_words(sum, words))).to_be_bytes();
        // The header with its checksum, stored as one 64-bit word.
        let field = u64::from_ne_bytes(header) | u64::from_ne_bytes([0, 0, 0, 0, 0, 0, c0, c1]);
        *header_field = field.to_ne_bytes();
        copy_words(address_field, addresses);
        *trailer = auth_data;
        Some(need)
    }

    /// The general [`emit`](Advertisement::emit): checks the representation with
    /// [`check_emittable`](Advertisement::check_emittable) and reports what cannot be sent.
    #[inline(never)]
    pub(crate) fn emit_checked(
        &self,
        buf: &mut [u8],
        form: ChecksumForm,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<usize, Error> {
        let count = self.check_emittable(form)?;
        let family = self.family();
        if form == ChecksumForm::PseudoHeader {
            let same = matches!(
                (src, dst, family),
                (IpAddr::V4(_), IpAddr::V4(_), Family::V4)
                    | (IpAddr::V6(_), IpAddr::V6(_), Family::V6)
            );
            if !same {
                return Err(Error::PseudoHeaderFamily { src, dst, family });
            }
        }
        let need = self.buffer_len();
        let have = buf.len();
        let buf = buf
            .get_mut(..need)
            .ok_or(Error::BufferTooSmall { need, have })?;

        // The fixed header is written as one array and the checksum over whole 32-bit words
        // (every message is 16 + 4n, 8 + 4n or 8 + 16n bytes): a node emits one message per
        // advertisement interval per router, and this keeps it to a few stores.
        let (version_number, byte4, byte5) = match self.version {
            Version::V2 => {
                let auth_type = match self.auth {
                    Auth::None => AUTH_TYPE_NONE,
                    Auth::SimplePassword(_) => AUTH_TYPE_SIMPLE,
                };
                // check_emittable bounds the interval to 0..=25500 in whole seconds.
                (2u8, auth_type, (self.interval_cs / 100) as u8)
            }
            Version::V3 => {
                // RFC 5798 section 5.2.6: the 4 reserved bits are zero on send.
                let [hi, lo] = (self.interval_cs & V3_MAX_INTERVAL_CS).to_be_bytes();
                (3u8, hi, lo)
            }
        };
        let trailer_bytes = match self.auth {
            Auth::SimplePassword(password) => password,
            // RFC 3768 section 5.3.10: SHOULD be zero on transmission.
            Auth::None => [0; AUTH_DATA_LEN],
        };
        let mut header = [
            version_number << 4 | TYPE_ADVERTISEMENT,
            self.vrid,
            self.priority,
            count,
            byte4,
            byte5,
            0,
            0,
        ];
        let addresses = self.addresses.as_bytes();
        // The checksum is summed from the parts (RFC 1071: any order of whole 16-bit words),
        // before anything is written: reading back the bytes just stored would stall.
        // check_emittable proved the addresses are whole words; a partial tail would start
        // 16-bit aligned, so its big-endian sum could be added as it is.
        let (words, partial) = addresses.as_chunks::<4>();
        let mut acc = checksum::add_words(checksum::add_u64_ne(0, &header), words);
        if self.version == Version::V2 {
            acc = checksum::add_u64_ne(acc, &trailer_bytes);
        }
        let mut sum = checksum::fold_words(acc);
        if !partial.is_empty() {
            sum = checksum::combine(&[sum, checksum::data(partial)]);
        }
        let sum = match form {
            ChecksumForm::V2 | ChecksumForm::Plain => sum,
            ChecksumForm::PseudoHeader => {
                checksum::combine(&[sum, super::packet::pseudo_header(&src, &dst, need)?])
            }
        };
        let [c0, c1] = checksum::finish(sum).to_be_bytes();
        header[6] = c0;
        header[7] = c1;

        let (header_field, body) = buf
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(Error::BufferTooSmall { need, have })?;
        *header_field = header;
        let (address_field, trailer) = body
            .split_at_mut_checked(addresses.len())
            .ok_or(Error::BufferTooSmall { need, have })?;
        copy_words(address_field, addresses);
        if let Some(trailer) = trailer.first_chunk_mut::<AUTH_DATA_LEN>() {
            *trailer = trailer_bytes;
        }
        Ok(need)
    }

    /// [`emit`](Advertisement::emit) into a freshly allocated [`BytesMut`] of exactly
    /// [`buffer_len`](Advertisement::buffer_len) bytes.
    pub fn to_bytes(
        &self,
        form: ChecksumForm,
        src: IpAddr,
        dst: IpAddr,
    ) -> Result<BytesMut, Error> {
        // Validate before allocating, so a bad representation costs nothing.
        self.check_emittable(form)?;
        let mut buf = BytesMut::zeroed(self.buffer_len());
        self.emit(&mut buf, form, src, dst)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    const SRC: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1));
    const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));

    /// The fast path writes exactly what the general path writes, touches nothing after the
    /// message, and declines (writing nothing) exactly where the general path fails.
    fn assert_agree(advert: &Advertisement<'_>, buf_len: usize) {
        let Addresses::V4(addresses) = advert.addresses else {
            unreachable!("v2 cases carry IPv4 addresses")
        };
        let mut fast = vec![0xa5; buf_len];
        let mut general = fast.clone();
        let fast_len = advert.emit_v2(&mut fast, addresses);
        let general_len = advert.emit_checked(&mut general, ChecksumForm::V2, SRC, DST);
        match fast_len {
            Some(len) => assert_eq!(general_len, Ok(len), "{advert:?}"),
            None => {
                assert!(general_len.is_err(), "fast path declined {advert:?}");
                assert!(fast.iter().all(|&b| b == 0xa5), "declined after writing");
            }
        }
        assert_eq!(fast, general, "{advert:?} into {buf_len} bytes");
        // The public entry point answers what the general path answers.
        let mut public = vec![0xa5; buf_len];
        assert_eq!(
            advert.emit(&mut public, ChecksumForm::V2, SRC, DST),
            general_len
        );
        assert_eq!(public, general);
    }

    #[test]
    fn fast_emit_agrees_at_the_limits() {
        let addresses: Vec<u8> = (0..=255u8).cycle().take(256 * 4 + 3).collect();
        for count in [0usize, 1, 2, 7, 8, 9, 255, 256] {
            for extra in [0usize, 1, 2, 3] {
                for interval_cs in [0u16, 1, 99, 100, 150, 25_400, 25_500, 25_600, u16::MAX] {
                    for vrid in [0u8, 1, 255] {
                        let advert = Advertisement {
                            version: Version::V2,
                            vrid,
                            priority: 100,
                            interval_cs,
                            auth: Auth::SimplePassword(*b"12345678"),
                            addresses: Addresses::V4(&addresses[..count * 4 + extra]),
                        };
                        let need = 16 + count * 4 + extra;
                        for buf_len in [0, need.saturating_sub(1), need, need + 5] {
                            assert_agree(&advert, buf_len);
                        }
                    }
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn fast_emit_agrees_with_the_general_path(
            vrid in any::<u8>(),
            priority in any::<u8>(),
            interval_cs in prop_oneof![(0..=255u16).prop_map(|s| s * 100), any::<u16>()],
            auth in prop_oneof![Just(Auth::None), any::<[u8; 8]>().prop_map(Auth::SimplePassword)],
            addresses in prop_oneof![
                (0..=255usize).prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n * 4)),
                proptest::collection::vec(any::<u8>(), 0..1100),
            ],
            slack in -3i64..8,
        ) {
            let advert = Advertisement {
                version: Version::V2,
                vrid,
                priority,
                interval_cs,
                auth,
                addresses: Addresses::V4(&addresses),
            };
            let need = 16 + addresses.len() as i64;
            assert_agree(&advert, (need + slack).max(0) as usize);
        }
    }
}
