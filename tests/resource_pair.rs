//! Resource bounds of the whole pair daemon (issue 5): two `redundancy-cli run` processes in
//! namespaces with a sync set of a small tree pulled every 200 ms, a writer changing the
//! operational node's tree, and the primary's switch port cut and restored again and again
//! (the secondary takes over, the primary comes back, pulls what was written meanwhile, and
//! preempts). Every cycle is two failovers and many sync rounds. After every cycle the open
//! file descriptors (`/proc/PID/fd`), threads (`/proc/PID/task`) and RSS of both daemons are
//! sampled, with the disk usage and the number of entries of each node's generation store:
//! all must stay flat (old generations are collected). Each failback must also bring back
//! the secondary's last write. Skips with a reason when not root.
//!
//! Memory is measured as shipped: `redundancy-cli run` limits glibc to one malloc arena
//! (without that, the daemon's short-lived pull and serve threads each land on a new
//! per-thread arena that keeps about 4 MiB resident after its thread is gone, so RSS climbed in
//! 4 MiB steps up to glibc's limit of 8 arenas per core: +15 MiB over 80 failovers).
//! `RESOURCE_PAIR_ARENAS=default` runs the daemon with glibc's default (8 arenas per core)
//! and only reports RSS.
//!
//! Knobs: `RESOURCE_PAIR_CYCLES` (default 6, under a minute; each cycle takes a few seconds),
//! `RESOURCE_BIN` (the daemon binary; default: the workspace's, next to the test binary).
#![cfg(target_os = "linux")]

mod node_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use redundancy::config::{Direction, Role};
use redundancy::control::Request;
use redundancy::lab::PairConfigBuilder;

/// Generous: a loaded machine stretches every step.
const LONG: Duration = Duration::from_secs(30);
const SET: &str = "state";

/// One sample of a daemon and its store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sample {
    fds: usize,
    threads: usize,
    rss_kib: u64,
    /// Bytes of every regular file under the set's root (all generations, staging).
    store_bytes: u64,
    /// Entries directly under the set's root (generations and bookkeeping).
    store_entries: usize,
}

fn du(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .map(|r| r.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
            .unwrap_or(0)
    } else if md.is_file() {
        md.len()
    } else {
        0
    }
}

fn sample(pid: u32, root: &Path) -> Option<Sample> {
    let p = node_support::cli::proc_sample(pid)?;
    Some(Sample {
        fds: p.fds,
        threads: p.threads,
        rss_kib: p.rss_kib,
        store_bytes: du(root),
        store_entries: std::fs::read_dir(root).ok()?.count(),
    })
}

/// `(state, generation of SET)` from the node's control socket.
fn status(socket: &Path) -> Option<(String, Option<String>)> {
    use std::io::{Read, Write};
    let req = serde_json::to_string(&Request::Status).ok()?;
    let mut c = std::os::unix::net::UnixStream::connect(socket).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    c.write_all(format!("{req}\n").as_bytes()).ok()?;
    let mut buf = Vec::new();
    c.take(4 << 20).read_to_end(&mut buf).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&buf).ok()?;
    let s = &v["status"];
    let gen = s["sets"]
        .as_array()?
        .iter()
        .find(|x| x["name"] == SET)
        .and_then(|x| x["generation"].as_str().map(str::to_string));
    Some((s["state"].as_str()?.to_string(), gen))
}

fn wait(what: &str, mut f: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("not seen within {LONG:?}: {what}"))
}

/// The directory `ROOT/current` resolves to.
fn current(root: &Path) -> PathBuf {
    let cur = root.join("current");
    match std::fs::read_link(&cur) {
        Ok(t) if t.is_absolute() => t,
        Ok(t) => root.join(t),
        Err(_) => cur,
    }
}

/// One change to the operational node's tree: rewrite one of eight small files (by rename,
/// as an application would), so the tree stays small and every round has a delta.
fn write_one(root: &Path, k: u64) -> std::io::Result<()> {
    let dir = current(root);
    let tmp = root.join(".writer.tmp");
    let body: Vec<u8> = (0..2000u64)
        .map(|i| (i.wrapping_mul(31) ^ k) as u8)
        .collect();
    std::fs::write(&tmp, body)?;
    std::fs::rename(&tmp, dir.join(format!("file-{}.dat", k % 8)))
}

fn last_lines(p: &netlab::Process) -> Vec<String> {
    let out = p.output();
    out[out.len().saturating_sub(12)..].to_vec()
}

#[test]
fn pair_fds_threads_memory_and_store_stay_flat_over_failovers_and_sync_rounds() {
    let Some(bin) = node_support::cli::binary_or_skip("RESOURCE_BIN") else {
        return;
    };
    let cycles = node_support::cli::env_u64("RESOURCE_PAIR_CYCLES")
        .unwrap_or(6)
        .max(3);
    let mut lab = netlab::Lab::new("respair").expect("lab");
    let psk = lab.dir().join("psk");
    std::fs::write(&psk, "the resource test's pre-shared key, test only\n").expect("psk");
    let members = [
        lab.add_member("a", &["10.99.0.1/24"]).expect("a"),
        lab.add_member("b", &["10.99.0.2/24"]).expect("b"),
    ];
    let addrs = ["10.99.0.1", "10.99.0.2"];
    let mut dirs = Vec::new();
    let mut configs = Vec::new();
    for i in 0..2 {
        let dir = lab.dir().join(format!("node-{i}"));
        std::fs::create_dir_all(&dir).expect("node dir");
        let role = if i == 0 {
            Role::Primary
        } else {
            Role::Secondary
        };
        let mut b = PairConfigBuilder::new(&dir, &format!("node-{i}"), role, [200, 100][i]);
        b.peers = vec![addrs[1 - i].to_string()];
        b.key_file = psk.clone();
        b.set(SET, Direction::FromOperational, "200ms");
        configs.push(b.write().expect("config"));
        dirs.push(dir);
    }
    let roots: Vec<PathBuf> = dirs.iter().map(|d| d.join(SET)).collect();
    let sockets: Vec<PathBuf> = dirs.iter().map(|d| d.join("ctl.sock")).collect();
    std::fs::create_dir_all(roots[0].join("current")).expect("seed");
    for k in 0..8 {
        write_one(&roots[0], k).expect("seed file");
    }
    let bin = bin.to_str().expect("utf-8 path").to_string();
    let default_arenas = std::env::var("RESOURCE_PAIR_ARENAS").as_deref() == Ok("default");
    // glibc's own limit (8 arenas per core), overriding the daemon's one.
    let glibc_default =
        (8 * std::thread::available_parallelism().map_or(1, |n| n.get())).to_string();
    let mut env = vec![("RUST_LOG", "info")];
    if default_arenas {
        env.push(("MALLOC_ARENA_MAX", glibc_default.as_str()));
    }
    let procs: Vec<netlab::Process> = (0..2)
        .map(|i| {
            let cfg = configs[i].display().to_string();
            lab.spawn_env(&members[i], &[&bin, "run", "--config", &cfg], &env)
                .expect("spawn daemon")
        })
        .collect();
    let fail = |what: String| -> ! {
        panic!(
            "{what}\na's last lines: {:#?}\nb's last lines: {:#?}",
            last_lines(&procs[0]),
            last_lines(&procs[1])
        )
    };
    let state = |i: usize| status(&sockets[i]);
    let in_sync = |op: usize| {
        let (s, o) = (state(op), state(1 - op));
        matches!((s, o), (Some((so, Some(g1))), Some((ss, Some(g2))))
            if so == "operational" && ss == "standby" && g1 == g2)
    };
    wait("a operational, b standby holding a's generation", || {
        in_sync(0)
    })
    .unwrap_or_else(|e| fail(e));

    let mut k = 100u64;
    let mut samples: Vec<[Sample; 2]> = Vec::new();
    let t0 = Instant::now();
    let mut pulled = 0u64;
    for cycle in 0..cycles {
        // Writes on the primary, each pulled by the standby (sync rounds).
        for _ in 0..3 {
            k += 1;
            write_one(&roots[0], k).unwrap_or_else(|e| fail(format!("write: {e}")));
            let before = state(1).and_then(|s| s.1);
            wait(&format!("cycle {cycle}: b pulls write {k}"), || {
                in_sync(0) && state(1).and_then(|s| s.1) != before
            })
            .unwrap_or_else(|e| fail(e));
            pulled += 1;
        }
        // Failover: cut the primary off; the secondary takes over, and is written to.
        lab.set_port(&members[0], false).expect("port down");
        wait(&format!("cycle {cycle}: b takes over"), || {
            state(1).is_some_and(|s| s.0 == "operational")
        })
        .unwrap_or_else(|e| fail(e));
        for _ in 0..3 {
            k += 1;
            write_one(&roots[1], k).unwrap_or_else(|e| fail(format!("write on b: {e}")));
        }
        let last_on_b = std::fs::read(current(&roots[1]).join(format!("file-{}.dat", k % 8)))
            .unwrap_or_else(|e| fail(format!("read back on b: {e}")));
        // Failback: the primary returns, pulls what b wrote (its preemption is held until
        // then), takes over, and b pulls from it again.
        lab.set_port(&members[0], true).expect("port up");
        wait(
            &format!("cycle {cycle}: a operational again, b in sync"),
            || in_sync(0),
        )
        .unwrap_or_else(|e| fail(e));
        pulled += 1;
        let on_a = std::fs::read(current(&roots[0]).join(format!("file-{}.dat", k % 8)))
            .unwrap_or_else(|e| fail(format!("read back on a: {e}")));
        assert!(
            on_a == last_on_b,
            "cycle {cycle}: b's last write is missing on a after the failback"
        );
        std::thread::sleep(Duration::from_millis(300));
        let s = [
            sample(procs[0].pid(), &roots[0]).expect("sample a"),
            sample(procs[1].pid(), &roots[1]).expect("sample b"),
        ];
        eprintln!("cycle {cycle}: a {:?}; b {:?}", s[0], s[1]);
        samples.push(s);
    }
    let secs = t0.elapsed().as_secs_f64();
    // The first cycle warms up (allocator, the store's first collected generations); compare
    // the rest with it.
    let first = samples[0];
    let last = samples[samples.len() - 1];
    eprintln!(
        "{cycles} cycles ({} failovers, {pulled} pulls of new writes, rounds every 200 ms \
         besides) in {secs:.1} s",
        cycles * 2
    );
    for (n, who) in ["a", "b"].iter().enumerate() {
        let max = |f: fn(&Sample) -> u64| samples.iter().map(|s| f(&s[n])).max().unwrap_or(0);
        eprintln!(
            "{who}: fds {} -> {}, threads {} -> {}, RSS {} -> {} KiB (max {}), store {} -> {} bytes (max {}), entries {} -> {}",
            first[n].fds,
            last[n].fds,
            first[n].threads,
            last[n].threads,
            first[n].rss_kib,
            last[n].rss_kib,
            max(|s| s.rss_kib),
            first[n].store_bytes,
            last[n].store_bytes,
            max(|s| s.store_bytes),
            first[n].store_entries,
            last[n].store_entries,
        );
        for s in &samples {
            assert!(
                s[n].fds <= first[n].fds + 2,
                "{who}: open fds grew: {samples:?}"
            );
            assert!(
                s[n].threads <= first[n].threads + 2,
                "{who}: threads grew: {samples:?}"
            );
            assert!(
                default_arenas || s[n].rss_kib <= first[n].rss_kib + 2048,
                "{who}: RSS grew: {samples:?}"
            );
            // The tree is 8 files of 2000 bytes; a handful of generations (hard links share
            // unchanged files) may be kept, never one per round.
            assert!(
                s[n].store_bytes <= first[n].store_bytes + 64 * 1024,
                "{who}: the store grew (old generations not collected): {samples:?}"
            );
            assert!(
                s[n].store_entries <= first[n].store_entries + 4,
                "{who}: the store's entries grew: {samples:?}"
            );
        }
    }
}
