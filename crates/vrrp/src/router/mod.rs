//! One virtual router (one VRID on one interface): the RFC 3768 / RFC 5798 / RFC 9568 state
//! machine, sans-IO.
//!
//! The router owns no socket, thread or clock (quinn-proto style). Feed it
//! [`VirtualRouter::handle`] with the current time and an [`Input`], call
//! [`VirtualRouter::handle_timeout`] when [`VirtualRouter::poll_timeout`] is reached, and drain
//! [`VirtualRouter::poll_action`] after each call. It allocates only in
//! [`VirtualRouter::new`].
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, Instant};
//! use vrrp::router::{Action, Config, Input, State, VirtualRouter};
//!
//! let mut cfg = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
//! cfg.virtual_addresses.push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)));
//! let mut r = VirtualRouter::new(cfg)?;
//! let t0 = Instant::now();
//! r.handle(t0, Input::Startup);
//! assert_eq!(r.state(), State::Backup);
//! assert!(matches!(r.poll_action(), Some(Action::StateChanged { to: State::Backup, .. })));
//! // Nobody advertises: the router takes over after Master_Down_Interval.
//! let deadline = r.poll_timeout().unwrap();
//! assert_eq!(deadline - t0, r.master_down_interval());
//! r.handle_timeout(deadline);
//! assert_eq!(r.state(), State::Master);
//! assert!(matches!(r.poll_action(), Some(Action::SendAdvertisement { .. })));
//! # Ok::<(), vrrp::router::ConfigError>(())
//! ```
//!
//! # Decisions beyond the RFC text
//!
//! * **RFC 9568's answer to a lower priority applies to VRRPv2 too**: a master that receives a
//!   lower-priority advertisement sends one at once. It ends a split brain within one message
//!   after a heal, for either version, and costs one message per stray advertisement.
//! * **Address owner**: RFC 5798 section 7.1 drops every advertisement at the owner. We drop
//!   them only while the owner is master; an owner that was released or started passive is a
//!   backup and must hear the master, or it would take the addresses back.
//! * **VRRPv3 interval 0**: an advertisement with Max Adver Int 0 is dropped (it would make
//!   Master_Down_Interval zero and every backup take over at once).
//! * **Preempt delay** (keepalived's `preempt_delay`): a preempting backup treats
//!   lower-priority advertisements as if preemption were off (they reset its
//!   Master_Down_Timer) until `preempt_delay` has passed since the first one it saw; after
//!   that it discards them as RFC 5798 section 6.4.2 (470) says, and takes over
//!   Master_Down_Interval after the last one it accepted. An advertisement at or above our
//!   priority closes the window.
//! * **Fault** ([`Input::Fault`]): a master sends priority 0 and releases the addresses; in
//!   Fault the router ignores advertisements and runs no timer. When the fault clears it
//!   starts again as on a Startup event.
//! * **Priority offset** ([`Input::SetPriorityOffset`]): the runtime reports the summed weight of
//!   its tracked resources; the effective priority is `priority + offset` clamped to 1..=254.
//!   The owner's 255 is never adjusted. The change takes effect at the next advertisement or
//!   comparison; it sends nothing by itself.
//! * **Passive mode** ([`Mode::Passive`]): a passive backup drops every advertisement and runs
//!   no Master_Down_Timer; it becomes master only on [`Input::Takeover`]. A passive owner
//!   starts as a backup too.
//! * **Takeover** ([`Input::Takeover`]): a backup becomes master at once; until it is released
//!   the router advertises priority 254 (the highest a non-owner may claim), so a current
//!   master of lower priority yields on the first advertisement. A master that takes over
//!   raises its advertised priority the same way.
//! * **Release** ([`Input::Release`]): the master sends priority 0, releases the addresses and
//!   becomes backup; until it is master again it behaves as with preemption off (any
//!   advertisement resets its timer), so the peer keeps the addresses: the basis of "swap".
//!   If nobody takes over, it takes the addresses back after Master_Down_Interval.
//! * **Preempt hold** ([`Input::SetPreempt`]): Preempt_Mode (RFC 5798 section 6.1) can be
//!   switched at run time. A supervisor holds preemption off while a returning node's data is
//!   older than the master's and lets it go once it has pulled; a backup without preemption
//!   still takes over when no master is heard (the Master_Down_Timer is untouched). Turning
//!   preemption on takes effect at the next advertisement, like the configuration's flag.
//! * **Priority change** ([`Input::SetPriority`]): a reloaded configuration may change the
//!   priority of a non-owner (1..=254) at run time. RFC 5798 section 6.4 computes everything
//!   from the current priority, so a master sends its next advertisement with the new value
//!   (at once, so that a backup that now outranks it can preempt without waiting an interval),
//!   and a backup compares the next advertisement with the new value (preempting if it now
//!   outranks the master and may preempt). Becoming or ceasing to be the address owner (255)
//!   changes how the router starts and what it accepts (section 7.1), so it is refused and
//!   counted in [`Counters::inputs_refused`].
//! * **Announcements**: besides the RFC's announcement on becoming master, an optional repeat
//!   and a periodic refresh ([`AnnounceSchedule`]).

mod actions;
mod config;
mod counters;
mod state;
mod timers;

use core::net::IpAddr;
use core::time::Duration;
use std::time::Instant;

use crate::wire::{Addresses, Advertisement, Auth, ChecksumForm, Family, Version};

pub use actions::Action;
pub use config::{AnnounceSchedule, Config, ConfigError, Mode, MAX_DELAY, MAX_PACKET};
pub use counters::Counters;
pub use state::{Reason, State};
pub use timers::{master_down_interval, skew_time};

use actions::{Pending, Queue};

/// The highest priority a non-owner may advertise; used while a takeover holds.
pub const TAKEOVER_PRIORITY: u8 = 254;

/// Something that happened to the router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// The Startup event (RFC 5798 section 6.4.1); ignored unless in Initialize.
    Startup,
    /// The Shutdown event: a master sends priority 0 and releases the addresses
    /// (RFC 5798 section 6.4.3 (655)-(670)); every state goes to Initialize.
    Shutdown,
    /// An advertisement that passed wire validation (TTL, checksum, length), with the source
    /// address of its IP header.
    Advertisement {
        /// The sender's primary address (IPv6: its link-local address).
        src: IpAddr,
        /// The decoded message.
        advert: Advertisement<'a>,
    },
    /// Administrative: become master now and stay master until released (see the module
    /// documentation). Refused in Initialize and Fault.
    Takeover,
    /// Administrative: a master sends priority 0, releases the addresses and steps back
    /// without preempting again. A backup only drops a takeover hold.
    Release,
    /// Administrative: switch between active and passive backup behaviour.
    SetMode(Mode),
    /// Tracking: the summed weight of the tracked resources, added to the configured priority.
    SetPriorityOffset(i16),
    /// Tracking: a tracked resource failed (`true`) or recovered (`false`).
    Fault(bool),
    /// Administrative: switch Preempt_Mode on or off at run time (see the module
    /// documentation).
    SetPreempt(bool),
    /// Administrative: a new configured priority, 1..=254 (see the module documentation).
    /// Refused when it or the current one is 255 (the owner), or when it is 0.
    SetPriority(u8),
}

/// One virtual router. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct VirtualRouter {
    config: Config,
    /// The virtual addresses encoded once, as the advertisement carries them.
    address_bytes: Box<[u8]>,
    family: Family,
    interval_cs: u16,
    checksum: ChecksumForm,
    state: State,
    mode: Mode,
    priority_offset: i16,
    /// Preempt_Mode in force: the configuration's until [`Input::SetPreempt`] changes it.
    preempt: bool,
    fault: bool,
    /// A takeover holds: advertise [`TAKEOVER_PRIORITY`].
    takeover: bool,
    /// Released: behave as with preemption off until master again.
    yielded: bool,
    master_adver_interval: Duration,
    adver_timer: Option<Instant>,
    master_down_timer: Option<Instant>,
    /// Why the Master_Down_Timer runs (a plain timeout or a priority-0 message).
    down_reason: Reason,
    /// End of the preempt delay window, once a lower-priority master was seen.
    preempt_until: Option<Instant>,
    announce_at: Option<Instant>,
    announce_repeat_pending: bool,
    queue: Queue,
    counters: Counters,
}

impl VirtualRouter {
    /// Validates `config` and builds a router in the Initialize state.
    pub fn new(config: Config) -> Result<VirtualRouter, ConfigError> {
        config.validate()?;
        let family = config.family();
        let mut bytes = Vec::with_capacity(config.virtual_addresses.len() * 16);
        for a in &config.virtual_addresses {
            match a {
                IpAddr::V4(v4) => bytes.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => bytes.extend_from_slice(&v6.octets()),
            }
        }
        Ok(VirtualRouter {
            family,
            interval_cs: config.interval_cs(),
            checksum: config.checksum_form(),
            mode: config.mode,
            preempt: config.preempt,
            master_adver_interval: config.advertisement_interval,
            address_bytes: bytes.into_boxed_slice(),
            config,
            state: State::Initialize,
            priority_offset: 0,
            fault: false,
            takeover: false,
            yielded: false,
            adver_timer: None,
            master_down_timer: None,
            down_reason: Reason::MasterDown,
            preempt_until: None,
            announce_at: None,
            announce_repeat_pending: false,
            queue: Queue::new(),
            counters: Counters::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Counters since creation.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// True while a fault reported by tracking holds.
    pub fn is_fault(&self) -> bool {
        self.fault
    }

    /// True while an administrative takeover holds.
    pub fn is_taken_over(&self) -> bool {
        self.takeover
    }

    /// Preempt_Mode in force (the configuration's, or the last [`Input::SetPreempt`]).
    pub fn preempt(&self) -> bool {
        self.preempt
    }

    /// True after a release, until the router is master again.
    pub fn is_released(&self) -> bool {
        self.yielded
    }

    /// The effective priority: 255 for the owner; [`TAKEOVER_PRIORITY`] while a takeover holds;
    /// otherwise the configured priority plus the tracking offset, clamped to 1..=254.
    pub fn priority(&self) -> u8 {
        if self.config.is_owner() {
            255
        } else if self.takeover {
            TAKEOVER_PRIORITY
        } else {
            let p = i32::from(self.config.priority) + i32::from(self.priority_offset);
            u8::try_from(p.clamp(1, 254)).unwrap_or(1)
        }
    }

    /// Master_Adver_Interval: the interval the master advertises (learned from it in VRRPv3;
    /// our own in VRRPv2 and while master).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// The current Skew_Time (RFC 5798 section 6.1).
    pub fn skew_time(&self) -> Duration {
        skew_time(
            self.config.version,
            self.priority(),
            self.master_adver_interval,
        )
    }

    /// The current Master_Down_Interval (RFC 5798 section 6.1).
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.priority(),
            self.master_adver_interval,
        )
    }

    /// The advertisement this router sends now (with its effective priority).
    pub fn advertisement(&self) -> Advertisement<'_> {
        Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority: self.priority(),
            interval_cs: self.interval_cs,
            auth: self.config.auth,
            addresses: self.addresses(),
        }
    }

    /// The virtual addresses as encoded bytes.
    pub fn addresses(&self) -> Addresses<'_> {
        match self.family {
            Family::V4 => Addresses::V4(&self.address_bytes),
            Family::V6 => Addresses::V6(&self.address_bytes),
        }
    }

    /// The next instant [`VirtualRouter::handle_timeout`] must be called at, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.adver_timer, self.master_down_timer, self.announce_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next action to carry out. Drain it after every `handle*` call: the queue holds 16
    /// and further actions are counted in [`Counters::actions_dropped`] and lost.
    pub fn poll_action(&mut self) -> Option<Action<'_>> {
        let p = self.queue.pop()?;
        let burst = self.config.announce.burst;
        Some(actions::build(
            p,
            self.advertisement(),
            self.checksum,
            burst,
        ))
    }

    /// Processes the timers due at `now` (Adver_Timer, Master_Down_Timer, announcements).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Master => {
                if self.adver_timer.is_some_and(|t| t <= now) {
                    // RFC 5798 section 6.4.3 (680)-(690).
                    self.send(self.priority());
                    self.adver_timer = Some(now + self.config.advertisement_interval);
                }
                if self.announce_at.is_some_and(|t| t <= now) {
                    // After the repeat (or a refresh) only the refresh remains.
                    self.announce();
                    self.announce_repeat_pending = false;
                    self.announce_at = self.config.announce.refresh.map(|r| now + r);
                }
            }
            State::Backup => {
                if self.master_down_timer.is_some_and(|t| t <= now) {
                    // RFC 5798 section 6.4.2 (365)-(410).
                    let reason = self.down_reason;
                    self.become_master(now, reason);
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// Handles one input at `now`.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Startup => {
                if self.state == State::Initialize {
                    self.start(now, Reason::Startup);
                } else {
                    self.counters.inputs_refused += 1;
                }
            }
            Input::Shutdown => self.shutdown(),
            Input::Advertisement { src, advert } => self.receive(now, src, &advert),
            Input::Takeover => self.takeover(now),
            Input::Release => self.release(now),
            Input::SetMode(mode) => self.set_mode(now, mode),
            Input::SetPriorityOffset(offset) => self.priority_offset = offset,
            Input::Fault(on) => self.set_fault(now, on),
            Input::SetPreempt(on) => self.set_preempt(on),
            Input::SetPriority(p) => self.set_priority(now, p),
        }
    }

    // --- events -------------------------------------------------------------------------

    /// RFC 5798 section 6.4.1, from Initialize (or Fault clearing).
    fn start(&mut self, now: Instant, reason: Reason) {
        if self.fault {
            self.transition(State::Fault, Reason::Fault);
        } else if self.config.is_owner() && self.mode == Mode::Active {
            let reason = if reason == Reason::Startup {
                Reason::AddressOwner
            } else {
                reason
            };
            self.become_master(now, reason);
        } else {
            self.become_backup(now, reason, self.config.advertisement_interval);
        }
    }

    fn shutdown(&mut self) {
        match self.state {
            State::Initialize => {
                self.counters.inputs_refused += 1;
                return;
            }
            State::Master => self.step_down_messages(),
            State::Backup | State::Fault => {}
        }
        self.clear_timers();
        self.takeover = false;
        self.yielded = false;
        self.transition(State::Initialize, Reason::Shutdown);
    }

    fn takeover(&mut self, now: Instant) {
        match self.state {
            State::Backup => {
                self.takeover = true;
                self.become_master(now, Reason::Takeover);
            }
            State::Master => {
                self.takeover = true;
                // Tell the others the raised priority at once.
                self.send(self.priority());
                self.adver_timer = Some(now + self.config.advertisement_interval);
            }
            State::Initialize | State::Fault => self.counters.inputs_refused += 1,
        }
    }

    fn release(&mut self, now: Instant) {
        match self.state {
            State::Master => {
                self.takeover = false;
                self.step_down_messages();
                self.yielded = true;
                self.become_backup(now, Reason::Release, self.config.advertisement_interval);
            }
            State::Backup => self.takeover = false,
            State::Initialize | State::Fault => self.counters.inputs_refused += 1,
        }
    }

    fn set_mode(&mut self, now: Instant, mode: Mode) {
        if mode == self.mode {
            return;
        }
        self.mode = mode;
        if self.state == State::Backup {
            match mode {
                Mode::Passive => {
                    self.master_down_timer = None;
                    self.preempt_until = None;
                }
                Mode::Active => self.arm_down_timer(now),
            }
        }
    }

    fn set_preempt(&mut self, on: bool) {
        self.preempt = on;
        if !on {
            // A preempt delay window belongs to preemption; it starts again when turned on.
            self.preempt_until = None;
        }
    }

    fn set_priority(&mut self, now: Instant, priority: u8) {
        if priority == 0 || priority == 255 || self.config.is_owner() {
            self.counters.inputs_refused += 1;
            return;
        }
        if priority == self.config.priority {
            return;
        }
        self.config.priority = priority;
        if self.state == State::Master {
            // RFC 5798 section 6.4.3: the master advertises its current priority; send it now
            // so that a backup that now outranks us need not wait for the Adver_Timer.
            self.send(self.priority());
            self.adver_timer = Some(now + self.config.advertisement_interval);
        }
    }

    fn set_fault(&mut self, now: Instant, on: bool) {
        if on == self.fault {
            return;
        }
        self.fault = on;
        if on {
            match self.state {
                State::Master => {
                    self.step_down_messages();
                    self.clear_timers();
                    self.takeover = false;
                    self.transition(State::Fault, Reason::Fault);
                }
                State::Backup => {
                    self.clear_timers();
                    self.transition(State::Fault, Reason::Fault);
                }
                // Initialize: Startup will go to Fault.
                State::Initialize | State::Fault => {}
            }
        } else if self.state == State::Fault {
            self.yielded = false;
            self.start(now, Reason::FaultCleared);
        }
    }

    // --- receiving ----------------------------------------------------------------------

    /// RFC 3768 / RFC 5798 section 7.1 checks, then section 6.4.2 / 6.4.3.
    fn receive(&mut self, now: Instant, src: IpAddr, adv: &Advertisement<'_>) {
        let c = &mut self.counters;
        c.adverts_received += 1;
        if matches!(self.state, State::Initialize | State::Fault) {
            c.dropped_not_listening += 1;
            return;
        }
        if adv.version != self.config.version {
            c.dropped_version += 1;
            return;
        }
        if adv.vrid != self.config.vrid {
            c.dropped_vrid += 1;
            return;
        }
        let src_family = match src {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        };
        if src_family != self.family || adv.addresses.family() != self.family {
            c.dropped_family += 1;
            return;
        }
        match self.config.version {
            Version::V2 => {
                // RFC 3768 section 7.1: authentication, then the interval must match ours.
                if !auth_matches(&adv.auth, &self.config.auth) {
                    c.dropped_auth += 1;
                    return;
                }
                if adv.interval_cs != self.interval_cs {
                    c.dropped_interval += 1;
                    return;
                }
            }
            Version::V3 => {
                if adv.interval_cs == 0 {
                    c.dropped_interval += 1;
                    return;
                }
            }
        }
        if !same_address_set(adv.addresses.as_bytes(), &self.address_bytes, self.family) {
            // RFC 5798 section 7.1: log; drop unless the sender is the owner.
            if adv.priority != 255 {
                c.dropped_addresses += 1;
                return;
            }
            c.address_mismatch_from_owner += 1;
        }
        match self.state {
            State::Backup => self.receive_as_backup(now, adv),
            State::Master => self.receive_as_master(now, src, adv),
            State::Initialize | State::Fault => {}
        }
    }

    /// RFC 5798 section 6.4.2 (420)-(470), plus passive mode and the preempt delay.
    fn receive_as_backup(&mut self, now: Instant, adv: &Advertisement<'_>) {
        if self.mode == Mode::Passive {
            self.counters.dropped_passive += 1;
            return;
        }
        if adv.priority == 0 {
            // (425)-(430): the master stepped down; wait only Skew_Time.
            self.counters.priority_zero_received += 1;
            self.master_down_timer = Some(now + self.skew_time());
            self.down_reason = Reason::MasterReleased;
            return;
        }
        let mine = self.priority();
        let preempt = self.preempt && !self.yielded;
        if !preempt || adv.priority >= mine {
            if adv.priority >= mine {
                self.preempt_until = None;
            }
            self.accept_master(now, adv);
            return;
        }
        if !self.config.preempt_delay.is_zero() {
            let until = *self
                .preempt_until
                .get_or_insert(now + self.config.preempt_delay);
            if now < until {
                self.counters.preempt_delayed += 1;
                self.accept_master(now, adv);
                return;
            }
        }
        // (465)-(470): discard, so the Master_Down_Timer runs out and we preempt.
        self.counters.backup_discarded_lower += 1;
    }

    /// (445)-(460): learn the interval (v3) and reset the Master_Down_Timer.
    fn accept_master(&mut self, now: Instant, adv: &Advertisement<'_>) {
        if self.config.version == Version::V3 {
            self.master_adver_interval = Duration::from_millis(u64::from(adv.interval_cs) * 10);
        }
        self.arm_down_timer(now);
    }

    /// RFC 5798 section 6.4.3 (700)-(785) and RFC 9568 section 6.4.3.
    fn receive_as_master(&mut self, now: Instant, src: IpAddr, adv: &Advertisement<'_>) {
        let mine = self.priority();
        if mine == 255 {
            // RFC 5798 section 7.1: the owner does not process advertisements.
            self.counters.dropped_owner += 1;
            return;
        }
        if adv.priority == 0 {
            // (705)-(715): answer at once so the backups do not take over.
            self.counters.priority_zero_received += 1;
            self.send(mine);
            self.adver_timer = Some(now + self.config.advertisement_interval);
            return;
        }
        let sender_wins = adv.priority > mine
            || (adv.priority == mine
                && address_key(src) > address_key(self.config.primary_address));
        if sender_wins {
            // (740)-(765).
            self.counters.preempted += 1;
            self.takeover = false;
            let mai = match self.config.version {
                Version::V3 => Duration::from_millis(u64::from(adv.interval_cs) * 10),
                Version::V2 => self.config.advertisement_interval,
            };
            self.adver_timer = None;
            self.queue_push(Pending::Remove);
            self.become_backup(now, Reason::HigherPriority, mai);
        } else {
            // (775) discard; RFC 9568: and advertise at once to end a split brain.
            self.counters.master_answered_lower += 1;
            self.send(mine);
            self.adver_timer = Some(now + self.config.advertisement_interval);
        }
    }

    // --- transitions --------------------------------------------------------------------

    /// RFC 5798 section 6.4.1 (110)-(145) / 6.4.2 (365)-(410): advertise, take the addresses,
    /// announce them, arm the Adver_Timer.
    fn become_master(&mut self, now: Instant, reason: Reason) {
        self.clear_timers();
        self.yielded = false;
        self.master_adver_interval = self.config.advertisement_interval;
        self.send(self.priority());
        self.queue_push(Pending::Add);
        self.adver_timer = Some(now + self.config.advertisement_interval);
        let s = self.config.announce;
        if s.burst > 0 {
            self.announce();
            self.announce_repeat_pending = s.repeat_after.is_some();
            self.announce_at = s.repeat_after.or(s.refresh).map(|d| now + d);
        }
        self.transition(State::Master, reason);
    }

    /// Enter Backup with `mai` as Master_Adver_Interval; the caller queued any removal.
    fn become_backup(&mut self, now: Instant, reason: Reason, mai: Duration) {
        self.clear_timers();
        self.master_adver_interval = mai;
        if self.mode == Mode::Active {
            self.arm_down_timer(now);
        }
        self.transition(State::Backup, reason);
    }

    /// A master leaving: priority 0 (RFC 5798 section 6.4.3 (665)) and the addresses go.
    fn step_down_messages(&mut self) {
        self.send(0);
        self.queue_push(Pending::Remove);
    }

    fn transition(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        let c = &mut self.counters;
        match to {
            State::Initialize => c.to_initialize += 1,
            State::Backup => c.to_backup += 1,
            State::Master => c.to_master += 1,
            State::Fault => c.to_fault += 1,
        }
        self.queue_push(Pending::StateChanged { from, to, reason });
    }

    // --- helpers ------------------------------------------------------------------------

    fn arm_down_timer(&mut self, now: Instant) {
        self.master_down_timer = Some(now + self.master_down_interval());
        self.down_reason = Reason::MasterDown;
    }

    fn clear_timers(&mut self) {
        self.adver_timer = None;
        self.master_down_timer = None;
        self.preempt_until = None;
        self.announce_at = None;
        self.announce_repeat_pending = false;
    }

    fn send(&mut self, priority: u8) {
        self.counters.adverts_sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
        self.queue_push(Pending::Send { priority });
    }

    fn announce(&mut self) {
        self.counters.announcements += 1;
        self.queue_push(Pending::Announce);
    }

    fn queue_push(&mut self, p: Pending) {
        if !self.queue.push(p) {
            self.counters.actions_dropped += 1;
        }
    }

    /// Drops every pending action (for a runtime that restarts its I/O).
    pub fn clear_actions(&mut self) {
        self.queue.clear();
    }
}

/// Authentication comparison (RFC 2338 section 5.3.6): types and, for a password, the 8 bytes.
fn auth_matches(got: &Auth, want: &Auth) -> bool {
    got == want
}

/// The unsigned integer value of an address in network byte order (RFC 9568 section 6.4.3).
fn address_key(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// True when both concatenated address lists hold the same addresses (in any order).
/// Bounded work: at most 255 x 255 comparisons of 16 bytes.
fn same_address_set(got: &[u8], ours: &[u8], family: Family) -> bool {
    let width = match family {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    if got.len() != ours.len() || !got.len().is_multiple_of(width) {
        return false;
    }
    got.chunks_exact(width)
        .all(|a| ours.chunks_exact(width).any(|b| a == b))
        && ours
            .chunks_exact(width)
            .all(|b| got.chunks_exact(width).any(|a| a == b))
}

#[cfg(test)]
mod tests;
