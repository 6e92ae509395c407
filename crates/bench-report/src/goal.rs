//! The goals runners state in words, checked against the figures.
//!
//! A goal is one or more clauses separated by `;`, `,` or ` and `. A clause is
//! `[ratio|median|worst] OP NUMBER [unit] [median|worst]` with OP one of `<`, `<=`, `>`, `>=`:
//! `ratio <= 1.0` compares ours/peer medians, `< 15 ns` (or `median < 15 ns`) our median,
//! `< 45 ms worst` our worst run (the largest value when smaller is better, the smallest
//! otherwise). A clause in any other form is kept as text and gets no verdict.

use crate::stats::Summary;

/// Comparison operator of a clause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl Op {
    fn holds(self, value: f64, bound: f64) -> bool {
        match self {
            Op::Lt => value < bound,
            Op::Le => value <= bound,
            Op::Gt => value > bound,
            Op::Ge => value >= bound,
        }
    }
}

/// What a clause compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// The ratio of medians ours / peer.
    Ratio,
    /// Our median.
    Median,
    /// Our worst run.
    Worst,
}

/// One understood clause.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clause {
    /// What is compared.
    pub subject: Subject,
    /// How.
    pub op: Op,
    /// Against what.
    pub bound: f64,
}

/// Parses the clauses of `goal`; `None` for a clause that is not in the grammar.
pub fn parse(goal: &str) -> Vec<Option<Clause>> {
    goal.replace(" and ", ";")
        .split([';', ','])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(parse_clause)
        .collect()
}

fn parse_clause(clause: &str) -> Option<Clause> {
    let mut tokens: Vec<&str> = clause.split_whitespace().collect();
    let mut subject = Subject::Median;
    if let Some(first) = tokens.first() {
        match first.to_ascii_lowercase().as_str() {
            "ratio" => subject = Subject::Ratio,
            "median" => subject = Subject::Median,
            "worst" => subject = Subject::Worst,
            _ => {}
        }
        if matches!(*first, "ratio" | "median" | "worst") {
            tokens.remove(0);
        }
    }
    if let Some(last) = tokens.last() {
        match *last {
            "median" => {
                subject = Subject::Median;
                tokens.pop();
            }
            "worst" => {
                subject = Subject::Worst;
                tokens.pop();
            }
            _ => {}
        }
    }
    // "<15" and "< 15" both work: split the operator off the number.
    let joined = tokens.join(" ");
    let (op, rest) = if let Some(r) = joined.strip_prefix("<=") {
        (Op::Le, r)
    } else if let Some(r) = joined.strip_prefix(">=") {
        (Op::Ge, r)
    } else if let Some(r) = joined.strip_prefix('<') {
        (Op::Lt, r)
    } else if let Some(r) = joined.strip_prefix('>') {
        (Op::Gt, r)
    } else {
        return None;
    };
    let mut rest = rest.split_whitespace();
    let number = rest.next()?;
    let bound: f64 = number.trim_end_matches('x').parse().ok()?;
    // At most a unit may follow.
    if rest.count() > 1 {
        return None;
    }
    Some(Clause { subject, op, bound })
}

/// Verdict of a goal on a figure: `Some(true)` when every clause holds, `Some(false)` when one
/// fails, `None` when the goal has a clause outside the grammar or lacks what it needs.
pub fn check(
    goal: &str,
    ours: &Summary,
    ratio: Option<f64>,
    higher_is_better: bool,
) -> Option<bool> {
    let clauses = parse(goal);
    if clauses.is_empty() {
        return None;
    }
    let mut all = true;
    for clause in clauses {
        let clause = clause?;
        let value = match clause.subject {
            Subject::Ratio => ratio?,
            Subject::Median => ours.median,
            Subject::Worst if higher_is_better => ours.min,
            Subject::Worst => ours.max,
        };
        all &= clause.op.holds(value, clause.bound);
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::summarize;

    #[test]
    fn understands_the_runners_phrases() {
        assert_eq!(
            parse("ratio <= 1.0"),
            vec![Some(Clause {
                subject: Subject::Ratio,
                op: Op::Le,
                bound: 1.0
            })]
        );
        assert_eq!(
            parse("< 40 ms median, < 45 ms worst"),
            vec![
                Some(Clause {
                    subject: Subject::Median,
                    op: Op::Lt,
                    bound: 40.0
                }),
                Some(Clause {
                    subject: Subject::Worst,
                    op: Op::Lt,
                    bound: 45.0
                }),
            ]
        );
        assert_eq!(
            parse("<15 ns and ratio < 1"),
            vec![
                Some(Clause {
                    subject: Subject::Median,
                    op: Op::Lt,
                    bound: 15.0
                }),
                Some(Clause {
                    subject: Subject::Ratio,
                    op: Op::Lt,
                    bound: 1.0
                }),
            ]
        );
        assert_eq!(
            parse("ratio >= 2x"),
            vec![Some(Clause {
                subject: Subject::Ratio,
                op: Op::Ge,
                bound: 2.0
            })]
        );
        assert_eq!(parse("faster than the peer"), vec![None]);
    }

    #[test]
    fn verdicts_follow_the_numbers() {
        let ours = summarize(&[30.0, 34.0, 44.0]).unwrap();
        assert_eq!(
            check("< 40 ms median, < 45 ms worst", &ours, None, false),
            Some(true)
        );
        assert_eq!(
            check("< 40 ms median, < 42 ms worst", &ours, None, false),
            Some(false)
        );
        assert_eq!(check("ratio <= 1.0", &ours, Some(0.68), false), Some(true));
        assert_eq!(check("ratio <= 1.0", &ours, Some(1.2), false), Some(false));
        // A ratio goal without a peer, or a phrase outside the grammar: no verdict.
        assert_eq!(check("ratio <= 1.0", &ours, None, false), None);
        assert_eq!(check("as fast as possible", &ours, None, false), None);
        // For a throughput the worst run is the smallest.
        let tput = summarize(&[400.0, 500.0]).unwrap();
        assert_eq!(check(">= 450 worst", &tput, None, true), Some(false));
    }
}
