//! `bench-report`: one command for every side-by-side comparison (see the crate docs).
//!
//! `cargo run --release -p bench-report` runs the runners, then writes
//! `benches/results/REPORT.md`, the plots beside it and the README's performance section.

use std::path::PathBuf;
use std::process::ExitCode;

use bench_report::{criterion, machine::Machine, markdown::Header, record, runner, write_report};
use clap::Parser;

/// Runs every comparison benchmark and writes the Markdown report and plots.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Fewer runs and smaller data: checks the whole chain in minutes (figures are marked).
    #[arg(long)]
    quick: bool,
    /// Only these groups (comma separated: codec, failover, scale, delta, treesync, stability).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also run the long stability soak (10 minutes by default).
    #[arg(long)]
    with_stability: bool,
    /// Do not run anything: build the report from these JSON Lines files.
    #[arg(long, num_args = 1..)]
    from_json: Vec<PathBuf>,
    /// Output directory for REPORT.md, results.jsonl and the plots.
    #[arg(long, default_value = "benches/results")]
    out: PathBuf,
    /// README whose generated performance section is replaced ("-" for none).
    #[arg(long, default_value = "README.md")]
    readme: String,
    /// The workspace to benchmark.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    workspace: PathBuf,
}

fn git(workspace: &std::path::Path, args: &[&str]) -> String {
    std::process::Command::new("git")
        .args(args)
        .current_dir(workspace)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Civil UTC date and time from the Unix clock (Howard Hinnant's days-to-civil algorithm).
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn main() -> ExitCode {
    let args = Args::parse();
    let workspace = args
        .workspace
        .canonicalize()
        .unwrap_or(args.workspace.clone());
    let out = if args.out.is_absolute() {
        args.out.clone()
    } else {
        workspace.join(&args.out)
    };
    let mut command = String::from("cargo run --release -p bench-report --");
    for a in std::env::args().skip(1) {
        command.push(' ');
        command.push_str(&a);
    }
    let command = command.trim_end_matches(" --").to_owned();
    let mut header = Header {
        machine: Machine::current(),
        command,
        commit: {
            let c = git(&workspace, &["rev-parse", "--short", "HEAD"]);
            let dirty = !git(
                &workspace,
                &["status", "--porcelain", "--untracked-files=no"],
            )
            .is_empty();
            if dirty {
                format!("{c} (with uncommitted changes)")
            } else {
                c
            }
        },
        date: utc_now(),
        missing: Vec::new(),
    };
    let mut records = Vec::new();
    let mut failed = false;
    if !args.from_json.is_empty() {
        for f in &args.from_json {
            match record::read_file(f) {
                Ok(mut r) => records.append(&mut r),
                Err(e) => {
                    eprintln!("bench-report: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    } else {
        if let Err(e) = std::fs::create_dir_all(&out) {
            eprintln!("bench-report: creating {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
        let root = runner::is_root();
        for c in runner::comparisons() {
            let wanted = if args.only.is_empty() {
                !c.on_request || (c.group == "stability" && args.with_stability)
            } else {
                args.only.iter().any(|g| g == c.group)
            };
            if !wanted {
                continue;
            }
            if c.needs_root && !root {
                header
                    .missing
                    .push(format!("{} (needs root for network namespaces)", c.group));
                continue;
            }
            let json = out.join(format!(".raw-{}.jsonl", c.bench));
            let _ = std::fs::remove_file(&json);
            if let Err(e) = runner::run(&c, &workspace, &json, args.quick) {
                eprintln!("bench-report: {e}");
                header.missing.push(format!("{} ({e})", c.group));
                failed = true;
                // Nothing it left behind is trusted (criterion's directory holds older runs).
                let _ = std::fs::remove_file(&json);
                continue;
            }
            let got = if c.group == "codec" {
                runner::target_dir(&workspace).and_then(|t| {
                    criterion::read_benches(
                        &t.join("criterion"),
                        &["parse_validate", "emit_checksum"],
                    )
                    .map(|b| criterion::codec_records(&b))
                })
            } else {
                record::read_file(&json)
            };
            match got {
                Ok(mut r) => records.append(&mut r),
                Err(e) => {
                    eprintln!("bench-report: {e}");
                    header.missing.push(format!("{} ({e})", c.group));
                    failed = true;
                }
            }
            let _ = std::fs::remove_file(&json);
        }
    }
    if args.quick {
        header
            .missing
            .push("full-size runs (this is a --quick report: fewer runs, smaller data)".into());
    }
    let readme = (args.readme != "-").then(|| {
        let p = PathBuf::from(&args.readme);
        if p.is_absolute() {
            p
        } else {
            workspace.join(p)
        }
    });
    match write_report(&records, &out, &header, readme.as_deref()) {
        Ok(w) => {
            println!(
                "bench-report: wrote {} and {} plots",
                w.report.display(),
                w.plots.len()
            );
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}
