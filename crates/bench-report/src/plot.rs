//! PNG plots with plotters: per group and unit, medians with their spread (ours beside the
//! peer); and an overview of how many times better ours is on every figure.
//!
//! Text needs a TrueType font: plotters' `ab_glyph` renderer is used with a font file read at
//! run time (DejaVu Sans from Debian's `fonts-dejavu-core`, or `BENCH_REPORT_FONT`), so no
//! fontconfig or C library is involved.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::figure::{by_group, fmt_num, Figure};
use crate::Error;

/// Font files tried in order when `BENCH_REPORT_FONT` is not set.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
];

const OURS: RGBColor = RGBColor(31, 119, 180);
const PEER: RGBColor = RGBColor(255, 127, 14);
const WIDTH: u32 = 1100;
const LABEL_AREA: i32 = 330;

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the font once per process.
fn ensure_font() -> Result<(), Error> {
    let result = FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = match std::env::var_os("BENCH_REPORT_FONT") {
            Some(p) => vec![PathBuf::from(p)],
            None => FONT_CANDIDATES.iter().map(PathBuf::from).collect(),
        };
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            format!(
                "no TrueType font found (tried {}); install fonts-dejavu-core or set BENCH_REPORT_FONT",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        // plotters keeps the font for the life of the process; it is read once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    });
    result.clone().map_err(Error::Plot)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Plot(format!("{e:?}"))
}

/// A file name made of `parts`: lower case, anything but letters and digits becomes `-`.
pub fn slug(parts: &[&str]) -> String {
    let joined = parts.join("-").to_lowercase();
    let mut out = String::new();
    for c in joined.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// One bar chart: rows of (label, median, min, max, colour) drawn horizontally.
struct Bar {
    label: String,
    median: f64,
    min: f64,
    max: f64,
    color: RGBColor,
}

fn bar_chart(path: &Path, title: &str, x_desc: &str, bars: &[Bar]) -> Result<(), Error> {
    let rows = bars.len().max(1);
    let height = (90 + 34 * rows as u32).max(220);
    let x_max = bars
        .iter()
        .map(|b| b.max.max(b.median))
        .fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.15 } else { 1.0 };
    let root = BitMapBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(LABEL_AREA as u32)
        .build_cartesian_2d(0f64..x_max, 0f64..rows as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc(x_desc)
        .x_label_formatter(&|x| fmt_num(*x))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    // Row 0 at the top: y runs upwards, so bar i sits at rows - i - 1.
    for (i, b) in bars.iter().enumerate() {
        let y0 = (rows - i - 1) as f64 + 0.15;
        let y1 = y0 + 0.7;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (b.median, y1)],
                b.color.filled(),
            )))
            .map_err(plot_err)?;
        // The spread: a whisker from the smallest to the largest run.
        let ym = (y0 + y1) / 2.0;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(b.min, ym), (b.max, ym)],
                BLACK.stroke_width(2),
            )))
            .map_err(plot_err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!(" {}", fmt_num(b.median)),
                (b.max.max(b.median), ym),
                TextStyle::from(("sans-serif", 13).into_font())
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            )))
            .map_err(plot_err)?;
        let (px, py) = chart.backend_coord(&(0.0, ym));
        root.draw(&Text::new(
            b.label.clone(),
            (px - 8, py),
            TextStyle::from(("sans-serif", 14).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Writes one PNG per (group, metric, unit) into `dir`; returns (group, file name) pairs.
pub fn group_plots(figures: &[Figure], dir: &Path) -> Result<Vec<(String, String)>, Error> {
    ensure_font()?;
    let mut out = Vec::new();
    for (group, rows) in by_group(figures) {
        let mut keys: Vec<(&str, &str)> = Vec::new();
        for f in &rows {
            let k = (f.record.metric.as_str(), f.record.unit.as_str());
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
        for (metric, unit) in keys {
            let mut bars = Vec::new();
            let mut peers: Vec<&str> = Vec::new();
            for f in rows
                .iter()
                .filter(|f| f.record.metric == metric && f.record.unit == unit)
            {
                if let Some(o) = f.ours {
                    bars.push(Bar {
                        label: format!("{} · ours", f.record.case),
                        median: o.median,
                        min: o.min,
                        max: o.max,
                        color: OURS,
                    });
                }
                if let Some(p) = f.peer {
                    bars.push(Bar {
                        label: format!("{} · {}", f.record.case, f.record.peer_name),
                        median: p.median,
                        min: p.min,
                        max: p.max,
                        color: PEER,
                    });
                    if !peers.contains(&f.record.peer_name.as_str()) {
                        peers.push(&f.record.peer_name);
                    }
                }
            }
            if bars.is_empty() {
                continue;
            }
            let better = if rows
                .iter()
                .any(|f| f.record.metric == metric && f.record.higher_is_better)
            {
                "higher is better"
            } else {
                "lower is better"
            };
            let vs = if peers.is_empty() {
                String::new()
            } else {
                format!(" vs {}", peers.join(", "))
            };
            let title = format!("{group}: {metric}{vs} ({better})");
            let file = format!("{}.png", slug(&[group, metric, unit]));
            bar_chart(
                &dir.join(&file),
                &title,
                &format!("{metric} [{unit}], median with min–max"),
                &bars,
            )?;
            out.push((group.to_owned(), file));
        }
    }
    Ok(out)
}

/// Writes `overview.png`: for every figure with a peer, how many times better ours is
/// (log scale; right of the line at 1 = ours wins). Returns ("overview", file) when drawn.
pub fn overview(figures: &[Figure], dir: &Path) -> Result<Option<(String, String)>, Error> {
    ensure_font()?;
    let rows: Vec<(&Figure, f64)> = figures
        .iter()
        .filter_map(|f| f.advantage.map(|a| (f, a)))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let n = rows.len();
    let lo = rows.iter().map(|r| r.1).fold(1.0f64, f64::min) / 1.5;
    let hi = rows.iter().map(|r| r.1).fold(1.0f64, f64::max) * 1.5;
    let file = "overview.png".to_owned();
    let path = dir.join(&file);
    let height = (90 + 30 * n as u32).max(220);
    let root = BitMapBackend::new(&path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "How many times better than the peer (log scale; > 1 = ours wins)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(LABEL_AREA as u32)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n as f64)
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_label_formatter(&|x| format!("{}x", fmt_num(*x)))
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(plot_err)?;
    for (i, (f, a)) in rows.iter().enumerate() {
        let y0 = (n - i - 1) as f64 + 0.15;
        let y1 = y0 + 0.7;
        let color = if *a >= 1.0 { OURS } else { RED };
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(1.0, y0), (*a, y1)],
                color.filled(),
            )))
            .map_err(plot_err)?;
        let ym = (y0 + y1) / 2.0;
        let label = format!(
            "{}: {} {} vs {}",
            f.record.group, f.record.case, f.record.metric, f.record.peer_name
        );
        let (px, py) = chart.backend_coord(&(lo, ym));
        root.draw(&Text::new(
            label,
            (px - 8, py),
            TextStyle::from(("sans-serif", 13).into_font())
                .pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n as f64)],
            BLACK.stroke_width(2),
        )))
        .map_err(plot_err)?;
    root.present().map_err(plot_err)?;
    Ok(Some(("overview".to_owned(), file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_names() {
        assert_eq!(
            slug(&["failover", "client recovery", "ms"]),
            "failover-client-recovery-ms"
        );
        assert_eq!(
            slug(&["delta", "throughput", "MiB/s"]),
            "delta-throughput-mib-s"
        );
    }
}
