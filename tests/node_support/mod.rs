//! Helpers shared by the node tests: start an in-process node inside a namespace, wait for
//! its transitions.
#![allow(dead_code)]

pub mod child;
pub mod cli;
pub mod probe;

use std::time::{Duration, Instant};

use vrrp::linux::runtime::{Event, InstanceConfig, Node, Options};
use vrrp::linux::VirtualAddress;
use vrrp::router::{Reason, State};
use vrrp::wire::Version;

/// Starts a node inside the namespace: the sockets and the runtime thread live there.
pub fn start_in(netns: &str, instances: Vec<InstanceConfig>) -> Node {
    let ns = netns.to_string();
    std::thread::spawn(move || {
        let _g = netlab::enter(&ns).expect("enter namespace");
        Node::start(instances, Options::default()).expect("node starts")
    })
    .join()
    .expect("starter thread")
}

/// A VRRPv3 instance on eth0 with the given priority, interval and addresses.
pub fn instance(vrid: u8, priority: u8, interval_ms: u64, vips: &[&str]) -> InstanceConfig {
    let vips: Vec<VirtualAddress> = vips.iter().map(|v| v.parse().expect("vip")).collect();
    let mut c = InstanceConfig::new(&format!("VI_{vrid}"), "eth0", vrid, &vips);
    c.router.priority = priority;
    c.router.version = Version::V3;
    c.router.advertisement_interval = Duration::from_millis(interval_ms);
    c
}

/// Waits for the event of instance `idx` entering `state` at or after `since`; returns when it
/// happened and why.
/// Unlike [`wait_state`] it never answers from the status snapshot: the caller wants the
/// transition's reason (RFC 5798 section 6.4), e.g. `MasterReleased` after a priority-0 advert
/// versus `MasterDown` after silence. Events before it are consumed.
pub fn wait_transition(
    node: &Node,
    idx: usize,
    state: State,
    since: Instant,
    timeout: Duration,
) -> Option<(Instant, Reason)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match node.events().recv_timeout(left) {
            Ok(Event::StateChanged {
                instance,
                to,
                at,
                reason,
                ..
            }) if instance == idx && to == state && at >= since => return Some((at, reason)),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// Waits until instance `idx` of the node enters `state`; returns when (per the event).
pub fn wait_state(node: &Node, idx: usize, state: State, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    // The state may already be reached.
    if node.status().instances.get(idx).map(|s| s.state) == Some(state) {
        return Some(Instant::now());
    }
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match node.events().recv_timeout(left) {
            Ok(Event::StateChanged {
                instance, to, at, ..
            }) if instance == idx && to == state => return Some(at),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
}

/// The current state of instance `idx`.
pub fn state(node: &Node, idx: usize) -> Option<State> {
    node.status().instances.get(idx).map(|s| s.state)
}

/// Polls `f` every 10 ms until true or the timeout.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// Master_Down_Interval for a backup of this priority at this interval (RFC 5798 6.1).
pub fn master_down(priority: u8, interval: Duration) -> Duration {
    vrrp::router::master_down_interval(Version::V3, priority, interval)
}

/// Skew_Time for a backup of this priority at this interval (RFC 5798 6.1).
pub fn skew(priority: u8, interval: Duration) -> Duration {
    vrrp::router::skew_time(Version::V3, priority, interval)
}
