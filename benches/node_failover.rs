//! Failover comparison runner: our node against keepalived 2.2.7 in the same namespace rig,
//! same cases, several runs each; prints medians, ranges, worst cases and the ratio
//! ours / keepalived, and records every run with `report::record` (group "failover").
//!
//! Each run builds a fresh lab: master `a` (priority 200), backup `b` (priority 100), client
//! `c`, one VIP (10.99.0.100/24, VRID 61). Both nodes are separate processes: keepalived, or
//! this bench binary re-executed as our node (`node_support::child`), so both can be killed
//! the same way. Once the election has settled the client starts pinging the VIP every
//! millisecond. Then the fault:
//!
//! - "port down+kill": the master's switch port goes down, then the master gets SIGKILL (a
//!   dead node: it can neither advertise nor release its address);
//! - "SIGTERM": the master is stopped with SIGTERM (it sends priority 0 and releases).
//!
//! Two figures per run, both timed from the fault (t = 0) by events, never by forked polls:
//! "takeover" = the VIP appears on the backup (`ip -ts monitor address` inside the backup);
//! "client recovery" = the first echo reply from the backup's MAC address reaches the client
//! (a packet socket in the client; the pinger sends one echo request per millisecond).
//!
//! `cargo bench --bench node_failover -- [RUNS] [CASE ...]` where a CASE is `v3:10`, `v3:100`,
//! `v2:1000` (version:interval in ms) or a bare number (v3 at that interval). Defaults: 5 runs;
//! cases `v3:10 v3:100 v2:1000`. Env knobs (override the arguments): `FAILOVER_RUNS=N`,
//! `FAILOVER_CASES="v3:10 v2:1000"`, `FAILOVER_REALTIME=N` (both nodes real-time: ours
//! `SCHED_FIFO` N, keepalived `vrrp_rt_priority N`; the case names get " rt"). Needs root and keepalived; prints why and exits otherwise.

#[path = "report/mod.rs"]
mod report;

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use netlab::{Keepalived, Lab, Member, Process};
use node_support::child::{child_main, ChildSpec};
use node_support::probe::{parse_mac, Prober};

const VIP: &str = "10.99.0.100";
const LONG: Duration = Duration::from_secs(15);
const PEER: &str = "keepalived 2.2.7";

#[derive(Clone, Copy, PartialEq, Debug)]
enum Peer {
    Ours,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fault {
    PortDownKill,
    Sigterm,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::PortDownKill => "port down+kill",
            Fault::Sigterm => "SIGTERM",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
struct Case {
    version: u8,
    interval_ms: u64,
}

impl Case {
    fn parse(s: &str) -> Option<Case> {
        match s.split_once(':') {
            Some((v, i)) => {
                let version = v.trim_start_matches(['v', 'V']).parse().ok()?;
                let interval_ms: u64 = i.parse().ok()?;
                ((version == 2 && interval_ms.is_multiple_of(1000) && interval_ms > 0)
                    || (version == 3 && (10..=40_950).contains(&interval_ms)))
                .then_some(Case {
                    version,
                    interval_ms,
                })
            }
            None => Case::parse(&format!("v3:{s}")),
        }
    }

    fn label(self) -> String {
        if self.interval_ms.is_multiple_of(1000) {
            format!("v{} {}s", self.version, self.interval_ms / 1000)
        } else {
            format!("v{} {}ms", self.version, self.interval_ms)
        }
    }
}

enum Running {
    Ours(Process),
    Ka(Keepalived),
}

impl Running {
    fn process(&self) -> &Process {
        match self {
            Running::Ours(p) => p,
            Running::Ka(k) => k.process(),
        }
    }

    /// The pid that must die for the node to be dead: our process, or keepalived's VRRP child
    /// (SIGKILL to the parent alone would leave the VRRP process running).
    fn kill(&self, lab: &Lab, m: &Member) {
        let _ = self.process().signal(libc::SIGKILL);
        if let Running::Ka(_) = self {
            let pidfile = lab.dir().join(format!("keepalived-{}-vrrp.pid", m.netns));
            if let Some(pid) = std::fs::read_to_string(pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2) on keepalived's VRRP child, a process this bench started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

/// `FAILOVER_REALTIME=N` (1..=99): real-time scheduling for both nodes, our runtime thread
/// under `SCHED_FIFO` N (the CLI's `--realtime-priority`) and keepalived's VRRP process with
/// `vrrp_rt_priority N`. Unset or 0: both with ordinary scheduling.
fn realtime() -> i32 {
    std::env::var("FAILOVER_REALTIME")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0i32)
        .clamp(0, 99)
}

fn ka_conf(case: Case, prio: u8) -> String {
    let rt = match realtime() {
        0 => String::new(),
        n => format!("  vrrp_rt_priority {n}\n"),
    };
    format!(
        "global_defs {{\n  router_id KA\n  vrrp_version {}\n  vrrp_garp_master_delay 0\n{rt}}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 61\n  \
         priority {prio}\n  advert_int {}\n  virtual_ipaddress {{\n    10.99.0.100/24 dev eth0\n  }}\n}}\n",
        case.version,
        case.interval_ms as f64 / 1000.0
    )
}

fn start(lab: &Lab, m: &Member, peer: Peer, prio: u8, case: Case) -> Option<Running> {
    match peer {
        Peer::Ours => {
            let spec = ChildSpec {
                first_vrid: 61,
                count: 1,
                priority: prio,
                interval_ms: case.interval_ms,
                version: case.version,
                realtime: realtime(),
            };
            Some(Running::Ours(node_support::child::spawn(
                lab, m, &spec, LONG,
            )?))
        }
        Peer::Keepalived => Some(Running::Ka(lab.keepalived(m, &ka_conf(case, prio)).ok()?)),
    }
}

/// One run: (takeover, client recovery), or why it failed.
fn one_run(peer: Peer, fault: Fault, case: Case) -> Result<(Duration, Duration), String> {
    let mut lab = Lab::new("fo").map_err(|e| e.to_string())?;
    let a = lab
        .add_member("a", &["10.99.0.1/24"])
        .map_err(|e| e.to_string())?;
    let b = lab
        .add_member("b", &["10.99.0.2/24"])
        .map_err(|e| e.to_string())?;
    let c = lab
        .add_member("c", &["10.99.0.3/24"])
        .map_err(|e| e.to_string())?;
    let master = start(&lab, &a, peer, 200, case).ok_or("master does not start")?;
    let deadline = Instant::now() + LONG;
    while !lab.has_address(&a, VIP).unwrap_or(false) {
        if Instant::now() > deadline {
            return Err("no VIP on the master".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let backup = start(&lab, &b, peer, 100, case).ok_or("backup does not start")?;
    // Settle: the backup has heard the master for several intervals.
    std::thread::sleep(Duration::from_millis(800.max(case.interval_ms * 3)));
    if lab.has_address(&b, VIP).unwrap_or(true) {
        return Err("VIP on the backup before the fault".into());
    }
    let mac = |m: &Member| {
        lab.mac(m)
            .ok()
            .and_then(|s| parse_mac(&s))
            .ok_or("no MAC address")
    };
    let (mac_a, mac_b) = (mac(&a)?, mac(&b)?);
    let vip: Ipv4Addr = VIP.parse().map_err(|_| "VIP")?;
    let prober =
        Prober::start(&c.netns, vip, Duration::from_millis(1)).map_err(|e| e.to_string())?;
    prober
        .wait_reply_from(mac_a, Instant::now(), Duration::from_secs(3))
        .ok_or("the client gets no reply from the master")?;
    let mon = lab.monitor_addresses(&b).map_err(|e| e.to_string())?;
    std::thread::sleep(Duration::from_millis(100));
    let t0 = Instant::now();
    match fault {
        Fault::PortDownKill => {
            lab.set_port(&a, false).map_err(|e| e.to_string())?;
            master.kill(&lab, &a);
        }
        Fault::Sigterm => master
            .process()
            .signal(libc::SIGTERM)
            .map_err(|e| e.to_string())?,
    }
    let timeout = LONG.max(Duration::from_millis(case.interval_ms * 6));
    let took = mon
        .wait_for_address(VIP, true, t0, timeout)
        .ok_or("no takeover")?;
    let back = prober
        .wait_reply_from(mac_b, t0, timeout)
        .ok_or("no reply from the new master")?;
    drop(prober);
    drop(master);
    drop(backup);
    Ok((took.at.duration_since(t0), back.duration_since(t0)))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn cell(v: &[f64], failed: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let f = if failed > 0 {
        format!(" [{failed} failed]")
    } else {
        String::new()
    };
    if v.is_empty() {
        return format!("-{f}");
    }
    format!("{:.1} ({:.1}-{:.1}){f}", median(v), lo, hi)
}

fn main() {
    if child_main() {
        return;
    }
    if let Some(reason) = netlab::skip_reason_with(&["keepalived"]) {
        eprintln!("node_failover skipped: {reason}");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let runs: usize = std::env::var("FAILOVER_RUNS")
        .ok()
        .or_else(|| args.first().cloned())
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let case_words: Vec<String> = match std::env::var("FAILOVER_CASES") {
        Ok(s) => s.split_whitespace().map(str::to_string).collect(),
        Err(_) => args.iter().skip(1).cloned().collect(),
    };
    let mut cases: Vec<Case> = case_words.iter().filter_map(|s| Case::parse(s)).collect();
    if cases.is_empty() {
        cases = ["v3:10", "v3:100", "v2:1000"]
            .iter()
            .filter_map(|s| Case::parse(s))
            .collect();
    }
    println!("node_failover: {runs} runs per cell; times in ms from the fault; median (range)");
    println!("| case | metric | ours | {PEER} | ratio of medians | worst ours / worst peer |");
    println!("|---|---|---|---|---|---|");
    for case in cases {
        for fault in [Fault::PortDownKill, Fault::Sigterm] {
            // [peer][metric] -> runs
            let mut res: [[Vec<f64>; 2]; 2] = Default::default();
            let mut failed = [0usize; 2];
            for run in 0..runs {
                // Alternate who goes first so drift in machine load hits both alike.
                let order = if run % 2 == 0 {
                    [Peer::Ours, Peer::Keepalived]
                } else {
                    [Peer::Keepalived, Peer::Ours]
                };
                for peer in order {
                    let k = usize::from(peer == Peer::Keepalived);
                    match one_run(peer, fault, case) {
                        Ok((t, r)) => {
                            res[k][0].push(ms(t));
                            res[k][1].push(ms(r));
                        }
                        Err(e) => {
                            eprintln!("{} {} {peer:?} run {run}: {e}", case.label(), fault.name());
                            failed[k] += 1;
                        }
                    }
                }
            }
            let rt = if realtime() > 0 { " rt" } else { "" };
            let name = format!("{} {}{rt}", case.label(), fault.name());
            for (mi, metric) in ["takeover", "client recovery"].iter().enumerate() {
                let (o, k) = (&res[0][mi], &res[1][mi]);
                let worst = |v: &[f64]| v.iter().copied().fold(f64::NAN, f64::max);
                println!(
                    "| {name} | {metric} | {} | {} | {:.2} | {:.1} / {:.1} |",
                    cell(o, failed[0]),
                    cell(k, failed[1]),
                    median(o) / median(k),
                    worst(o),
                    worst(k)
                );
                let goal = if case.version == 3
                    && case.interval_ms == 10
                    && fault == Fault::PortDownKill
                    && *metric == "takeover"
                {
                    "ratio <= 1.0; < 40 ms median, < 45 ms worst"
                } else {
                    "ratio <= 1.0"
                };
                report::record(&report::Figure {
                    group: "failover",
                    case: &name,
                    metric,
                    unit: "ms",
                    higher_is_better: false,
                    ours: o,
                    peer_name: PEER,
                    peer: k,
                    goal: Some(goal),
                });
            }
        }
    }
}
