//! Stability runner: VRRPv3 at 10 ms adverts on a loaded machine, our node against keepalived
//! 2.2.7 under the same busy loops; counts transitions that should not happen.
//!
//! Each run builds a lab with a master `a` (priority 200) and a backup `b` (priority 100), one
//! VIP, both nodes separate processes (this binary re-executed as our node, with the CLI's
//! default `SCHED_FIFO` 10 for its runtime thread; keepalived with its defaults). Once the
//! election has settled, one busy-loop thread per core starts, and for the window every VIP
//! address change on either node (`ip -ts monitor address`, events) is a spurious transition;
//! our node's own transition lines are counted too. Goal (issue 8): zero over 10 minutes.
//!
//! `cargo bench --bench node_stability`. Env knobs: `STABILITY_SECS` (our window, default
//! 600), `STABILITY_PEER_SECS` (keepalived's window, default 120: the 2 minutes),
//! `STABILITY_BUSY` (busy threads, default: the number of cores), `STABILITY_INTERVAL_MS`
//! (default 10). Needs root and keepalived.

#[path = "report/mod.rs"]
mod report;

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netlab::{Keepalived, Lab, Member, Process};
use node_support::child::{child_main, ChildSpec};

const PEER: &str = "keepalived 2.2.7";
const VIP: &str = "10.99.0.100";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Peer {
    Ours,
    Keepalived,
}

enum Running {
    Ours(Process),
    Ka(Keepalived),
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn start(lab: &Lab, m: &Member, peer: Peer, prio: u8, interval_ms: u64) -> Option<Running> {
    match peer {
        Peer::Ours => {
            let spec = ChildSpec {
                first_vrid: 61,
                count: 1,
                priority: prio,
                interval_ms,
                version: 3,
                realtime: 10,
            };
            Some(Running::Ours(node_support::child::spawn(
                lab,
                m,
                &spec,
                Duration::from_secs(10),
            )?))
        }
        Peer::Keepalived => {
            let conf = format!(
                "global_defs {{\n  router_id KA\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n}}\n\
                 vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  \
                 priority {prio}\n  advert_int {}\n  virtual_ipaddress {{\n    10.99.0.100/24 dev eth0\n  }}\n}}\n",
                interval_ms as f64 / 1000.0
            );
            Some(Running::Ka(lab.keepalived(m, &conf).ok()?))
        }
    }
}

/// Our node's transition lines (`T VRID FROM TO`) so far.
fn our_transitions(r: &Running) -> usize {
    match r {
        Running::Ours(p) => p.output().iter().filter(|l| l.starts_with("T ")).count(),
        Running::Ka(k) => k
            .log()
            .lines()
            .filter(|l| l.contains("Entering MASTER STATE") || l.contains("Entering BACKUP STATE"))
            .count(),
    }
}

/// One window: (VIP address changes on either node, the node's own transition count).
fn one_run(peer: Peer, secs: u64, busy: usize, interval_ms: u64) -> Result<(usize, usize), String> {
    let mut lab = Lab::new("stab").map_err(|e| e.to_string())?;
    let a = lab
        .add_member("a", &["10.99.0.1/24"])
        .map_err(|e| e.to_string())?;
    let b = lab
        .add_member("b", &["10.99.0.2/24"])
        .map_err(|e| e.to_string())?;
    let ra = start(&lab, &a, peer, 200, interval_ms).ok_or("master does not start")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab.has_address(&a, VIP).unwrap_or(false) {
        if Instant::now() > deadline {
            return Err("no VIP on the master".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let rb = start(&lab, &b, peer, 100, interval_ms).ok_or("backup does not start")?;
    std::thread::sleep(Duration::from_secs(2));
    if lab.has_address(&b, VIP).unwrap_or(true) || !lab.has_address(&a, VIP).unwrap_or(false) {
        return Err("not settled before the load".into());
    }
    let (ma, mb) = (
        lab.monitor_addresses(&a).map_err(|e| e.to_string())?,
        lab.monitor_addresses(&b).map_err(|e| e.to_string())?,
    );
    let before = our_transitions(&ra) + our_transitions(&rb);
    let stop = Arc::new(AtomicBool::new(false));
    let loops: Vec<_> = (0..busy)
        .map(|_| {
            let s = stop.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 0;
                while !s.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let _ = l.join();
    }
    let changes = ma
        .events()
        .iter()
        .chain(mb.events().iter())
        .filter(|e| e.address == VIP && e.at >= t0)
        .count();
    let transitions = (our_transitions(&ra) + our_transitions(&rb)).saturating_sub(before);
    drop(rb);
    drop(ra);
    Ok((changes, transitions))
}

fn main() {
    if child_main() {
        return;
    }
    if let Some(reason) = netlab::skip_reason_with(&["keepalived"]) {
        eprintln!("node_stability skipped: {reason}");
        return;
    }
    let ours_secs = env_u64("STABILITY_SECS", 600).max(1);
    let peer_secs = env_u64("STABILITY_PEER_SECS", 120).max(1);
    let interval_ms = env_u64("STABILITY_INTERVAL_MS", 10).clamp(10, 40_950);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let busy = usize::try_from(env_u64("STABILITY_BUSY", cores as u64)).unwrap_or(cores);
    println!(
        "node_stability: v3 {interval_ms} ms adverts, {busy} busy-loop threads; ours {ours_secs} s, keepalived {peer_secs} s"
    );
    println!("| impl | window s | VIP changes (spurious) | transitions logged | per minute |");
    println!("|---|---|---|---|---|");
    let mut per_min = [Vec::new(), Vec::new()];
    for (pi, (peer, secs)) in [(Peer::Ours, ours_secs), (Peer::Keepalived, peer_secs)]
        .into_iter()
        .enumerate()
    {
        match one_run(peer, secs, busy, interval_ms) {
            Ok((changes, transitions)) => {
                let pm = changes as f64 * 60.0 / secs as f64;
                println!("| {peer:?} | {secs} | {changes} | {transitions} | {pm:.2} |");
                per_min[pi].push(pm);
                report::record(&report::Figure {
                    group: "stability",
                    case: &format!("v3 {interval_ms}ms, {busy} busy loops, {secs} s"),
                    metric: "spurious VIP changes",
                    unit: "count",
                    higher_is_better: false,
                    ours: &if pi == 0 {
                        vec![changes as f64]
                    } else {
                        vec![]
                    },
                    peer_name: PEER,
                    peer: &if pi == 1 {
                        vec![changes as f64]
                    } else {
                        vec![]
                    },
                    goal: Some("0 over 10 minutes"),
                });
            }
            Err(e) => println!("| {peer:?} | {secs} | failed: {e} | | |"),
        }
    }
    report::record(&report::Figure {
        group: "stability",
        case: &format!("v3 {interval_ms}ms, {busy} busy loops"),
        metric: "spurious VIP changes per minute",
        unit: "1/min",
        higher_is_better: false,
        ours: &per_min[0],
        peer_name: PEER,
        peer: &per_min[1],
        goal: Some("0"),
    });
}
