//! Self-test of the lab: namespaces, bridge, ports, processes, monitor, setns, cleanup.
use std::time::{Duration, Instant};

fn netns_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/run/netns/{name}")).exists()
}

#[test]
fn members_reach_each_other_and_cleanup_removes_everything() {
    if netlab::require_root(&["ping"]) {
        return;
    }
    let names;
    {
        let mut lab = netlab::Lab::new("self").expect("lab");
        let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
        let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
        assert!(lab.add_member("a", &[]).is_err(), "duplicate name refused");
        names = vec![lab.switch().to_string(), a.netns.clone(), b.netns.clone()];
        assert!(names.iter().all(|n| netns_exists(n)));
        // Nothing leaked into the root namespace: the ports live in the switch namespace.
        let root_links = std::fs::read_dir("/sys/class/net")
            .expect("sysfs")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        assert!(
            !root_links.iter().any(|l| l == &a.port || l == &b.port),
            "no port in the root namespace"
        );
        assert!(lab.run(&b, &["ip", "link", "show", "eth0"]).is_ok());
        lab.run(&a, &["ping", "-c", "1", "-W", "2", "10.99.0.2"])
            .expect("a pings b over the bridge");
        // Cutting b's port makes it unreachable; restoring it brings it back.
        lab.set_port(&b, false).expect("port down");
        assert!(!lab.succeeds(&a, &["ping", "-c", "1", "-W", "1", "10.99.0.2"]));
        lab.set_port(&b, true).expect("port up");
        lab.run(&a, &["ping", "-c", "1", "-W", "2", "10.99.0.2"])
            .expect("b reachable again");
        // MAC and neighbour entry as the member sees them.
        let mac_b = lab.mac(&b).expect("mac");
        assert_eq!(mac_b.len(), 17);
        assert_eq!(
            lab.neighbour_mac(&a, "10.99.0.2").expect("neigh"),
            Some(mac_b)
        );
        // A long-running process with captured output.
        let mut p = lab
            .spawn(
                &a,
                // `exec`: the signal below must reach the sleeping process itself, not a shell
                // that would leave an orphaned `sleep` behind.
                &[
                    "sh",
                    "-c",
                    "echo hello; ip -o link show eth0; exec sleep 30",
                ],
            )
            .expect("spawn");
        p.wait_for_output("hello", Duration::from_secs(5))
            .expect("output");
        p.wait_for_output("eth0", Duration::from_secs(5))
            .expect("runs in the namespace");
        assert!(p.is_running());
        p.signal(libc::SIGTERM).expect("signal");
        p.wait_timeout(Duration::from_secs(5))
            .expect("exits on SIGTERM");
    }
    assert!(
        names.iter().all(|n| !netns_exists(n)),
        "drop deletes every namespace"
    );
}

#[test]
fn monitor_sees_address_changes_and_enter_switches_namespace() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("mon").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let mon = lab.monitor_addresses(&a).expect("monitor");
    let t0 = Instant::now();
    lab.run(&a, &["ip", "addr", "add", "10.99.0.77/24", "dev", "eth0"])
        .expect("add");
    let e = mon
        .wait_for_address("10.99.0.77", true, t0, Duration::from_secs(5))
        .expect("add event");
    assert_eq!(e.ifname, "eth0");
    lab.run(&a, &["ip", "addr", "del", "10.99.0.77/24", "dev", "eth0"])
        .expect("del");
    mon.wait_for_address("10.99.0.77", false, t0, Duration::from_secs(5))
        .expect("delete event");
    assert!(!lab.has_address(&a, "10.99.0.77").expect("addr"));

    let root = std::fs::read_link("/proc/thread-self/ns/net").expect("ns link");
    let ns = a.netns.clone();
    let inside = std::thread::spawn(move || {
        let _g = netlab::enter(&ns).expect("enter");
        let here = std::fs::read_link("/proc/thread-self/ns/net").expect("ns link");
        // A socket bound to the member's address only works inside the member.
        let bound = std::net::UdpSocket::bind("10.99.0.1:0").is_ok();
        (here, bound)
    })
    .join()
    .expect("thread");
    assert_ne!(inside.0, root);
    assert!(inside.1, "bind to the member's address inside it");
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").expect("ns link"),
        root
    );
    assert!(netlab::enter("nl-does-not-exist").is_err());
}
