//! The chaos suite's pure parts: a seeded random source, the tree fingerprint the writer and
//! the checker agree on, and the analysis of the VIP ownership timeline into windows.
//!
//! Kept apart from the namespace rig so that the window analysis is unit-tested on synthetic
//! timelines (a checker that cannot see a violation proves nothing).
#![allow(dead_code)]

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::time::{Duration, Instant};

/// SplitMix64: small, fast, and fully determined by the seed (the fault sequence replays
/// with `CHAOS_SEED`).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// An index below `n` (0 when `n` is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.range(0, n as u64) as usize
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A duration in `lo..hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// The files of a flat data tree: (name, hash of its content) in name order (the writer only
/// makes regular files at the top level; anything else is listed with its type as the hash so
/// that it cannot go unnoticed).
pub fn tree_files(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        names.push((e.file_name().to_string_lossy().into_owned(), e.file_type()?));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out = Vec::with_capacity(names.len());
    for (name, ty) in names {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        if ty.is_file() {
            std::fs::read(dir.join(&name))?.hash(&mut h);
        } else {
            format!("{ty:?}").hash(&mut h);
        }
        out.push((name, h.finish()));
    }
    Ok(out)
}

/// The fingerprint of a tree listed by [`tree_files`].
pub fn fingerprint(files: &[(String, u64)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    files.hash(&mut h);
    h.finish()
}

/// [`tree_files`] then [`fingerprint`]: the fingerprint and the file count.
pub fn tree_fingerprint(dir: &Path) -> std::io::Result<(u64, usize)> {
    let files = tree_files(dir)?;
    Ok((fingerprint(&files), files.len()))
}

/// How `have` differs from `want`: names with other content, missing and extra.
pub fn tree_diff(
    have: &[(String, u64)],
    want: &[(String, u64)],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let w: std::collections::BTreeMap<&str, u64> =
        want.iter().map(|(n, h)| (n.as_str(), *h)).collect();
    let h: std::collections::BTreeMap<&str, u64> =
        have.iter().map(|(n, h)| (n.as_str(), *h)).collect();
    let changed = h
        .iter()
        .filter(|(n, x)| w.get(*n).is_some_and(|y| y != *x))
        .map(|(n, _)| n.to_string())
        .collect();
    let missing = w
        .keys()
        .filter(|n| !h.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    let extra = h
        .keys()
        .filter(|n| !w.contains_key(*n))
        .map(|n| n.to_string())
        .collect();
    (changed, missing, extra)
}

/// One change of a node's condition or of its VIP, at an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The node's interface gained (`true`) or lost the VIP (from `ip -ts monitor address`).
    Vip(bool),
    /// The daemon process is running.
    Alive(bool),
    /// The node's switch port is up (down also takes its carrier away).
    Port(bool),
    /// The node is cut off the bridge with its carrier up (a partition).
    Partitioned(bool),
    /// The node is in active backup mode (a passive node never takes over).
    Active(bool),
    /// Packet loss/delay is applied on the node's port.
    Netem(bool),
}

/// A timeline entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// When.
    pub at: Instant,
    /// Which node (index).
    pub node: usize,
    /// What changed.
    pub change: Change,
}

/// What a window is a window of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindowKind {
    /// A node that could be master (running, active, carrier up) sees no running node holding
    /// the VIP on its side of the network.
    NoOwner,
    /// Two or more running nodes that can hear each other hold the VIP.
    TwoOwners,
    /// A dead (SIGKILLed) node still holds the VIP (the kernel answers ARP for it).
    StaleOnDeadNode,
    /// Two owners, one of them a node restarted after SIGKILL that kept the VIP its killed
    /// process left on the interface (it is backup, yet holds the address).
    StaleAtRestart,
}

/// A maximal interval during which a condition held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Its kind.
    pub kind: WindowKind,
    /// Start.
    pub start: Instant,
    /// End (the end of the run if it was still open).
    pub end: Instant,
    /// Whether packet loss/delay was applied anywhere during the window (such windows are
    /// reported, not held to the protocol bounds).
    pub netem: bool,
}

impl Window {
    /// Its length.
    pub fn len(&self) -> Duration {
        self.end.saturating_duration_since(self.start)
    }
}

#[derive(Clone, Copy, Debug)]
struct Cond {
    /// Restarted while holding the VIP, and not yet the only owner since.
    restarted_stale: bool,
    vip: bool,
    alive: bool,
    port: bool,
    part: bool,
    active: bool,
    netem: bool,
}

/// Replays the timeline (any order; sorted here) for `nodes` nodes that start not running,
/// ports up, active, without the VIP, and returns every window that started at or after
/// `from` (earlier ones are the rig coming up), closing open ones at `end`.
///
/// Sides of the network: nodes whose port is up and who are not partitioned share the bridge;
/// every other node is alone.
pub fn analyze(nodes: usize, events: &[Event], from: Instant, end: Instant) -> Vec<Window> {
    let mut evs = events.to_vec();
    evs.sort_by_key(|e| e.at);
    let mut c = vec![
        Cond {
            restarted_stale: false,
            vip: false,
            alive: false,
            port: true,
            part: false,
            active: true,
            netem: false,
        };
        nodes
    ];
    let kinds = [
        WindowKind::NoOwner,
        WindowKind::TwoOwners,
        WindowKind::StaleOnDeadNode,
        WindowKind::StaleAtRestart,
    ];
    let mut open: [Option<(Instant, bool)>; 4] = [None; 4];
    let mut out = Vec::new();
    let mut i = 0;
    while i < evs.len() {
        let t = evs[i].at;
        // Apply every change made at this instant before judging it.
        while i < evs.len() && evs[i].at == t {
            let e = evs[i];
            if let Some(n) = c.get_mut(e.node) {
                match e.change {
                    Change::Vip(v) => {
                        n.vip = v;
                        if !v {
                            n.restarted_stale = false;
                        }
                    }
                    Change::Alive(v) => {
                        if v && !n.alive && n.vip {
                            n.restarted_stale = true;
                        }
                        n.alive = v
                    }
                    Change::Port(v) => n.port = v,
                    Change::Partitioned(v) => n.part = v,
                    Change::Active(v) => n.active = v,
                    Change::Netem(v) => n.netem = v,
                }
            }
            i += 1;
        }
        let held = judge(&c);
        if !held[1] && !held[3] {
            for n in c.iter_mut() {
                n.restarted_stale = false;
            }
        }
        let netem = c.iter().any(|n| n.netem);
        for (k, &on) in held.iter().enumerate() {
            match (on, open[k]) {
                (true, None) => open[k] = Some((t, netem)),
                (true, Some((s, ne))) => open[k] = Some((s, ne || netem)),
                (false, Some((s, ne))) => {
                    if s >= from {
                        out.push(Window {
                            kind: kinds[k],
                            start: s,
                            end: t,
                            netem: ne,
                        });
                    }
                    open[k] = None;
                }
                (false, None) => {}
            }
        }
    }
    for (k, o) in open.iter().enumerate() {
        if let Some((s, ne)) = *o {
            if s >= from {
                out.push(Window {
                    kind: kinds[k],
                    start: s,
                    end,
                    netem: ne,
                });
            }
        }
    }
    out.sort_by_key(|w| w.start);
    out
}

/// [no owner, two owners, stale on a dead node, two owners with a restarted stale one] for
/// one instant.
fn judge(c: &[Cond]) -> [bool; 4] {
    let on_bridge = |n: &Cond| n.port && !n.part;
    let owner = |n: &Cond| n.vip && n.alive;
    let bridge_owners = c.iter().filter(|n| on_bridge(n) && owner(n)).count();
    let no_owner = c.iter().any(|n| {
        let eligible = n.alive && n.active && n.port;
        if !eligible {
            return false;
        }
        if on_bridge(n) {
            bridge_owners == 0
        } else {
            !owner(n)
        }
    });
    let two = bridge_owners >= 2;
    let restarted = c
        .iter()
        .any(|n| on_bridge(n) && owner(n) && n.restarted_stale);
    let stale = c.iter().any(|n| n.vip && !n.alive);
    [no_owner, two && !restarted, stale, two && restarted]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(base: Instant, m: u64) -> Instant {
        base + Duration::from_millis(m)
    }

    fn ev(at: Instant, node: usize, change: Change) -> Event {
        Event { at, node, change }
    }

    #[test]
    fn rng_replays_from_its_seed() {
        let a: Vec<u64> = {
            let mut r = Rng::new(7);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let mut r = Rng::new(7);
        assert!(a.iter().all(|&x| x == r.next_u64()));
        let mut other = Rng::new(8);
        assert_ne!(a[0], other.next_u64());
        for _ in 0..1000 {
            let v = r.range(3, 9);
            assert!((3..9).contains(&v));
        }
    }

    #[test]
    fn fingerprint_sees_content_names_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), "1").unwrap();
        std::fs::write(d.path().join("b"), "2").unwrap();
        let (f1, n) = tree_fingerprint(d.path()).unwrap();
        assert_eq!(n, 2);
        std::fs::write(d.path().join("b"), "3").unwrap();
        let (f2, _) = tree_fingerprint(d.path()).unwrap();
        assert_ne!(f1, f2);
        std::fs::write(d.path().join("b"), "2").unwrap();
        assert_eq!(tree_fingerprint(d.path()).unwrap().0, f1);
        std::fs::rename(d.path().join("b"), d.path().join("c")).unwrap();
        assert_ne!(tree_fingerprint(d.path()).unwrap().0, f1);
    }

    #[test]
    fn master_killed_gives_a_no_owner_window_until_the_backup_takes_over_and_a_stale_one() {
        let t = Instant::now();
        let evs = vec![
            ev(ms(t, 0), 0, Change::Alive(true)),
            ev(ms(t, 0), 1, Change::Alive(true)),
            ev(ms(t, 300), 0, Change::Vip(true)),
            // SIGKILL of the master at 1000; the backup takes over at 1350.
            ev(ms(t, 1000), 0, Change::Alive(false)),
            ev(ms(t, 1350), 1, Change::Vip(true)),
            // Restarted at 2000, it removes its stale VIP at 2100.
            ev(ms(t, 2000), 0, Change::Alive(true)),
            ev(ms(t, 2100), 0, Change::Vip(false)),
        ];
        let w = analyze(2, &evs, ms(t, 500), ms(t, 3000));
        assert_eq!(w.len(), 3, "{w:?}");
        let no = w.iter().find(|w| w.kind == WindowKind::NoOwner).unwrap();
        assert_eq!((no.start, no.end), (ms(t, 1000), ms(t, 1350)));
        let stale = w
            .iter()
            .find(|w| w.kind == WindowKind::StaleOnDeadNode)
            .unwrap();
        assert_eq!((stale.start, stale.end), (ms(t, 1000), ms(t, 2000)));
        // Restarted while still holding the VIP: two running owners until it lets go.
        let two = w
            .iter()
            .find(|w| w.kind == WindowKind::StaleAtRestart)
            .unwrap();
        assert_eq!((two.start, two.end), (ms(t, 2000), ms(t, 2100)));
        // The start-up window (before `from`) is not reported.
        assert!(w.iter().all(|w| w.start >= ms(t, 500)));
    }

    #[test]
    fn partition_two_masters_count_only_after_the_heal() {
        let t = Instant::now();
        let evs = vec![
            ev(ms(t, 0), 0, Change::Alive(true)),
            ev(ms(t, 0), 1, Change::Alive(true)),
            ev(ms(t, 100), 0, Change::Vip(true)),
            ev(ms(t, 1000), 0, Change::Partitioned(true)),
            // The cut-off backup elects itself: its side had no owner for 360 ms.
            ev(ms(t, 1360), 1, Change::Vip(true)),
            // Heal at 3000; the lower priority yields 40 ms later.
            ev(ms(t, 3000), 0, Change::Partitioned(false)),
            ev(ms(t, 3040), 1, Change::Vip(false)),
        ];
        let w = analyze(2, &evs, ms(t, 500), ms(t, 4000));
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].kind, WindowKind::NoOwner);
        assert_eq!(w[0].len(), Duration::from_millis(360));
        assert_eq!(w[1].kind, WindowKind::TwoOwners);
        assert_eq!(w[1].len(), Duration::from_millis(40));
        assert!(!w[1].netem);
    }

    #[test]
    fn a_port_down_node_is_not_eligible_and_passive_nodes_do_not_count() {
        let t = Instant::now();
        let evs = vec![
            ev(ms(t, 0), 0, Change::Alive(true)),
            ev(ms(t, 0), 1, Change::Alive(true)),
            ev(ms(t, 100), 0, Change::Vip(true)),
            ev(ms(t, 500), 1, Change::Active(false)),
            // The master's port goes down and it releases; the passive node stays standby:
            // nobody is eligible, so no window, until the passive node becomes active.
            ev(ms(t, 1000), 0, Change::Port(false)),
            ev(ms(t, 1010), 0, Change::Vip(false)),
            ev(ms(t, 2000), 1, Change::Active(true)),
            ev(ms(t, 2400), 1, Change::Vip(true)),
            ev(ms(t, 2500), 0, Change::Netem(true)),
            ev(ms(t, 2600), 0, Change::Port(true)),
            ev(ms(t, 2900), 0, Change::Vip(true)),
            ev(ms(t, 2950), 1, Change::Vip(false)),
            ev(ms(t, 3000), 0, Change::Netem(false)),
        ];
        let w = analyze(2, &evs, ms(t, 200), ms(t, 4000));
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(w[0].kind, WindowKind::NoOwner);
        assert_eq!((w[0].start, w[0].end), (ms(t, 2000), ms(t, 2400)));
        assert_eq!(w[1].kind, WindowKind::TwoOwners);
        assert_eq!(w[1].len(), Duration::from_millis(50));
        assert!(w[1].netem);
    }
}
