//! End-to-end replication lag, measured without writing anything: the monitor keeps the
//! primary's recent GTID positions with the time it received each (its own clock), and a
//! replica is as far behind as the primary's commits it has not applied are old.
//!
//! Unlike `Seconds_Behind_Master` — 0 while the IO thread itself falls behind (a slow
//! link), null when a thread stops, and computed from the event timestamps of the
//! source's clock — this is the age of the oldest transaction the primary had and the
//! replica lacks, read on one clock. Its resolution is the heartbeat interval: the value
//! is a lower bound (the oldest missing transaction committed after the newest primary
//! position the replica holds, and by the next one).

use std::collections::VecDeque;

use crate::gtid::GtidState;

/// The primary's positions, oldest first, each with when it was seen (ms).
#[derive(Debug, Clone, Default)]
pub struct PositionHistory {
    samples: VecDeque<(u64, String)>,
}

/// Positions kept: at one heartbeat a second, five minutes; a replica further behind
/// is "at least" the age of the oldest.
pub const HISTORY_MAX: usize = 300;

/// How far behind a replica is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lag {
    /// It holds every transaction the primary was last seen with.
    CaughtUp,
    /// It lacks transactions at least this old (ms).
    Behind { ms: u64 },
    /// It lacks transactions older than every position kept: at least this old.
    BeyondHistory { at_least_ms: u64 },
    /// No position of the primary kept, or a position that does not parse.
    Unknown,
}

impl Lag {
    /// The lower bound in ms (0 when caught up); `None` when unknown.
    pub fn ms(self) -> Option<u64> {
        match self {
            Self::CaughtUp => Some(0),
            Self::Behind { ms } => Some(ms),
            Self::BeyondHistory { at_least_ms } => Some(at_least_ms),
            Self::Unknown => None,
        }
    }
}

impl PositionHistory {
    /// Records the primary's position `gtid` seen at `at_ms` (kept only when it moved).
    pub fn record(&mut self, at_ms: u64, gtid: &str) {
        if self.samples.back().is_some_and(|(_, g)| g == gtid) {
            return;
        }
        if self.samples.len() >= HISTORY_MAX {
            self.samples.pop_front();
        }
        self.samples.push_back((at_ms, gtid.to_owned()));
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The lag of a replica whose position (everything it has applied or written:
    /// `GtidState::union` of its executed and applied sets) was `replica` at `at_ms`.
    /// One primary's positions only ever grow, so the newest one the replica holds is
    /// found by bisection: a few parses per heartbeat, not one per position kept.
    pub fn lag(&self, replica: &GtidState, at_ms: u64) -> Lag {
        let flavor = replica.flavor();
        let held = |i: usize| -> Option<bool> {
            let primary = GtidState::parse(flavor, &self.samples[i].1).ok()?;
            replica.contains(&primary).ok()
        };
        let n = self.samples.len();
        if n == 0 {
            return Lag::Unknown;
        }
        match held(n - 1) {
            None => return Lag::Unknown,
            Some(true) => return Lag::CaughtUp,
            Some(false) => {}
        }
        // Invariant: samples[hi] is not held; samples[lo - 1] is (or lo == 0).
        let (mut lo, mut hi) = (0, n - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match held(mid) {
                None => return Lag::Unknown,
                Some(true) => lo = mid + 1,
                Some(false) => hi = mid,
            }
        }
        // samples[lo] is the oldest position it lacks.
        let seen_at = self.samples[lo].0;
        if lo == 0 {
            Lag::BeyondHistory {
                at_least_ms: at_ms.saturating_sub(seen_at),
            }
        } else {
            // The oldest transaction it lacks was seen on the primary by then.
            Lag::Behind {
                ms: at_ms.saturating_sub(seen_at),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::gtid::Flavor;

    fn at(gtid: &str) -> GtidState {
        GtidState::parse(Flavor::MariaDb, gtid).expect("a GTID position")
    }

    fn history() -> PositionHistory {
        let mut h = PositionHistory::default();
        h.record(1_000, "0-1-10");
        h.record(2_000, "0-1-20");
        h.record(2_500, "0-1-20"); // did not move: not kept
        h.record(3_000, "0-1-30");
        h
    }

    #[test]
    fn a_replica_with_the_newest_position_is_caught_up() {
        assert_eq!(history().len(), 3);
        assert_eq!(history().lag(&at("0-1-30"), 3_100), Lag::CaughtUp);
        assert_eq!(history().lag(&at("0-1-31"), 3_100), Lag::CaughtUp);
        assert_eq!(Lag::CaughtUp.ms(), Some(0));
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_it_lacks() {
        // Holds 0-1-20 (seen at 2,000), lacks 0-1-30 (seen at 3,000).
        assert_eq!(
            history().lag(&at("0-1-25"), 7_000),
            Lag::Behind { ms: 4_000 }
        );
        // Its own snapshot older than the primary's newest: not negative.
        assert_eq!(history().lag(&at("0-1-20"), 2_900), Lag::Behind { ms: 0 });
    }

    #[test]
    fn further_behind_than_the_history_is_at_least_its_age() {
        assert_eq!(
            history().lag(&at("0-1-5"), 9_000),
            Lag::BeyondHistory { at_least_ms: 8_000 }
        );
    }

    #[test]
    fn nothing_kept_or_nonsense_is_unknown() {
        assert_eq!(
            PositionHistory::default().lag(&at("0-1-5"), 1),
            Lag::Unknown
        );
        let mut bad = history();
        bad.record(4_000, "not a gtid");
        assert_eq!(bad.lag(&at("0-1-5"), 5_000), Lag::Unknown);
        assert_eq!(Lag::Unknown.ms(), None);
    }

    #[test]
    fn the_history_is_bounded() {
        let mut h = PositionHistory::default();
        for i in 0..(HISTORY_MAX as u64 + 50) {
            h.record(i, &format!("0-1-{}", i + 1));
        }
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(
            h.lag(&at("0-1-1"), 1_000),
            Lag::BeyondHistory { at_least_ms: 950 }
        );
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn bisection_finds_the_oldest_position_lacking_anywhere_in_a_full_history() {
        let mut h = PositionHistory::default();
        for i in 0..HISTORY_MAX as u64 {
            h.record(10 * i, &format!("0-1-{}", 2 * i + 1));
        }
        for held in [1u64, 2, 299, 300, 301, 597, 598] {
            // Holds 0-1-held: lacks the first position past it, seen at 10 × its index.
            let first_lacking = held / 2 + if held % 2 == 1 { 1 } else { 0 };
            let want = if first_lacking as usize >= HISTORY_MAX {
                Lag::CaughtUp
            } else {
                Lag::Behind {
                    ms: 10_000 - 10 * first_lacking,
                }
            };
            assert_eq!(
                h.lag(&at(&format!("0-1-{held}")), 10_000),
                want,
                "holds {held}"
            );
        }
    }

    #[test]
    fn several_domains_need_every_one_applied() {
        let mut h = PositionHistory::default();
        h.record(1_000, "0-1-10,1-1-5");
        h.record(2_000, "0-1-11,1-1-9");
        assert_eq!(h.lag(&at("0-1-11,1-1-5"), 4_000), Lag::Behind { ms: 2_000 });
        assert_eq!(h.lag(&at("0-1-11,1-1-9"), 4_000), Lag::CaughtUp);
    }
}
