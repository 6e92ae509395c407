//! The real `redundancy-cli` binary as a VRRP node in a namespace (hostile and resource tests).

use std::path::PathBuf;
use std::time::Duration;

/// A number from the environment (test knobs).
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The `redundancy-cli` binary for a namespace test, or `None` after printing why the test is
/// skipped: not root (namespaces need it) or no binary (see [`binary`]).
pub fn binary_or_skip(override_var: &str) -> Option<PathBuf> {
    if netlab::require_root(&[]) {
        return None;
    }
    let bin = binary(override_var);
    if bin.is_none() {
        eprintln!("skipped: redundancy-cli binary not found (build it or set {override_var})");
    }
    bin
}

/// One sample of a process's resources, from `/proc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcSample {
    /// Open file descriptors (entries of `/proc/PID/fd`).
    pub fds: usize,
    /// Threads (entries of `/proc/PID/task`).
    pub threads: usize,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Open descriptors, threads and RSS of `pid`; `None` when any of them cannot be read.
pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let count = |d: String| std::fs::read_dir(d).ok().map(|r| r.count());
    Some(ProcSample {
        rss_kib: rss_kib(pid)?,
        fds: count(format!("/proc/{pid}/fd"))?,
        threads: count(format!("/proc/{pid}/task"))?,
    })
}

/// Resident set size in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `redundancy-cli` binary: the path in `override_var`, or the one cargo built beside the
/// test binary (`target/<profile>/deps/TEST-HASH` -> `target/<profile>/redundancy-cli`).
pub fn binary(override_var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(override_var) {
        return Some(PathBuf::from(p));
    }
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("redundancy-cli");
    p.is_file().then_some(p)
}

/// Starts `redundancy-cli vrrp` for `vrid` with VIP 10.99.0.100/24 at `interval` on `a`
/// (priority 200) and `b` (priority 100) and waits up to `within` until `a` logged
/// "-> master" and `b` "-> backup". Panics (a test failure) when either does not.
pub fn start_pair(
    lab: &netlab::Lab,
    bin: &str,
    (a, b): (&netlab::Member, &netlab::Member),
    vrid: &str,
    interval: &str,
    within: Duration,
) -> (netlab::Process, netlab::Process) {
    let node = |m: &netlab::Member, prio: &str| {
        lab.spawn(
            m,
            &[
                bin,
                "vrrp",
                "--interface",
                "eth0",
                "--vrid",
                vrid,
                "--priority",
                prio,
                "--vip",
                "10.99.0.100/24",
                "--interval",
                interval,
            ],
        )
        .expect("spawn node")
    };
    let pa = node(a, "200");
    let pb = node(b, "100");
    pa.wait_for_output("-> master", within)
        .expect("a becomes master");
    pb.wait_for_output("-> backup", within)
        .expect("b becomes backup");
    (pa, pb)
}
