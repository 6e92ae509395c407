//! A record turned into what the report shows: summaries, ratio, advantage and verdict.

use crate::goal;
use crate::record::Record;
use crate::stats::{self, Summary};

/// One row of the report.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The record it comes from.
    pub record: Record,
    /// Summary of our runs (`None` when every run failed).
    pub ours: Option<Summary>,
    /// Summary of the peer's runs (`None` without a peer).
    pub peer: Option<Summary>,
    /// Ratio of medians ours / peer.
    pub ratio: Option<f64>,
    /// How many times better ours is (> 1: ours wins), see [`stats::advantage`].
    pub advantage: Option<f64>,
    /// The goal's verdict, see [`goal::check`].
    pub met: Option<bool>,
}

impl Figure {
    /// Computes the row for `record`.
    pub fn new(record: Record) -> Figure {
        let ours = stats::summarize(&record.ours_values());
        let peer = stats::summarize(&record.peer_values());
        let ratio = ours.as_ref().and_then(|o| stats::ratio(o, peer.as_ref()));
        let advantage = ratio.and_then(|r| stats::advantage(r, record.higher_is_better));
        let met = match (&record.goal, &ours) {
            (Some(g), Some(o)) => goal::check(g, o, ratio, record.higher_is_better),
            _ => None,
        };
        Figure {
            record,
            ours,
            peer,
            ratio,
            advantage,
            met,
        }
    }
}

/// Groups in the order they first appear, each with its figures in order.
pub fn by_group(figures: &[Figure]) -> Vec<(&str, Vec<&Figure>)> {
    let mut groups: Vec<(&str, Vec<&Figure>)> = Vec::new();
    for f in figures {
        match groups.iter_mut().find(|(g, _)| *g == f.record.group) {
            Some((_, v)) => v.push(f),
            None => groups.push((&f.record.group, vec![f])),
        }
    }
    groups
}

/// A number with as many digits as its size deserves: 0.0123, 1.23, 12.3, 1234.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".to_owned()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_lines;

    #[test]
    fn a_figure_carries_ratio_advantage_and_verdict() {
        let r = parse_lines(
            "{\"group\":\"failover\",\"case\":\"v3 10ms\",\"metric\":\"takeover\",\"unit\":\"ms\",\
             \"higher_is_better\":false,\"ours\":[30,35,40],\"peer_name\":\"keepalived\",\
             \"peer\":[50,52,60],\"goal\":\"ratio <= 1.0\"}",
            "t",
        )
        .unwrap();
        let f = Figure::new(r[0].clone());
        assert_eq!(f.ours.unwrap().median, 35.0);
        assert_eq!(f.peer.unwrap().median, 52.0);
        assert!((f.ratio.unwrap() - 35.0 / 52.0).abs() < 1e-12);
        assert!(f.advantage.unwrap() > 1.0);
        assert_eq!(f.met, Some(true));
    }

    #[test]
    fn numbers_are_rounded_by_size() {
        assert_eq!(fmt_num(1234.4), "1234");
        assert_eq!(fmt_num(12.34), "12.3");
        assert_eq!(fmt_num(1.234), "1.23");
        assert_eq!(fmt_num(0.01234), "0.0123");
        assert_eq!(fmt_num(0.0), "0");
    }
}
