//! The codec comparison comes from criterion (`benches/codec.rs`): its per-sample times are
//! read back from `target/criterion/<group>/<bench>/new/{benchmark,sample}.json` and turned
//! into [`Record`]s, ours (`wire_*`) against the `vrrp_packet` baseline of the same case.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::record::Record;
use crate::Error;

#[derive(Deserialize)]
struct BenchmarkId {
    group_id: String,
    function_id: Option<String>,
}

#[derive(Deserialize)]
struct Samples {
    iters: Vec<f64>,
    times: Vec<f64>,
}

/// One criterion benchmark: group, case, implementation and nanoseconds per iteration of
/// each sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Bench {
    /// Criterion group ("parse_validate").
    pub group: String,
    /// The case: the function id before its `/` ("v2_1addr").
    pub case: String,
    /// The implementation: after the `/` ("wire_validate", "vrrp_packet").
    pub imp: String,
    /// ns per iteration, one value per sample.
    pub ns: Vec<f64>,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        what: format!("reading {}", path.display()),
        source: e,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::BadRecord {
        origin: path.display().to_string(),
        line: 1,
        reason: e.to_string(),
    })
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, found);
        } else if p.file_name().is_some_and(|n| n == "benchmark.json")
            && p.parent()
                .and_then(Path::file_name)
                .is_some_and(|n| n == "new")
        {
            found.push(p);
        }
    }
}

/// Reads every benchmark of `groups` under a criterion output directory.
pub fn read_benches(criterion_dir: &Path, groups: &[&str]) -> Result<Vec<Bench>, Error> {
    let mut files = Vec::new();
    walk(criterion_dir, &mut files);
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let id: BenchmarkId = read_json(&file)?;
        if !groups.contains(&id.group_id.as_str()) {
            continue;
        }
        let Some(function) = id.function_id else {
            continue;
        };
        let (case, imp) = function.split_once('/').unwrap_or((function.as_str(), ""));
        let samples: Samples = read_json(&file.with_file_name("sample.json"))?;
        let ns = samples
            .iters
            .iter()
            .zip(&samples.times)
            .filter(|(i, _)| **i > 0.0)
            .map(|(i, t)| t / i)
            .collect();
        out.push(Bench {
            group: id.group_id,
            case: case.to_owned(),
            imp: imp.to_owned(),
            ns,
        });
    }
    Ok(out)
}

/// The goal for one of our implementations (issue 2: under 15 ns to parse and
/// validate a one-address v2 advert, and faster than the baseline).
fn codec_goal(group: &str, case: &str, imp: &str, has_peer: bool) -> Option<String> {
    if !has_peer || imp == "wire_parse_ip_packet" {
        // parse_ip_packet also parses the IP header, which the baseline does not: shown, not judged.
        return None;
    }
    if group == "parse_validate" && case == "v2_1addr" {
        Some("< 15 ns and ratio < 1".to_owned())
    } else {
        Some("ratio < 1".to_owned())
    }
}

/// Turns the codec's criterion benchmarks into records: one per `wire_*` implementation,
/// against `vrrp_packet` in the same group and case when it exists.
pub fn codec_records(benches: &[Bench]) -> Vec<Record> {
    let mut out = Vec::new();
    for b in benches.iter().filter(|b| b.imp.starts_with("wire_")) {
        let peer = benches
            .iter()
            .find(|p| p.group == b.group && p.case == b.case && p.imp == "vrrp_packet");
        let has_peer = peer.is_some();
        out.push(Record {
            group: "codec".to_owned(),
            case: format!("{} {}", b.case, b.imp.trim_start_matches("wire_")),
            metric: b.group.replace('_', " "),
            unit: "ns".to_owned(),
            higher_is_better: false,
            ours: b.ns.iter().copied().map(Some).collect(),
            peer_name: if has_peer {
                "vrrp_packet 0.1".to_owned()
            } else {
                String::new()
            },
            peer: peer
                .map(|p| p.ns.iter().copied().map(Some).collect())
                .unwrap_or_default(),
            goal: codec_goal(&b.group, &b.case, &b.imp, has_peer),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bench(
        root: &Path,
        dir: &str,
        group: &str,
        function: &str,
        iters: &[f64],
        times: &[f64],
    ) {
        let d = root.join(dir).join("new");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("benchmark.json"),
            format!(
                "{{\"group_id\":\"{group}\",\"function_id\":\"{function}\",\"value_str\":null}}"
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("sample.json"),
            serde_json::json!({"sampling_mode": "Linear", "iters": iters, "times": times})
                .to_string(),
        )
        .unwrap();
    }

    #[test]
    fn reads_criterion_output_and_pairs_ours_with_the_baseline() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        write_bench(
            root,
            "parse_validate/v2_1addr_wire_validate",
            "parse_validate",
            "v2_1addr/wire_validate",
            &[10.0, 20.0],
            &[120.0, 260.0],
        );
        write_bench(
            root,
            "parse_validate/v2_1addr_vrrp_packet",
            "parse_validate",
            "v2_1addr/vrrp_packet",
            &[10.0],
            &[200.0],
        );
        write_bench(
            root,
            "parse_validate/v3_ipv6_8addr_wire_validate",
            "parse_validate",
            "v3_ipv6_8addr/wire_validate",
            &[1.0],
            &[50.0],
        );
        write_bench(root, "other/x_y", "other", "x/y", &[1.0], &[1.0]);
        let benches = read_benches(root, &["parse_validate", "emit_checksum"]).unwrap();
        assert_eq!(benches.len(), 3, "{benches:?}");
        let records = codec_records(&benches);
        assert_eq!(records.len(), 2);
        let v2 = records
            .iter()
            .find(|r| r.case == "v2_1addr validate")
            .unwrap();
        assert_eq!(v2.ours, vec![Some(12.0), Some(13.0)]);
        assert_eq!(v2.peer, vec![Some(20.0)]);
        assert_eq!(v2.goal.as_deref(), Some("< 15 ns and ratio < 1"));
        let v3 = records
            .iter()
            .find(|r| r.case == "v3_ipv6_8addr validate")
            .unwrap();
        assert!(v3.peer.is_empty());
        assert_eq!(v3.goal, None);
    }
}
