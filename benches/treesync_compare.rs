//! Tree sync against an rsync daemon on 127.0.0.1, same data, same machine, same run.
//!
//! `cargo bench --bench treesync_compare` (add `-- --small 2000 --voice 20 --runs 3` for a quick
//! run; the environment knobs `TREESYNC_SMALL`, `TREESYNC_VOICE`, `TREESYNC_RUNS` do the same).
//! With `BENCH_JSON=<file>` every run of both tools is recorded (see `benches/report/mod.rs`),
//! group "treesync", cases "1% round" and "no-change poll".
//! The data set of issue 7: 10,000 small configuration files in 100 directories plus 100 voice
//! files of 2-10 MiB. After an initial full sync of both replicas, each measured change round
//! changes 1% of the configuration files, appends to 5 voice files, deletes 3 and adds 3 voice
//! files and deletes 20 configuration files; then a poll with nothing changed. Each case runs
//! `--runs` times (default 5 for change rounds, 3x that for polls); the table shows medians of
//! wall time and bytes on the wire (rsync: its `--stats` totals, ours: frame bytes both ways),
//! and our value as a fraction of rsync's.
//!
//! `TREESYNC_GAP_MS=N` waits N ms more before every timed round of either tool.
//!
//! Both sides read a warm page cache. Before each timed round of either tool the machine is
//! brought to rest, untimed ([`settle`]): `sync` flushes what earlier steps left dirty (our
//! apply ends with `syncfs`, which would otherwise also write back the data set and the other
//! tool's replica; rsync writes without fsync), our server's scan-ahead is allowed to catch up
//! with the change just made (it scans once the tree has been quiet for 100 ms), and our stores'
//! background work (arming the generation watch) ends. The products poll every 10-60 s, so a
//! poll that lands within a few hundred milliseconds of the change is the exception; that case
//! is measured with `TREESYNC_BUSY=1` (each round starts right after the change and ours pays
//! the server's walk and hashing inside its "manifest" phase), not recorded by default. We
//! stage, `syncfs` and switch generations atomically, and that durability is part of our time.
//! Two variants pull the same changes into stores of their own (not recorded, printed with their
//! phase breakdown): durability off (`StoreOptions::fsync`), and the session-1 layout that builds
//! a complete tree of hard links every round (`StoreOptions::reuse` off; its trash, a whole
//! generation per round, is freed during its next round). `TREESYNC_NO_VARIANTS=1` skips them.
//! `TREESYNC_PERF_CTL=<fifo>` enables and disables a `perf record --control=fifo:<fifo> -D -1`
//! around the change rounds.
#[path = "report/mod.rs"]
mod report;

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sync::transfer::auth::{Identity, Key};
use sync::transfer::msg::BackupMode;
use sync::transfer::puller::{pull_once, PullConfig, RoundPhases};
use sync::transfer::server::{ServedSet, Server, ServerConfig};
use sync::tree::exclude::Excludes;
use sync::tree::manifest::Limits;
use sync::tree::store::{GenStore, StoreOptions};

struct Opts {
    small: usize,
    voice: usize,
    runs: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        small: 10_000,
        voice: 100,
        runs: 5,
    };
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    if let Some(v) = env("TREESYNC_SMALL") {
        o.small = v;
    }
    if let Some(v) = env("TREESYNC_VOICE") {
        o.voice = v;
    }
    if let Some(v) = env("TREESYNC_RUNS") {
        o.runs = v;
    }
    let args: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < args.len() {
        let val = args.get(i + 1).and_then(|v| v.parse().ok());
        match (args[i].as_str(), val) {
            ("--small", Some(v)) => o.small = v,
            ("--voice", Some(v)) => o.voice = v,
            ("--runs", Some(v)) => o.runs = v,
            _ => {}
        }
        i += 1;
    }
    o
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

fn config_text(i: usize, version: u64, rng: &mut Rng) -> String {
    let mut s = format!("; extension {i}, version {version}\n[ext-{i}]\n");
    let lines = 20 + (rng.next() % 60) as usize;
    for l in 0..lines {
        s.push_str(&format!("key{l} = value-{}-{}\n", i, rng.next() % 100_000));
    }
    s
}

fn config_path(src: &Path, i: usize) -> PathBuf {
    src.join(format!("config/d{:03}/ext{i:05}.conf", i % 100))
}

fn voice_path(src: &Path, i: usize) -> PathBuf {
    src.join(format!("voice/box{:02}/msg{i:04}.wav", i % 10))
}

fn build(src: &Path, o: &Opts, rng: &mut Rng) -> u64 {
    let mut total = 0;
    for i in 0..o.small {
        let p = config_path(src, i);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let t = config_text(i, 0, rng);
        total += t.len() as u64;
        fs::write(p, t).unwrap();
    }
    for i in 0..o.voice {
        let p = voice_path(src, i);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let len = (2 << 20) + (rng.next() % (8 << 20)) as usize;
        total += len as u64;
        fs::write(p, rng.bytes(len)).unwrap();
    }
    total
}

/// One change round as in the issue; `run` selects fresh victims each time.
fn mutate(src: &Path, o: &Opts, run: usize, next_voice: &mut usize, rng: &mut Rng) {
    let live_configs: Vec<usize> = (0..o.small)
        .filter(|&i| config_path(src, i).exists())
        .collect();
    let mut live_voice: Vec<usize> = (0..*next_voice)
        .filter(|&i| voice_path(src, i).exists())
        .collect();
    let n_change = (o.small / 100).max(1);
    for k in 0..n_change {
        let i = live_configs[(k * 97 + run * 13) % live_configs.len()];
        // change one line in the middle, keep the rest
        let p = config_path(src, i);
        let mut t = fs::read_to_string(&p).unwrap();
        t = t.replacen("key5 = ", &format!("key5 = changed{run}-"), 1);
        fs::write(p, t).unwrap();
    }
    for k in 0..20.min(live_configs.len() / 10) {
        let i = live_configs[(k * 31 + run * 7 + 5) % live_configs.len()];
        let _ = fs::remove_file(config_path(src, i));
    }
    for k in 0..5.min(live_voice.len()) {
        let i = live_voice[(k * 17 + run * 3) % live_voice.len()];
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(voice_path(src, i))
            .unwrap();
        use std::io::Write;
        f.write_all(&rng.bytes(256 << 10)).unwrap();
    }
    for _ in 0..3.min(live_voice.len()) {
        let j = (rng.next() as usize) % live_voice.len();
        let i = live_voice.swap_remove(j);
        fs::remove_file(voice_path(src, i)).unwrap();
    }
    for _ in 0..3 {
        let p = voice_path(src, *next_voice);
        *next_voice += 1;
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let len = (2 << 20) + (rng.next() % (8 << 20)) as usize;
        fs::write(p, rng.bytes(len)).unwrap();
    }
}

struct Daemon(Child);
impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_rsyncd(base: &Path, src: &Path) -> (Daemon, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = base.join("rsyncd.conf");
    fs::write(
        &conf,
        format!(
            "pid file = {}\nuse chroot = no\nuid = root\ngid = root\n[data]\n  path = {}\n  read only = yes\n",
            base.join("rsyncd.pid").display(),
            src.display()
        ),
    )
    .unwrap();
    let child = Command::new("rsync")
        .args(["--daemon", "--no-detach", "--address=127.0.0.1"])
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", conf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("rsync --daemon");
    let d = Daemon(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return (d, port);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("rsync daemon did not start");
}

/// What a timed round waits for before it starts (see [`settle`]).
struct Quiet<'a> {
    server: &'a Server,
    stores: Vec<&'a GenStore>,
}

/// Brings the machine to rest before a timed round of either tool, untimed: `sync` flushes
/// dirty data of earlier steps (data set creation, the other tool's round), and unless
/// `TREESYNC_BUSY=1` it waits until our server has scanned the change just made (its
/// scan-ahead runs once the tree has been quiet for 100 ms) and our stores' background work
/// (trash collection, arming the generation watch) has ended. So neither tool's round shares
/// the two cores with work the other left running, and our round finds the server's manifest
/// ready, as a standby polling every 10-60 s does unless the poll lands within a few hundred
/// milliseconds of the change. `TREESYNC_BUSY=1` measures that unlucky case instead: each
/// round starts right after the change, and ours pays the server's scan and whatever
/// background work is still running.
fn settle(q: &Quiet<'_>) {
    let _ = Command::new("sync").status();
    if std::env::var_os("TREESYNC_BUSY").is_none() {
        if !q.server.wait_scanned("data", Duration::from_secs(30)) {
            println!("warning: the server's scan-ahead did not catch up within 30 s");
        }
        for s in &q.stores {
            s.wait_background();
        }
    }
    // A quiet gap before each timed round (`TREESYNC_GAP_MS`, default none).
    if let Some(ms) = std::env::var("TREESYNC_GAP_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        std::thread::sleep(Duration::from_millis(ms));
    }
}

fn rsync_round(q: &Quiet<'_>, port: u16, dst: &Path) -> (Duration, u64) {
    settle(q);
    let t = Instant::now();
    let out = Command::new("rsync")
        .args(["-a", "--delete", "--stats"])
        .arg(format!("rsync://127.0.0.1:{port}/data/"))
        .arg(format!("{}/", dst.display()))
        .output()
        .unwrap();
    let el = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut bytes = 0;
    for l in text.lines() {
        for key in ["Total bytes sent:", "Total bytes received:"] {
            if let Some(v) = l.strip_prefix(key) {
                bytes += v.trim().replace(',', "").parse::<u64>().unwrap_or(0);
            }
        }
    }
    (el, bytes)
}

fn ours_round(
    q: &Quiet<'_>,
    store: &GenStore,
    cfg: &PullConfig,
    phases: &mut Vec<RoundPhases>,
) -> (Duration, u64) {
    settle(q);
    let t = Instant::now();
    let r = pull_once(store, cfg).unwrap();
    let el = t.elapsed();
    phases.push(r.phases);
    (el, r.bytes_sent + r.bytes_received)
}

/// With `TREESYNC_PERF_CTL=<fifo>` (perf record --control=fifo:<fifo> -D -1), profiles only
/// the timed change rounds.
fn perf_ctl(cmd: &str) {
    if let Some(p) = std::env::var_os("TREESYNC_PERF_CTL") {
        if let Err(e) = fs::write(&p, format!("{cmd}\n")) {
            eprintln!("perf control {}: {e}", Path::new(&p).display());
        }
    }
}

fn ms(v: &[Duration]) -> Vec<f64> {
    v.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}

fn as_f64(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&b| b as f64).collect()
}

/// Records the wall time and bytes of every run of one case.
fn record(case: &str, ours: (&[Duration], &[u64]), peer: (&[Duration], &[u64]), goals: [&str; 2]) {
    report::record(&report::Figure {
        group: "treesync",
        case,
        metric: "wall time",
        unit: "ms",
        higher_is_better: false,
        ours: &ms(ours.0),
        peer_name: "rsync daemon",
        peer: &ms(peer.0),
        goal: Some(goals[0]),
    });
    report::record(&report::Figure {
        group: "treesync",
        case,
        metric: "bytes on the wire",
        unit: "B",
        higher_is_better: false,
        ours: &as_f64(ours.1),
        peer_name: "rsync daemon",
        peer: &as_f64(peer.1),
        goal: Some(goals[1]),
    });
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let o = opts();
    if Command::new("rsync").arg("--version").output().is_err() {
        println!("treesync_compare: rsync not installed, nothing to compare against; skipping");
        return;
    }
    let base = std::env::temp_dir().join(format!("treesync-bench-{}", std::process::id()));
    let _ = fs::remove_dir_all(&base);
    let src = base.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t = Instant::now();
    let total = build(&src, &o, &mut rng);
    println!(
        "data set: {} config files, {} voice files, {:.0} MB, built in {:.1} s",
        o.small,
        o.voice,
        total as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let (_daemon, port) = start_rsyncd(&base, &src);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let key = Key::from_bytes(b"benchmark pre-shared key").unwrap();
    let server = Server::new(ServerConfig {
        key: key.clone(),
        identity: Identity::new("primary", BackupMode::Active),
        sets: vec![ServedSet {
            name: "data".into(),
            root: src.clone(),
            excludes: Excludes::default(),
            watch: true,
        }],
        max_connections: 4,
        io_timeout: Duration::from_secs(120),
        transport: Default::default(),
    })
    .spawn(listener)
    .unwrap();
    let cfg = PullConfig {
        server: server.addr.to_string(),
        set: "data".into(),
        key,
        identity: Identity::new("standby", BackupMode::Passive),
        limits: Limits::default(),
        io_timeout: Duration::from_secs(120),
        use_delta: true,
        transport: Default::default(),
    };
    let rdst = base.join("rsync-dst");
    fs::create_dir_all(&rdst).unwrap();
    let store = GenStore::open(base.join("ours")).unwrap();
    // Variants measured on the same changes, each into its own store: durability off (rsync
    // never fsyncs), and the session-1 layout (a complete new tree of hard links every round).
    let variants: Vec<(&str, GenStore)> = if std::env::var_os("TREESYNC_NO_VARIANTS").is_some() {
        Vec::new()
    } else {
        [
            ("no fsync", false, true),
            ("no reuse (full link tree)", true, false),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (name, fsync, reuse))| {
            let mut s = GenStore::open(base.join(format!("variant{i}"))).unwrap();
            s.set_options(StoreOptions { reuse, fsync });
            (name, s)
        })
        .collect()
    };
    let mut variant_times: Vec<Vec<Duration>> = vec![Vec::new(); variants.len()];
    let mut variant_phases: Vec<Vec<RoundPhases>> = vec![Vec::new(); variants.len()];
    for (_, vs) in &variants {
        pull_once(vs, &cfg).unwrap();
    }

    let q = Quiet {
        server: &server.server,
        stores: std::iter::once(&store)
            .chain(variants.iter().map(|(_, s)| s))
            .collect(),
    };
    let (rt, rb) = rsync_round(&q, port, &rdst);
    let mut phases = Vec::new();
    let (ot, ob) = ours_round(&q, &store, &cfg, &mut phases);
    let mut rows = vec![("initial full sync (1 run)".to_string(), rt, rb, ot, ob)];

    let mut next_voice = o.voice;
    let (mut rts, mut rbs, mut ots, mut obs) = (vec![], vec![], vec![], vec![]);
    phases.clear();
    perf_ctl("enable");
    for run in 0..o.runs {
        mutate(&src, &o, run, &mut next_voice, &mut rng);
        // Alternate who goes first so neither always meets a colder cache.
        let (r, us) = if run % 2 == 0 {
            let r = rsync_round(&q, port, &rdst);
            (r, ours_round(&q, &store, &cfg, &mut phases))
        } else {
            let us = ours_round(&q, &store, &cfg, &mut phases);
            (rsync_round(&q, port, &rdst), us)
        };
        rts.push(r.0);
        rbs.push(r.1);
        ots.push(us.0);
        obs.push(us.1);
        for (i, (_, vs)) in variants.iter().enumerate() {
            let (t, _) = ours_round(&q, vs, &cfg, &mut variant_phases[i]);
            variant_times[i].push(t);
        }
    }
    perf_ctl("disable");
    let round_phases = phases.clone();
    record(
        "1% round",
        (&ots, &obs),
        (&rts, &rbs),
        ["ratio <= 0.25", "ratio <= 1.0"],
    );
    rows.push((
        format!("1% change round (median of {})", o.runs),
        median(&mut rts),
        median(&mut rbs),
        median(&mut ots),
        median(&mut obs),
    ));

    let polls = o.runs * 3;
    // A no-change poll should answer from the inotify watch on our current generation, not by
    // checking every entry of it (GenStore::check_generation).
    let walks_before = store.full_checks();
    let (mut rts, mut rbs, mut ots, mut obs) = (vec![], vec![], vec![], vec![]);
    for _ in 0..polls {
        let r = rsync_round(&q, port, &rdst);
        let us = ours_round(&q, &store, &cfg, &mut phases);
        rts.push(r.0);
        rbs.push(r.1);
        ots.push(us.0);
        obs.push(us.1);
    }
    let poll_walks = store.full_checks() - walks_before;
    record(
        "no-change poll",
        (&ots, &obs),
        (&rts, &rbs),
        ["< 5 ms", "< 1024 B"],
    );
    rows.push((
        format!("no-change poll (median of {polls})"),
        median(&mut rts),
        median(&mut rbs),
        median(&mut ots),
        median(&mut obs),
    ));

    // Both replicas must equal the source, or the figures mean nothing.
    let check = Command::new("rsync")
        .args(["-a", "--delete", "--dry-run", "--itemize-changes"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", base.join("ours/current").display()))
        .output()
        .unwrap();
    let diff = String::from_utf8_lossy(&check.stdout);
    assert!(diff.trim().is_empty(), "our replica differs:\n{diff}");

    println!();
    println!(
        "| case | rsync time | rsync bytes | ours time | ours bytes | time ratio | bytes ratio |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, rt, rb, ot, ob) in rows {
        println!(
            "| {name} | {:.1} ms | {rb} | {:.1} ms | {ob} | {:.3} | {:.3} |",
            rt.as_secs_f64() * 1e3,
            ot.as_secs_f64() * 1e3,
            ot.as_secs_f64() / rt.as_secs_f64(),
            ob as f64 / rb.max(1) as f64
        );
    }
    println!();
    println!("our {polls} no-change polls walked the current generation {poll_walks} times");
    println!("our 1% rounds, phase by phase:");
    for (i, p) in round_phases.iter().enumerate() {
        println!("  run {i}: {p}");
    }
    for (i, (name, _)) in variants.iter().enumerate() {
        let mut t = variant_times[i].clone();
        println!(
            "variant {name}: 1% round median {:.1} ms (runs: {:?} ms)",
            median(&mut t).as_secs_f64() * 1e3,
            ms(&variant_times[i])
                .iter()
                .map(|x| x.round())
                .collect::<Vec<_>>()
        );
        for (j, p) in variant_phases[i].iter().enumerate() {
            println!("  run {j}: {p}");
        }
    }
    server.stop();
    drop(store);
    let _ = fs::remove_dir_all(&base);
}
