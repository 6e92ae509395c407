//! The report tool end to end on recorded results: Markdown, plots and README section.

use std::path::Path;
use std::process::Command;

const RESULTS: &str = r#"{"group":"failover","case":"v3 10ms port down+kill","metric":"takeover","unit":"ms","higher_is_better":false,"ours":[30.4,34.5,41.8,33.0,35.1],"peer_name":"keepalived 2.2.7","peer":[45.0,50.5,56.2,48.9,51.0],"goal":"ratio <= 1.0, < 40 ms median, < 45 ms worst"}
{"group":"failover","case":"v3 10ms SIGTERM","metric":"takeover","unit":"ms","higher_is_better":false,"ours":[6.7,6.1,7.9],"peer_name":"keepalived 2.2.7","peer":[20.6,16.1,17.6],"goal":"ratio <= 1.0"}
{"group":"delta","case":"signature","metric":"throughput","unit":"MiB/s","higher_is_better":true,"ours":[1778,1790,1765],"peer_name":"fast_rsync 0.2","peer":[1908,1899,1911],"goal":"ratio >= 2"}
{"group":"delta","case":"peak RSS","metric":"memory","unit":"MiB","higher_is_better":false,"ours":[7.5],"peer_name":"","peer":[],"goal":"< 64"}
"#;

fn is_png(path: &Path) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.len() > 2000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n")
}

#[test]
fn builds_report_plots_and_readme_section_from_recorded_results() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results.in.jsonl");
    std::fs::write(&results, RESULTS).unwrap();
    let readme = tmp.path().join("README.md");
    std::fs::write(
        &readme,
        format!(
            "# X\n\n## Performance\n{}\nstale\n{}\n\n## After\nkept\n",
            bench_report::readme::BEGIN,
            bench_report::readme::END
        ),
    )
    .unwrap();
    let out = tmp.path().join("bench");
    let status = Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--from-json")
        .arg(&results)
        .arg("--out")
        .arg(&out)
        .arg("--readme")
        .arg(&readme)
        .status()
        .unwrap();
    assert!(status.success());

    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("Machine: **"), "{report}");
    assert!(report.contains("| v3 10ms port down+kill | takeover (ms) | 34.5 (30.4–41.8, 5 runs) | keepalived 2.2.7 | 50.5 (45.0–56.2, 5 runs) | 0.68 |"), "{report}");
    // 41.8 ms worst is under 45: met; the signature ratio 0.93 misses 2x.
    assert!(report.contains("< 45 ms worst | yes |"), "{report}");
    assert!(report.contains("| ratio >= 2 | **no** |"), "{report}");
    for png in [
        "overview.png",
        "failover-takeover-ms.png",
        "delta-throughput-mib-s.png",
        "delta-memory-mib.png",
    ] {
        assert!(is_png(&out.join(png)), "{png} missing or not a PNG");
        assert!(report.contains(png), "{png} not linked");
    }
    // The raw records are kept so the report can be rebuilt.
    let kept = bench_report::record::read_file(&out.join("results.jsonl")).unwrap();
    assert_eq!(kept.len(), 4);

    let text = std::fs::read_to_string(&readme).unwrap();
    assert!(!text.contains("stale"));
    assert!(text.contains("![overview](bench/overview.png)"), "{text}");
    assert!(text.contains("#### failover"));
    assert!(text.ends_with("## After\nkept\n"));
}

#[test]
fn a_bad_results_file_is_a_clear_error_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("bad.jsonl");
    std::fs::write(&results, "{\"group\": 1}\n").unwrap();
    let out = tmp.path().join("bench");
    let output = Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--from-json")
        .arg(&results)
        .arg("--out")
        .arg(&out)
        .arg("--readme")
        .arg("-")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("bad.jsonl line 1"), "{err}");
    assert!(!out.join("REPORT.md").exists());
}
