//! A node restarted after SIGKILL finds the virtual address its previous run added still on the
//! interface (nobody removed it). Like keepalived, the runtime removes every configured virtual
//! address at startup, so a backup does not hold the VIP beside the master. Namespaces only;
//! skips with a reason when not root.
#![cfg(target_os = "linux")]

mod node_support;

use std::time::{Duration, Instant};

use node_support::{eventually, instance, start_in, state, wait_state};
use vrrp::router::State;

const VIP: &str = "10.99.0.100";
const LONG: Duration = Duration::from_secs(5);

#[test]
fn stale_vip_is_removed_when_a_node_starts_as_backup() {
    if netlab::require_root(&["ip"]) {
        return;
    }
    let mut lab = netlab::Lab::new("stale").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let node_a = start_in(&a.netns, vec![instance(9, 200, 100, &["10.99.0.100/24"])]);
    assert!(
        wait_state(&node_a, 0, State::Master, LONG).is_some(),
        "a (200) is master"
    );
    // What a SIGKILLed master leaves behind: its VIP, still on the interface.
    lab.run(&b, &["ip", "addr", "add", "10.99.0.100/24", "dev", "eth0"])
        .expect("stale VIP added by hand");
    assert!(lab.has_address(&b, VIP).expect("addr b"));

    let t0 = Instant::now();
    let node_b = start_in(&b.netns, vec![instance(9, 100, 100, &["10.99.0.100/24"])]);
    let gone = eventually(Duration::from_secs(1), || {
        !lab.has_address(&b, VIP).unwrap_or(true)
    });
    assert!(
        gone,
        "stale VIP still on the restarted backup after {:?}",
        t0.elapsed()
    );
    assert!(wait_state(&node_b, 0, State::Backup, LONG).is_some());
    // The master keeps it, and the backup stays without it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state(&node_a, 0), Some(State::Master));
    assert_eq!(state(&node_b, 0), Some(State::Backup));
    assert!(lab.has_address(&a, VIP).expect("addr a"));
    assert!(!lab.has_address(&b, VIP).expect("addr b"));
}
