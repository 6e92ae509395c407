//! Machine-readable results of the comparison runners, gathered by `redundancy-cli bench-report`.
//!
//! Every runner prints its own table for a human; when the environment variable `BENCH_JSON`
//! names a file, it also appends one JSON object per compared figure to that file (JSON Lines).
//! The report tool reads those lines and writes the Markdown report and the plots, so nothing in
//! the report is typed by hand. One line looks like:
//!
//! ```json
//! {"group":"delta","case":"signature","metric":"throughput","unit":"MiB/s",
//!  "higher_is_better":true,"ours":[1778.0,1790.2,1765.1],"peer_name":"fast_rsync",
//!  "peer":[1908.0,1899.3,1911.5],"goal":"ratio >= 2.0"}
//! ```
//!
//! `ours` and `peer` hold every run (the tool takes median and spread); `peer` may be empty
//! where no peer exists for a figure. `goal` restates the issue's goal in words, or is absent.
#![allow(dead_code)] // each bench uses part of this module

use std::io::Write;

/// One compared figure: every run of ours and of the peer, measured in the same run.
pub struct Figure<'a> {
    /// Which comparison: "codec", "failover", "delta", "treesync", "scale".
    pub group: &'a str,
    /// The case inside the group, e.g. "v3 10ms port down" or "signature".
    pub case: &'a str,
    /// What is measured, e.g. "takeover", "throughput", "wall time", "bytes on the wire".
    pub metric: &'a str,
    /// The unit of every value, e.g. "ms", "MiB/s", "B".
    pub unit: &'a str,
    /// True when a larger value is better (throughput), false for times and sizes.
    pub higher_is_better: bool,
    /// Our value in each run.
    pub ours: &'a [f64],
    /// The peer's name, e.g. "keepalived 2.2.7", "fast_rsync 0.2", "rsync daemon".
    pub peer_name: &'a str,
    /// The peer's value in each run (empty when there is no peer for this figure).
    pub peer: &'a [f64],
    /// The issue's goal for this figure in words, e.g. "ratio <= 1.0", "< 15 ns".
    pub goal: Option<&'a str>,
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn json_nums(v: &[f64]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|x| {
            if x.is_finite() {
                format!("{x}")
            } else {
                "null".to_owned()
            }
        })
        .collect();
    format!("[{}]", parts.join(","))
}

/// Appends `figure` to the file named by `BENCH_JSON`, if that variable is set.
///
/// A runner started by hand (no `BENCH_JSON`) only prints its table; a failure to write is
/// reported on stderr and does not abort the benchmark.
pub fn record(figure: &Figure<'_>) {
    let Some(path) = std::env::var_os("BENCH_JSON") else {
        return;
    };
    let goal = figure
        .goal
        .map(json_str)
        .unwrap_or_else(|| "null".to_owned());
    let line = format!(
        "{{\"group\":{},\"case\":{},\"metric\":{},\"unit\":{},\"higher_is_better\":{},\"ours\":{},\"peer_name\":{},\"peer\":{},\"goal\":{}}}\n",
        json_str(figure.group),
        json_str(figure.case),
        json_str(figure.metric),
        json_str(figure.unit),
        figure.higher_is_better,
        json_nums(figure.ours),
        json_str(figure.peer_name),
        json_nums(figure.peer),
        goal,
    );
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = written {
        eprintln!("bench: cannot append to {}: {e}", path.to_string_lossy());
    }
}
