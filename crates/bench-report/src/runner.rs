//! Running the comparison runners: each is a `harness = false` bench target of the root
//! package that appends its figures to the file named by `BENCH_JSON`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// One side-by-side comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Report group(s) it fills, e.g. "failover".
    pub group: &'static str,
    /// The bench target (`cargo bench --bench NAME`).
    pub bench: &'static str,
    /// Arguments after `--`.
    pub args: &'static [&'static str],
    /// Extra arguments after `--` in quick mode.
    pub quick_args: &'static [&'static str],
    /// Environment for every run.
    pub env: &'static [(&'static str, &'static str)],
    /// Environment added in quick mode (fewer runs, smaller data).
    pub quick_env: &'static [(&'static str, &'static str)],
    /// Whether it needs root (network namespaces).
    pub needs_root: bool,
    /// Runs only when asked for by name (long soak runs).
    pub on_request: bool,
}

/// Every comparison, in report order.
pub fn comparisons() -> Vec<Comparison> {
    vec![
        Comparison {
            group: "codec",
            bench: "codec",
            // `cargo bench` passes `--bench` itself; criterion refuses it twice.
            args: &["--warm-up-time", "1", "--measurement-time", "4"],
            env: &[],
            quick_args: &["--sample-size", "20", "--measurement-time", "1"],
            quick_env: &[],
            needs_root: false,
            on_request: false,
        },
        Comparison {
            group: "failover",
            bench: "node_failover",
            args: &[],
            // Both sides real-time (ours SCHED_FIFO 10, keepalived vrrp_rt_priority 10): our
            // daemon runs its VRRP thread SCHED_FIFO by default, and keepalived gets the same.
            env: &[("FAILOVER_REALTIME", "10")],
            quick_args: &[],
            quick_env: &[("FAILOVER_RUNS", "2"), ("FAILOVER_CASES", "v3:100")],
            needs_root: true,
            on_request: false,
        },
        Comparison {
            group: "scale",
            bench: "vrrp_scale",
            args: &[],
            env: &[],
            quick_args: &[],
            quick_env: &[
                ("SCALE_VRIDS", "20"),
                ("SCALE_SETTLE_CAP_S", "30"),
                ("SCALE_CPU_SECS", "5"),
            ],
            needs_root: true,
            on_request: false,
        },
        Comparison {
            group: "delta",
            bench: "delta_compare",
            args: &[],
            env: &[],
            quick_args: &[],
            quick_env: &[
                ("DELTA_COMPARE_RUNS", "1"),
                ("DELTA_COMPARE_MIB", "16"),
                ("DELTA_COMPARE_STREAM_GIB", "0"),
            ],
            needs_root: false,
            on_request: false,
        },
        Comparison {
            group: "treesync",
            bench: "treesync_compare",
            args: &[],
            env: &[],
            quick_args: &[],
            quick_env: &[
                ("TREESYNC_SMALL", "500"),
                ("TREESYNC_VOICE", "5"),
                ("TREESYNC_RUNS", "1"),
                ("TREESYNC_NO_VARIANTS", "1"),
            ],
            needs_root: false,
            on_request: false,
        },
        Comparison {
            group: "stability",
            bench: "node_stability",
            args: &[],
            env: &[],
            quick_args: &[],
            quick_env: &[("STABILITY_SECS", "20"), ("STABILITY_PEER_SECS", "20")],
            needs_root: true,
            on_request: true,
        },
    ]
}

/// The cargo to run: the one that started us (`CARGO`), else `cargo` on the PATH.
pub fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// The workspace's target directory, from `cargo metadata`.
pub fn target_dir(workspace: &Path) -> Result<PathBuf, Error> {
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace)
        .output()
        .map_err(|e| Error::Io {
            what: "running cargo metadata".into(),
            source: e,
        })?;
    if !out.status.success() {
        return Err(Error::Runner {
            bench: "cargo metadata".into(),
            reason: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Runner {
        bench: "cargo metadata".into(),
        reason: e.to_string(),
    })?;
    v.get("target_directory")
        .and_then(|t| t.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| Error::Runner {
            bench: "cargo metadata".into(),
            reason: "no target_directory in its output".into(),
        })
}

/// Runs one comparison with `BENCH_JSON=json`, its output streaming to our terminal.
pub fn run(c: &Comparison, workspace: &Path, json: &Path, quick: bool) -> Result<(), Error> {
    let mut cmd = Command::new(cargo());
    cmd.args([
        "bench",
        "-q",
        "-p",
        "pbx-redundancy",
        "--bench",
        c.bench,
        "--",
    ])
    .args(c.args)
    .current_dir(workspace)
    .env("BENCH_JSON", json);
    if quick {
        cmd.args(c.quick_args);
        for (k, v) in c.quick_env {
            cmd.env(k, v);
        }
    }
    eprintln!("bench-report: running {} ({})", c.bench, c.group);
    let status = cmd.status().map_err(|e| Error::Io {
        what: format!("starting cargo bench --bench {}", c.bench),
        source: e,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Runner {
            bench: c.bench.into(),
            reason: format!("exited with {status}"),
        })
    }
}

/// True when running as root (the namespace comparisons need it).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_group_named_once_and_every_bench_target_exists() {
        let all = comparisons();
        let mut groups: Vec<_> = all.iter().map(|c| c.group).collect();
        groups.sort_unstable();
        groups.dedup();
        assert_eq!(groups.len(), all.len());
        // Each runner is a file of the root package's benches/.
        let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../benches");
        for c in &all {
            let f = benches.join(format!("{}.rs", c.bench));
            assert!(f.is_file(), "missing {}", f.display());
        }
    }
}
