//! Whole nodes in network namespaces: election, the virtual address on the master only, a
//! client reaching it, failover on a cut port (with the client's neighbour entry moving by
//! gratuitous ARP), handover on shutdown (priority 0), preempt / nopreempt, IPv6, two VRIDs,
//! three nodes, unicast peers. Skips with a reason when not root.
#![cfg(target_os = "linux")]

mod node_support;

use std::time::{Duration, Instant};

use node_support::{
    eventually, instance, master_down, skew, start_in, state, wait_state, wait_transition,
};
use vrrp::router::{Reason, State};

const VIP: &str = "10.99.0.100";
const LONG: Duration = Duration::from_secs(10);
/// Slack for real timers on a loaded 2-core machine (CI is noisy: runtime threads, `ip`
/// processes and the monitor can each wait for a CPU). Timing is proven on the simulated clock
/// (election_scenarios) and measured by the failover benchmark; here the transition's reason
/// proves which timer fired, and the bound only catches a timer gone wrong by seconds (say, an
/// interval read as seconds: 3.6 s).
const MARGIN: Duration = Duration::from_millis(2000);

#[test]
fn two_nodes_failover_preempt_and_shutdown_handover() {
    if netlab::require_root(&["ping"]) {
        return;
    }
    let mut lab = netlab::Lab::new("elect").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let c = lab.add_member("c", &["10.99.0.9/24"]).expect("client");
    let interval = Duration::from_millis(100);
    let node_a = start_in(&a.netns, vec![instance(7, 200, 100, &["10.99.0.100/24"])]);
    let node_b = start_in(&b.netns, vec![instance(7, 100, 100, &["10.99.0.100/24"])]);

    assert!(
        wait_state(&node_a, 0, State::Master, LONG).is_some(),
        "a (200) wins"
    );
    assert!(eventually(LONG, || state(&node_b, 0) == Some(State::Backup)));
    assert!(
        lab.has_address(&a, VIP).expect("addr a"),
        "VIP on the master"
    );
    assert!(
        !lab.has_address(&b, VIP).expect("addr b"),
        "not on the backup"
    );
    lab.run(&c, &["ping", "-c", "1", "-W", "2", VIP])
        .expect("client reaches the VIP");
    let (mac_a, mac_b) = (lab.mac(&a).expect("mac"), lab.mac(&b).expect("mac"));
    assert_eq!(
        lab.neighbour_mac(&c, VIP).expect("neigh"),
        Some(mac_a.clone())
    );
    // Let b hear a few adverts so its timer runs from the latest one.
    std::thread::sleep(Duration::from_millis(300));

    // Cut a off: b must own the VIP within Master_Down_Interval (+ margin) of the last advert.
    let mon = lab.monitor_addresses(&b).expect("monitor");
    let t0 = Instant::now();
    lab.set_port(&a, false).expect("port down");
    let added = mon
        .wait_for_address(VIP, true, t0, LONG)
        .expect("VIP appears on b");
    let took = added.at.duration_since(t0);
    let bound = master_down(100, interval) + MARGIN;
    assert!(took <= bound, "takeover after {took:?}, bound {bound:?}");
    let (_, why) = wait_transition(&node_b, 0, State::Master, t0, LONG).expect("b becomes master");
    assert_eq!(
        why,
        Reason::MasterDown,
        "silence, not anything else, made b master"
    );
    // a lost its carrier: Fault, and it released the VIP.
    assert!(eventually(LONG, || state(&node_a, 0) == Some(State::Fault)));
    assert!(!lab.has_address(&a, VIP).expect("addr a"));
    // The client's neighbour entry follows the gratuitous ARP to b's MAC.
    assert!(
        eventually(LONG, || lab.neighbour_mac(&c, VIP).ok().flatten()
            == Some(mac_b.clone())),
        "client's neighbour entry moved to b"
    );
    lab.run(&c, &["ping", "-c", "1", "-W", "2", VIP])
        .expect("client reaches the VIP on b");

    // Port back: a (higher priority, preempt on) takes the VIP back; b yields.
    lab.set_port(&a, true).expect("port up");
    assert!(
        wait_state(&node_a, 0, State::Master, LONG).is_some(),
        "a preempts"
    );
    assert!(eventually(LONG, || state(&node_b, 0) == Some(State::Backup)));
    assert!(eventually(LONG, || !lab
        .has_address(&b, VIP)
        .unwrap_or(true)));
    assert!(lab.has_address(&a, VIP).expect("addr"));
    std::thread::sleep(Duration::from_millis(300));

    // Shutdown of a (priority 0): b takes over within Skew_Time (+ margin).
    let t0 = Instant::now();
    node_a.shutdown();
    let added = mon
        .wait_for_address(VIP, true, t0, LONG)
        .expect("VIP appears on b after a's shutdown");
    let took = added.at.duration_since(t0);
    let bound = skew(100, interval) + MARGIN;
    assert!(took <= bound, "handover after {took:?}, bound {bound:?}");
    // The priority-0 advert, not Master_Down_Interval of silence, made b master (RFC 5798
    // 6.4.2: Master_Down_Timer set to Skew_Time).
    let (_, why) = wait_transition(&node_b, 0, State::Master, t0, LONG).expect("b becomes master");
    assert_eq!(why, Reason::MasterReleased, "b took over on a's priority 0");
    assert!(
        !lab.has_address(&a, VIP).expect("addr"),
        "a released the VIP"
    );
    node_b.shutdown();
    assert!(
        !lab.has_address(&b, VIP).expect("addr"),
        "shutdown releases the VIP"
    );
}

#[test]
fn nopreempt_backup_stays_backup() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("nopre").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let node_a = start_in(&a.netns, vec![instance(8, 100, 100, &["10.99.0.100/24"])]);
    assert!(wait_state(&node_a, 0, State::Master, LONG).is_some());
    let mut hi = instance(8, 200, 100, &["10.99.0.100/24"]);
    hi.router.preempt = false;
    let node_b = start_in(&b.netns, vec![hi]);
    assert!(wait_state(&node_b, 0, State::Backup, LONG).is_some());
    // Many Master_Down_Intervals later b is still backup and a still master.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state(&node_b, 0), Some(State::Backup), "nopreempt holds");
    assert_eq!(state(&node_a, 0), Some(State::Master));
    assert!(lab.has_address(&a, VIP).expect("addr") && !lab.has_address(&b, VIP).expect("addr"));
    drop(node_b);

    // The same with preempt on: the higher priority takes over.
    let node_b = start_in(&b.netns, vec![instance(8, 200, 100, &["10.99.0.100/24"])]);
    assert!(
        wait_state(&node_b, 0, State::Master, LONG).is_some(),
        "preempts"
    );
    assert!(eventually(LONG, || state(&node_a, 0) == Some(State::Backup)));
    assert!(eventually(LONG, || !lab
        .has_address(&a, VIP)
        .unwrap_or(true)));
}

#[test]
fn ipv6_vrrpv3_failover() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("v6").expect("lab");
    let a = lab.add_member("a", &["fd99::1/64"]).expect("a");
    let b = lab.add_member("b", &["fd99::2/64"]).expect("b");
    // Link-local addresses must finish DAD before the nodes can send from them.
    for m in [&a, &b] {
        assert!(eventually(LONG, || {
            lab.run(
                m,
                &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
            )
            .map(|o| o.contains("fe80") && !o.contains("tentative"))
            .unwrap_or(false)
        }));
    }
    let node_a = start_in(&a.netns, vec![instance(9, 200, 100, &["fd99::100/64"])]);
    let node_b = start_in(&b.netns, vec![instance(9, 100, 100, &["fd99::100/64"])]);
    assert!(wait_state(&node_a, 0, State::Master, LONG).is_some());
    assert!(eventually(LONG, || state(&node_b, 0) == Some(State::Backup)));
    assert!(lab.has_address(&a, "fd99::100").expect("addr"));
    assert!(!lab.has_address(&b, "fd99::100").expect("addr"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        state(&node_b, 0),
        Some(State::Backup),
        "b hears a and stays backup"
    );
    let status = node_b.status();
    assert!(
        status.instances[0].adverts_received > 0,
        "b hears a over IPv6"
    );
    assert_eq!(
        status.instances[0].invalid, 0,
        "every IPv6 advert validates"
    );
    lab.set_port(&a, false).expect("port down");
    assert!(wait_state(&node_b, 0, State::Master, LONG).is_some());
    assert!(eventually(LONG, || lab
        .has_address(&b, "fd99::100")
        .unwrap_or(false)));
}

#[test]
fn two_vrids_and_three_nodes() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("multi").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let c = lab.add_member("c", &["10.99.0.3/24"]).expect("c");
    // VRID 1: a > b > c. VRID 2: c > b > a. One node process per member runs both.
    let cfg = |p1: u8, p2: u8| {
        vec![
            instance(1, p1, 100, &["10.99.0.101/24"]),
            instance(2, p2, 100, &["10.99.0.102/24"]),
        ]
    };
    let na = start_in(&a.netns, cfg(250, 50));
    let nb = start_in(&b.netns, cfg(150, 150));
    let nc = start_in(&c.netns, cfg(50, 250));
    assert!(
        wait_state(&na, 0, State::Master, LONG).is_some(),
        "a masters VRID 1"
    );
    assert!(
        wait_state(&nc, 1, State::Master, LONG).is_some(),
        "c masters VRID 2"
    );
    assert!(eventually(LONG, || {
        state(&na, 1) == Some(State::Backup)
            && state(&nb, 0) == Some(State::Backup)
            && state(&nb, 1) == Some(State::Backup)
            && state(&nc, 0) == Some(State::Backup)
    }));
    assert!(lab.has_address(&a, "10.99.0.101").expect("addr"));
    assert!(lab.has_address(&c, "10.99.0.102").expect("addr"));
    for m in [&b, &c] {
        assert!(!lab.has_address(m, "10.99.0.101").expect("addr"));
    }
    for m in [&a, &b] {
        assert!(!lab.has_address(m, "10.99.0.102").expect("addr"));
    }
    // a goes away: b (150) beats c (50) for VRID 1; VRID 2 stays on c.
    lab.set_port(&a, false).expect("port down");
    assert!(
        wait_state(&nb, 0, State::Master, LONG).is_some(),
        "b takes VRID 1"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        state(&nc, 0),
        Some(State::Backup),
        "c stays backup of VRID 1"
    );
    assert_eq!(state(&nc, 1), Some(State::Master), "VRID 2 untouched");
    assert!(lab.has_address(&b, "10.99.0.101").expect("addr"));
}

#[test]
fn unicast_peers_without_multicast() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("ucast").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let mut ca = instance(10, 200, 100, &["10.99.0.100/24"]);
    ca.unicast_peers = vec!["10.99.0.2".parse().expect("ip")];
    let mut cb = instance(10, 100, 100, &["10.99.0.100/24"]);
    cb.unicast_peers = vec!["10.99.0.1".parse().expect("ip")];
    let na = start_in(&a.netns, vec![ca]);
    let nb = start_in(&b.netns, vec![cb]);
    assert!(wait_state(&na, 0, State::Master, LONG).is_some());
    assert!(eventually(LONG, || state(&nb, 0) == Some(State::Backup)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&nb, 0), Some(State::Backup), "b hears a by unicast");
    let st = nb.status();
    assert!(st.instances[0].adverts_received > 0);
    assert_eq!(st.instances[0].invalid, 0);
    lab.set_port(&a, false).expect("port down");
    assert!(wait_state(&nb, 0, State::Master, LONG).is_some());
    assert!(lab.has_address(&b, VIP).expect("addr"));
}
