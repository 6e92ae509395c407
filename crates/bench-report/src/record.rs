//! Reading the runners' JSON Lines records (written by `benches/report/mod.rs`).

use std::path::Path;

use serde::Deserialize;

use crate::Error;

/// One compared figure as a runner recorded it: every run of ours and of the peer.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Record {
    /// Which comparison: "codec", "failover", "delta", "treesync", "scale", ...
    pub group: String,
    /// The case inside the group.
    pub case: String,
    /// What is measured ("takeover", "throughput", ...).
    pub metric: String,
    /// Unit of every value.
    pub unit: String,
    /// True when larger values are better.
    pub higher_is_better: bool,
    /// Our value in each run (`null` in the file for a run that produced no value).
    pub ours: Vec<Option<f64>>,
    /// The peer's name.
    #[serde(default)]
    pub peer_name: String,
    /// The peer's value in each run; empty when there is no peer.
    #[serde(default)]
    pub peer: Vec<Option<f64>>,
    /// The goal in words (see [`crate::goal`]).
    #[serde(default)]
    pub goal: Option<String>,
}

impl Record {
    /// Our finite values.
    pub fn ours_values(&self) -> Vec<f64> {
        self.ours.iter().flatten().copied().collect()
    }

    /// The peer's finite values.
    pub fn peer_values(&self) -> Vec<f64> {
        self.peer.iter().flatten().copied().collect()
    }
}

/// Parses JSON Lines text: one [`Record`] per non-empty line. `origin` names the source in
/// errors ("results.jsonl line 3: ...").
pub fn parse_lines(text: &str, origin: &str) -> Result<Vec<Record>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Record = serde_json::from_str(line).map_err(|e| Error::BadRecord {
            origin: origin.to_owned(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(record);
    }
    Ok(out)
}

/// Reads and parses a JSON Lines file; a missing file is an empty result (a runner that was
/// skipped records nothing).
pub fn read_file(path: &Path) -> Result<Vec<Record>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_lines(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io {
            what: format!("reading {}", path.display()),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_runner_line_with_nulls_and_without_optional_fields() {
        let text = "{\"group\":\"delta\",\"case\":\"signature\",\"metric\":\"throughput\",\
                    \"unit\":\"MiB/s\",\"higher_is_better\":true,\"ours\":[1.0,null,3.0],\
                    \"peer_name\":\"fast_rsync\",\"peer\":[2.0],\"goal\":\"ratio >= 2\"}\n\n\
                    {\"group\":\"g\",\"case\":\"c\",\"metric\":\"m\",\"unit\":\"ms\",\
                    \"higher_is_better\":false,\"ours\":[5]}\n";
        let records = parse_lines(text, "t").unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].ours_values(), vec![1.0, 3.0]);
        assert_eq!(records[0].goal.as_deref(), Some("ratio >= 2"));
        assert!(records[1].peer.is_empty());
        assert_eq!(records[1].peer_name, "");
    }

    #[test]
    fn a_bad_line_names_origin_and_line() {
        let err = parse_lines("\n{\"group\":1}\n", "results.jsonl").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("results.jsonl line 2"), "{text}");
    }
}
