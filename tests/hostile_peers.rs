//! Hostile peers in network namespaces (issue 5): a rogue namespace on the same bridge as a
//! master and a backup sends higher-priority advertisements that must be dropped (wrong
//! password, TTL 64, bad checksum, wrong VRID, truncated, oversized), then floods them as fast
//! as one core sends. Skips with a reason when not root.
//!
//! * `hostile_adverts_change_nothing`: in-process nodes; after every kind of bad packet both
//!   nodes keep their state and the virtual address stays on the master, and the node's
//!   counters show the drops (socket `bad_ttl`, instance `invalid`, packets read).
//! * `advert_flood_keeps_state_log_and_memory_bounded`: `redundancy-cli vrrp` processes (the
//!   binary next to the test binary, or `HOSTILE_BIN`); during the flood the backup never takes
//!   over (it still hears the real master), neither node logs per packet, and neither grows in
//!   memory. Prints packets sent, CPU and RSS of both nodes.
//!
//! Knobs: `HOSTILE_FLOOD_SECS` (default 5) is the flood length.
#![cfg(target_os = "linux")]

mod node_support;

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use node_support::{eventually, instance, start_in, state, wait_state};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use vrrp::router::State;
use vrrp::wire::{Addresses, Advertisement, Auth, ChecksumForm, Version};

const LONG: Duration = Duration::from_secs(10);
const ROGUE: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 66);
const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
const VIP: &str = "10.99.0.100";

/// The flood saturates a core: run the two tests one after the other.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the rogue sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// VRRPv2, priority 254, password `wrong` (ours is `secret`), correct checksum.
    WrongPassword,
    /// VRRPv3, priority 254, correct checksum, sent with TTL 64.
    Ttl64,
    /// VRRPv3, priority 254, TTL 255, checksum off by one.
    BadChecksum,
    /// VRRPv3, priority 254, correct, but VRID 9 (ours is 7).
    WrongVrid,
    /// The first 6 bytes of a VRRPv3 advertisement for VRID 7.
    Truncated,
    /// A VRRPv3 advertisement for VRID 7 padded to 1400 bytes.
    Oversized,
}

const KINDS: [Kind; 6] = [
    Kind::WrongPassword,
    Kind::Ttl64,
    Kind::BadChecksum,
    Kind::WrongVrid,
    Kind::Truncated,
    Kind::Oversized,
];

/// The VRRP bytes of one hostile packet and the TTL to send it with.
fn packet(kind: Kind) -> (Vec<u8>, u32) {
    let vip = [10, 99, 0, 100];
    let vip2 = [10, 99, 0, 101];
    let (version, vrid, interval_cs, auth, addrs) = match kind {
        Kind::WrongPassword => (
            Version::V2,
            8,
            100,
            Auth::SimplePassword(*b"wrong\0\0\0"),
            &vip2[..],
        ),
        Kind::WrongVrid => (Version::V3, 9, 10, Auth::None, &vip[..]),
        _ => (Version::V3, 7, 10, Auth::None, &vip[..]),
    };
    let advert = Advertisement {
        version,
        vrid,
        priority: 254,
        interval_cs,
        auth,
        addresses: Addresses::V4(addrs),
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
            IpAddr::V4(ROGUE),
            IpAddr::V4(GROUP),
        )
        .expect("emit");
    buf.truncate(n);
    match kind {
        Kind::BadChecksum => buf[7] = buf[7].wrapping_add(1),
        Kind::Truncated => buf.truncate(6),
        Kind::Oversized => buf.resize(1400, 0xee),
        _ => {}
    }
    (buf, if kind == Kind::Ttl64 { 64 } else { 255 })
}

/// A raw IPPROTO 112 socket inside the rogue namespace sending to 224.0.0.18 on its eth0.
struct Rogue {
    socket: Socket,
}

impl Rogue {
    fn open(netns: &str) -> Rogue {
        let ns = netns.to_string();
        let socket = std::thread::spawn(move || {
            let _g = netlab::enter(&ns).expect("enter rogue namespace");
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                .expect("raw socket");
            s.set_multicast_if_v4(&ROGUE).expect("multicast if");
            s.set_multicast_loop_v4(false).expect("no loop");
            s
        })
        .join()
        .expect("rogue opener");
        Rogue { socket }
    }

    fn send(&self, bytes: &[u8], ttl: u32) -> bool {
        let dst = SockAddr::from(SocketAddrV4::new(GROUP, 0));
        self.socket.set_multicast_ttl_v4(ttl).is_ok() && self.socket.send_to(bytes, &dst).is_ok()
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
    let rogue = Rogue::open(&r.netns);
    const COUNT: u64 = 50;

    for kind in KINDS {
        let before = (node_a.status(), node_b.status());
        let (bytes, ttl) = packet(kind);
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
        assert!(
            lab.has_address(&a, VIP).expect("addr"),
            "VIP on a after {kind:?}"
        );
        assert!(
            !lab.has_address(&b, VIP).expect("addr"),
            "VIP not on b after {kind:?}"
        );
        assert!(lab.has_address(&a, "10.99.0.101").expect("addr"));
        // The drops show in the counters of both nodes.
        for (who, old, new) in [("a", &before.0, &after.0), ("b", &before.1, &after.1)] {
            let (o, n) = (&old.instances[0], &new.instances[0]);
            let (o2, n2) = (&old.instances[1], &new.instances[1]);
            let seen = match kind {
                Kind::Ttl64 => n.socket.bad_ttl - o.socket.bad_ttl,
                Kind::BadChecksum | Kind::Truncated | Kind::Oversized => n.invalid - o.invalid,
                // Read from the socket, matched no instance (VRID 9), so no instance counted.
                Kind::WrongVrid => n.socket.received - o.socket.received,
                // Handed to the v2 router, which drops it (RFC 3768 section 7.1).
                Kind::WrongPassword => n2.adverts_received - o2.adverts_received,
            };
            eprintln!("{who}: {kind:?}: {seen} counted of {COUNT} sent");
            assert!(
                seen >= COUNT * 9 / 10,
                "{who}: {kind:?}: only {seen} of {COUNT} counted"
            );
            if kind != Kind::Ttl64 {
                assert_eq!(n.socket.bad_ttl, o.socket.bad_ttl, "{who}: {kind:?}");
            }
        }
    }
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

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100).max(1)
}

#[test]
fn advert_flood_keeps_state_log_and_memory_bounded() {
    if netlab::require_root(&[]) {
        return;
    }
    let Some(bin) = node_support::cli::binary("HOSTILE_BIN") else {
        eprintln!("skipped: redundancy-cli binary not found (build it or set HOSTILE_BIN)");
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
    let rogue = Rogue::open(&r.netns);
    let packets: Vec<(Vec<u8>, u32)> = KINDS.iter().map(|k| packet(*k)).collect();
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
