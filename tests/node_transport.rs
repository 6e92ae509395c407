//! The Linux node's parts in network namespaces: netlink address idempotence, the raw VRRP
//! socket between two namespaces (TTL 255 accepted, anything lower dropped and counted, unicast
//! source check), gratuitous ARP moving a neighbour entry. Skips with a reason when not root.
#![cfg(target_os = "linux")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use vrrp::linux::addr::{AddressManager, VirtualAddress};
use vrrp::linux::socket::VrrpSocket;
use vrrp::wire::Family;

/// Runs `f` on a thread inside the namespace and returns its result.
fn inside<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = netns.to_string();
    std::thread::spawn(move || {
        let _g = netlab::enter(&ns).expect("enter namespace");
        f()
    })
    .join()
    .expect("thread inside the namespace")
}

#[test]
fn netlink_add_remove_is_idempotent() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("addr").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("member");
    let ns = a.netns.clone();
    inside(&ns, || {
        let idx = vrrp::linux::addr::interface_index("eth0").expect("eth0");
        let mut m = AddressManager::new().expect("netlink");
        let v4: VirtualAddress = "10.99.0.100/24".parse().expect("v4");
        let v6: VirtualAddress = "fd99::100/64".parse().expect("v6");
        for _ in 0..2 {
            m.add(idx, v4).expect("add v4 (again is fine)");
            m.add(idx, v6).expect("add v6 (again is fine)");
        }
        let addrs = vrrp::linux::socket::interface_addresses("eth0");
        assert!(addrs.contains(&v4.addr) && addrs.contains(&v6.addr));
        for _ in 0..2 {
            m.remove(idx, v4).expect("remove v4 (again is fine)");
            m.remove(idx, v6).expect("remove v6 (again is fine)");
        }
        let addrs = vrrp::linux::socket::interface_addresses("eth0");
        assert!(!addrs.contains(&v4.addr) && !addrs.contains(&v6.addr));
        // A real failure is still an error: an interface index that does not exist.
        assert!(m.add(999_999, v4).is_err());
    });
    assert!(!lab.has_address(&a, "10.99.0.100").expect("ip addr"));
}

fn recv_within(s: &mut VrrpSocket, timeout: Duration) -> Option<(IpAddr, u8, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        if let Some(d) = s.recv(&mut buf).expect("recv") {
            return Some((d.src, d.ttl, d.vrrp.to_vec()));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

#[test]
fn raw_socket_multicast_ttl_check_and_unicast_source_check() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("sock").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let c = lab.add_member("c", &["10.99.0.3/24"]).expect("c");
    let (na, nb, nc) = (a.netns.clone(), b.netns.clone(), c.netns.clone());

    // b listens on the multicast group; a sends one advert-shaped payload with TTL 255 and one
    // with TTL 64 from an ordinary raw socket.
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = std::thread::spawn(move || {
        let _g = netlab::enter(&nb).expect("enter b");
        let mut s = VrrpSocket::open("eth0", Family::V4, &[]).expect("open b");
        ready_tx.send(()).expect("ready");
        let got = recv_within(&mut s, Duration::from_secs(3));
        // Wait a little for the TTL-64 packet to be read and counted too.
        let extra = recv_within(&mut s, Duration::from_millis(500));
        tx.send((got, extra, s.stats())).expect("report");
    });
    ready_rx.recv().expect("listener ready");
    inside(&na, || {
        let low = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )
        .expect("raw");
        low.bind_device(Some(b"eth0")).expect("bind dev");
        low.set_multicast_ttl_v4(64).expect("ttl");
        low.set_multicast_if_v4(&Ipv4Addr::new(10, 99, 0, 1))
            .expect("if");
        let dst = socket2::SockAddr::from(std::net::SocketAddrV4::new(vrrp::wire::MULTICAST_V4, 0));
        low.send_to(b"low-ttl-payload", &dst).expect("send ttl 64");
        let mut s = VrrpSocket::open("eth0", Family::V4, &[]).expect("open a");
        assert_eq!(s.source(), IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
        s.send_to(b"good-payload", vrrp::wire::MULTICAST_V4.into())
            .expect("send ttl 255");
    });
    let (got, extra, stats) = rx.recv().expect("listener result");
    listener.join().expect("listener");
    let (src, ttl, payload) = got.expect("the TTL-255 packet arrives");
    assert_eq!(src, IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)));
    assert_eq!(ttl, 255);
    assert_eq!(payload, b"good-payload");
    assert!(extra.is_none(), "nothing else gets through");
    assert_eq!(stats.bad_ttl, 1, "the TTL-64 packet is dropped and counted");
    assert_eq!(stats.received, 1);

    // Unicast mode: b accepts a (a peer) and drops c (not a peer).
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let nb = b.netns.clone();
    let listener = std::thread::spawn(move || {
        let _g = netlab::enter(&nb).expect("enter b");
        let peer: IpAddr = "10.99.0.1".parse().expect("ip");
        let mut s = VrrpSocket::open("eth0", Family::V4, &[peer]).expect("open b unicast");
        ready_tx.send(()).expect("ready");
        let first = recv_within(&mut s, Duration::from_secs(3));
        let second = recv_within(&mut s, Duration::from_millis(500));
        tx.send((first, second, s.stats())).expect("report");
    });
    ready_rx.recv().expect("ready");
    let to_b: IpAddr = "10.99.0.2".parse().expect("ip");
    inside(&nc, move || {
        let mut s = VrrpSocket::open("eth0", Family::V4, &[to_b]).expect("open c");
        s.send_to(b"from-c", to_b).expect("send c");
    });
    std::thread::sleep(Duration::from_millis(100));
    inside(&na, move || {
        let mut s = VrrpSocket::open("eth0", Family::V4, &[to_b]).expect("open a");
        s.send_to(b"from-a", to_b).expect("send a");
    });
    let (first, second, stats) = rx.recv().expect("result");
    listener.join().expect("listener");
    let (src, _, payload) = first.expect("a's packet arrives");
    assert_eq!(src, "10.99.0.1".parse::<IpAddr>().expect("ip"));
    assert_eq!(payload, b"from-a");
    assert!(second.is_none());
    assert_eq!(
        stats.unknown_source, 1,
        "c's packet dropped by the source check"
    );
}

#[test]
fn ipv6_socket_reads_hop_limit_and_destination() {
    if netlab::require_root(&[]) {
        return;
    }
    let mut lab = netlab::Lab::new("sock6").expect("lab");
    let a = lab.add_member("a", &["fd99::1/64"]).expect("a");
    let b = lab.add_member("b", &["fd99::2/64"]).expect("b");
    // Link-local addresses need DAD to finish; wait until both have one usable.
    for m in [&a, &b] {
        let ok = (0..100).any(|_| {
            let out = lab
                .run(
                    m,
                    &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
                )
                .unwrap_or_default();
            if out.contains("fe80") && !out.contains("tentative") {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
            false
        });
        assert!(ok, "link-local address ready");
    }
    let nb = b.netns.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let listener = std::thread::spawn(move || {
        let _g = netlab::enter(&nb).expect("enter b");
        let mut s = VrrpSocket::open("eth0", Family::V6, &[]).expect("open b");
        ready_tx.send(()).expect("ready");
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 1500];
        let mut got = None;
        while Instant::now() < deadline && got.is_none() {
            if let Some(d) = s.recv(&mut buf).expect("recv") {
                got = Some((d.src, d.dst, d.ttl, d.vrrp.to_vec()));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        tx.send(got).expect("report");
    });
    ready_rx.recv().expect("ready");
    let src = inside(&a.netns, || {
        let mut s = VrrpSocket::open("eth0", Family::V6, &[]).expect("open a");
        s.send_to(b"v6-payload", vrrp::wire::MULTICAST_V6.into())
            .expect("send");
        s.source()
    });
    listener.join().expect("listener");
    let (from, dst, hops, payload) = rx.recv().expect("result").expect("packet arrives");
    assert_eq!(from, src);
    assert_eq!(dst, IpAddr::V6(vrrp::wire::MULTICAST_V6));
    assert_eq!(hops, 255);
    assert_eq!(payload, b"v6-payload");
}

#[test]
fn gratuitous_arp_moves_the_neighbour_entry() {
    if netlab::require_root(&["ping"]) {
        return;
    }
    let mut lab = netlab::Lab::new("garp").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let client = lab.add_member("c", &["10.99.0.9/24"]).expect("c");
    // The VIP first lives on a; the client learns a's MAC for it.
    lab.run(&a, &["ip", "addr", "add", "10.99.0.100/24", "dev", "eth0"])
        .expect("vip on a");
    lab.run(&client, &["ping", "-c", "1", "-W", "2", "10.99.0.100"])
        .expect("client reaches the vip on a");
    let mac_a = lab.mac(&a).expect("mac a");
    let mac_b = lab.mac(&b).expect("mac b");
    assert_eq!(
        lab.neighbour_mac(&client, "10.99.0.100").expect("neigh"),
        Some(mac_a)
    );
    // Move it to b and announce.
    lab.run(&a, &["ip", "addr", "del", "10.99.0.100/24", "dev", "eth0"])
        .expect("vip off a");
    lab.run(&b, &["ip", "addr", "add", "10.99.0.100/24", "dev", "eth0"])
        .expect("vip on b");
    let vip: IpAddr = "10.99.0.100".parse().expect("ip");
    inside(&b.netns, move || {
        let mut ann = vrrp::linux::announce::Announcer::new("eth0").expect("announcer");
        ann.announce(&[vip]).expect("announce");
    });
    let moved = (0..50).any(|_| {
        if lab.neighbour_mac(&client, "10.99.0.100").ok().flatten() == Some(mac_b.clone()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
        false
    });
    assert!(moved, "the client's neighbour entry now points at b");
}
