//! Seeded randomized elections on the simulator, with the invariants checked after every
//! simulated event.
//!
//! Each scenario draws 2 to 4 routers (version, family, interval, priorities, owner, preempt,
//! preempt delay, passive mode), then runs three phases:
//!
//! 1. **Chaos**: a lossy, duplicating, reordering, jittery LAN while nodes crash and restart,
//!    partitions come and go, and operators send takeover, release, fault, priority offset,
//!    mode, shutdown and startup inputs at random times.
//! 2. **Heal**: every node back up, faults cleared, one segment, a clean LAN (a small delay
//!    jitter only); frames still in flight from the chaos drain first. From then on:
//!    * two masters never coexist longer than one advertisement interval (plus two network
//!      delays: an advertisement and RFC 9568's immediate answer);
//!    * from Master_Down_Interval + one interval (+ two delays) after the heal on, there is
//!      exactly one master whenever some router is in active mode (two only during a
//!      preemption's handover, for at most two delays);
//!    * after that (with a preempt delay D: after a further Master_Down_Interval + D, since
//!      the delay window opens only once a lower-priority master exists), no state change at
//!      all while the inputs stay stable;
//!    * with preemption everywhere and no administrative hold, the master has the highest
//!      priority.
//! 3. **Master loss**: the master crashes silently; the first backup takes over within
//!    [Master_Down_Interval - interval, Master_Down_Interval] (+ the network delay) of the
//!    loss, then the heal invariants hold again. With only passive backups nobody takes over.
//!
//! In every phase, after every event: a node holds the virtual addresses exactly when its
//! router is master, and a powered-off node holds nothing.
//!
//! `ELECTION_SCENARIOS=n` runs n scenarios (default 10 000); `ELECTION_SEED=s` starts at seed s.
//! A failure prints its seed and the command that replays it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vrrp::router::{master_down_interval, Config, Input, Mode, State};
use vrrp::sim::{Event, Network, NodeId, Rng, Sim};
use vrrp::wire::Version;

const DEFAULT_SCENARIOS: u64 = 10_000;
const DEFAULT_SEED: u64 = 0x5eed_0000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn randomized_elections_keep_the_invariants() {
    let n = env_u64("ELECTION_SCENARIOS", DEFAULT_SCENARIOS);
    let base = env_u64("ELECTION_SEED", DEFAULT_SEED);
    let mut stats = Stats::default();
    for i in 0..n {
        let seed = base.wrapping_add(i);
        if let Err(msg) = run_scenario(seed, &mut stats) {
            if std::env::var_os("ELECTION_VERBOSE").is_some() {
                verbose_replay(seed);
            }
            panic!(
                "scenario seed {seed} failed: {msg}\n\
                 replay: ELECTION_SEED={seed} ELECTION_SCENARIOS=1 ELECTION_VERBOSE=1 \
                 cargo test -p vrrp --test election_random -- --nocapture"
            );
        }
    }
    println!("{n} scenarios from seed {base}: {stats:?}");
    // The generator must exercise what it claims to (guards against a silently idle test).
    if n >= 500 {
        assert!(stats.handovers > n / 4, "{stats:?}");
        assert!(stats.split_brains_healed > 0, "{stats:?}");
        assert!(stats.passive_only > 0, "{stats:?}");
    }
}

#[derive(Debug, Default)]
struct Stats {
    events: u64,
    handovers: u64,
    split_brains_healed: u64,
    passive_only: u64,
}

struct Scenario {
    interval: Duration,
    version: Version,
    max_preempt_delay: Duration,
}

fn config(rng: &mut Rng, i: usize, version: Version, v6: bool, interval: Duration) -> Config {
    let primary = if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1 + i as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1 + i as u8))
    };
    let mut c = Config::new(42, primary);
    c.version = version;
    c.advertisement_interval = interval;
    c.virtual_addresses.push(if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x100))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100))
    });
    c.priority = rng.range(1, 254) as u8;
    c.preempt = rng.chance(0.8);
    if rng.chance(0.2) {
        c.preempt_delay = interval * rng.range(1, 3) as u32;
    }
    if rng.chance(0.15) {
        c.mode = Mode::Passive;
    }
    c
}

/// Replays `seed` and prints the routers and the whole trace.
fn verbose_replay(seed: u64) {
    let mut stats = Stats::default();
    let mut last = None;
    let _ = run_scenario_with(seed, &mut stats, &mut |sim: &Sim| last = Some(sim.clone()));
    if let Some(sim) = last {
        for i in 0..sim.len() {
            if let Some(r) = sim.router(i) {
                let c = r.config();
                println!(
                    "node {i}: {} prio {} eff {} preempt {} delay {:?} mode {:?} takeover {} released {} state {} mai {:?} mdi {:?}",
                    c.primary_address, c.priority, r.priority(), c.preempt, c.preempt_delay,
                    r.mode(), r.is_taken_over(), r.is_released(), r.state(),
                    r.master_adver_interval(), r.master_down_interval()
                );
            }
        }
        for e in sim.trace() {
            println!("{:>14?} node {} {:?}", e.at, e.node, e.event);
        }
    }
}

fn run_scenario(seed: u64, stats: &mut Stats) -> Result<(), String> {
    run_scenario_with(seed, stats, &mut |_| {})
}

fn run_scenario_with(
    seed: u64,
    stats: &mut Stats,
    on_end: &mut dyn FnMut(&Sim),
) -> Result<(), String> {
    let mut sim_out = None;
    let r = scenario_body(seed, stats, &mut sim_out);
    if let Some(sim) = &sim_out {
        on_end(sim);
    }
    r
}

fn scenario_body(seed: u64, stats: &mut Stats, out: &mut Option<Sim>) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let version = if rng.chance(0.3) {
        Version::V2
    } else {
        Version::V3
    };
    let v6 = version == Version::V3 && rng.chance(0.3);
    let interval = match version {
        Version::V2 => Duration::from_secs(rng.range(1, 2)),
        Version::V3 => [10, 20, 100, 1000]
            .map(Duration::from_millis)
            .get(rng.below(4) as usize)
            .copied()
            .unwrap_or(Duration::from_secs(1)),
    };
    let n = rng.range(2, 4) as usize;
    let mut configs: Vec<Config> = (0..n)
        .map(|i| config(&mut rng, i, version, v6, interval))
        .collect();
    if rng.chance(0.15) {
        if let Some(c) = configs.get_mut(rng.below(n as u64) as usize) {
            c.priority = 255;
        }
    }
    if rng.chance(0.2) {
        let p = configs[0].priority.min(254);
        configs[1].priority = p;
    }
    let sc = Scenario {
        interval,
        version,
        max_preempt_delay: configs
            .iter()
            .map(|c| c.preempt_delay)
            .max()
            .unwrap_or_default(),
    };
    let sim = out.insert(Sim::new(Instant::now(), seed ^ 0xabcd));
    sim.record_adverts(std::env::var_os("ELECTION_VERBOSE").is_some());
    for c in configs {
        sim.add_router(c).map_err(|e| format!("config: {e}"))?;
    }

    // --- phase 1: chaos ---------------------------------------------------------------
    let chaos = Network {
        delay_min: Duration::ZERO,
        delay_max: interval * rng.range(0, 20) as u32 / 100,
        loss: rng.range(0, 30) as f64 / 100.0,
        duplicate: rng.range(0, 10) as f64 / 100.0,
        reorder: rng.range(0, 20) as f64 / 100.0,
        reorder_extra: interval * rng.range(0, 50) as u32 / 100,
    };
    sim.set_network(chaos);
    let mut starts: Vec<(Duration, NodeId)> = (0..n)
        .map(|i| (rng.duration(Duration::ZERO, interval * 2), i))
        .collect();
    starts.sort();
    for (t, i) in starts {
        run_basic(sim, t, stats)?;
        sim.input(i, Input::Startup);
    }
    let chaos_end = sim.now() + interval * rng.range(20, 60) as u32;
    let k = rng.range(3, 15);
    let mut times: Vec<Duration> = (0..k).map(|_| rng.duration(sim.now(), chaos_end)).collect();
    times.sort();
    for t in times {
        run_basic(sim, t, stats)?;
        chaos_event(sim, &mut rng, n);
    }
    run_basic(sim, chaos_end, stats)?;

    // --- phase 2: heal ------------------------------------------------------------------
    let calm = Network {
        delay_max: interval * rng.range(0, 5) as u32 / 100,
        ..Network::default()
    };
    sim.set_network(calm);
    sim.heal();
    for i in 0..n {
        if !sim.is_up(i) {
            sim.restart(i);
        }
        sim.input(i, Input::Fault(false));
        if sim.state(i) == Some(State::Initialize) {
            sim.input(i, Input::Startup);
        }
    }
    // Let frames of the chaos drain: the heal is complete when none is in flight.
    let drained = sim.now() + chaos.worst_delay();
    run_basic(sim, drained, stats)?;
    if sim.masters().count() > 1 {
        stats.split_brains_healed += 1;
    }
    check_stable(sim, &sc, stats)?;

    // --- phase 3: master loss ------------------------------------------------------------
    let masters: Vec<_> = sim.masters().collect();
    let [m] = masters[..] else {
        stats.passive_only += 1;
        // No master: only passive routers; nothing may change.
        return Ok(());
    };
    let crash_at = sim.now() + rng.duration(Duration::ZERO, interval);
    run_basic(sim, crash_at, stats)?;
    let backups: Vec<_> = (0..n)
        .filter(|&i| i != m)
        .filter(|&i| sim.router(i).is_some_and(|r| r.mode() == Mode::Active))
        .collect();
    let mdi_min = backups
        .iter()
        .filter_map(|&i| sim.router(i).map(|r| r.master_down_interval()))
        .min();
    sim.crash(m);
    let from = sim.trace().len();
    let Some(mdi_min) = mdi_min else {
        stats.passive_only += 1;
        run_basic(sim, crash_at + interval * 10, stats)?;
        if sim.masters().count() != 0 {
            return Err("a passive backup took over".into());
        }
        return Ok(());
    };
    let deadline = crash_at + mdi_min + calm.worst_delay();
    run_basic(sim, deadline, stats)?;
    let first = sim.trace()[from..].iter().find_map(|e| match e.event {
        Event::State {
            to: State::Master, ..
        } => Some(e.at),
        _ => None,
    });
    let Some(t) = first else {
        return Err(format!(
            "no takeover within {:?} of the master loss at {crash_at:?}",
            mdi_min + calm.worst_delay()
        ));
    };
    if t < crash_at + mdi_min.saturating_sub(interval) {
        return Err(format!(
            "takeover at {t:?}, {:?} after the loss: earlier than Master_Down_Interval {mdi_min:?} - interval",
            t - crash_at
        ));
    }
    stats.handovers += 1;
    check_stable(sim, &sc, stats)
}

/// One random chaos event.
fn chaos_event(sim: &mut Sim, rng: &mut Rng, n: usize) {
    let i = rng.below(n as u64) as usize;
    match rng.below(12) {
        0 | 1 => sim.crash(i),
        2 => sim.restart(i),
        3 => {
            for j in 0..n {
                sim.set_segment(j, rng.below(2) as u32);
            }
        }
        4 => sim.heal(),
        5 => sim.input(i, Input::Takeover),
        6 => sim.input(i, Input::Release),
        7 => sim.input(i, Input::Fault(rng.chance(0.5))),
        8 => sim.input(i, Input::SetPriorityOffset(rng.range(0, 100) as i16 - 50)),
        9 => {
            let mode = if rng.chance(0.5) {
                Mode::Active
            } else {
                Mode::Passive
            };
            sim.input(i, Input::SetMode(mode));
        }
        10 => sim.input(i, Input::Shutdown),
        _ => sim.input(i, Input::Startup),
    }
}

/// The invariant of every phase: addresses held exactly by masters, nothing by the dead.
fn check_ownership(sim: &Sim) -> Result<(), String> {
    for i in 0..sim.len() {
        let master = sim.state(i) == Some(State::Master);
        if sim.holds(i) != master {
            return Err(format!(
                "at {:?} node {i} holds={} but state {:?}",
                sim.now(),
                sim.holds(i),
                sim.state(i)
            ));
        }
    }
    Ok(())
}

fn run_basic(sim: &mut Sim, until: Duration, stats: &mut Stats) -> Result<(), String> {
    while sim.step(until) {
        stats.events += 1;
        check_ownership(sim)?;
    }
    Ok(())
}

/// The heal invariants, from now on with stable inputs.
fn check_stable(sim: &mut Sim, sc: &Scenario, stats: &mut Stats) -> Result<(), String> {
    let start = sim.now();
    let net = *sim.network();
    let d = net.worst_delay();
    let lowest = (0..sim.len())
        .filter_map(|i| sim.router(i).map(|r| r.priority()))
        .min()
        .unwrap_or(1);
    let mdi = master_down_interval(sc.version, lowest, sc.interval);
    // Exactly one master from here on (a handover in progress may show two for 2 delays).
    let one_master_at = start + mdi + sc.interval + 2 * d;
    // A preempt delay window opens only once a lower-priority master exists, so a delayed
    // preemption may come one more Master_Down_Interval plus the delay later.
    let settle = if sc.max_preempt_delay.is_zero() {
        one_master_at
    } else {
        one_master_at + mdi + sc.max_preempt_delay
    };
    let end = settle + sc.interval * 20;
    let any_active =
        (0..sim.len()).any(|i| sim.router(i).is_some_and(|r| r.mode() == Mode::Active));
    let from = sim.trace().len();
    let mut overlap_since: Option<Duration> = None;
    let mut checked_settle = false;
    loop {
        let more = sim.step(end);
        stats.events += 1;
        check_ownership(sim)?;
        let now = sim.now();
        let masters = sim.masters().count();
        if masters > 1 {
            let since = *overlap_since.get_or_insert(now);
            if now - since > sc.interval + 2 * d {
                return Err(format!(
                    "{masters} masters from {since:?} to {now:?} (interval {:?})",
                    sc.interval
                ));
            }
        } else {
            overlap_since = None;
        }
        if !checked_settle && now >= one_master_at {
            checked_settle = true;
            let handover = masters == 2 && overlap_since.is_some_and(|t| now - t <= 2 * d);
            let ok = if any_active {
                masters == 1 || handover
            } else {
                masters <= 1
            };
            if !ok {
                return Err(format!(
                    "{masters} masters at {now:?}, {:?} after the heal (bound {:?})",
                    now - start,
                    one_master_at - start
                ));
            }
        }
        if !more {
            break;
        }
    }
    let last_change = sim.trace()[from..]
        .iter()
        .filter(|e| matches!(e.event, Event::State { .. }))
        .map(|e| e.at)
        .max();
    if let Some(t) = last_change {
        if t > settle {
            return Err(format!(
                "state change at {t:?} after the settle bound {settle:?} with stable inputs: {:?}",
                sim.trace()
                    .iter()
                    .rev()
                    .find(|e| matches!(e.event, Event::State { .. }))
            ));
        }
    }
    // With preemption everywhere and no administrative hold, the best priority wins.
    let plain = (0..sim.len()).all(|i| {
        sim.router(i).is_some_and(|r| {
            r.config().preempt && r.mode() == Mode::Active && !r.is_taken_over() && !r.is_released()
        })
    });
    if plain {
        let best = (0..sim.len())
            .filter_map(|i| sim.router(i).map(|r| r.priority()))
            .max();
        let master = sim
            .masters()
            .next()
            .and_then(|m| sim.router(m))
            .map(|r| r.priority());
        if master != best {
            return Err(format!("master priority {master:?}, best {best:?}"));
        }
    }
    Ok(())
}
