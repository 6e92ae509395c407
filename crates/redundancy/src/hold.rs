//! The preempt hold of a returning node: pure logic on a caller-supplied clock.
//!
//! # Why
//!
//! With preemption on (the primary is operational whenever both nodes are up), a primary that
//! comes back after the secondary ran the service would take over after `preempt_delay` and
//! Master_Down_Interval (RFC 5798 section 6.4.2 (465)-(470)), before it pulled the state and
//! voice data written on the secondary meanwhile. It would then start the applications on its
//! old generation, and the secondary, now standby, would pull *from it* and replace the newer
//! data: lost.
//!
//! # What
//!
//! A node that enters standby (start-up, after a fault, after being master, or switched back
//! to active) holds preemption off ([`vrrp::router::Input::SetPreempt`]) until one pull round
//! of every set that flows from the operational node, *started after the hold began*, has
//! succeeded from the current master. Then it lets preemption go and the ordinary VRRP rules
//! apply. The hold never stops a takeover when no master is heard: a backup without
//! preemption still becomes master when its Master_Down_Timer runs out.
//!
//! The hold is bounded by `preempt_hold_max`: a master whose data cannot be pulled (sync
//! broken, peer advertising but not serving) must not keep the configured primary standby
//! forever. When the bound expires the hold ends anyway and says so.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Why a hold ended (what [`PreemptHold::poll`] reports once).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldEnd {
    /// Every awaited set was pulled after the hold began.
    Synced {
        /// The sets pulled (empty when none flows from the operational node).
        sets: Vec<String>,
        /// How long the hold lasted.
        held: Duration,
    },
    /// `preempt_hold_max` passed first.
    Expired {
        /// The sets still not pulled.
        waiting: Vec<String>,
        /// The bound that expired.
        max: Duration,
    },
}

/// The state of one node's preempt hold. See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct PreemptHold {
    max: Duration,
    /// When the current hold began; `None`: not holding.
    since: Option<Instant>,
    /// Every set the hold waits for (for the report).
    sets: Vec<String>,
    /// The sets not pulled yet.
    waiting: BTreeSet<String>,
}

impl PreemptHold {
    /// A hold that is not holding; each hold lasts at most `max`.
    pub fn new(max: Duration) -> PreemptHold {
        PreemptHold {
            max,
            since: None,
            sets: Vec::new(),
            waiting: BTreeSet::new(),
        }
    }

    /// Starts (or starts again) a hold at `now` that waits for one pull of each of `sets`.
    /// With no set, the next [`poll`](Self::poll) ends it at once.
    pub fn begin(&mut self, now: Instant, sets: impl IntoIterator<Item = String>) {
        self.sets = sets.into_iter().collect();
        self.waiting = self.sets.iter().cloned().collect();
        self.since = Some(now);
    }

    /// Ends the hold without a report (the node became operational or stops).
    pub fn cancel(&mut self) {
        self.since = None;
        self.waiting.clear();
    }

    /// Changes the bound; a running hold keeps its start.
    pub fn set_max(&mut self, max: Duration) {
        self.max = max;
    }

    /// The bound.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// A pull round of `set` that started at `round_started` succeeded. Counts only when the
    /// round started after the hold began: a round already under way may have read the
    /// master's tree before the data the hold waits for was written.
    pub fn pulled(&mut self, set: &str, round_started: Instant) {
        if self.since.is_some_and(|s| round_started >= s) {
            self.waiting.remove(set);
        }
    }

    /// Whether the hold is on.
    pub fn is_held(&self) -> bool {
        self.since.is_some()
    }

    /// When the hold began, if it is on.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// The sets still awaited (empty when not holding), in name order.
    pub fn waiting(&self) -> Vec<String> {
        if self.since.is_none() {
            return Vec::new();
        }
        self.waiting.iter().cloned().collect()
    }

    /// When the hold expires at the latest, if it is on.
    pub fn deadline(&self) -> Option<Instant> {
        self.since.map(|s| s + self.max)
    }

    /// Ends the hold when every set was pulled or the bound passed, reporting why (once).
    pub fn poll(&mut self, now: Instant) -> Option<HoldEnd> {
        let since = self.since?;
        if self.waiting.is_empty() {
            self.since = None;
            return Some(HoldEnd::Synced {
                sets: std::mem::take(&mut self.sets),
                held: now.saturating_duration_since(since),
            });
        }
        if now.saturating_duration_since(since) >= self.max {
            self.since = None;
            self.sets.clear();
            return Some(HoldEnd::Expired {
                waiting: std::mem::take(&mut self.waiting).into_iter().collect(),
                max: self.max,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn sets() -> Vec<String> {
        vec!["state".into(), "voice".into()]
    }

    #[test]
    fn holds_until_every_set_was_pulled_by_a_round_started_after_it_began() {
        let t0 = Instant::now();
        let mut h = PreemptHold::new(s(30));
        assert!(!h.is_held());
        assert_eq!(h.poll(t0), None);
        h.begin(t0 + s(1), sets());
        assert!(h.is_held());
        assert_eq!(h.waiting(), ["state", "voice"]);
        // A round that started before the hold does not count.
        h.pulled("state", t0);
        assert_eq!(h.poll(t0 + s(2)), None);
        assert_eq!(h.waiting(), ["state", "voice"]);
        h.pulled("state", t0 + s(2));
        assert_eq!(h.poll(t0 + s(3)), None);
        assert_eq!(h.waiting(), ["voice"]);
        // A set the hold does not wait for changes nothing.
        h.pulled("config", t0 + s(3));
        assert_eq!(h.poll(t0 + s(4)), None);
        h.pulled("voice", t0 + s(4));
        assert_eq!(
            h.poll(t0 + s(5)),
            Some(HoldEnd::Synced {
                sets: sets(),
                held: s(4)
            })
        );
        // Reported once; afterwards nothing holds.
        assert!(!h.is_held());
        assert!(h.waiting().is_empty());
        assert_eq!(h.poll(t0 + s(6)), None);
        // Pulls while not holding are ignored.
        h.pulled("state", t0 + s(7));
        assert_eq!(h.poll(t0 + s(8)), None);
    }

    #[test]
    fn expires_after_the_bound_naming_what_was_not_pulled() {
        let t0 = Instant::now();
        let mut h = PreemptHold::new(s(10));
        h.begin(t0, sets());
        assert_eq!(h.deadline(), Some(t0 + s(10)));
        h.pulled("voice", t0 + s(1));
        assert_eq!(h.poll(t0 + s(9)), None);
        assert_eq!(
            h.poll(t0 + s(10)),
            Some(HoldEnd::Expired {
                waiting: vec!["state".into()],
                max: s(10)
            })
        );
        assert!(!h.is_held());
        assert_eq!(h.poll(t0 + s(20)), None);
    }

    #[test]
    fn with_no_set_to_wait_for_it_ends_at_the_first_poll() {
        let t0 = Instant::now();
        let mut h = PreemptHold::new(s(10));
        h.begin(t0, Vec::new());
        assert_eq!(
            h.poll(t0),
            Some(HoldEnd::Synced {
                sets: vec![],
                held: Duration::ZERO
            })
        );
    }

    #[test]
    fn begin_again_restarts_the_wait_and_cancel_ends_it_silently() {
        let t0 = Instant::now();
        let mut h = PreemptHold::new(s(10));
        h.begin(t0, sets());
        h.pulled("state", t0 + s(1));
        h.pulled("voice", t0 + s(1));
        // Master, then standby again before the poll: a new hold waits for new rounds.
        h.begin(t0 + s(2), sets());
        h.pulled("state", t0 + s(1));
        assert_eq!(h.poll(t0 + s(3)), None);
        assert_eq!(h.waiting(), ["state", "voice"]);
        // The bound counts from the new start.
        assert_eq!(h.poll(t0 + s(11)), None);
        h.cancel();
        assert!(!h.is_held());
        assert_eq!(h.poll(t0 + s(20)), None);
    }
}
