//! A deterministic simulator: N virtual routers on one virtual clock over a virtual LAN.
//!
//! Pure: no threads, sockets or clock reads. The caller gives an `epoch` [`Instant`] once; the
//! simulated time is a [`Duration`] since it. The LAN multicasts every advertisement to every
//! other node in the sender's segment, with a seeded random delay, loss, duplication and
//! reordering ([`Network`]); nodes can be cut off into segments (partitions), crash silently
//! (power off: the addresses vanish with them) and restart. Equal seeds give equal runs.
//!
//! Events at the same instant run in a fixed order: frames in the order they were sent, then
//! timers by node index. After every event the node's actions are drained and applied (frames
//! sent, addresses added or removed) and recorded in a [`Trace`].
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, Instant};
//! use vrrp::router::{Config, Input, State};
//! use vrrp::sim::Sim;
//!
//! let mut sim = Sim::new(Instant::now(), 1);
//! let mut ids = Vec::new();
//! for (last, prio) in [(1u8, 200u8), (2, 100)] {
//!     let mut cfg = Config::new(7, IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)));
//!     cfg.priority = prio;
//!     cfg.virtual_addresses.push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)));
//!     ids.push(sim.add_router(cfg)?);
//! }
//! for &id in &ids {
//!     sim.input(id, Input::Startup);
//! }
//! sim.run_until(Duration::from_secs(10));
//! assert_eq!(sim.state(ids[0]), Some(State::Master));
//! assert_eq!(sim.holders().collect::<Vec<_>>(), vec![ids[0]]);
//! # Ok::<(), vrrp::router::ConfigError>(())
//! ```

mod rng;

use core::cmp::Ordering;
use core::net::IpAddr;
use core::time::Duration;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

use crate::router::{Action, Config, ConfigError, Input, Reason, State, VirtualRouter};
use crate::wire::{Addresses, Advertisement, Auth, Family, Version};

pub use rng::Rng;

/// Index of a node in the simulator.
pub type NodeId = usize;

/// The virtual LAN's behaviour. The default is a perfect LAN: no delay, no loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Network {
    /// Shortest one-way delay.
    pub delay_min: Duration,
    /// Longest one-way delay (drawn uniformly between the two).
    pub delay_max: Duration,
    /// Probability that a frame is lost, per receiver.
    pub loss: f64,
    /// Probability that a frame arrives twice, per receiver (the copy has its own delay).
    pub duplicate: f64,
    /// Probability that a frame is held back by `reorder_extra`, per receiver, so that later
    /// frames overtake it.
    pub reorder: f64,
    /// The extra delay of a held-back frame.
    pub reorder_extra: Duration,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            delay_min: Duration::ZERO,
            delay_max: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_extra: Duration::ZERO,
        }
    }
}

impl Network {
    /// A LAN with a fixed delay and nothing else.
    pub fn with_delay(delay: Duration) -> Network {
        Network {
            delay_min: delay,
            delay_max: delay,
            ..Network::default()
        }
    }

    /// The longest time a frame can take (delay plus reordering).
    pub fn worst_delay(&self) -> Duration {
        if self.reorder > 0.0 {
            self.delay_max + self.reorder_extra
        } else {
            self.delay_max
        }
    }
}

/// What happened, as recorded in the [`Trace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The router changed state.
    State {
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
    },
    /// The node took (`true`) or released (`false`) the virtual addresses.
    Addresses(bool),
    /// The node announced its addresses (`count` per address).
    Announce(u8),
    /// The node sent an advertisement with this priority (recorded only when
    /// [`Sim::record_adverts`] is on).
    Sent(u8),
    /// The node lost power: its router and addresses are gone, silently.
    Crash,
    /// The node was powered on again with a fresh router and a Startup event.
    Restart,
}

/// One entry of the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// When, since the epoch.
    pub at: Duration,
    /// Which node.
    pub node: NodeId,
    /// What.
    pub event: Event,
}

/// The record of a run.
pub type Trace = Vec<Entry>;

/// An advertisement in flight (owned; the address bytes are shared with the sender).
#[derive(Clone, Debug)]
struct Frame {
    at: Duration,
    seq: u64,
    to: NodeId,
    segment: u32,
    src: IpAddr,
    version: Version,
    vrid: u8,
    priority: u8,
    interval_cs: u16,
    auth: Auth,
    family: Family,
    addresses: Arc<[u8]>,
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Frame {}
impl PartialOrd for Frame {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Frame {
    /// Reversed, so that `BinaryHeap` pops the earliest (then the first sent).
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Clone, Debug)]
struct Node {
    config: Config,
    router: Option<VirtualRouter>,
    segment: u32,
    holds: bool,
    addresses: Arc<[u8]>,
}

/// The simulator. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct Sim {
    epoch: Instant,
    now: Duration,
    rng: Rng,
    network: Network,
    nodes: Vec<Node>,
    frames: BinaryHeap<Frame>,
    seq: u64,
    trace: Trace,
    record_adverts: bool,
    delivered: u64,
}

impl Sim {
    /// An empty simulation at time zero; `epoch` is the [`Instant`] time zero maps to.
    pub fn new(epoch: Instant, seed: u64) -> Sim {
        Sim {
            epoch,
            now: Duration::ZERO,
            rng: Rng::new(seed),
            network: Network::default(),
            nodes: Vec::new(),
            frames: BinaryHeap::new(),
            seq: 0,
            trace: Vec::new(),
            record_adverts: false,
            delivered: 0,
        }
    }

    /// Adds a powered-on node whose router is in Initialize (send it [`Input::Startup`]).
    pub fn add_router(&mut self, config: Config) -> Result<NodeId, ConfigError> {
        let router = VirtualRouter::new(config.clone())?;
        let addresses: Arc<[u8]> = Arc::from(router.addresses().as_bytes());
        self.nodes.push(Node {
            config,
            router: Some(router),
            segment: 0,
            holds: false,
            addresses,
        });
        Ok(self.nodes.len() - 1)
    }

    /// Replaces the LAN's behaviour from now on (frames in flight keep their times).
    pub fn set_network(&mut self, network: Network) {
        self.network = network;
    }

    /// The LAN's behaviour.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Record every advertisement sent in the trace (off by default: it is long).
    pub fn record_adverts(&mut self, on: bool) {
        self.record_adverts = on;
    }

    /// The simulated time since the epoch.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The simulated time as an [`Instant`].
    pub fn instant(&self) -> Instant {
        self.epoch + self.now
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there is no node.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Frames delivered to a router so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The node's router (`None` while crashed or for an unknown node).
    pub fn router(&self, node: NodeId) -> Option<&VirtualRouter> {
        self.nodes.get(node).and_then(|n| n.router.as_ref())
    }

    /// The node's state (`None` while crashed or for an unknown node).
    pub fn state(&self, node: NodeId) -> Option<State> {
        self.router(node).map(VirtualRouter::state)
    }

    /// True while the node holds the virtual addresses.
    pub fn holds(&self, node: NodeId) -> bool {
        self.nodes.get(node).is_some_and(|n| n.holds)
    }

    /// The nodes in Master state.
    pub fn masters(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).filter(|&i| self.state(i) == Some(State::Master))
    }

    /// The nodes holding the virtual addresses.
    pub fn holders(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..self.nodes.len()).filter(|&i| self.holds(i))
    }

    /// True while the node is powered on.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.router(node).is_some()
    }

    /// The node's segment (nodes hear each other only within one segment).
    pub fn segment(&self, node: NodeId) -> Option<u32> {
        self.nodes.get(node).map(|n| n.segment)
    }

    /// The trace so far.
    pub fn trace(&self) -> &[Entry] {
        &self.trace
    }

    /// Forgets the trace so far.
    pub fn clear_trace(&mut self) {
        self.trace.clear();
    }

    /// Hands `input` to the node's router now and applies its actions. Ignored for a crashed
    /// or unknown node.
    pub fn input(&mut self, node: NodeId, input: Input<'_>) {
        let now = self.instant();
        if let Some(r) = self.nodes.get_mut(node).and_then(|n| n.router.as_mut()) {
            r.handle(now, input);
            self.drain(node);
        }
    }

    /// Powers the node off: its router vanishes without a word and its addresses go with it.
    pub fn crash(&mut self, node: NodeId) {
        let at = self.now;
        if let Some(n) = self.nodes.get_mut(node) {
            if n.router.take().is_some() {
                self.trace.push(Entry {
                    at,
                    node,
                    event: Event::Crash,
                });
                if n.holds {
                    n.holds = false;
                    self.trace.push(Entry {
                        at,
                        node,
                        event: Event::Addresses(false),
                    });
                }
            }
        }
    }

    /// Powers a crashed node on: a fresh router from its configuration, then Startup.
    pub fn restart(&mut self, node: NodeId) {
        let at = self.now;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if n.router.is_some() {
            return;
        }
        // The configuration was validated when the node was added.
        n.router = VirtualRouter::new(n.config.clone()).ok();
        self.trace.push(Entry {
            at,
            node,
            event: Event::Restart,
        });
        self.input(node, Input::Startup);
    }

    /// Moves the node into `segment`; frames cross only within a segment.
    pub fn set_segment(&mut self, node: NodeId, segment: u32) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.segment = segment;
        }
    }

    /// Puts every node back into segment 0.
    pub fn heal(&mut self) {
        for n in &mut self.nodes {
            n.segment = 0;
        }
    }

    /// The next time something happens, if anything is scheduled.
    pub fn next_event(&self) -> Option<Duration> {
        let frame = self.frames.peek().map(|f| f.at);
        let timer = self.next_timer().map(|(t, _)| t);
        match (frame, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn next_timer(&self) -> Option<(Duration, NodeId)> {
        let mut best: Option<(Duration, NodeId)> = None;
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(t) = n.router.as_ref().and_then(VirtualRouter::poll_timeout) {
                let d = t.saturating_duration_since(self.epoch);
                if best.is_none_or(|(b, _)| d < b) {
                    best = Some((d, i));
                }
            }
        }
        best
    }

    /// Runs the next event if it is due at or before `limit` and returns true; otherwise
    /// advances the clock to `limit` and returns false.
    pub fn step(&mut self, limit: Duration) -> bool {
        let frame_at = self.frames.peek().map(|f| f.at);
        let timer = self.next_timer();
        let frame_first = match (frame_at, timer) {
            (Some(f), Some((t, _))) => f <= t,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => {
                self.now = self.now.max(limit);
                return false;
            }
        };
        if frame_first {
            let Some(frame) = self.frames.peek() else {
                return false;
            };
            if frame.at > limit {
                self.now = self.now.max(limit);
                return false;
            }
            if let Some(frame) = self.frames.pop() {
                self.now = self.now.max(frame.at);
                self.deliver(&frame);
            }
        } else if let Some((t, node)) = timer {
            if t > limit {
                self.now = self.now.max(limit);
                return false;
            }
            self.now = self.now.max(t);
            let now = self.instant();
            if let Some(r) = self.nodes.get_mut(node).and_then(|n| n.router.as_mut()) {
                r.handle_timeout(now);
            }
            self.drain(node);
        }
        true
    }

    /// Runs every event due up to `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
    }

    /// Runs for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn deliver(&mut self, frame: &Frame) {
        let now = self.instant();
        let Some(n) = self.nodes.get_mut(frame.to) else {
            return;
        };
        if n.segment != frame.segment {
            return;
        }
        let Some(r) = n.router.as_mut() else {
            return;
        };
        let addresses = match frame.family {
            Family::V4 => Addresses::V4(&frame.addresses),
            Family::V6 => Addresses::V6(&frame.addresses),
        };
        let advert = Advertisement {
            version: frame.version,
            vrid: frame.vrid,
            priority: frame.priority,
            interval_cs: frame.interval_cs,
            auth: frame.auth,
            addresses,
        };
        r.handle(
            now,
            Input::Advertisement {
                src: frame.src,
                advert,
            },
        );
        self.delivered += 1;
        self.drain(frame.to);
    }

    /// Applies the node's pending actions.
    fn drain(&mut self, node: NodeId) {
        let at = self.now;
        loop {
            let Some(n) = self.nodes.get_mut(node) else {
                return;
            };
            let Some(r) = n.router.as_mut() else {
                return;
            };
            let Some(action) = r.poll_action() else {
                return;
            };
            let event = match action {
                Action::SendAdvertisement { advert, .. } => {
                    let template = Frame {
                        at,
                        seq: 0,
                        to: 0,
                        segment: n.segment,
                        src: n.config.primary_address,
                        version: advert.version,
                        vrid: advert.vrid,
                        priority: advert.priority,
                        interval_cs: advert.interval_cs,
                        auth: advert.auth,
                        family: advert.addresses.family(),
                        addresses: Arc::clone(&n.addresses),
                    };
                    let record = self.record_adverts.then_some(Event::Sent(advert.priority));
                    self.multicast(node, template);
                    record
                }
                Action::AddAddresses(_) => {
                    n.holds = true;
                    Some(Event::Addresses(true))
                }
                Action::RemoveAddresses(_) => {
                    n.holds = false;
                    Some(Event::Addresses(false))
                }
                Action::Announce { count, .. } => Some(Event::Announce(count)),
                Action::StateChanged { from, to, reason } => {
                    Some(Event::State { from, to, reason })
                }
            };
            if let Some(event) = event {
                self.trace.push(Entry { at, node, event });
            }
        }
    }

    fn multicast(&mut self, from: NodeId, template: Frame) {
        let net = self.network;
        for to in 0..self.nodes.len() {
            if to == from || self.nodes.get(to).map(|n| n.segment) != Some(template.segment) {
                continue;
            }
            if self.rng.chance(net.loss) {
                continue;
            }
            let copies = if self.rng.chance(net.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let mut delay = self.rng.duration(net.delay_min, net.delay_max);
                if self.rng.chance(net.reorder) {
                    delay += net.reorder_extra;
                }
                self.seq += 1;
                let frame = Frame {
                    at: self.now + delay,
                    seq: self.seq,
                    to,
                    ..template.clone()
                };
                self.frames.push(frame);
            }
        }
    }
}
