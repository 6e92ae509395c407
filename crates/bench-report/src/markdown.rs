//! The Markdown report: machine, command, then one table (and plots) per group.

use std::fmt::Write;

use crate::figure::{by_group, fmt_num, Figure};
use crate::machine::Machine;
use crate::stats::Summary;

/// Where the report came from, printed at its top.
#[derive(Clone, Debug)]
pub struct Header {
    /// The machine it ran on.
    pub machine: Machine,
    /// The command that made it.
    pub command: String,
    /// The commit it measured.
    pub commit: String,
    /// When it started (UTC, as text).
    pub date: String,
    /// Comparisons that did not run or failed, each with the reason.
    pub missing: Vec<String>,
}

fn cell(s: Option<&Summary>) -> String {
    match s {
        Some(s) if s.runs == 1 => format!("{} (1 run)", fmt_num(s.median)),
        Some(s) => format!(
            "{} ({}–{}, {} runs)",
            fmt_num(s.median),
            fmt_num(s.min),
            fmt_num(s.max),
            s.runs
        ),
        None => "–".to_owned(),
    }
}

fn escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// The tables only (one per group with its plots), as shown in the README.
pub fn tables(figures: &[Figure], plots: &[(String, String)], image_prefix: &str) -> String {
    let mut out = String::new();
    for (group, rows) in by_group(figures) {
        let _ = writeln!(out, "### {group}\n");
        let _ = writeln!(
            out,
            "| case | metric | ours: median (min–max) | peer | peer: median (min–max) | ours/peer | goal | met |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for f in rows {
            let r = &f.record;
            let peer_name = if r.peer_name.is_empty() {
                "–"
            } else {
                &r.peer_name
            };
            let ratio = f
                .ratio
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| "–".into());
            let met = match f.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "–",
            };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} | {} | {} | {} |",
                escape(&r.case),
                escape(&r.metric),
                escape(&r.unit),
                cell(f.ours.as_ref()),
                escape(peer_name),
                cell(f.peer.as_ref()),
                ratio,
                escape(r.goal.as_deref().unwrap_or("–")),
                met
            );
        }
        out.push('\n');
        for (g, file) in plots {
            if g == group {
                let _ = writeln!(out, "![{group}]({image_prefix}{file})\n");
            }
        }
    }
    out
}

/// The whole report file.
pub fn report(header: &Header, figures: &[Figure], plots: &[(String, String)]) -> String {
    let mut out = String::new();
    let m = &header.machine;
    let _ = writeln!(out, "# Benchmark report\n");
    let _ = writeln!(
        out,
        "Made by `{}` on {} at commit `{}`; nothing below is edited by hand.\n",
        header.command, header.date, header.commit
    );
    let _ = writeln!(
        out,
        "Machine: **{}**, {} cores, {} MiB RAM, kernel {}; load average at the start {}.\n",
        m.cpu_model, m.cores, m.mem_mib, m.kernel, m.loadavg
    );
    let _ = writeln!(
        out,
        "Each cell: median (smallest–largest, number of runs). `ours/peer` is the ratio of the \
         medians from the same run; for times and sizes below 1 is better, for throughputs \
         above 1. `met` checks the goal of the figure's issue.\n"
    );
    for m in &header.missing {
        let _ = writeln!(out, "Not measured: {m}.\n");
    }
    if let Some((g, file)) = plots.iter().find(|(g, _)| g == "overview") {
        let _ = writeln!(out, "![{g}]({file})\n");
    }
    out.push_str(&tables(figures, plots, ""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_lines;

    fn sample() -> Vec<Figure> {
        parse_lines(
            "{\"group\":\"codec\",\"case\":\"v2 1 addr\",\"metric\":\"parse+validate\",\"unit\":\"ns\",\
             \"higher_is_better\":false,\"ours\":[12,13,14],\"peer_name\":\"vrrp_packet\",\
             \"peer\":[20,21],\"goal\":\"< 15 ns and ratio < 1\"}\n\
             {\"group\":\"delta\",\"case\":\"a|b\",\"metric\":\"throughput\",\"unit\":\"MiB/s\",\
             \"higher_is_better\":true,\"ours\":[100],\"peer_name\":\"fast_rsync\",\"peer\":[50],\
             \"goal\":\"ratio >= 10\"}\n",
            "t",
        )
        .unwrap()
        .into_iter()
        .map(Figure::new)
        .collect()
    }

    #[test]
    fn tables_show_medians_spread_ratio_and_verdict() {
        let figures = sample();
        let plots = vec![("codec".to_owned(), "codec-ns.png".to_owned())];
        let md = tables(&figures, &plots, "benches/results/");
        assert!(md.contains("### codec"), "{md}");
        assert!(md.contains("| v2 1 addr | parse+validate (ns) | 13.0 (12.0–14.0, 3 runs) | vrrp_packet | 20.5 (20.0–21.0, 2 runs) | 0.63 | < 15 ns and ratio < 1 | yes |"), "{md}");
        // The pipe in a case name does not break the table; a missed goal is bold.
        assert!(md.contains("| a\\|b | throughput (MiB/s) | 100 (1 run) | fast_rsync | 50.0 (1 run) | 2.00 | ratio >= 10 | **no** |"), "{md}");
        assert!(md.contains("![codec](benches/results/codec-ns.png)"));
    }
}
