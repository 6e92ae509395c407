//! The protocol's time arithmetic: Skew_Time and Master_Down_Interval.

use core::time::Duration;

use crate::wire::Version;

/// Skew_Time for a local `priority`.
///
/// * VRRPv2 (RFC 3768 section 6.1): `(256 - Priority) / 256` seconds, whatever the interval.
/// * VRRPv3 (RFC 5798 / RFC 9568 section 6.1): `((256 - Priority) * Master_Adver_Interval) / 256`.
///
/// Computed in nanoseconds, without rounding to centiseconds, so that the simulator can
/// assert exact times.
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let weight = 256 - u32::from(priority);
    match version {
        Version::V2 => Duration::from_secs(1) * weight / 256,
        Version::V3 => master_adver_interval * weight / 256,
    }
}

/// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time` (RFC 5798 section 6.1; for
/// VRRPv2, RFC 3768 section 6.1, the interval is the configured Advertisement_Interval).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    master_adver_interval * 3 + skew_time(version, priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // Priority 100, 1 s: skew 156/256 s = 609.375 ms, down interval 3.609375 s.
        let s = Duration::from_secs(1);
        assert_eq!(
            skew_time(Version::V2, 100, s),
            Duration::from_nanos(609_375_000)
        );
        assert_eq!(
            master_down_interval(Version::V2, 100, s),
            Duration::from_nanos(3_609_375_000)
        );
        // v2 ignores the interval in Skew_Time; v3 scales it.
        let t = Duration::from_secs(2);
        assert_eq!(
            skew_time(Version::V2, 100, t),
            Duration::from_nanos(609_375_000)
        );
        assert_eq!(
            skew_time(Version::V3, 100, t),
            Duration::from_nanos(1_218_750_000)
        );
        // 10 ms, priority 255: skew 1/256 of 10 ms.
        let c = Duration::from_millis(10);
        assert_eq!(skew_time(Version::V3, 255, c), Duration::from_nanos(39_062));
        assert_eq!(
            master_down_interval(Version::V3, 255, c),
            Duration::from_nanos(30_039_062)
        );
        // Priority 0 would give a full interval of skew; the highest priority the shortest.
        assert!(skew_time(Version::V3, 254, s) < skew_time(Version::V3, 1, s));
    }
}
