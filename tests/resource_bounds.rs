//! Resource bounds over many failovers (issue 5): two `redundancy-cli vrrp` processes in
//! namespaces (the binary next to the test binary, or `RESOURCE_BIN`), the master's switch port
//! cut and restored again and again (backup takes over, master preempts back). After every
//! cycle the open file descriptors (`/proc/PID/fd`), threads (`/proc/PID/task`) and RSS of both
//! nodes are sampled; they must stay flat. Skips with a reason when not root.
//!
//! Knobs: `RESOURCE_CYCLES` (default 8; each cycle is two failovers, about 1 s).
#![cfg(target_os = "linux")]

mod node_support;

use std::time::{Duration, Instant};

use node_support::cli::{proc_sample as sample, ProcSample as Sample};

const LONG: Duration = Duration::from_secs(10);

fn count_lines(p: &netlab::Process, needle: &str) -> usize {
    p.output().iter().filter(|l| l.contains(needle)).count()
}

/// The last few output lines of a process.
fn tail(p: &netlab::Process) -> Vec<String> {
    let out = p.output();
    out[out.len().saturating_sub(6)..].to_vec()
}

/// Waits until `p` has logged `needle` more than `seen` times.
fn wait_more(p: &netlab::Process, needle: &str, seen: usize) -> bool {
    let deadline = Instant::now() + LONG;
    while Instant::now() < deadline {
        if count_lines(p, needle) > seen {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn fds_threads_and_memory_stay_flat_over_many_failovers() {
    let Some(bin) = node_support::cli::binary_or_skip("RESOURCE_BIN") else {
        return;
    };
    let cycles = node_support::cli::env_u64("RESOURCE_CYCLES")
        .unwrap_or(8)
        .max(2);
    let mut lab = netlab::Lab::new("res").expect("lab");
    let a = lab.add_member("a", &["10.99.0.1/24"]).expect("a");
    let b = lab.add_member("b", &["10.99.0.2/24"]).expect("b");
    let bin = bin.to_str().expect("utf-8 path").to_string();
    let (pa, pb) = node_support::cli::start_pair(&lab, &bin, (&a, &b), "9", "50ms", LONG);
    std::thread::sleep(Duration::from_millis(500));

    let mut samples: Vec<(Sample, Sample)> = Vec::new();
    let t0 = Instant::now();
    for cycle in 0..cycles {
        // Cut a off at the switch: a loses carrier (Fault), b takes over.
        let mb = count_lines(&pb, "-> master");
        lab.set_port(&a, false).expect("port down");
        assert!(
            wait_more(&pb, "-> master", mb),
            "cycle {cycle}: b takes over"
        );
        // Restore: a (higher priority, preempt) and b meet; b yields.
        let bb = count_lines(&pb, "-> backup");
        lab.set_port(&a, true).expect("port up");
        assert!(
            wait_more(&pb, "-> backup", bb),
            "cycle {cycle}: b yields; a's last lines: {:?}; b's: {:?}",
            tail(&pa),
            tail(&pb)
        );
        std::thread::sleep(Duration::from_millis(200));
        let s = (
            sample(pa.pid()).expect("sample a"),
            sample(pb.pid()).expect("sample b"),
        );
        samples.push(s);
    }
    let secs = t0.elapsed().as_secs_f64();
    let first = samples[0];
    let last = samples[samples.len() - 1];
    let max_rss = samples
        .iter()
        .fold((0, 0), |m, s| (m.0.max(s.0.rss_kib), m.1.max(s.1.rss_kib)));
    eprintln!(
        "{cycles} cycles ({} failovers) in {secs:.1} s; a: fds {} -> {}, threads {} -> {}, RSS {} -> {} KiB (max {}); b: fds {} -> {}, threads {} -> {}, RSS {} -> {} KiB (max {})",
        cycles * 2,
        first.0.fds,
        last.0.fds,
        first.0.threads,
        last.0.threads,
        first.0.rss_kib,
        last.0.rss_kib,
        max_rss.0,
        first.1.fds,
        last.1.fds,
        first.1.threads,
        last.1.threads,
        first.1.rss_kib,
        last.1.rss_kib,
        max_rss.1
    );
    for (who, f, l, m) in [
        ("a", first.0, last.0, max_rss.0),
        ("b", first.1, last.1, max_rss.1),
    ] {
        assert_eq!(l.fds, f.fds, "{who}: open fds changed: {samples:?}");
        assert_eq!(l.threads, f.threads, "{who}: threads changed: {samples:?}");
        assert!(
            m <= f.rss_kib + 2048,
            "{who}: RSS grew from {} to {m} KiB: {samples:?}",
            f.rss_kib
        );
    }
}
