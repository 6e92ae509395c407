//! Failover comparison runner: our node against keepalived 2.2.7 in the same namespace rig,
//! same cases, several runs each; prints medians, ranges and the ratio ours / keepalived.
//!
//! Each run builds a fresh lab (master priority 200, backup priority 100, one VIP), waits for
//! the election to settle, then either cuts the master's switch port (port down; the dead
//! master is then stopped) or stops the master with SIGTERM (priority 0). The time is from the
//! fault to the VIP appearing on the backup, seen by `ip -ts monitor address` inside the
//! backup (an event, not a poll). Needs root and keepalived; prints why and exits otherwise.
//!
//! `cargo bench --bench node_failover -- [RUNS] [INTERVAL_MS ...]` (defaults: 5 runs, 10 ms).

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::time::{Duration, Instant};

use netlab::{Keepalived, Lab};
use node_support::{instance, start_in, wait_state};
use vrrp::linux::Node;
use vrrp::router::State;

const VIP: &str = "10.99.0.100";
const LONG: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, PartialEq)]
enum Peer {
    Ours,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    PortDown,
    Sigterm,
}

enum Running {
    Ours(Node),
    Ka(Keepalived),
}

fn ka_conf(prio: u8, interval_ms: u64) -> String {
    format!(
        "global_defs {{\n  router_id KA\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  \
         priority {prio}\n  advert_int {}\n  virtual_ipaddress {{\n    10.99.0.100/24 dev eth0\n  }}\n}}\n",
        interval_ms as f64 / 1000.0
    )
}

fn start(lab: &Lab, m: &netlab::Member, peer: Peer, prio: u8, interval_ms: u64) -> Running {
    match peer {
        Peer::Ours => Running::Ours(start_in(
            &m.netns,
            vec![instance(61, prio, interval_ms, &["10.99.0.100/24"])],
        )),
        Peer::Keepalived => Running::Ka(
            lab.keepalived(m, &ka_conf(prio, interval_ms))
                .expect("keepalived starts"),
        ),
    }
}

fn one_run(peer: Peer, fault: Fault, interval_ms: u64) -> Option<Duration> {
    let mut lab = Lab::new("bench").ok()?;
    let a = lab.add_member("a", &["10.99.0.1/24"]).ok()?;
    let b = lab.add_member("b", &["10.99.0.2/24"]).ok()?;
    let master = start(&lab, &a, peer, 200, interval_ms);
    let deadline = Instant::now() + LONG;
    while !lab.has_address(&a, VIP).unwrap_or(false) {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let backup = start(&lab, &b, peer, 100, interval_ms);
    if let Running::Ours(n) = &backup {
        wait_state(n, 0, State::Backup, LONG)?;
    }
    // Settle: the backup has heard the master for a while.
    std::thread::sleep(Duration::from_millis(1000.max(interval_ms * 10)));
    if lab.has_address(&b, VIP).unwrap_or(true) {
        return None;
    }
    let mon = lab.monitor_addresses(&b).ok()?;
    let t0 = Instant::now();
    match fault {
        Fault::PortDown => {
            lab.set_port(&a, false).ok()?;
        }
        Fault::Sigterm => match &master {
            Running::Ka(k) => k.process().signal(libc::SIGTERM).ok()?,
            Running::Ours(_) => {}
        },
    }
    let master = match (fault, master) {
        (Fault::Sigterm, Running::Ours(n)) => {
            n.shutdown();
            None
        }
        (_, m) => Some(m),
    };
    let e = mon.wait_for_address(VIP, true, t0, LONG)?;
    drop(master);
    drop(backup);
    Some(e.at.duration_since(t0))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    if let Some(reason) = netlab::skip_reason_with(&["keepalived"]) {
        eprintln!("node_failover skipped: {reason}");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(5);
    let intervals: Vec<u64> = args.iter().skip(1).filter_map(|s| s.parse().ok()).collect();
    let intervals = if intervals.is_empty() {
        vec![10]
    } else {
        intervals
    };
    println!("| case | ours median (range) | keepalived median (range) | ratio |");
    println!("|---|---|---|---|");
    for interval in intervals {
        for (fault, fname) in [(Fault::PortDown, "port down"), (Fault::Sigterm, "SIGTERM")] {
            let mut res = Vec::new();
            for peer in [Peer::Ours, Peer::Keepalived] {
                let mut v: Vec<Duration> = (0..runs)
                    .filter_map(|_| one_run(peer, fault, interval))
                    .collect();
                let failed = runs - v.len();
                let (lo, hi) = (
                    v.iter().min().copied().unwrap_or_default(),
                    v.iter().max().copied().unwrap_or_default(),
                );
                let m = median(&mut v);
                res.push((m, lo, hi, failed));
            }
            let (o, k) = (res[0], res[1]);
            println!(
                "| v3 {interval} ms, {fname} -> VIP on backup | {:.1} ms ({:.1}-{:.1}){} | {:.1} ms ({:.1}-{:.1}){} | {:.2} |",
                ms(o.0),
                ms(o.1),
                ms(o.2),
                if o.3 > 0 { format!(" [{} failed]", o.3) } else { String::new() },
                ms(k.0),
                ms(k.1),
                ms(k.2),
                if k.3 > 0 { format!(" [{} failed]", k.3) } else { String::new() },
                if k.0.is_zero() { 0.0 } else { o.0.as_secs_f64() / k.0.as_secs_f64() }
            );
        }
    }
}
