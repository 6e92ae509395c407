//! Named scenarios, one per behaviour the reference products are known for, run on the
//! simulator and asserted to the nanosecond of simulated time.
//!
//! Times below follow from RFC 5798 section 6.1: with a 1 s interval,
//! Skew_Time = (256 - priority) / 256 s and Master_Down_Interval = 3 s + Skew_Time.
//! Priority 100: skew 0.609375 s, MDI 3.609375 s; 150: 0.4140625 s / 3.4140625 s;
//! 200: 0.21875 s / 3.21875 s.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use vrrp::router::{Config, Input, Mode, Reason, State};
use vrrp::sim::{Event, Network, NodeId, Sim};
use vrrp::wire::Version;

const SEC: Duration = Duration::from_secs(1);

fn ns(n: u64) -> Duration {
    Duration::from_nanos(n)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Master_Down_Interval for a 1 s interval.
fn mdi(priority: u8) -> Duration {
    3 * SEC + skew(priority)
}

fn skew(priority: u8) -> Duration {
    SEC * (256 - u32::from(priority)) / 256
}

fn v4(last: u8, priority: u8) -> Config {
    let mut c = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 99, 0, last)));
    c.priority = priority;
    c.virtual_addresses
        .push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 100)));
    c.virtual_addresses
        .push(IpAddr::V4(Ipv4Addr::new(10, 99, 0, 101)));
    c
}

fn v6(last: u16, priority: u8) -> Config {
    let mut c = Config::new(
        51,
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)),
    );
    c.priority = priority;
    c.virtual_addresses
        .push(IpAddr::V6(Ipv6Addr::new(0xfd99, 0, 0, 0, 0, 0, 0, 0x100)));
    c
}

fn sim() -> Sim {
    Sim::new(Instant::now(), 1)
}

/// The times `node` entered `to`, with the reasons.
fn entered(sim: &Sim, node: NodeId, to_state: State) -> Vec<(Duration, Reason)> {
    sim.trace()
        .iter()
        .filter(|e| e.node == node)
        .filter_map(|e| match e.event {
            Event::State { to, reason, .. } if to == to_state => Some((e.at, reason)),
            _ => None,
        })
        .collect()
}

/// Runs until `until`, asserting after every event that only masters hold the addresses and
/// that two nodes never hold them for longer than one network delay (a preempting backup
/// takes them before the old master hears it and lets go).
fn run_checked(sim: &mut Sim, until: Duration) {
    let mut overlap_since = None;
    while sim.step(until) {
        let holders: Vec<_> = sim.holders().collect();
        if holders.len() > 1 {
            let since = *overlap_since.get_or_insert(sim.now());
            assert!(
                sim.now() - since <= sim.network().worst_delay(),
                "two holders since {since:?} at {:?}: {holders:?}",
                sim.now()
            );
        } else {
            overlap_since = None;
        }
        for h in holders {
            assert_eq!(sim.state(h), Some(State::Master), "holder not master");
        }
    }
}

#[test]
fn first_booted_becomes_master() {
    // Equal priorities; B even has the higher address, yet A booted first and keeps it.
    let mut sim = sim();
    let a = sim.add_router(v4(1, 100)).unwrap();
    let b = sim.add_router(v4(2, 100)).unwrap();
    sim.input(a, Input::Startup);
    run_checked(&mut sim, 10 * SEC);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 120 * SEC);
    assert_eq!(
        entered(&sim, a, State::Master),
        [(mdi(100), Reason::MasterDown)]
    );
    assert_eq!(entered(&sim, b, State::Master), []);
    assert_eq!(
        entered(&sim, b, State::Backup),
        [(10 * SEC, Reason::Startup)]
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [a]);
}

#[test]
fn returning_master_becomes_backup_with_equal_priority() {
    for preempt in [false, true] {
        let mut sim = sim();
        let mut ca = v4(1, 100);
        let mut cb = v4(2, 100);
        ca.preempt = preempt;
        cb.preempt = preempt;
        let a = sim.add_router(ca).unwrap();
        let b = sim.add_router(cb).unwrap();
        sim.input(a, Input::Startup);
        run_checked(&mut sim, SEC);
        sim.input(b, Input::Startup);
        run_checked(&mut sim, 20 * SEC);
        sim.crash(a);
        run_checked(&mut sim, 30 * SEC);
        // A's last advertisement left at MDI + 16 s; B waits its own MDI from then.
        let b_master = mdi(100) + 16 * SEC + mdi(100);
        assert_eq!(
            entered(&sim, b, State::Master),
            [(b_master, Reason::MasterDown)]
        );
        sim.restart(a);
        run_checked(&mut sim, 200 * SEC);
        assert_eq!(
            entered(&sim, a, State::Master).len(),
            1,
            "preempt {preempt}"
        );
        assert_eq!(entered(&sim, b, State::Master).len(), 1);
        assert_eq!(sim.state(a), Some(State::Backup));
        assert_eq!(sim.holders().collect::<Vec<_>>(), [b]);
    }
}

#[test]
fn primary_is_always_operational_with_preempt() {
    // P 200 and S 100 boot together: P wins at MDI(200). P dies at 20 s: its last advert left
    // at MDI(200) + 16 s, so S takes over MDI(100) later. P returns at 30 s and, discarding
    // S's lower adverts, takes back over MDI(200) after its startup.
    let mut sim = sim();
    let p = sim.add_router(v4(1, 200)).unwrap();
    let s = sim.add_router(v4(2, 100)).unwrap();
    sim.input(p, Input::Startup);
    sim.input(s, Input::Startup);
    run_checked(&mut sim, 20 * SEC);
    sim.crash(p);
    run_checked(&mut sim, 30 * SEC);
    sim.restart(p);
    run_checked(&mut sim, 60 * SEC);
    let s_master = mdi(200) + 16 * SEC + mdi(100);
    assert_eq!(s_master, ns(22_828_125_000));
    assert_eq!(
        entered(&sim, s, State::Master),
        [(s_master, Reason::MasterDown)]
    );
    assert_eq!(
        entered(&sim, p, State::Master),
        [
            (mdi(200), Reason::MasterDown),
            (30 * SEC + mdi(200), Reason::MasterDown)
        ]
    );
    assert_eq!(
        entered(&sim, s, State::Backup).last(),
        Some(&(30 * SEC + mdi(200), Reason::HigherPriority))
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [p]);
}

#[test]
fn primary_takes_back_after_the_preempt_delay() {
    // As above with a 5 s preempt delay on P: the window opens with S's first advert after P
    // returns (30.828125 s) and closes 5 s later; S's advert at 34.828125 s is the last P
    // accepts, so P takes over MDI(200) after it.
    let mut sim = sim();
    let mut cp = v4(1, 200);
    cp.preempt_delay = 5 * SEC;
    let p = sim.add_router(cp).unwrap();
    let s = sim.add_router(v4(2, 100)).unwrap();
    sim.input(s, Input::Startup);
    run_checked(&mut sim, 20 * SEC);
    // S alone: master at MDI(100), adverts every second after.
    assert_eq!(
        entered(&sim, s, State::Master),
        [(mdi(100), Reason::MasterDown)]
    );
    sim.input(p, Input::Startup);
    run_checked(&mut sim, 60 * SEC);
    let first_seen = mdi(100) + 17 * SEC; // 20.609375 s
    let last_accepted = first_seen + 4 * SEC; // 24.609375 s (the window ends at 25.609375 s)
    assert_eq!(
        entered(&sim, p, State::Master),
        [(last_accepted + mdi(200), Reason::MasterDown)]
    );
    assert_eq!(sim.router(p).unwrap().counters().preempt_delayed, 5);
    assert_eq!(sim.holders().collect::<Vec<_>>(), [p]);
}

#[test]
fn swap_hands_over_both_ways_without_flapping() {
    let mut sim = sim();
    let a = sim.add_router(v4(1, 150)).unwrap();
    let b = sim.add_router(v4(2, 100)).unwrap();
    sim.input(a, Input::Startup);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 10 * SEC);
    sim.input(a, Input::Release);
    run_checked(&mut sim, 40 * SEC);
    // B heard priority 0 at 10 s and waited only its Skew_Time.
    assert_eq!(
        entered(&sim, b, State::Master),
        [(10 * SEC + skew(100), Reason::MasterReleased)]
    );
    // A has the higher priority and preempt on, yet stays backup after its release.
    assert_eq!(sim.holders().collect::<Vec<_>>(), [b]);
    sim.input(b, Input::Release);
    run_checked(&mut sim, 80 * SEC);
    assert_eq!(
        entered(&sim, a, State::Master),
        [
            (mdi(150), Reason::MasterDown),
            (40 * SEC + skew(150), Reason::MasterReleased)
        ]
    );
    assert_eq!(entered(&sim, b, State::Master).len(), 1);
    assert_eq!(sim.holders().collect::<Vec<_>>(), [a]);
}

#[test]
fn passive_backup_never_takes_over() {
    let mut sim = sim();
    let a = sim.add_router(v4(1, 100)).unwrap();
    let mut cb = v4(2, 200);
    cb.mode = Mode::Passive;
    let b = sim.add_router(cb).unwrap();
    sim.input(a, Input::Startup);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 10 * SEC);
    // B has the higher priority but does not preempt; A won after its MDI.
    assert_eq!(
        entered(&sim, a, State::Master),
        [(mdi(100), Reason::MasterDown)]
    );
    sim.crash(a);
    run_checked(&mut sim, 100 * SEC);
    assert_eq!(entered(&sim, b, State::Master), []);
    assert_eq!(sim.masters().count(), 0);
    // Only an explicit takeover makes it master, at once.
    sim.input(b, Input::Takeover);
    assert_eq!(
        entered(&sim, b, State::Master),
        [(100 * SEC, Reason::Takeover)]
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [b]);
}

#[test]
fn takeover_moves_the_addresses_from_a_higher_priority_master() {
    let mut sim = sim();
    let a = sim.add_router(v4(1, 200)).unwrap();
    let b = sim.add_router(v4(2, 100)).unwrap();
    sim.input(a, Input::Startup);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 10 * SEC);
    sim.input(b, Input::Takeover);
    run_checked(&mut sim, 60 * SEC);
    assert_eq!(
        entered(&sim, a, State::Backup).last(),
        Some(&(10 * SEC, Reason::HigherPriority))
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [b]);
    // Releasing gives it back to the primary at once (priority 0 -> A's Skew_Time).
    sim.input(b, Input::Release);
    run_checked(&mut sim, 70 * SEC);
    assert_eq!(
        entered(&sim, a, State::Master).last(),
        Some(&(60 * SEC + skew(200), Reason::MasterReleased))
    );
}

#[test]
fn graceful_stop_hands_over_within_skew_time() {
    let mut sim = sim();
    sim.set_network(Network::with_delay(Duration::from_millis(1)));
    let a = sim.add_router(v4(1, 200)).unwrap();
    let b = sim.add_router(v4(2, 100)).unwrap();
    sim.input(a, Input::Startup);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, secs(10.5));
    sim.input(a, Input::Shutdown);
    run_checked(&mut sim, 30 * SEC);
    // Priority 0 arrives 1 ms later; B then waits exactly its Skew_Time.
    let t = secs(10.5) + Duration::from_millis(1) + skew(100);
    assert_eq!(
        entered(&sim, b, State::Master),
        [(t, Reason::MasterReleased)]
    );
    assert!(t - secs(10.5) <= skew(100) + sim.network().worst_delay());
    assert_eq!(sim.state(a), Some(State::Initialize));
}

#[test]
fn master_loss_is_handed_over_within_master_down_interval() {
    // Crash the master at several phases of its advertisement cycle.
    for offset_ms in [0u64, 1, 250, 500, 999] {
        let mut sim = sim();
        let a = sim.add_router(v4(1, 200)).unwrap();
        let b = sim.add_router(v4(2, 100)).unwrap();
        sim.input(a, Input::Startup);
        sim.input(b, Input::Startup);
        let crash_at = mdi(200) + 10 * SEC + Duration::from_millis(offset_ms) + ns(1);
        run_checked(&mut sim, crash_at);
        sim.crash(a);
        run_checked(&mut sim, crash_at + 10 * SEC);
        let (t, reason) = entered(&sim, b, State::Master)[0];
        assert_eq!(reason, Reason::MasterDown);
        let after = t - crash_at;
        assert!(
            after >= mdi(100) - SEC && after <= mdi(100),
            "offset {offset_ms} ms: handover {after:?} after the loss"
        );
        // Exactly: A's last advertisement (at MDI(200) + 10 s + whole seconds) + MDI(100).
        let last = mdi(200) + 10 * SEC + Duration::from_millis(offset_ms / 1000 * 1000);
        assert_eq!(t, last + mdi(100));
    }
}

#[test]
fn three_routers_elect_the_highest_and_fail_over_to_the_next() {
    let mut sim = sim();
    let a = sim.add_router(v4(1, 200)).unwrap();
    let b = sim.add_router(v4(2, 150)).unwrap();
    let c = sim.add_router(v4(3, 100)).unwrap();
    for n in [a, b, c] {
        sim.input(n, Input::Startup);
    }
    run_checked(&mut sim, 10 * SEC);
    sim.crash(a);
    run_checked(&mut sim, 20 * SEC);
    sim.restart(a);
    run_checked(&mut sim, 60 * SEC);
    // A's last advert before 10 s left at MDI(200) + 6 s; B's skew is shorter than C's.
    let b_master = mdi(200) + 6 * SEC + mdi(150);
    assert_eq!(
        entered(&sim, b, State::Master),
        [(b_master, Reason::MasterDown)]
    );
    assert_eq!(entered(&sim, c, State::Master), []);
    assert_eq!(
        entered(&sim, a, State::Master),
        [
            (mdi(200), Reason::MasterDown),
            (20 * SEC + mdi(200), Reason::MasterDown)
        ]
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [a]);
}

#[test]
fn address_owner_takes_over_at_startup() {
    let mut sim = sim();
    sim.set_network(Network::with_delay(Duration::from_millis(2)));
    let b = sim.add_router(v4(2, 100)).unwrap();
    let o = sim.add_router(v4(1, 255)).unwrap();
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 10 * SEC);
    sim.input(o, Input::Startup);
    run_checked(&mut sim, 60 * SEC);
    assert_eq!(
        entered(&sim, o, State::Master),
        [(10 * SEC, Reason::AddressOwner)]
    );
    assert_eq!(
        entered(&sim, b, State::Backup).last(),
        Some(&(10 * SEC + Duration::from_millis(2), Reason::HigherPriority))
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [o]);
    // The owner's graceful stop: B takes over after its Skew_Time.
    sim.input(o, Input::Shutdown);
    run_checked(&mut sim, 70 * SEC);
    assert_eq!(
        entered(&sim, b, State::Master).last(),
        Some(&(
            60 * SEC + Duration::from_millis(2) + skew(100),
            Reason::MasterReleased
        ))
    );
}

/// Two equal-priority VRRPv3 routers booted together at a 10 ms interval with 1 ms of delay:
/// both time out at once, both advertise, and the higher primary address wins the tie-break
/// (RFC 5798 section 6.4.3 (735)); the loser steps down when the winner's advert arrives.
fn v3_tie_break(low: vrrp::router::Config, high: vrrp::router::Config) {
    let mut sim = sim();
    sim.set_network(Network::with_delay(Duration::from_millis(1)));
    let lo = sim.add_router(low).unwrap();
    let hi = sim.add_router(high).unwrap();
    sim.input(lo, Input::Startup);
    sim.input(hi, Input::Startup);
    run_both(&mut sim, Duration::from_millis(300));
    // MDI at 10 ms, priority 100: 30 ms + 156/256 x 10 ms = 36.09375 ms.
    let mdi10 = ns(36_093_750);
    assert_eq!(
        entered(&sim, lo, State::Master),
        [(mdi10, Reason::MasterDown)]
    );
    assert_eq!(
        entered(&sim, hi, State::Master),
        [(mdi10, Reason::MasterDown)]
    );
    assert_eq!(
        entered(&sim, lo, State::Backup).last(),
        Some(&(mdi10 + Duration::from_millis(1), Reason::HigherPriority))
    );
    assert_eq!(sim.holders().collect::<Vec<_>>(), [hi]);
    // Master loss at 10 ms intervals: the low one takes over within its MDI.
    let crash_at = Duration::from_millis(505);
    run_both(&mut sim, crash_at);
    sim.crash(hi);
    run_both(&mut sim, 2 * SEC);
    let (t, _) = *entered(&sim, lo, State::Master).last().unwrap();
    assert!(
        t > crash_at && t - crash_at <= mdi10 + Duration::from_millis(1),
        "{t:?}"
    );
}

/// Like `run_checked` but allows the two-holder moment the tie-break itself creates.
fn run_both(sim: &mut Sim, until: Duration) {
    while sim.step(until) {
        for h in sim.holders() {
            assert_eq!(sim.state(h), Some(State::Master));
        }
    }
}

#[test]
fn v3_over_ipv4_tie_break_and_fast_interval() {
    let mut lo = v4(1, 100);
    let mut hi = v4(2, 100);
    for c in [&mut lo, &mut hi] {
        c.version = Version::V3;
        c.advertisement_interval = Duration::from_millis(10);
    }
    v3_tie_break(lo, hi);
}

#[test]
fn v3_over_ipv6_tie_break_on_link_local_sources() {
    let mut lo = v6(0x7f, 100);
    let mut hi = v6(0x80, 100);
    for c in [&mut lo, &mut hi] {
        c.advertisement_interval = Duration::from_millis(10);
    }
    v3_tie_break(lo, hi);
}

#[test]
fn v3_backup_learns_the_masters_interval() {
    // The backup is configured for 1 s but the master advertises every 100 ms: the backup's
    // Master_Down_Interval follows the master's (RFC 5798 section 6.4.2 (450)).
    let mut sim = sim();
    let mut ca = v6(1, 200);
    ca.advertisement_interval = Duration::from_millis(100);
    let a = sim.add_router(ca).unwrap();
    let b = sim.add_router(v6(2, 100)).unwrap();
    sim.input(a, Input::Startup);
    run_checked(&mut sim, SEC);
    sim.input(b, Input::Startup);
    run_checked(&mut sim, 5 * SEC);
    let learned = sim.router(b).unwrap().master_adver_interval();
    assert_eq!(learned, Duration::from_millis(100));
    sim.crash(a);
    run_checked(&mut sim, 10 * SEC);
    let (t, _) = entered(&sim, b, State::Master)[0];
    // 300 ms + 156/256 x 100 ms = 360.9375 ms after A's last advert (at or before 5 s).
    assert!(t - 5 * SEC <= ns(360_937_500), "{t:?}");
    assert!(t - 5 * SEC > ns(260_937_500), "{t:?}");
}

#[test]
fn v2_split_brain_heals_within_one_interval() {
    // Two v2 masters after a partition; RFC 9568's immediate answer ends it at the first
    // advert across the healed link.
    let mut sim = sim();
    sim.set_network(Network::with_delay(Duration::from_millis(3)));
    let mut ca = v4(1, 200);
    let mut cb = v4(2, 100);
    ca.version = Version::V2;
    cb.version = Version::V2;
    let a = sim.add_router(ca).unwrap();
    let b = sim.add_router(cb).unwrap();
    sim.input(a, Input::Startup);
    sim.input(b, Input::Startup);
    sim.set_segment(b, 1);
    run_both(&mut sim, 20 * SEC);
    assert_eq!(sim.masters().count(), 2);
    let heal = secs(20.3);
    run_both(&mut sim, heal);
    sim.heal();
    run_both(&mut sim, 40 * SEC);
    let (t, reason) = *entered(&sim, b, State::Backup).last().unwrap();
    assert_eq!(reason, Reason::HigherPriority);
    assert!(t - heal <= SEC + 2 * Duration::from_millis(3), "{t:?}");
    // Exactly: B's advert at MDI(100) + 17 s reaches A 3 ms later, A answers at once, and the
    // answer reaches B 3 ms after that (A's own next advert would be 0.6 s later).
    assert_eq!(t, mdi(100) + 17 * SEC + Duration::from_millis(6));
    assert_eq!(sim.holders().collect::<Vec<_>>(), [a]);
}

/// A lossy, jittery run: three routers, a crash and a partition.
fn lossy_run(seed: u64) -> Vec<vrrp::sim::Entry> {
    let mut sim = Sim::new(Instant::now(), seed);
    sim.set_network(Network {
        delay_min: Duration::from_millis(1),
        delay_max: Duration::from_millis(30),
        loss: 0.3,
        duplicate: 0.1,
        reorder: 0.1,
        reorder_extra: Duration::from_millis(400),
    });
    sim.record_adverts(true);
    let ids: Vec<_> = [(1, 200), (2, 150), (3, 100)]
        .into_iter()
        .map(|(last, prio)| sim.add_router(v4(last, prio)).unwrap())
        .collect();
    for &id in &ids {
        sim.input(id, Input::Startup);
    }
    sim.run_until(20 * SEC);
    sim.crash(ids[0]);
    sim.set_segment(ids[2], 1);
    sim.run_until(40 * SEC);
    sim.heal();
    sim.restart(ids[0]);
    sim.run_until(60 * SEC);
    sim.trace().to_vec()
}

#[test]
fn the_simulator_is_deterministic_per_seed() {
    let a = lossy_run(42);
    assert_eq!(a, lossy_run(42));
    assert_ne!(a, lossy_run(43), "the seed must matter");
    assert!(a.len() > 100, "{}", a.len());
}
