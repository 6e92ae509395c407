//! The states of a virtual router and the reasons it moves between them.

/// The state of a virtual router (RFC 3768 / RFC 5798 section 6.4, plus [`State::Fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started, or shut down (RFC 5798 section 6.4.1): no timers, no messages.
    Initialize,
    /// Monitoring the master (RFC 5798 section 6.4.2); does not hold the virtual addresses.
    Backup,
    /// Forwarding for the virtual addresses and advertising (RFC 5798 section 6.4.3).
    Master,
    /// Beyond the RFC: a tracked resource failed. The router holds nothing, sends nothing and
    /// ignores advertisements until the fault clears.
    Fault,
}

impl State {
    /// A short lower-case name ("initialize", "backup", "master", "fault").
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "initialize",
            State::Backup => "backup",
            State::Master => "master",
            State::Fault => "fault",
        }
    }
}

impl core::fmt::Display for State {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a state change happened (carried by
/// [`Action::StateChanged`](super::Action::StateChanged)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A Startup event (RFC 5798 section 6.4.1) for a router that does not own the addresses.
    Startup,
    /// A Startup event for the address owner (priority 255), which goes straight to Master.
    AddressOwner,
    /// The Master_Down_Timer fired after Master_Down_Interval without an advertisement.
    MasterDown,
    /// The Master_Down_Timer fired Skew_Time after the master sent priority 0.
    MasterReleased,
    /// An advertisement with a higher priority (or an equal priority from a higher primary
    /// address) arrived while master (RFC 5798 section 6.4.3 (725)-(765)).
    HigherPriority,
    /// A Shutdown event.
    Shutdown,
    /// An administrative takeover.
    Takeover,
    /// An administrative release: the master sent priority 0 and stepped back.
    Release,
    /// Tracking reported a fault.
    Fault,
    /// Tracking reported the fault cleared; the router started again.
    FaultCleared,
}

impl Reason {
    /// A short lower-case description.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address owner startup",
            Reason::MasterDown => "master down",
            Reason::MasterReleased => "master sent priority 0",
            Reason::HigherPriority => "higher priority advertisement",
            Reason::Shutdown => "shutdown",
            Reason::Takeover => "administrative takeover",
            Reason::Release => "administrative release",
            Reason::Fault => "fault",
            Reason::FaultCleared => "fault cleared",
        }
    }
}

impl core::fmt::Display for Reason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
