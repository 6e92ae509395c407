//! Hostile peers in network namespaces (issue 5): a rogue namespace on the same bridge as a
//! master and a backup sends higher-priority advertisements that must be dropped (wrong
//! password, TTL 64, bad checksum, wrong VRID, truncated, oversized, ...), then floods them as
//! fast as one core sends. Skips with a reason when not root.
//!
//! * `hostile_adverts_change_nothing` (IPv4, VRRPv3 and VRRPv2 instances) and
//!   `hostile_ipv6_adverts_change_nothing` (VRRPv3 over IPv6, the rogue sending from its
//!   link-local address): in-process nodes; after every kind of bad packet both nodes keep
//!   their state, the virtual address stays on the master, and each kind shows in its own
//!   drop counter (the VRRP MIB's statistics, `runtime::Drops`) and in no other.
//! * `advert_flood_keeps_state_log_and_memory_bounded`: `redundancy-cli vrrp` processes (the
//!   binary next to the test binary, or `HOSTILE_BIN`); during the flood the backup never takes
//!   over (it still hears the real master), neither node logs per packet, and neither grows in
//!   memory. Prints packets sent, CPU and RSS of both nodes.
//!
//! Knobs: `HOSTILE_FLOOD_SECS` (default 5) is the flood length.
#![cfg(target_os = "linux")]

mod node_support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_support::cli::rss_kib;
use node_support::{eventually, instance, start_in, state, wait_state};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp::linux::runtime::Node;
use vrrp::linux::Drops;
use vrrp::router::State;
use vrrp::wire::{Addresses, Advertisement, Auth, ChecksumForm, Family, Version};

const LONG: Duration = Duration::from_secs(10);
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 66);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const GROUP6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
const VIP: &str = "10.99.0.100";
const VIP6: &str = "fd99::100";

/// The flood saturates a core: run the tests one after the other.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the rogue sends. Every kind claims priority 254 (it would win the election if it
/// were accepted) for VRID 7 (ours) unless said otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// VRRPv2 for the VRID 8 instance, password `wrong` (ours is `secret`), correct checksum
    /// (IPv4 only: VRRPv3 has no authentication).
    WrongPassword,
    /// Correct, but sent with TTL / hop limit 64.
    Ttl64,
    /// Checksum off by one.
    BadChecksum,
    /// Correct, but VRID 9 (ours is 7).
    WrongVrid,
    /// The first 6 bytes of an advertisement.
    Truncated,
    /// An advertisement padded to 1400 bytes.
    Oversized,
    /// Type 2 (only 1, ADVERTISEMENT, exists), correct checksum.
    InvalidType,
    /// Correct VRRPv3 but for other virtual addresses.
    AddressList,
    /// Version 2 for the VRRPv3 instance (over IPv6: VRRPv2 does not exist there).
    WrongVersion,
}

const KINDS: [Kind; 9] = [
    Kind::WrongPassword,
    Kind::Ttl64,
    Kind::BadChecksum,
    Kind::WrongVrid,
    Kind::Truncated,
    Kind::Oversized,
    Kind::InvalidType,
    Kind::AddressList,
    Kind::WrongVersion,
];

/// The drop counter each kind must raise (and only that one).
fn counter(kind: Kind, d: &Drops) -> u64 {
    match kind {
        Kind::WrongPassword => d.auth_failures,
        Kind::Ttl64 => d.ip_ttl_errors,
        Kind::BadChecksum => d.checksum_errors,
        Kind::WrongVrid => d.vrid_errors,
        Kind::Truncated | Kind::Oversized => d.packet_length_errors,
        Kind::InvalidType => d.invalid_type,
        Kind::AddressList => d.address_list_errors,
        Kind::WrongVersion => d.version_errors,
    }
}

/// Every drop counter, to check that nothing but the kind's own one moved.
fn all_counters(d: &Drops) -> [u64; 11] {
    [
        d.auth_failures,
        d.invalid_auth_type,
        d.invalid_type,
        d.advert_interval_errors,
        d.ip_ttl_errors,
        d.address_list_errors,
        d.packet_length_errors,
        d.checksum_errors,
        d.version_errors,
        d.vrid_errors,
        d.family_errors,
    ]
}

/// The Internet checksum (RFC 1071) of a VRRP message with its pseudo-header.
fn internet_checksum(pseudo: &[u8], msg: &[u8]) -> u16 {
    let mut sum = 0u32;
    for part in [pseudo, msg] {
        for pair in part.chunks(2) {
            let hi = u32::from(pair.first().copied().unwrap_or(0)) << 8;
            sum += hi | u32::from(pair.get(1).copied().unwrap_or(0));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes a correct VRRPv3 checksum into `msg` (RFC 5798 section 5.2.8, with the pseudo-header).
fn recompute_checksum(msg: &mut [u8], src: IpAddr, dst: IpAddr) {
    msg[6] = 0;
    msg[7] = 0;
    let len = msg.len();
    let pseudo = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = Vec::new();
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&[0, 112]);
            p.extend_from_slice(&(len as u16).to_be_bytes());
            p
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = Vec::new();
            p.extend_from_slice(&s.octets());
            p.extend_from_slice(&d.octets());
            p.extend_from_slice(&(len as u32).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 112]);
            p
        }
        _ => panic!("mixed families"),
    };
    let c = internet_checksum(&pseudo, msg);
    msg[6..8].copy_from_slice(&c.to_be_bytes());
}

/// The address list of the family.
fn wrap(v4: bool, b: &[u8]) -> Addresses<'_> {
    if v4 {
        Addresses::V4(b)
    } else {
        Addresses::V6(b)
    }
}

/// The VRRP bytes of one hostile packet from `src` to the group of its family and the TTL /
/// hop limit to send it with.
fn packet(kind: Kind, src: IpAddr) -> (Vec<u8>, u32) {
    let v4 = src.is_ipv4();
    let dst = if v4 {
        IpAddr::V4(GROUP)
    } else {
        IpAddr::V6(GROUP6)
    };
    let ours: Vec<u8> = if v4 {
        vec![10, 99, 0, 100]
    } else {
        "fd99::100"
            .parse::<Ipv6Addr>()
            .expect("v6")
            .octets()
            .to_vec()
    };
    let others: Vec<u8> = if v4 {
        vec![10, 99, 0, 200]
    } else {
        "fd99::200"
            .parse::<Ipv6Addr>()
            .expect("v6")
            .octets()
            .to_vec()
    };
    let v2_addrs = [10, 99, 0, 101];
    let (version, vrid, interval_cs, auth, addrs) = match kind {
        Kind::WrongPassword => (
            Version::V2,
            8,
            100,
            Auth::SimplePassword(*b"wrong\0\0\0"),
            Addresses::V4(&v2_addrs[..]),
        ),
        // A well-formed VRRPv2 message: the router drops it for its version.
        Kind::WrongVersion if v4 => (Version::V2, 7, 100, Auth::None, wrap(v4, &ours)),
        Kind::WrongVrid => (Version::V3, 9, 10, Auth::None, wrap(v4, &ours)),
        Kind::AddressList => (Version::V3, 7, 10, Auth::None, wrap(v4, &others)),
        _ => (Version::V3, 7, 10, Auth::None, wrap(v4, &ours)),
    };
    let advert = Advertisement {
        version,
        vrid,
        priority: 254,
        interval_cs,
        auth,
        addresses: addrs,
    };
    let mut buf = vec![0u8; 1500];
    let n = advert
        .emit(
            &mut buf,
            // VRRPv2 has no pseudo-header (RFC 3768 section 5.3.8).
            if version == Version::V2 {
                ChecksumForm::V2
            } else {
                ChecksumForm::PseudoHeader
            },
            src,
            dst,
        )
        .expect("emit");
    buf.truncate(n);
    match kind {
        Kind::BadChecksum => buf[7] = buf[7].wrapping_add(1),
        Kind::Truncated => buf.truncate(6),
        Kind::Oversized => buf.resize(1400, 0xee),
        Kind::InvalidType => {
            buf[0] = 0x32;
            recompute_checksum(&mut buf, src, dst);
        }
        // VRRPv2 over IPv6 (RFC 5798 section 5.2.1: IPv6 carries version 3 only).
        Kind::WrongVersion if !v4 => {
            buf[0] = 0x21;
            recompute_checksum(&mut buf, src, dst);
        }
        _ => {}
    }
    (buf, if kind == Kind::Ttl64 { 64 } else { 255 })
}

/// A raw IPPROTO 112 socket inside the rogue namespace sending to the VRRP group of its
/// family on its eth0.
struct Rogue {
    socket: Socket,
    /// The source address its packets carry (IPv6: its link-local address).
    src: IpAddr,
    ifindex: u32,
}

impl Rogue {
    fn open(netns: &str, family: Family) -> Rogue {
        let ns = netns.to_string();
        std::thread::spawn(move || {
            let _g = netlab::enter(&ns).expect("enter rogue namespace");
            match family {
                Family::V4 => {
                    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                        .expect("raw socket");
                    s.set_multicast_if_v4(&ROGUE).expect("multicast if");
                    s.set_multicast_loop_v4(false).expect("no loop");
                    Rogue {
                        socket: s,
                        src: IpAddr::V4(ROGUE),
                        ifindex: 0,
                    }
                }
                Family::V6 => {
                    let src = vrrp::linux::socket::source_address("eth0", Family::V6)
                        .expect("rogue link-local address");
                    let ifindex = vrrp::linux::addr::interface_index("eth0").expect("eth0");
                    let IpAddr::V6(ll) = src else {
                        panic!("link-local is IPv6")
                    };
                    let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::from(112)))
                        .expect("raw socket");
                    s.bind(&SockAddr::from(SocketAddrV6::new(ll, 0, 0, ifindex)))
                        .expect("bind link-local");
                    s.set_multicast_if_v6(ifindex).expect("multicast if");
                    s.set_multicast_loop_v6(false).expect("no loop");
                    Rogue {
                        socket: s,
                        src,
                        ifindex,
                    }
                }
            }
        })
        .join()
        .expect("rogue opener")
    }

    fn send(&self, bytes: &[u8], ttl: u32) -> bool {
        match self.src {
            IpAddr::V4(_) => {
                let dst = SockAddr::from(SocketAddrV4::new(GROUP, 0));
                self.socket.set_multicast_ttl_v4(ttl).is_ok()
                    && self.socket.send_to(bytes, &dst).is_ok()
            }
            IpAddr::V6(_) => {
                let dst = SockAddr::from(SocketAddrV6::new(GROUP6, 0, 0, self.ifindex));
                self.socket.set_multicast_hops_v6(ttl).is_ok()
                    && self.socket.send_to(bytes, &dst).is_ok()
            }
        }
    }
}

/// Sends `COUNT` packets of every kind in `kinds` from `rogue` at the master `a` (holding
/// `vips`) and the backup `b`; after each kind both keep their state and addresses, and the
/// kind's own drop counter rose by (nearly) every packet while no other one moved.
/// `counted_on(kind)` says which instance of the node counts the kind.
fn send_kinds_and_check(
    lab: &netlab::Lab,
    (a, b): (&netlab::Member, &netlab::Member),
    (node_a, node_b): (&Node, &Node),
    rogue: &Rogue,
    kinds: &[Kind],
    vips: &[&str],
    counted_on: impl Fn(Kind) -> usize,
) {
    const COUNT: u64 = 50;
    for &kind in kinds {
        let before = (node_a.status(), node_b.status());
        let (bytes, ttl) = packet(kind, rogue.src);
        for _ in 0..COUNT {
            assert!(rogue.send(&bytes, ttl), "rogue sends {kind:?}");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Longer than Master_Down_Interval of the 100 ms instance: a backup fooled into
        // silence would have taken over by now.
        std::thread::sleep(Duration::from_millis(600));
        let after = (node_a.status(), node_b.status());
        for (who, s, want) in [
            ("a", &after.0, State::Master),
            ("b", &after.1, State::Backup),
        ] {
            for inst in &s.instances {
                assert_eq!(inst.state, want, "{who} {} after {kind:?}", inst.name);
            }
        }
        for vip in vips {
            assert!(
                lab.has_address(a, vip).expect("addr"),
                "{vip} on a after {kind:?}"
            );
            assert!(
                !lab.has_address(b, vip).expect("addr"),
                "{vip} not on b after {kind:?}"
            );
        }
        // The master hears nobody valid (its backup is silent): a dropped rogue packet must
        // not look like a live master's advertisement.
        for (o, n) in before.0.instances.iter().zip(&after.0.instances) {
            assert_eq!(
                o.last_advert, n.last_advert,
                "a: {kind:?} counted as an advertisement seen on {}",
                n.name
            );
        }
        // The drops show in the kind's own counter on both nodes, and in no other.
        for (who, old, new) in [("a", &before.0, &after.0), ("b", &before.1, &after.1)] {
            let k = counted_on(kind);
            let (o, n) = (&old.instances[k].drops, &new.instances[k].drops);
            let seen = counter(kind, n) - counter(kind, o);
            eprintln!("{who}: {kind:?}: {seen} counted of {COUNT} sent");
            assert!(
                seen >= COUNT * 9 / 10,
                "{who}: {kind:?}: only {seen} of {COUNT} counted ({n:?})"
            );
            let moved = all_counters(n)
                .iter()
                .zip(all_counters(o))
                .filter(|(x, y)| **x != *y)
                .count();
            assert_eq!(
                moved, 1,
                "{who}: {kind:?} moved other counters: {o:?} -> {n:?}"
            );
            for (i, (oi, ni)) in old.instances.iter().zip(&new.instances).enumerate() {
                // The socket-wide counters (TTL, VRID) show on every instance of the socket.
                if i != k && !matches!(kind, Kind::Ttl64 | Kind::WrongVrid) {
                    assert_eq!(
                        oi.drops, ni.drops,
                        "{who}: {kind:?} counted on instance {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn hostile_adverts_change_nothing() {
    if netlab::require_root(&[]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = netlab::Lab::new("hostile").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let r = lab.add_member("r", &["10.99.0.66/24"]).expect("rogue");
    let v2 = |prio| {
        let mut c = instance(8, prio, 1000, &["10.99.0.101/24"]);
        c.router.version = Version::V2;
        c.router.auth = Auth::SimplePassword(*b"secret\0\0");
        c
    };
    let node_a = start_in(
        &a.netns,
        vec![instance(7, 200, 100, &["10.99.0.100/24"]), v2(200)],
    );
    let node_b = start_in(
        &b.netns,
        vec![instance(7, 100, 100, &["10.99.0.100/24"]), v2(100)],
    );
    assert!(wait_state(&node_a, 0, State::Master, LONG).is_some());
    assert!(wait_state(&node_a, 1, State::Master, LONG).is_some());
    assert!(eventually(LONG, || state(&node_b, 0)
        == Some(State::Backup)
        && state(&node_b, 1) == Some(State::Backup)));
    let rogue = Rogue::open(&r.netns, Family::V4);
    send_kinds_and_check(
        &lab,
        (&a, &b),
        (&node_a, &node_b),
        &rogue,
        &KINDS,
        &[VIP, "10.99.0.101"],
        // The wrong password is for the VRRPv2 instance (RFC 3768 section 7.1).
        |k| usize::from(k == Kind::WrongPassword),
    );
    node_a.shutdown();
    node_b.shutdown();
}

#[test]
fn hostile_ipv6_adverts_change_nothing() {
    if netlab::require_root(&[]) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut lab = netlab::Lab::new("hostile6").expect("lab");
    let a = lab.add_member("a", &["fd99::1/64"]).expect("a");
    let b = lab.add_member("b", &["fd99::2/64"]).expect("b");
    let r = lab.add_member("r", &["fd99::66/64"]).expect("rogue");
    // Link-local addresses (the VRRPv3 source, RFC 5798 section 5.1.2.1) must finish DAD
    // before anyone can send from them.
    for m in [&a, &b, &r] {
        assert!(
            eventually(LONG * 3, || {
                lab.run(
                    m,
                    &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
                )
                .map(|o| o.contains("fe80") && !o.contains("tentative"))
                .unwrap_or(false)
            }),
            "link-local address of {} ready",
            m.name
        );
    }
    let node_a = start_in(&a.netns, vec![instance(7, 200, 100, &["fd99::100/64"])]);
    let node_b = start_in(&b.netns, vec![instance(7, 100, 100, &["fd99::100/64"])]);
    assert!(wait_state(&node_a, 0, State::Master, LONG).is_some());
    assert!(eventually(LONG, || state(&node_b, 0) == Some(State::Backup)));
    let rogue = Rogue::open(&r.netns, Family::V6);
    assert!(
        matches!(rogue.src, IpAddr::V6(s) if s.segments()[0] == 0xfe80),
        "the rogue sends from its link-local address"
    );
    let kinds: Vec<Kind> = KINDS
        .iter()
        .copied()
        .filter(|k| *k != Kind::WrongPassword)
        .collect();
    send_kinds_and_check(
        &lab,
        (&a, &b),
        (&node_a, &node_b),
        &rogue,
        &kinds,
        &[VIP6],
        |_| 0,
    );
    node_a.shutdown();
    node_b.shutdown();
}

/// utime + stime of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it start past the last ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100).max(1)
}

#[test]
fn advert_flood_keeps_state_log_and_memory_bounded() {
    let Some(bin) = node_support::cli::binary_or_skip("HOSTILE_BIN") else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let flood_for =
        Duration::from_secs(node_support::cli::env_u64("HOSTILE_FLOOD_SECS").unwrap_or(5));
    let mut lab = netlab::Lab::new("flood").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let r = lab.add_member("r", &["10.99.0.66/24"]).expect("rogue");
    let bin = bin.to_str().expect("utf-8 path").to_string();
    let (pa, pb) = node_support::cli::start_pair(&lab, &bin, (&a, &b), "7", "100ms", LONG);
    // Let both settle (b hears a few adverts, allocator warmed up).
    std::thread::sleep(Duration::from_secs(1));
    let transitions =
        |p: &netlab::Process| p.output().iter().filter(|l| l.contains(" -> ")).count();
    let (ta, tb) = (transitions(&pa), transitions(&pb));
    let (la, lb) = (pa.output().len(), pb.output().len());
    let (pid_a, pid_b) = (pa.pid(), pb.pid());
    let rss0 = (
        rss_kib(pid_a).expect("rss a"),
        rss_kib(pid_b).expect("rss b"),
    );
    let cpu0 = (
        cpu_ticks(pid_a).expect("cpu a"),
        cpu_ticks(pid_b).expect("cpu b"),
    );

    // The flood: every hostile kind in turn, as fast as this thread sends.
    let rogue = Rogue::open(&r.netns, Family::V4);
    let packets: Vec<(Vec<u8>, u32)> = KINDS.iter().map(|k| packet(*k, rogue.src)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let sender = std::thread::spawn(move || {
        let mut sent = 0u64;
        let mut i = 0usize;
        while !stop2.load(Ordering::Relaxed) {
            let (bytes, ttl) = &packets[i % packets.len()];
            if rogue.send(bytes, *ttl) {
                sent += 1;
            }
            i += 1;
        }
        sent
    });
    let t0 = Instant::now();
    let mut rss_max = rss0;
    let mut vip_lost = 0u32;
    while t0.elapsed() < flood_for {
        std::thread::sleep(Duration::from_millis(250));
        rss_max.0 = rss_max.0.max(rss_kib(pid_a).unwrap_or(0));
        rss_max.1 = rss_max.1.max(rss_kib(pid_b).unwrap_or(0));
        if !lab.has_address(&a, VIP).unwrap_or(false) {
            vip_lost += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().expect("sender");
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = (
        cpu_ticks(pid_a).expect("cpu a"),
        cpu_ticks(pid_b).expect("cpu b"),
    );
    let hz = clock_ticks() as f64;
    let cpu_pct = |t0: u64, t1: u64| (t1.saturating_sub(t0)) as f64 / hz / secs * 100.0;
    let rss1 = (
        rss_kib(pid_a).expect("rss a"),
        rss_kib(pid_b).expect("rss b"),
    );
    eprintln!(
        "flood: {sent} packets in {secs:.1} s ({:.0}/s) from one core",
        sent as f64 / secs
    );
    eprintln!(
        "master a: CPU {:.1}%, RSS {} -> max {} -> {} KiB; backup b: CPU {:.1}%, RSS {} -> max {} -> {} KiB",
        cpu_pct(cpu0.0, cpu1.0),
        rss0.0,
        rss_max.0,
        rss1.0,
        cpu_pct(cpu0.1, cpu1.1),
        rss0.1,
        rss_max.1,
        rss1.1
    );
    let (la2, lb2) = (pa.output().len(), pb.output().len());
    eprintln!("log lines during the flood: a {}, b {}", la2 - la, lb2 - lb);

    assert!(sent > 1000, "the rogue sent only {sent} packets");
    // State kept: no transition on either node, the VIP on a the whole time, not on b.
    assert_eq!(transitions(&pa), ta, "a changed state: {:?}", pa.output());
    assert_eq!(transitions(&pb), tb, "b changed state: {:?}", pb.output());
    assert_eq!(vip_lost, 0, "VIP missing on a in {vip_lost} samples");
    assert!(!lab.has_address(&b, VIP).expect("addr b"), "VIP on b");
    // Logging bounded: at most a line a second (rate-limited warnings), not a line a packet.
    let bound = 2 + flood_for.as_secs() as usize;
    assert!(
        la2 - la <= bound,
        "a logged {} lines: {:?}",
        la2 - la,
        &pa.output()[la..]
    );
    assert!(
        lb2 - lb <= bound,
        "b logged {} lines: {:?}",
        lb2 - lb,
        &pb.output()[lb..]
    );
    // Memory bounded: no growth beyond allocator noise.
    for (who, r0, rmax) in [("a", rss0.0, rss_max.0), ("b", rss0.1, rss_max.1)] {
        assert!(
            rmax <= r0 + 2048,
            "{who}: RSS grew from {r0} to {rmax} KiB under the flood"
        );
    }
    // After the flood the pair still works: a SIGTERM on a hands over to b.
    pa.signal(libc::SIGTERM).expect("sigterm");
    pb.wait_for_output("-> master", LONG)
        .expect("b takes over after a's shutdown");
}
