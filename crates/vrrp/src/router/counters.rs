//! Counters for every received-advertisement outcome and every transition.

/// What the router has seen and done since it was created: a plain struct, cheap to copy.
///
/// Every received advertisement is counted once in `adverts_received` and, when it was not
/// processed, once in exactly one `dropped_*` field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Advertisements handed to the router.
    pub adverts_received: u64,
    /// Advertisements with priority 0 among those processed.
    pub priority_zero_received: u64,
    /// Dropped: the router was in Initialize or Fault and does not listen.
    pub dropped_not_listening: u64,
    /// Dropped: a passive backup does not listen.
    pub dropped_passive: u64,
    /// Dropped: another protocol version (RFC 5798 section 7.1).
    pub dropped_version: u64,
    /// Dropped: another VRID (RFC 5798 section 7.1).
    pub dropped_vrid: u64,
    /// Dropped: the source or the address list is of the other address family.
    pub dropped_family: u64,
    /// Dropped: VRRPv2 authentication differs (RFC 3768 section 7.1).
    pub dropped_auth: u64,
    /// Dropped: VRRPv2 interval differs from ours (RFC 3768 section 7.1), or a VRRPv3
    /// interval of zero.
    pub dropped_interval: u64,
    /// Dropped: the address list differs and the sender is not the owner (RFC 5798 section 7.1).
    pub dropped_addresses: u64,
    /// Processed although the address list differs, because the sender claims priority 255
    /// (RFC 5798 section 7.1 says to log this and continue).
    pub address_mismatch_from_owner: u64,
    /// Dropped: we are the address owner and master (RFC 5798 section 7.1).
    pub dropped_owner: u64,
    /// Backup discarded a lower-priority advertisement to preempt (RFC 5798 section 6.4.2 (470)).
    pub backup_discarded_lower: u64,
    /// Backup accepted a lower-priority advertisement because the preempt delay runs.
    pub preempt_delayed: u64,
    /// Master received a lower-priority advertisement and answered at once (RFC 9568 section
    /// 6.4.3).
    pub master_answered_lower: u64,
    /// Advertisements sent (actions emitted), including those with priority 0.
    pub adverts_sent: u64,
    /// Advertisements with priority 0 sent.
    pub priority_zero_sent: u64,
    /// Announcement bursts emitted.
    pub announcements: u64,
    /// Transitions to Master.
    pub to_master: u64,
    /// Transitions to Backup.
    pub to_backup: u64,
    /// Transitions to Fault.
    pub to_fault: u64,
    /// Transitions to Initialize.
    pub to_initialize: u64,
    /// Masters that stepped down because of a higher-priority advertisement.
    pub preempted: u64,
    /// Inputs that do not apply in the current state (e.g. Takeover while in Fault).
    pub inputs_refused: u64,
    /// Actions lost because the caller did not drain `poll_action` (the queue was full).
    pub actions_dropped: u64,
}
