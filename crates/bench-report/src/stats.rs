//! Median and spread of a set of runs, and the ratio ours / peer.

/// Summary of one side's runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of runs.
    pub runs: usize,
}

/// Summarises `values`; `None` when there are none. Non-finite values must be filtered first.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        median,
        min: v[0],
        max: v[n - 1],
        runs: n,
    })
}

/// Ratio of medians ours / peer (`None` without a peer or with a zero peer median).
pub fn ratio(ours: &Summary, peer: Option<&Summary>) -> Option<f64> {
    let peer = peer?;
    (peer.median != 0.0).then(|| ours.median / peer.median)
}

/// How many times better ours is than the peer: ours/peer when larger is better, peer/ours
/// when smaller is better, so that > 1 always means ours wins.
pub fn advantage(ratio: f64, higher_is_better: bool) -> Option<f64> {
    if !ratio.is_finite() || ratio <= 0.0 {
        return None;
    }
    Some(if higher_is_better { ratio } else { 1.0 / ratio })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts_and_spread() {
        let s = summarize(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.runs), (3.0, 1.0, 5.0, 3));
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn ratio_and_advantage_point_the_right_way() {
        let ours = summarize(&[10.0]).unwrap();
        let peer = summarize(&[40.0]).unwrap();
        let r = ratio(&ours, Some(&peer)).unwrap();
        assert_eq!(r, 0.25);
        // A time a quarter of the peer's is 4x better; a throughput a quarter is 4x worse.
        assert_eq!(advantage(r, false), Some(4.0));
        assert_eq!(advantage(r, true), Some(0.25));
        assert!(ratio(&ours, None).is_none());
        let zero = summarize(&[0.0]).unwrap();
        assert!(ratio(&ours, Some(&zero)).is_none());
    }
}
