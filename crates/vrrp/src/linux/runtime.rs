//! The runtime: one thread driving one or more virtual routers on the monotonic clock.
//!
//! The thread blocks in `ppoll(2)` on its VRRP sockets (one per interface, family and peer
//! set, shared by every VRID on it), a link-notification socket, a wake-up eventfd and, when
//! asked, a signalfd for SIGTERM / SIGINT, with the earliest router deadline as the timeout
//! (nanosecond resolution, so 10 ms advertisement intervals keep their precision). Packets are
//! dispatched by VRID; the routers' actions are executed at once (send, netlink add / remove,
//! announcements, hooks). Events go out on a crossbeam channel; a status snapshot sits behind
//! a parking_lot lock.
//!
//! The per-packet path allocates nothing and logs nothing: a lent receive buffer, a stack
//! send buffer, a VRID table. A wake-up later than its deadline by more than a quarter of the
//! shortest advertisement interval (at least 2 ms) is counted and logged (at most once a
//! second): a late timer is how a busy machine causes spurious takeovers.

use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::RwLock;

use super::addr::{AddrError, AddressManager, VirtualAddress};
use super::announce::Announcer;
use super::hooks::{self, HookOutcome, RunningHook};
use super::socket::{SocketError, SocketStats, VrrpSocket};
use super::track::{link_is_up, Check, CheckConfig, LinkWatch};
use crate::router::{Action, Config, ConfigError, Input, Mode, Reason, State, VirtualRouter};
use crate::wire::{self, Addresses, Family, IpMeta};

/// Packets read from one socket before the thread looks at its timers again (see
/// [`Runtime::read_socket`]): a few hundred microseconds of work.
const READ_BUDGET: usize = 256;

/// Errors starting the runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// An instance's router configuration is invalid.
    #[error("instance `{instance}`: {source}")]
    Config {
        /// The instance name.
        instance: String,
        /// What is wrong.
        source: ConfigError,
    },
    /// Two instances claim the same VRID and family on one interface.
    #[error("instances `{0}` and `{1}` use the same VRID, family and interface")]
    DuplicateVrid(String, String),
    /// A virtual address's prefix does not match the instance's family, or the list is empty.
    #[error("instance `{0}`: virtual addresses must be given and of the primary address's family")]
    Addresses(String),
    /// The VRRP socket could not be opened.
    #[error("instance `{instance}`: {source}")]
    Socket {
        /// The instance name.
        instance: String,
        /// What failed.
        source: SocketError,
    },
    /// The netlink address socket could not be opened.
    #[error(transparent)]
    Netlink(#[from] AddrError),
    /// Another operating-system resource (eventfd, signalfd, link watch, thread) failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being set up.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// One virtual router instance: the router's configuration plus where and how it runs.
#[derive(Clone, Debug)]
pub struct InstanceConfig {
    /// A name for logs and hooks (keepalived's `vrrp_instance` name).
    pub name: String,
    /// The interface the instance runs on.
    pub interface: String,
    /// The election's configuration. `virtual_addresses` is filled from `addresses`; an
    /// unspecified `primary_address` (0.0.0.0 or ::) is replaced by the interface's primary
    /// IPv4 or link-local IPv6 address.
    pub router: Config,
    /// The virtual addresses with their prefix lengths.
    pub addresses: Vec<VirtualAddress>,
    /// Unicast peers; empty means multicast.
    pub unicast_peers: Vec<IpAddr>,
    /// Commands run on every state change with `INSTANCE name STATE priority`.
    pub notify: Vec<String>,
    /// How long a notify command may run before it is killed and reported failed.
    pub notify_timeout: Duration,
    /// Interfaces whose loss of carrier puts the instance in Fault (its own is always
    /// tracked).
    pub track_interfaces: Vec<String>,
    /// Health checks.
    pub checks: Vec<CheckConfig>,
}

impl InstanceConfig {
    /// An instance with the router defaults (VRRPv3, priority 100, 1 s), the addresses'
    /// family, and no peers, hooks or checks.
    pub fn new(name: &str, interface: &str, vrid: u8, addresses: &[VirtualAddress]) -> Self {
        let unspecified = match addresses.first().map(|a| a.addr) {
            Some(IpAddr::V6(_)) => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        };
        InstanceConfig {
            name: name.to_string(),
            interface: interface.to_string(),
            router: Config::new(vrid, unspecified),
            addresses: addresses.to_vec(),
            unicast_peers: Vec::new(),
            notify: Vec::new(),
            notify_timeout: Duration::from_secs(10),
            track_interfaces: Vec::new(),
            checks: Vec::new(),
        }
    }
}

/// Something the runtime reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An instance changed state.
    StateChanged {
        /// Index of the instance in the configuration list.
        instance: usize,
        /// Its VRID.
        vrid: u8,
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
        /// When (monotonic).
        at: Instant,
    },
    /// Adding, removing or announcing addresses, or sending, failed.
    Error {
        /// Index of the instance.
        instance: usize,
        /// What went wrong.
        message: String,
    },
    /// A notify hook finished.
    Hook {
        /// Index of the instance.
        instance: usize,
        /// The command line as run.
        command: String,
        /// How it ended.
        outcome: HookOutcome,
    },
    /// The thread woke up later than a deadline by this much.
    LateWakeup(Duration),
    /// The runtime stopped (after releasing its addresses).
    Stopped,
}

/// A snapshot of one instance, refreshed on every state change and about ten times a second.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceStatus {
    /// The instance name.
    pub name: String,
    /// The interface.
    pub interface: String,
    /// The VRID.
    pub vrid: u8,
    /// The current state.
    pub state: State,
    /// The effective priority.
    pub priority: u8,
    /// Whether a tracked interface or check holds it in Fault.
    pub fault: bool,
    /// Advertisements sent (by the router's count).
    pub adverts_sent: u64,
    /// Advertisements received and accepted by the router.
    pub adverts_received: u64,
    /// The socket's counters (shared by instances on one socket).
    pub socket: SocketStats,
    /// Packets that failed wire validation (checksum, length, version...).
    pub invalid: u64,
    /// Every received packet this instance dropped, by reason (the VRRP MIB's statistics).
    pub drops: Drops,
    /// When the runtime read the last advertisement the router accepted (its receive time,
    /// not the snapshot's), if any.
    pub last_advert: Option<Instant>,
}

/// Received packets dropped, by reason, named after the VRRP MIB's statistics (RFC 2787
/// `vrrpRouterStatsTable` and `vrrpRouterChecksumErrors` / `VersionErrors` / `VrIdErrors`;
/// RFC 6527 `vrrpv3StatisticsTable`).
///
/// The TTL, IP header and VRID checks happen before a packet is matched to an instance (the
/// socket checks the first two, the VRID selects the instance), so `ip_ttl_errors`,
/// `vrid_errors` and the socket's share of `packet_length_errors` count per socket: every
/// instance on one interface and family shows the same figures, as the MIB's router-wide
/// VRID error counter does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Drops {
    /// VRRPv2 authentication differs from ours (`vrrpStatsAuthFailures`, RFC 3768 section 7.1).
    pub auth_failures: u64,
    /// VRRPv2 authentication type other than 0 or 1 (`vrrpStatsInvalidAuthType`).
    pub invalid_auth_type: u64,
    /// Type field other than 1, ADVERTISEMENT (`vrrpStatsInvalidTypePktsRcvd`).
    pub invalid_type: u64,
    /// Advertisement interval differs (v2) or is zero (v3) (`vrrpStatsAdvertiseIntervalErrors`).
    pub advert_interval_errors: u64,
    /// TTL / hop limit below 255 (`vrrpStatsIpTtlErrors`); per socket.
    pub ip_ttl_errors: u64,
    /// Address list differs and the sender is not the owner (`vrrpStatsAddressListErrors`).
    pub address_list_errors: u64,
    /// Shorter than the header, length not matching the address count, or an unreadable IP
    /// header (`vrrpStatsPacketLengthErrors`).
    pub packet_length_errors: u64,
    /// Checksum does not verify (`vrrpRouterChecksumErrors`).
    pub checksum_errors: u64,
    /// Version field not the instance's (`vrrpRouterVersionErrors`).
    pub version_errors: u64,
    /// VRID configured on no instance of this socket (`vrrpRouterVrIdErrors`); per socket.
    pub vrid_errors: u64,
    /// Address family of the source or addresses not the instance's.
    pub family_errors: u64,
}

impl Drops {
    /// Counts one packet that failed wire validation under its MIB reason.
    fn count_wire(&mut self, e: &wire::Error) {
        use wire::Error as E;
        let c = match e {
            E::BadChecksum { .. } | E::BadChecksumEitherForm { .. } => &mut self.checksum_errors,
            E::UnknownVersion(_) | E::V2OverIpv6 => &mut self.version_errors,
            E::UnknownType(_) => &mut self.invalid_type,
            E::UnsupportedAuthType(_) => &mut self.invalid_auth_type,
            E::BadTtl(_) | E::BadHopLimit(_) => &mut self.ip_ttl_errors,
            E::ZeroVrid => &mut self.vrid_errors,
            E::MixedFamilies { .. } => &mut self.family_errors,
            // Truncated, CountMismatch and the IP-level length faults.
            _ => &mut self.packet_length_errors,
        };
        *c += 1;
    }
}

/// The whole snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// One entry per instance, in configuration order.
    pub instances: Vec<InstanceStatus>,
    /// Wake-ups later than their deadline beyond the threshold.
    pub late_wakeups: u64,
    /// The worst lateness seen.
    pub max_lateness: Duration,
}

/// Commands to a running node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Become master now (see [`Input::Takeover`]).
    Takeover(usize),
    /// Step down (see [`Input::Release`]).
    Release(usize),
    /// Switch active / passive.
    SetMode(usize, Mode),
    /// Switch Preempt_Mode at run time (see [`Input::SetPreempt`]).
    SetPreempt(usize, bool),
    /// A new configured priority, 1..=254 (see [`Input::SetPriority`]).
    SetPriority(usize, u8),
    /// Send priority 0, release every address and stop the thread.
    Shutdown,
}

/// Options of the runtime thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Stop (priority 0, addresses released) on SIGTERM or SIGINT. Those signals must be
    /// blocked in every thread first: call [`block_termination_signals`] at the start of
    /// `main`, before any thread exists.
    pub stop_on_signals: bool,
    /// Run the runtime thread under `SCHED_FIFO` with this priority (1..=99), with
    /// `SCHED_RESET_ON_FORK` so hooks and checks run as ordinary processes. At 10 ms
    /// advertisements a thread that waits behind busy processes for a few milliseconds makes
    /// the backup take over spuriously; real-time scheduling is what keeps the timers on time
    /// on a loaded machine. Failure to switch is logged, not fatal.
    pub realtime_priority: Option<i32>,
}

/// Blocks SIGTERM and SIGINT in the calling thread and in the threads it creates afterwards,
/// so that a runtime with [`Options::stop_on_signals`] receives them on its signalfd.
pub fn block_termination_signals() -> std::io::Result<()> {
    // SAFETY: the set is initialised by sigemptyset before use; pthread_sigmask only changes
    // this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
    }
    Ok(())
}

/// A running node: the runtime thread and its handles.
pub struct Node {
    thread: Option<JoinHandle<()>>,
    commands: Sender<Command>,
    wake: Arc<OwnedFd>,
    events: Receiver<Event>,
    status: Arc<RwLock<Status>>,
}

impl Node {
    /// Opens every socket in the calling thread's network namespace and starts the runtime
    /// thread (which starts in the same namespace). Every instance gets its Startup event.
    pub fn start(instances: Vec<InstanceConfig>, options: Options) -> Result<Node, RuntimeError> {
        let mut rt = Runtime::new(instances, options)?;
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
        rt.commands = Some(cmd_rx);
        rt.events = Some(ev_tx);
        let status = rt.status.clone();
        let wake = rt.wake.clone();
        let thread = std::thread::Builder::new()
            .name("vrrp-runtime".into())
            .spawn(move || rt.run())
            .map_err(|source| RuntimeError::Os {
                what: "spawn the runtime thread",
                source,
            })?;
        Ok(Node {
            thread: Some(thread),
            commands: cmd_tx,
            wake,
            events: ev_rx,
            status,
        })
    }

    /// The event stream.
    pub fn events(&self) -> &Receiver<Event> {
        &self.events
    }

    /// The latest status snapshot.
    pub fn status(&self) -> Status {
        self.status.read().clone()
    }

    /// Sends a command to the runtime thread.
    pub fn command(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            wake(&self.wake);
        }
    }

    /// Whether the runtime thread has ended (after a shutdown or a signal).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends priority 0, releases every address, stops the thread and waits for it.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Waits for the thread to end by itself (after a signal).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.command(Command::Shutdown);
            let _ = t.join();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn wake(fd: &OwnedFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd.
    let _ = unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
}

fn drain_fd(fd: RawFd) {
    let mut buf = [0u8; 128];
    // SAFETY: reads into a live local buffer of the stated length from a non-blocking fd.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

/// Per-instance runtime state beside the router.
struct Inst {
    name: String,
    interface: String,
    ifindex: u32,
    socket: usize,
    addresses: Vec<VirtualAddress>,
    announcer: Option<Announcer>,
    notify: Vec<String>,
    notify_timeout: Duration,
    tracked: Vec<String>,
    link_fault: bool,
    checks: Vec<Check>,
    check_fault: bool,
    offset: i16,
    invalid: u64,
    /// Wire-validation drops by reason (the router and socket counters are added at publish).
    wire_drops: Drops,
    last_advert: Option<Instant>,
}

struct Runtime {
    routers: Vec<VirtualRouter>,
    inst: Vec<Inst>,
    sockets: Vec<VrrpSocket>,
    /// Per socket: VRID -> router index + 1 (0: none).
    by_vrid: Vec<[u16; 256]>,
    /// Per socket: packets whose VRID no instance on it has.
    vrid_errors: Vec<u64>,
    addrs: AddressManager,
    links: LinkWatch,
    wake: Arc<OwnedFd>,
    signals: Option<OwnedFd>,
    hooks: Vec<(usize, RunningHook)>,
    commands: Option<Receiver<Command>>,
    events: Option<Sender<Event>>,
    status: Arc<RwLock<Status>>,
    realtime: Option<i32>,
    late_threshold: Duration,
    late_logged: Option<Instant>,
    status_at: Instant,
    /// Per router: the end of a stall grace granted to its expired Master_Down timer (see
    /// [`Runtime::stall_grace`]), or `None`.
    grace_until: Vec<Option<Instant>>,
    /// Stall graces granted (for the log and tests).
    graces: u64,
}

impl Runtime {
    fn new(configs: Vec<InstanceConfig>, options: Options) -> Result<Runtime, RuntimeError> {
        let os = |what: &'static str| move |source| RuntimeError::Os { what, source };
        let now = Instant::now();
        let mut sockets: Vec<VrrpSocket> = Vec::new();
        let mut by_vrid: Vec<[u16; 256]> = Vec::new();
        let mut routers = Vec::new();
        let mut inst = Vec::new();
        let mut min_interval = Duration::from_secs(1);
        for (i, c) in configs.into_iter().enumerate() {
            let family = match c.addresses.first().map(|a| a.addr) {
                Some(IpAddr::V4(_)) => Family::V4,
                Some(IpAddr::V6(_)) => Family::V6,
                None => return Err(RuntimeError::Addresses(c.name)),
            };
            if c.addresses
                .iter()
                .any(|a| a.addr.is_ipv4() != (family == Family::V4))
            {
                return Err(RuntimeError::Addresses(c.name));
            }
            let sock_idx = match sockets.iter().position(|s| {
                s.interface() == c.interface
                    && s.family() == family
                    && (s.is_unicast() != c.unicast_peers.is_empty())
                    && (!s.is_unicast() || s.destinations() == c.unicast_peers.as_slice())
            }) {
                Some(s) => s,
                None => {
                    let s = VrrpSocket::open(&c.interface, family, &c.unicast_peers).map_err(
                        |source| RuntimeError::Socket {
                            instance: c.name.clone(),
                            source,
                        },
                    )?;
                    sockets.push(s);
                    by_vrid.push([0; 256]);
                    sockets.len() - 1
                }
            };
            let mut rc = c.router.clone();
            if rc.primary_address.is_unspecified() {
                rc.primary_address = sockets[sock_idx].source();
            }
            rc.virtual_addresses = c.addresses.iter().map(|a| a.addr).collect();
            let router = VirtualRouter::new(rc).map_err(|source| RuntimeError::Config {
                instance: c.name.clone(),
                source,
            })?;
            let slot = &mut by_vrid[sock_idx][usize::from(c.router.vrid)];
            if *slot != 0 {
                let other: &Inst = &inst[usize::from(*slot) - 1];
                return Err(RuntimeError::DuplicateVrid(other.name.clone(), c.name));
            }
            *slot = u16::try_from(i + 1).unwrap_or(0);
            min_interval = min_interval.min(c.router.advertisement_interval);
            let ifindex = sockets[sock_idx].ifindex();
            let mut tracked = vec![c.interface.clone()];
            tracked.extend(c.track_interfaces.iter().cloned());
            inst.push(Inst {
                announcer: Announcer::new(&c.interface).ok(),
                name: c.name,
                interface: c.interface,
                ifindex,
                socket: sock_idx,
                addresses: c.addresses,
                notify: c.notify,
                notify_timeout: c.notify_timeout,
                tracked,
                link_fault: false,
                checks: c.checks.into_iter().map(|k| Check::new(k, now)).collect(),
                check_fault: false,
                offset: 0,
                invalid: 0,
                wire_drops: Drops::default(),
                last_advert: None,
            });
            routers.push(router);
        }
        // SAFETY: eventfd returns a new descriptor or -1.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(os("eventfd")(std::io::Error::last_os_error()));
        }
        // SAFETY: `efd` is a fresh descriptor owned by nobody else.
        let wake = Arc::new(unsafe { OwnedFd::from_raw_fd(efd) });
        let signals = if options.stop_on_signals {
            // SAFETY: the set is initialised before use; signalfd returns a new descriptor.
            let fd = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC)
            };
            if fd < 0 {
                return Err(os("signalfd")(std::io::Error::last_os_error()));
            }
            // SAFETY: a fresh descriptor owned by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(fd) })
        } else {
            None
        };
        let n_routers = routers.len();
        Ok(Runtime {
            routers,
            inst,
            vrid_errors: vec![0; sockets.len()],
            sockets,
            by_vrid,
            addrs: AddressManager::new()?,
            links: LinkWatch::new().map_err(os("link notifications"))?,
            wake,
            signals,
            hooks: Vec::new(),
            commands: None,
            events: None,
            status: Arc::new(RwLock::new(Status::default())),
            realtime: options.realtime_priority,
            late_threshold: (min_interval / 4).max(Duration::from_millis(2)),
            late_logged: None,
            status_at: now,
            grace_until: vec![None; n_routers],
            graces: 0,
        })
    }

    fn emit(&self, e: Event) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    fn run(mut self) {
        if let Some(prio) = self.realtime {
            set_realtime(prio);
        }
        // A run killed without its shutdown (SIGKILL, crash) leaves its virtual addresses on
        // the interface. Every router starts in Initialize and, unless it owns the addresses
        // (RFC 5798 section 6.4.1: priority 255, they are its real addresses), becomes Backup,
        // which must not hold them (section 6.4.2); so remove them first, as keepalived does.
        // The delete is idempotent: an absent address is no error.
        for i in 0..self.routers.len() {
            if self.routers[i].config().is_owner() {
                continue;
            }
            let ifindex = self.inst[i].ifindex;
            for a in self.inst[i].addresses.clone() {
                if let Err(e) = self.addrs.remove(ifindex, a) {
                    log::warn!(
                        "{}: removing {a} left by an earlier run: {e}",
                        self.inst[i].name
                    );
                }
            }
        }
        let now = Instant::now();
        for i in 0..self.routers.len() {
            self.refresh_fault(i, now, true);
            if !self.inst[i].link_fault && !self.inst[i].check_fault {
                self.routers[i].handle(now, Input::Startup);
            }
            self.drain(i, now);
        }
        self.publish();
        let mut buf = [0u8; 2048];
        let mut pfds: Vec<libc::pollfd> = Vec::with_capacity(self.sockets.len() + 3);
        'main: loop {
            let deadline = self.next_deadline();
            pfds.clear();
            for s in &self.sockets {
                pfds.push(pollfd(s.as_raw_fd()));
            }
            pfds.push(pollfd(self.links.as_raw_fd()));
            pfds.push(pollfd(self.wake.as_raw_fd()));
            if let Some(s) = &self.signals {
                pfds.push(pollfd(s.as_raw_fd()));
            }
            let before = Instant::now();
            let timeout = deadline.map(|d| d.saturating_duration_since(before));
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: t.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(t.subsec_nanos() as i32),
            });
            let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const _);
            // SAFETY: `pfds` is a live array of the stated length; `tsp` is null or points
            // to a live timespec; no signal mask change.
            let n = unsafe {
                libc::ppoll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    tsp,
                    std::ptr::null(),
                )
            };
            let now = Instant::now();
            let mut stalled = false;
            if let Some(d) = deadline {
                let late = now.saturating_duration_since(d);
                if late > self.late_threshold {
                    stalled = true;
                    self.late_wakeup(now, late);
                }
            }
            // Set when a socket still holds packets after its read budget: an advertisement
            // may be among them, so an expired Master_Down timer gets the stall grace.
            let mut backlog = false;
            if n > 0 {
                for (si, p) in pfds.iter().enumerate().take(self.sockets.len()) {
                    if p.revents != 0 && !self.read_socket(si, &mut buf) {
                        backlog = true;
                    }
                }
            }
            // Reading may have taken a while (a flood, a preemption): timers and commands
            // below act at the time they are looked at.
            let now = if backlog { Instant::now() } else { now };
            let stalled = stalled || backlog;
            if n > 0 {
                let base = self.sockets.len();
                if pfds.get(base).is_some_and(|p| p.revents != 0) && self.links.drain() {
                    for i in 0..self.routers.len() {
                        self.refresh_fault(i, now, false);
                    }
                }
                if pfds.get(base + 1).is_some_and(|p| p.revents != 0) {
                    drain_fd(self.wake.as_raw_fd());
                    while let Some(c) = self.commands.as_ref().and_then(|r| r.try_recv().ok()) {
                        if !self.command(c, now) {
                            break 'main;
                        }
                    }
                }
                if pfds.get(base + 2).is_some_and(|p| p.revents != 0) {
                    if let Some(s) = &self.signals {
                        drain_fd(s.as_raw_fd());
                    }
                    log::info!("termination signal: sending priority 0 and releasing addresses");
                    break 'main;
                }
            }
            for i in 0..self.routers.len() {
                if self.grace_until[i].is_some()
                    && self.routers[i].poll_timeout().is_none_or(|d| d > now)
                {
                    // An advertisement reset the timer during the grace: no takeover.
                    self.grace_until[i] = None;
                }
                if self.routers[i].poll_timeout().is_some_and(|d| d <= now)
                    && !self.stall_grace(i, now, stalled)
                {
                    self.grace_until[i] = None;
                    self.routers[i].handle_timeout(now);
                    self.drain(i, now);
                }
                if !self.inst[i].checks.is_empty() {
                    self.poll_checks(i, now);
                }
            }
            self.reap_hooks(now);
            if now.duration_since(self.status_at) >= Duration::from_millis(100) {
                self.publish();
            }
        }
        self.shutdown();
    }

    fn next_deadline(&self) -> Option<Instant> {
        let mut d: Option<Instant> = None;
        let mut take = |t: Instant| d = Some(d.map_or(t, |x| x.min(t)));
        for (r, grace) in self.routers.iter().zip(&self.grace_until) {
            if let Some(t) = r.poll_timeout() {
                // A timer in its stall grace is due at the grace's end, not at once.
                take(grace.map_or(t, |g| g.max(t)));
            }
        }
        for i in &self.inst {
            for c in &i.checks {
                take(c.deadline());
            }
        }
        for (_, h) in &self.hooks {
            take(h.deadline().min(Instant::now() + Duration::from_millis(50)));
        }
        // Refresh the status snapshot now and then even when nothing happens.
        take(self.status_at + Duration::from_millis(100));
        d
    }

    /// Whether router `i`'s expired timer must wait a little longer: a deliberate deviation
    /// from RFC 5798 section 6.4.2 ("If the Master_Down_Timer fires ... transition to the
    /// Master state") and RFC 3768 section 6.4.2.
    ///
    /// When this thread itself woke up late (`stalled`: later than the late-wake-up threshold
    /// after its deadline), the stall that delayed us most likely delayed the master too (a
    /// loaded or paused machine, a VM losing its CPU): its advertisement may be about to be
    /// sent or be in flight. The socket has already been drained (packets are read before
    /// timers, so an advert that arrived during the stall has reset the timer already); if
    /// the Master_Down timer of a Backup has still expired, it gets one Skew_Time of grace
    /// before the takeover, once per expiry. An advertisement in the grace resets the timer
    /// and cancels the takeover; without one the takeover happens at most Skew_Time late. A
    /// thread that was on time never defers, so a real failure on a healthy machine is taken
    /// over at the RFC's instant.
    fn stall_grace(&mut self, i: usize, now: Instant, stalled: bool) -> bool {
        let Some(slot) = self.grace_until.get_mut(i) else {
            return false;
        };
        let is_backup = self.routers[i].state() == State::Backup;
        let (defer, grace) =
            stall_grace_decision(*slot, now, stalled, is_backup, self.routers[i].skew_time());
        if slot.is_none() && grace.is_some() {
            self.graces += 1;
            log::info!(
                "{}: Master_Down timer expired during a stall; waiting {:?} (Skew_Time) for a late advertisement",
                self.inst[i].name,
                self.routers[i].skew_time()
            );
        }
        *slot = grace;
        defer
    }

    fn late_wakeup(&mut self, now: Instant, late: Duration) {
        {
            let mut s = self.status.write();
            s.late_wakeups += 1;
            s.max_lateness = s.max_lateness.max(late);
        }
        if self
            .late_logged
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.late_logged = Some(now);
            log::warn!(
                "runtime woke up {late:?} after a deadline (threshold {:?})",
                self.late_threshold
            );
            self.emit(Event::LateWakeup(late));
        }
    }

    /// Reads and handles at most [`READ_BUDGET`] packets of socket `si`; returns whether the
    /// socket was drained (false: packets are left, read them on the next turn of the loop).
    ///
    /// The budget keeps the thread's timers alive under a flood: an unbounded drain of a
    /// socket that fills as fast as it is read never returns, and a master stuck in it stops
    /// advertising (RFC 5798 section 6.4.3: the Adver_Timer must fire on time), so its backups
    /// take over. Each packet is handled at its own read time, not at the poll's wake-up:
    /// an advertisement read late in a long batch restarts the Master_Down timer from when it
    /// was seen (RFC 5798 section 6.4.2 (460)).
    fn read_socket(&mut self, si: usize, buf: &mut [u8]) -> bool {
        for _ in 0..READ_BUDGET {
            let d = match self.sockets[si].recv(buf) {
                Ok(Some(d)) => d,
                Ok(None) => return true,
                Err(e) => {
                    log::warn!("{e}");
                    return true;
                }
            };
            // The VRID selects the instance before any costly check: a flood for other VRIDs
            // costs one table lookup a packet.
            let vrid = d.vrrp.get(1).copied().unwrap_or(0);
            let Some(ri) = self.by_vrid[si][usize::from(vrid)].checked_sub(1) else {
                if let Some(c) = self.vrid_errors.get_mut(si) {
                    *c += 1;
                }
                continue;
            };
            let ri = usize::from(ri);
            let meta = IpMeta {
                src: d.src,
                dst: d.dst,
                ttl: d.ttl,
            };
            match wire::validate(d.vrrp, &meta) {
                Ok(r) => {
                    let now = Instant::now();
                    let accepted = processed(self.routers[ri].counters());
                    self.routers[ri].handle(
                        now,
                        Input::Advertisement {
                            src: r.src,
                            advert: r.advert,
                        },
                    );
                    if processed(self.routers[ri].counters()) != accepted {
                        self.inst[ri].last_advert = Some(now);
                    }
                    self.drain(ri, now);
                }
                Err(e) => {
                    self.inst[ri].invalid += 1;
                    self.inst[ri].wire_drops.count_wire(&e);
                }
            }
        }
        false
    }

    /// Executes every pending action of router `i`.
    fn drain(&mut self, i: usize, now: Instant) {
        let mut sendbuf = [0u8; 1500];
        let mut changed: Option<(State, State, Reason)> = None;
        let mut errors: Vec<String> = Vec::new();
        let vrid = self.routers[i].config().vrid;
        let inst = &mut self.inst[i];
        let sock = &mut self.sockets[inst.socket];
        while let Some(action) = self.routers[i].poll_action() {
            match action {
                Action::SendAdvertisement { advert, checksum } => {
                    let src = sock.source();
                    for k in 0..sock.destinations().len() {
                        let Some(&dst) = sock.destinations().get(k) else {
                            break;
                        };
                        let r = advert
                            .emit(&mut sendbuf, checksum, src, dst)
                            .map_err(|e| e.to_string())
                            .and_then(|n| {
                                sock.send_to(sendbuf.get(..n).unwrap_or(&[]), dst)
                                    .map_err(|e| e.to_string())
                            });
                        if let Err(e) = r {
                            errors.push(format!("send advertisement: {e}"));
                        }
                    }
                }
                Action::AddAddresses(a) => {
                    for va in lookup(&inst.addresses, a) {
                        if let Err(e) = self.addrs.add(inst.ifindex, va) {
                            errors.push(e.to_string());
                        }
                    }
                }
                Action::RemoveAddresses(a) => {
                    for va in lookup(&inst.addresses, a) {
                        if let Err(e) = self.addrs.remove(inst.ifindex, va) {
                            errors.push(e.to_string());
                        }
                    }
                }
                Action::Announce { addresses, count } => {
                    if inst.announcer.is_none() {
                        inst.announcer = Announcer::new(&inst.interface).ok();
                    }
                    let list: Vec<IpAddr> = addresses.iter().collect();
                    if let Some(ann) = inst.announcer.as_mut() {
                        for _ in 0..count {
                            if let Err(e) = ann.announce(&list) {
                                errors.push(e.to_string());
                                break;
                            }
                        }
                    }
                }
                Action::StateChanged { from, to, reason } => {
                    changed = Some((from, to, reason));
                    log::info!("{} (VRID {}) {from} -> {to}: {reason}", inst.name, vrid);
                    if let Some(tx) = &self.events {
                        let _ = tx.send(Event::StateChanged {
                            instance: i,
                            vrid,
                            from,
                            to,
                            reason,
                            at: now,
                        });
                    }
                }
            }
        }
        for e in errors {
            log::error!("{}: {e}", self.inst[i].name);
            self.emit(Event::Error {
                instance: i,
                message: e,
            });
        }
        if let Some((_, to, _)) = changed {
            let prio = self.routers[i].priority();
            for cmd in self.inst[i].notify.clone() {
                match hooks::start(
                    &cmd,
                    &self.inst[i].name,
                    to.name(),
                    prio,
                    self.inst[i].notify_timeout,
                    now,
                ) {
                    Ok(h) => self.hooks.push((i, h)),
                    Err(outcome) => self.hook_done(i, cmd, outcome),
                }
            }
            self.publish();
        }
    }

    fn hook_done(&self, i: usize, command: String, outcome: HookOutcome) {
        if outcome.is_success() {
            log::debug!("{}: hook `{command}` {outcome}", self.inst[i].name);
        } else {
            log::error!("{}: hook `{command}` {outcome}", self.inst[i].name);
        }
        self.emit(Event::Hook {
            instance: i,
            command,
            outcome,
        });
    }

    fn reap_hooks(&mut self, now: Instant) {
        let mut k = 0;
        while k < self.hooks.len() {
            let done = self.hooks.get_mut(k).and_then(|(_, h)| h.poll(now));
            match done {
                Some(outcome) => {
                    let (i, h) = self.hooks.swap_remove(k);
                    self.hook_done(i, h.description.clone(), outcome);
                }
                None => k += 1,
            }
        }
    }

    fn poll_checks(&mut self, i: usize, now: Instant) {
        let mut flipped = false;
        let Inst { checks, name, .. } = &mut self.inst[i];
        for c in checks.iter_mut() {
            if let Some(good) = c.poll(now) {
                log::info!(
                    "{}: check `{}` is now {}",
                    name,
                    c.config().command,
                    if good { "good" } else { "failed" }
                );
                flipped = true;
            }
        }
        if flipped {
            let offset: i16 = self.inst[i].checks.iter().map(Check::offset).sum();
            if offset != self.inst[i].offset {
                self.inst[i].offset = offset;
                self.routers[i].handle(now, Input::SetPriorityOffset(offset));
                self.drain(i, now);
            }
            self.refresh_fault(i, now, false);
        }
    }

    /// Recomputes instance `i`'s fault from its tracked links and checks; tells the router
    /// when it changed (`initial`: only record, the caller decides on Startup).
    fn refresh_fault(&mut self, i: usize, now: Instant, initial: bool) {
        let was = self.inst[i].link_fault || self.inst[i].check_fault;
        let link_fault = self.inst[i].tracked.iter().any(|t| !link_is_up(t));
        let check_fault = self.inst[i].checks.iter().any(Check::faults);
        if link_fault != self.inst[i].link_fault {
            log::info!(
                "{}: tracked interface {}",
                self.inst[i].name,
                if link_fault { "down" } else { "up" }
            );
        }
        self.inst[i].link_fault = link_fault;
        self.inst[i].check_fault = check_fault;
        let is = link_fault || check_fault;
        if initial {
            if is {
                self.routers[i].handle(now, Input::Startup);
                self.routers[i].handle(now, Input::Fault(true));
            }
        } else if is != was {
            self.routers[i].handle(now, Input::Fault(is));
            self.drain(i, now);
        }
    }

    fn command(&mut self, c: Command, now: Instant) -> bool {
        let (i, input) = match c {
            Command::Shutdown => return false,
            Command::Takeover(i) => (i, Input::Takeover),
            Command::Release(i) => (i, Input::Release),
            Command::SetMode(i, m) => (i, Input::SetMode(m)),
            Command::SetPreempt(i, on) => (i, Input::SetPreempt(on)),
            Command::SetPriority(i, p) => (i, Input::SetPriority(p)),
        };
        if i < self.routers.len() {
            self.routers[i].handle(now, input);
            self.drain(i, now);
        }
        true
    }

    fn publish(&mut self) {
        self.status_at = Instant::now();
        let mut s = self.status.write();
        s.instances.clear();
        for (r, inst) in self.routers.iter().zip(&self.inst) {
            s.instances.push(InstanceStatus {
                name: inst.name.clone(),
                interface: inst.interface.clone(),
                vrid: r.config().vrid,
                state: r.state(),
                priority: r.priority(),
                fault: inst.link_fault || inst.check_fault,
                adverts_sent: r.counters().adverts_sent,
                adverts_received: r.counters().adverts_received,
                socket: self
                    .sockets
                    .get(inst.socket)
                    .map(|s| s.stats())
                    .unwrap_or_default(),
                invalid: inst.invalid,
                drops: {
                    let c = r.counters();
                    let sock = self.sockets.get(inst.socket).map(|s| s.stats());
                    let w = &inst.wire_drops;
                    Drops {
                        auth_failures: c.dropped_auth,
                        advert_interval_errors: c.dropped_interval,
                        address_list_errors: c.dropped_addresses,
                        version_errors: w.version_errors + c.dropped_version,
                        family_errors: w.family_errors + c.dropped_family,
                        ip_ttl_errors: w.ip_ttl_errors + sock.map_or(0, |s| s.bad_ttl),
                        packet_length_errors: w.packet_length_errors
                            + sock.map_or(0, |s| s.malformed),
                        vrid_errors: w.vrid_errors
                            + c.dropped_vrid
                            + self.vrid_errors.get(inst.socket).copied().unwrap_or(0),
                        ..*w
                    }
                },
                last_advert: inst.last_advert,
            });
        }
    }

    /// Shutdown event for every router: priority 0 from masters, addresses released
    /// (RFC 5798 section 6.4.3 (655)-(670)); then wait briefly for running hooks.
    fn shutdown(&mut self) {
        let now = Instant::now();
        for i in 0..self.routers.len() {
            self.routers[i].handle(now, Input::Shutdown);
            self.drain(i, now);
        }
        // Whatever the router thinks, make sure no virtual address stays behind.
        for inst in &self.inst {
            for va in &inst.addresses {
                let _ = self.addrs.remove(inst.ifindex, *va);
            }
        }
        self.publish();
        for (i, h) in std::mem::take(&mut self.hooks) {
            let desc = h.description.clone();
            let outcome = h.finish();
            self.hook_done(i, desc, outcome);
        }
        self.emit(Event::Stopped);
    }
}

/// Advertisements the router processed: those handed to it minus those it dropped (a rogue's
/// wrong password or address list must not look like a live master in `last_advert`).
fn processed(c: &crate::router::Counters) -> u64 {
    let dropped = c.dropped_not_listening
        + c.dropped_passive
        + c.dropped_version
        + c.dropped_vrid
        + c.dropped_family
        + c.dropped_auth
        + c.dropped_interval
        + c.dropped_addresses
        + c.dropped_owner;
    c.adverts_received.saturating_sub(dropped)
}

/// The stall-grace rule of [`Runtime::stall_grace`] on its own (pure, for tests): given the
/// grace already granted to an expired timer, whether the thread woke up late, whether the
/// router is a Backup and its Skew_Time, returns (defer the timeout now, the grace to keep).
fn stall_grace_decision(
    grace: Option<Instant>,
    now: Instant,
    stalled: bool,
    is_backup: bool,
    skew: Duration,
) -> (bool, Option<Instant>) {
    match grace {
        Some(until) => (now < until, Some(until)),
        None if stalled && is_backup => (true, Some(now + skew)),
        None => (false, None),
    }
}

/// Switches the calling thread to `SCHED_FIFO | SCHED_RESET_ON_FORK` at `priority`.
fn set_realtime(priority: i32) {
    let param = libc::sched_param {
        sched_priority: priority.clamp(1, 99),
    };
    // SAFETY: pid 0 is the calling thread; `param` is a live sched_param.
    let rc = unsafe {
        libc::sched_setscheduler(0, libc::SCHED_FIFO | libc::SCHED_RESET_ON_FORK, &param)
    };
    if rc != 0 {
        log::warn!(
            "cannot switch the runtime thread to SCHED_FIFO {priority}: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// The configured prefixes of the addresses an action names (an address the instance does not
/// know, which cannot happen, gets a host prefix).
fn lookup<'a>(
    known: &'a [VirtualAddress],
    a: Addresses<'a>,
) -> impl Iterator<Item = VirtualAddress> + 'a {
    a.iter().map(move |ip| {
        known
            .iter()
            .find(|k| k.addr == ip)
            .copied()
            .unwrap_or(VirtualAddress {
                addr: ip,
                prefix_len: if ip.is_ipv4() { 32 } else { 128 },
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stall_grace_defers_a_late_backup_once_by_skew_time() {
        let t0 = Instant::now();
        let skew = Duration::from_micros(6094);
        // On time: the takeover happens at once (RFC 5798 section 6.4.2).
        assert_eq!(
            stall_grace_decision(None, t0, false, true, skew),
            (false, None)
        );
        // A late Master (its advert timer) never waits.
        assert_eq!(
            stall_grace_decision(None, t0, true, false, skew),
            (false, None)
        );
        // A late Backup waits one Skew_Time...
        let (defer, grace) = stall_grace_decision(None, t0, true, true, skew);
        assert!(defer);
        assert_eq!(grace, Some(t0 + skew));
        // ...stays deferred inside the grace even when woken late again...
        let mid = t0 + skew / 2;
        assert_eq!(
            stall_grace_decision(grace, mid, true, true, skew),
            (true, grace)
        );
        // ...and takes over when the grace has run out, without a second grace.
        let end = t0 + skew;
        assert_eq!(
            stall_grace_decision(grace, end, true, true, skew),
            (false, grace)
        );
    }
}
