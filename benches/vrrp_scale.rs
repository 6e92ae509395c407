//! Scale comparison runner: one process with 255 VRIDs (VRRPv3, 100 ms adverts) on each of two
//! nodes, our node against keepalived 2.2.7 (one process with 255 `vrrp_instance`s), same rig.
//!
//! Each run builds a lab with a master node `m` (priority 200 on every VRID) and a backup node
//! `k` (priority 100); VRID v carries the VIP 10.99.1.v/32. Two start orders:
//!
//! - "master first": the master starts and takes every VIP, then the backup starts;
//! - "backup first": the backup starts and takes every VIP, then the master starts and must
//!   take them all back (preemption).
//!
//! Settling time = from the second node's start until all 255 VIPs are on the master, none on
//! the backup, and no address changed for a quiet window (`SCALE_QUIET_MS`, default 2000);
//! the figure is the time of the last address change (0 when nothing had to move). Address
//! changes are seen as events (`ip -ts monitor address` in both nodes). "takeovers" counts the
//! VIP additions on either node after the second start (the minimum is 0 master-first and 255
//! backup-first); more means spurious takeovers. A run that has not settled after
//! `SCALE_SETTLE_CAP_S` (default 180) is reported as not settled.
//!
//! Then CPU (utime + stime from `/proc/PID/stat` over `SCALE_CPU_SECS`,
//! default 20, as % of one core) and RSS (`VmRSS`) of each node: our process; keepalived's
//! VRRP child plus its parent. The table shows every run; the CPU and RSS medians (and the
//! recorded figures) use only runs that settled, i.e. the steady state.
//!
//! Goal (issue 8): ours settles within 2 x Master_Down_Interval (of the priority-100 backup:
//! 2 x 360.9 ms) after the second node starts, in either order, with no spurious takeover;
//! CPU <= half of keepalived's; RSS no more than keepalived's.
//!
//! `cargo bench --bench vrrp_scale`. Env knobs: `SCALE_ROUNDS` (default 1: each order once per
//! implementation), `SCALE_SETTLE_CAP_S`, `SCALE_QUIET_MS`, `SCALE_CPU_SECS`, `SCALE_VRIDS`
//! (default 255), `SCALE_IMPLS` (default `ours,keepalived`; e.g. `ours` alone while
//! profiling). Needs root and keepalived.

#[path = "report/mod.rs"]
mod report;

#[path = "../tests/node_support/mod.rs"]
mod node_support;

use std::time::{Duration, Instant};

use netlab::{AddressMonitor, Keepalived, Lab, Member, Process};
use node_support::child::{child_main, ChildSpec};

const PEER: &str = "keepalived 2.2.7";
const INTERVAL_MS: u64 = 100;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Peer {
    Ours,
    Keepalived,
}

enum Running {
    Ours(Process),
    Ka(Keepalived, std::path::PathBuf),
}

impl Running {
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Ours(p) => vec![p.pid()],
            Running::Ka(k, vrrp_pidfile) => {
                let mut v = vec![k.process().pid()];
                if let Some(pid) = std::fs::read_to_string(vrrp_pidfile)
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
                {
                    v.push(pid);
                }
                v
            }
        }
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn ka_conf(vrids: u16, prio: u8) -> String {
    let mut s = String::from(
        "global_defs {\n  router_id KA\n  vrrp_version 3\n  vrrp_garp_master_delay 0\n}\n",
    );
    for v in 1..=vrids {
        s.push_str(&format!(
            "vrrp_instance VI_{v} {{\n  state BACKUP\n  interface eth0\n  virtual_router_id {v}\n  \
             priority {prio}\n  advert_int {}\n  virtual_ipaddress {{\n    10.99.1.{v}/32 dev eth0\n  }}\n}}\n",
            INTERVAL_MS as f64 / 1000.0
        ));
    }
    s
}

fn start(lab: &Lab, m: &Member, peer: Peer, prio: u8, vrids: u16) -> Option<Running> {
    match peer {
        Peer::Ours => {
            let spec = ChildSpec {
                first_vrid: 1,
                count: vrids,
                priority: prio,
                interval_ms: INTERVAL_MS,
                version: 3,
                realtime: 0,
            };
            Some(Running::Ours(node_support::child::spawn(
                lab,
                m,
                &spec,
                Duration::from_secs(30),
            )?))
        }
        Peer::Keepalived => {
            let k = lab.keepalived(m, &ka_conf(vrids, prio)).ok()?;
            let pidfile = lab.dir().join(format!("keepalived-{}-vrrp.pid", m.netns));
            Some(Running::Ka(k, pidfile))
        }
    }
}

/// The VIPs (10.99.1.x) currently on the member's eth0.
fn vips(lab: &Lab, m: &Member) -> std::collections::BTreeSet<String> {
    lab.run(m, &["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|w| w.split('/').next())
        .filter(|a| a.starts_with("10.99.1."))
        .map(str::to_string)
        .collect()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.get(s.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

struct Outcome {
    /// Settling time in ms, or None when not settled within the cap.
    settle_ms: Option<f64>,
    takeovers: usize,
    changes: usize,
    /// % of one core: master, backup.
    cpu: [f64; 2],
    /// MiB: master, backup.
    rss: [f64; 2],
}

struct Watch {
    mon: AddressMonitor,
    set: std::collections::BTreeSet<String>,
    seen: usize,
}

impl Watch {
    /// Applies new events; returns (additions, changes, time of the last change).
    fn update(&mut self, since: Instant) -> (usize, usize, Option<Instant>) {
        let ev = self.mon.events();
        let (mut adds, mut changes, mut last) = (0, 0, None);
        for e in ev.iter().skip(self.seen) {
            if !e.address.starts_with("10.99.1.") || e.at < since {
                continue;
            }
            changes += 1;
            if e.added {
                adds += 1;
                self.set.insert(e.address.clone());
            } else {
                self.set.remove(&e.address);
            }
            last = Some(e.at);
        }
        self.seen = ev.len();
        (adds, changes, last)
    }
}

fn one_run(peer: Peer, master_first: bool, vrids: u16) -> Result<Outcome, String> {
    let cap = Duration::from_secs(env_u64("SCALE_SETTLE_CAP_S", 180));
    let quiet = Duration::from_millis(env_u64("SCALE_QUIET_MS", 2000));
    let cpu_window = Duration::from_secs(env_u64("SCALE_CPU_SECS", 20).max(1));
    let mut lab = Lab::new("scale").map_err(|e| e.to_string())?;
    let m = lab
        .add_member("m", &["10.99.0.1/24"])
        .map_err(|e| e.to_string())?;
    let k = lab
        .add_member("k", &["10.99.0.2/24"])
        .map_err(|e| e.to_string())?;
    let (first, first_prio, second, second_prio) = if master_first {
        (&m, 200, &k, 100)
    } else {
        (&k, 100, &m, 200)
    };
    let r_first = start(&lab, first, peer, first_prio, vrids).ok_or("first node does not start")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while vips(&lab, first).len() < usize::from(vrids) {
        if Instant::now() > deadline {
            return Err("the first node never took every VIP".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut watch_m = Watch {
        mon: lab.monitor_addresses(&m).map_err(|e| e.to_string())?,
        set: vips(&lab, &m),
        seen: 0,
    };
    let mut watch_k = Watch {
        mon: lab.monitor_addresses(&k).map_err(|e| e.to_string())?,
        set: vips(&lab, &k),
        seen: 0,
    };
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    let r_second =
        start(&lab, second, peer, second_prio, vrids).ok_or("second node does not start")?;
    let (mut takeovers, mut changes, mut last) = (0usize, 0usize, None::<Instant>);
    let settle_ms = loop {
        std::thread::sleep(Duration::from_millis(50));
        for w in [&mut watch_m, &mut watch_k] {
            let (a, c, l) = w.update(t0);
            takeovers += a;
            changes += c;
            if l.is_some() {
                last = last.max(l);
            }
        }
        let now = Instant::now();
        let calm_since = last.unwrap_or(t0);
        if watch_m.set.len() == usize::from(vrids)
            && watch_k.set.is_empty()
            && now.duration_since(calm_since) >= quiet
        {
            break Some(calm_since.duration_since(t0).as_secs_f64() * 1000.0);
        }
        if now.duration_since(t0) > cap {
            break None;
        }
    };
    let (rm, rk) = if master_first {
        (&r_first, &r_second)
    } else {
        (&r_second, &r_first)
    };
    let (pm, pk) = (rm.pids(), rk.pids());
    let ticks = |pids: &[u32]| pids.iter().filter_map(|p| cpu_ticks(*p)).sum::<u64>();
    let (m0, k0, c0) = (ticks(&pm), ticks(&pk), Instant::now());
    std::thread::sleep(cpu_window);
    let (m1, k1, c1) = (ticks(&pm), ticks(&pk), Instant::now());
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let secs = c1.duration_since(c0).as_secs_f64();
    let pct = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / hz / secs * 100.0;
    let rss = |pids: &[u32]| pids.iter().filter_map(|p| rss_kib(*p)).sum::<u64>() as f64 / 1024.0;
    let out = Outcome {
        settle_ms,
        takeovers,
        changes,
        cpu: [pct(m0, m1), pct(k0, k1)],
        rss: [rss(&pm), rss(&pk)],
    };
    drop(r_second);
    drop(r_first);
    Ok(out)
}

fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn main() {
    if child_main() {
        return;
    }
    if let Some(reason) = netlab::skip_reason_with(&["keepalived"]) {
        eprintln!("vrrp_scale skipped: {reason}");
        return;
    }
    let rounds = env_u64("SCALE_ROUNDS", 1).max(1);
    let impls = std::env::var("SCALE_IMPLS").unwrap_or_else(|_| "ours,keepalived".into());
    let vrids = u16::try_from(env_u64("SCALE_VRIDS", 255).clamp(1, 255)).unwrap_or(255);
    let mdi_ms = vrrp::router::master_down_interval(
        vrrp::wire::Version::V3,
        100,
        Duration::from_millis(INTERVAL_MS),
    )
    .as_secs_f64()
        * 1000.0;
    println!(
        "vrrp_scale: {vrids} VRIDs, v3 {INTERVAL_MS} ms adverts, {rounds} round(s); goal: settle < {:.0} ms (2 x Master_Down_Interval)",
        2.0 * mdi_ms
    );
    println!("| impl | order | settle ms | takeovers | address changes | CPU % master | CPU % backup | RSS MiB master | RSS MiB backup |");
    println!("|---|---|---|---|---|---|---|---|---|");
    // [peer][order] settle times (NaN = not settled), takeovers; [peer] cpu/rss samples.
    let mut settle: [[Vec<f64>; 2]; 2] = Default::default();
    let mut takeovers: [[Vec<f64>; 2]; 2] = Default::default();
    let mut cpu: [[Vec<f64>; 2]; 2] = Default::default();
    let mut rss: [[Vec<f64>; 2]; 2] = Default::default();
    for _ in 0..rounds {
        for (oi, master_first) in [(0, true), (1, false)] {
            for peer in [Peer::Ours, Peer::Keepalived] {
                if !impls.contains(match peer {
                    Peer::Ours => "ours",
                    Peer::Keepalived => "keepalived",
                }) {
                    continue;
                }
                let pi = usize::from(peer == Peer::Keepalived);
                let order = if master_first {
                    "master first"
                } else {
                    "backup first"
                };
                match one_run(peer, master_first, vrids) {
                    Ok(o) => {
                        println!(
                            "| {peer:?} | {order} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
                            o.settle_ms
                                .map_or("not settled".to_string(), |s| format!("{s:.0}")),
                            o.takeovers,
                            o.changes,
                            o.cpu[0],
                            o.cpu[1],
                            o.rss[0],
                            o.rss[1]
                        );
                        settle[pi][oi].push(o.settle_ms.unwrap_or(f64::NAN));
                        takeovers[pi][oi].push(o.takeovers as f64);
                        // CPU and memory of the steady state only: a run that never
                        // settled is still flapping, which is the settling figure's story.
                        if o.settle_ms.is_some() {
                            for r in 0..2 {
                                cpu[pi][r].push(o.cpu[r]);
                                rss[pi][r].push(o.rss[r]);
                            }
                        }
                    }
                    Err(e) => println!("| {peer:?} | {order} | failed: {e} | | | | | | |"),
                }
            }
        }
    }
    println!();
    println!("| figure | ours (median) | keepalived (median) | ratio |");
    println!("|---|---|---|---|");
    let goal_settle = format!("ours < {:.0} ms (2 x Master_Down_Interval)", 2.0 * mdi_ms);
    for (oi, order) in ["master first", "backup first"].iter().enumerate() {
        let row = |what: &str, o: &[f64], k: &[f64]| {
            println!(
                "| {what} | {:.1} | {:.1}{} | {:.2} |",
                median(o),
                median(k),
                if k.iter().any(|x| x.is_nan()) {
                    " (some not settled)"
                } else {
                    ""
                },
                median(o) / median(k)
            );
        };
        row(
            &format!("settle ms, {order}"),
            &settle[0][oi],
            &settle[1][oi],
        );
        row(
            &format!("takeovers, {order}"),
            &takeovers[0][oi],
            &takeovers[1][oi],
        );
        let case = format!("255 VRIDs 100ms {order}");
        report::record(&report::Figure {
            group: "scale",
            case: &case,
            metric: "settling time",
            unit: "ms",
            higher_is_better: false,
            ours: &settle[0][oi],
            peer_name: PEER,
            peer: &settle[1][oi],
            goal: Some(&goal_settle),
        });
        report::record(&report::Figure {
            group: "scale",
            case: &case,
            metric: "takeovers",
            unit: "count",
            higher_is_better: false,
            ours: &takeovers[0][oi],
            peer_name: PEER,
            peer: &takeovers[1][oi],
            goal: Some(if oi == 0 {
                "0 (no spurious takeover)"
            } else {
                "255 (one per VRID, none spurious)"
            }),
        });
    }
    for (ri, role) in ["master", "backup"].iter().enumerate() {
        println!(
            "| CPU % of a core, {role} | {:.2} | {:.2} | {:.2} |",
            median(&cpu[0][ri]),
            median(&cpu[1][ri]),
            median(&cpu[0][ri]) / median(&cpu[1][ri])
        );
        println!(
            "| RSS MiB, {role} | {:.1} | {:.1} | {:.2} |",
            median(&rss[0][ri]),
            median(&rss[1][ri]),
            median(&rss[0][ri]) / median(&rss[1][ri])
        );
        let case = format!("255 VRIDs 100ms {role}");
        report::record(&report::Figure {
            group: "scale",
            case: &case,
            metric: "CPU",
            unit: "% of one core",
            higher_is_better: false,
            ours: &cpu[0][ri],
            peer_name: PEER,
            peer: &cpu[1][ri],
            goal: Some("ratio <= 0.5"),
        });
        report::record(&report::Figure {
            group: "scale",
            case: &case,
            metric: "RSS",
            unit: "MiB",
            higher_is_better: false,
            ours: &rss[0][ri],
            peer_name: PEER,
            peer: &rss[1][ri],
            goal: Some("ratio <= 1.0"),
        });
    }
}
