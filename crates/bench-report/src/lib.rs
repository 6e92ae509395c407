//! `bench-report`: runs every side-by-side comparison of the project in one go and writes a
//! Markdown report with PNG plots (and the README's performance section) from what the
//! runners recorded. Nothing in the report is typed by hand.
//!
//! The runners (`benches/*.rs` of the root package) append one JSON line per compared figure
//! to the file named by `BENCH_JSON` (see `benches/report/mod.rs`); the codec comparison is
//! read from criterion's own output. This crate summarises (median, spread, ratio ours/peer),
//! checks each figure's goal, draws the plots and writes the files atomically.
#![warn(missing_docs)]

pub mod criterion;
pub mod figure;
pub mod goal;
pub mod machine;
pub mod markdown;
pub mod plot;
pub mod readme;
pub mod record;
pub mod runner;
pub mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};

pub use figure::Figure;
pub use record::Record;

/// Everything that can go wrong while making the report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or process could not be read, written or started.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A results line is not a valid record.
    #[error("{origin} line {line}: not a benchmark record: {reason}")]
    BadRecord {
        /// The file.
        origin: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A runner failed.
    #[error("benchmark {bench} failed: {reason}")]
    Runner {
        /// The bench target.
        bench: String,
        /// What happened.
        reason: String,
    },
    /// Drawing a plot failed.
    #[error("plot: {0}")]
    Plot(String),
    /// The README has no generated section to replace.
    #[error(
        "README has no `{}` ... `{}` section to replace",
        readme::BEGIN,
        readme::END
    )]
    NoMarkers,
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so
/// a reader never sees a half-written report.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let io = |what: &str, e: std::io::Error| Error::Io {
        what: format!("{what} {}", path.display()),
        source: e,
    };
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| io("creating a temporary file for", e))?;
    tmp.write_all(bytes).map_err(|e| io("writing", e))?;
    tmp.as_file().sync_all().map_err(|e| io("syncing", e))?;
    tmp.persist(path)
        .map_err(|e| io("renaming into", e.error))?;
    Ok(())
}

/// What [`write_report`] produced.
#[derive(Debug)]
pub struct Written {
    /// The Markdown report.
    pub report: PathBuf,
    /// The plots (group, file name inside the output directory).
    pub plots: Vec<(String, String)>,
}

/// Writes `REPORT.md`, `results.jsonl` and the plots into `out_dir`, and the README section
/// when `readme` is given (its images are linked relative to the README).
pub fn write_report(
    records: &[Record],
    out_dir: &Path,
    header: &markdown::Header,
    readme: Option<&Path>,
) -> Result<Written, Error> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::Io {
        what: format!("creating {}", out_dir.display()),
        source: e,
    })?;
    let figures: Vec<Figure> = records.iter().cloned().map(Figure::new).collect();
    // Plots are drawn into a scratch directory, then renamed into place one by one.
    let scratch = tempfile::tempdir_in(out_dir).map_err(|e| Error::Io {
        what: format!("creating a scratch directory in {}", out_dir.display()),
        source: e,
    })?;
    let mut plots = plot::group_plots(&figures, scratch.path())?;
    if let Some(o) = plot::overview(&figures, scratch.path())? {
        plots.insert(0, o);
    }
    // Plots of an earlier report that this one does not redraw are removed.
    if let Ok(entries) = std::fs::read_dir(out_dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".png") && !plots.iter().any(|(_, f)| *f == name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    for (_, file) in &plots {
        std::fs::rename(scratch.path().join(file), out_dir.join(file)).map_err(|e| Error::Io {
            what: format!("moving {file} into {}", out_dir.display()),
            source: e,
        })?;
    }
    let mut jsonl = String::new();
    for r in records {
        jsonl.push_str(&serde_json::to_string(&RecordOut(r)).unwrap_or_default());
        jsonl.push('\n');
    }
    write_atomic(&out_dir.join("results.jsonl"), jsonl.as_bytes())?;
    let report = out_dir.join("REPORT.md");
    write_atomic(
        &report,
        markdown::report(header, &figures, &plots).as_bytes(),
    )?;
    if let Some(readme) = readme {
        let text = std::fs::read_to_string(readme).map_err(|e| Error::Io {
            what: format!("reading {}", readme.display()),
            source: e,
        })?;
        let base = readme.parent().unwrap_or(Path::new("."));
        let prefix = pathdiff(out_dir, base);
        let m = &header.machine;
        let generated = format!(
            "Made by `{}` on {} at commit `{}` on {} ({} cores); the whole report with every \
             run is [{}REPORT.md]({}REPORT.md).\n\n{}{}",
            header.command,
            header.date,
            header.commit,
            m.cpu_model,
            m.cores,
            prefix,
            prefix,
            plots
                .iter()
                .find(|(g, _)| g == "overview")
                .map(|(_, f)| format!("![overview]({prefix}{f})\n\n"))
                .unwrap_or_default(),
            markdown::tables(&figures, &plots, &prefix).replace("### ", "#### "),
        );
        write_atomic(
            readme,
            readme::replace_section(&text, &generated)?.as_bytes(),
        )?;
    }
    Ok(Written { report, plots })
}

/// `dir` relative to `base` as a link prefix ending in `/` (both as given; falls back to the
/// path as given when it is not below `base`).
fn pathdiff(dir: &Path, base: &Path) -> String {
    let dir_abs = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let base_abs = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    let rel = dir_abs
        .strip_prefix(&base_abs)
        .map(Path::to_path_buf)
        .unwrap_or(dir_abs);
    let s = rel.to_string_lossy().into_owned();
    if s.is_empty() {
        String::new()
    } else {
        format!("{s}/")
    }
}

/// A record written back out in the runners' format.
struct RecordOut<'a>(&'a Record);

impl serde::Serialize for RecordOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        serde_json::json!({
            "group": r.group, "case": r.case, "metric": r.metric, "unit": r.unit,
            "higher_is_better": r.higher_is_better, "ours": r.ours, "peer_name": r.peer_name,
            "peer": r.peer, "goal": r.goal,
        })
        .serialize(s)
    }
}
