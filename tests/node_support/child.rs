//! Our node as a separate process, for the comparison runners: a bench binary re-executes
//! itself inside a namespace (`ip netns exec NS <bench binary>`) with [`CHILD_ENV`] set, and
//! the child runs [`child_main`] instead of the benchmark. Like keepalived, it can then be
//! killed with SIGKILL, stopped with SIGTERM, and measured from `/proc` (CPU, RSS).
//!
//! The child prints `ready` once its runtime is up, one `T VRID FROM TO` line per transition
//! and `stopped` at the end, on stdout (the parent's `netlab::Process` collects the lines).

use std::io::Write;
use std::time::Duration;

use vrrp::linux::runtime::{block_termination_signals, Event, InstanceConfig, Node, Options};
use vrrp::linux::VirtualAddress;
use vrrp::wire::Version;

/// Environment variable that turns a bench binary into a node child; the value is a
/// [`ChildSpec`] in its `Display` form.
pub const CHILD_ENV: &str = "VRRP_BENCH_NODE_CHILD";

/// What a child node runs: `count` instances with VRIDs `first_vrid..`, all at `priority`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildSpec {
    /// The first VRID.
    pub first_vrid: u8,
    /// How many instances (consecutive VRIDs).
    pub count: u16,
    /// The priority of every instance.
    pub priority: u8,
    /// The advertisement interval in milliseconds.
    pub interval_ms: u64,
    /// 2 or 3.
    pub version: u8,
    /// `SCHED_FIFO` priority of the runtime thread, 0 for none.
    pub realtime: i32,
}

impl std::fmt::Display for ChildSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{},{},{},{},{},{}",
            self.first_vrid,
            self.count,
            self.priority,
            self.interval_ms,
            self.version,
            self.realtime
        )
    }
}

impl ChildSpec {
    fn parse(s: &str) -> Option<ChildSpec> {
        let mut it = s.split(',');
        let spec = ChildSpec {
            first_vrid: it.next()?.parse().ok()?,
            count: it.next()?.parse().ok()?,
            priority: it.next()?.parse().ok()?,
            interval_ms: it.next()?.parse().ok()?,
            version: it.next()?.parse().ok()?,
            realtime: it.next()?.parse().ok()?,
        };
        (spec.first_vrid >= 1
            && spec.count >= 1
            && u16::from(spec.first_vrid) + spec.count <= 256
            && (spec.version == 2 || spec.version == 3))
            .then_some(spec)
    }

    /// The virtual address of `vrid`: the single-instance rig uses `10.99.0.100/24` (the
    /// client's subnet); a many-instance node gives each VRID its own host address
    /// `10.99.1.VRID/32`.
    pub fn vip(&self, vrid: u8) -> String {
        if self.count == 1 {
            "10.99.0.100/24".to_string()
        } else {
            format!("10.99.1.{vrid}/32")
        }
    }

    /// The instances this spec describes.
    pub fn instances(&self) -> Vec<InstanceConfig> {
        (0..self.count)
            .filter_map(|k| u8::try_from(u16::from(self.first_vrid) + k).ok())
            .filter_map(|vrid| {
                let vip: VirtualAddress = self.vip(vrid).parse().ok()?;
                let mut c = InstanceConfig::new(&format!("VI_{vrid}"), "eth0", vrid, &[vip]);
                c.router.priority = self.priority;
                c.router.version = if self.version == 2 {
                    Version::V2
                } else {
                    Version::V3
                };
                c.router.advertisement_interval = Duration::from_millis(self.interval_ms);
                Some(c)
            })
            .collect()
    }
}

/// Starts this executable again as a node with `spec` in `member`'s namespace and waits up to
/// `ready_within` for it to say "ready"; `None` when it cannot start or does not get ready.
pub fn spawn(
    lab: &netlab::Lab,
    member: &netlab::Member,
    spec: &ChildSpec,
    ready_within: Duration,
) -> Option<netlab::Process> {
    let exe = std::env::current_exe().ok()?;
    let p = lab
        .spawn_env(member, &[exe.to_str()?], &[(CHILD_ENV, &spec.to_string())])
        .ok()?;
    p.wait_for_output("ready", ready_within).ok()?;
    Some(p)
}

/// Runs the child node when [`CHILD_ENV`] is set and returns `true` after it stopped;
/// returns `false` at once otherwise (the caller then runs the benchmark).
pub fn child_main() -> bool {
    let Ok(text) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let Some(spec) = ChildSpec::parse(&text) else {
        eprintln!("bad {CHILD_ENV} value `{text}`");
        std::process::exit(2);
    };
    if let Err(e) = block_termination_signals() {
        eprintln!("cannot block SIGTERM/SIGINT: {e}");
        std::process::exit(1);
    }
    let options = Options {
        stop_on_signals: true,
        realtime_priority: (spec.realtime > 0).then_some(spec.realtime),
    };
    let node = match Node::start(spec.instances(), options) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("node does not start: {e}");
            std::process::exit(1);
        }
    };
    let out = std::io::stdout();
    let _ = writeln!(out.lock(), "ready");
    for ev in node.events().iter() {
        match ev {
            Event::StateChanged { vrid, from, to, .. } => {
                let _ = writeln!(out.lock(), "T {vrid} {from} {to}");
            }
            Event::Stopped => break,
            _ => {}
        }
    }
    node.join();
    let _ = writeln!(out.lock(), "stopped");
    true
}
