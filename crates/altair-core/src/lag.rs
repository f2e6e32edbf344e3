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

use crate::gtid::{Flavor, GtidState};

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

    /// The lag of a replica whose position was `replica` at `at_ms`.
    pub fn lag(&self, flavor: Flavor, replica: &str, at_ms: u64) -> Lag {
        let Ok(have) = GtidState::parse(flavor, replica) else {
            return Lag::Unknown;
        };
        let mut newer: Option<u64> = None;
        for (seen_at, gtid) in self.samples.iter().rev() {
            let Ok(primary) = GtidState::parse(flavor, gtid) else {
                return Lag::Unknown;
            };
            match have.contains(&primary) {
                Ok(true) => {
                    return match newer {
                        None => Lag::CaughtUp,
                        // The oldest transaction it lacks was seen on the primary by the
                        // next position.
                        Some(t) => Lag::Behind {
                            ms: at_ms.saturating_sub(t),
                        },
                    };
                }
                Ok(false) => newer = Some(*seen_at),
                Err(_) => return Lag::Unknown,
            }
        }
        match newer {
            None => Lag::Unknown,
            Some(oldest) => Lag::BeyondHistory {
                at_least_ms: at_ms.saturating_sub(oldest),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Flavor = Flavor::MariaDb;

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
        assert_eq!(history().lag(M, "0-1-30", 3_100), Lag::CaughtUp);
        assert_eq!(history().lag(M, "0-1-31", 3_100), Lag::CaughtUp);
        assert_eq!(Lag::CaughtUp.ms(), Some(0));
    }

    #[test]
    fn lag_is_the_age_of_the_oldest_position_it_lacks() {
        // Holds 0-1-20 (seen at 2,000), lacks 0-1-30 (seen at 3,000).
        assert_eq!(history().lag(M, "0-1-25", 7_000), Lag::Behind { ms: 4_000 });
        // Its own snapshot older than the primary's newest: not negative.
        assert_eq!(history().lag(M, "0-1-20", 2_900), Lag::Behind { ms: 0 });
    }

    #[test]
    fn further_behind_than_the_history_is_at_least_its_age() {
        assert_eq!(
            history().lag(M, "0-1-5", 9_000),
            Lag::BeyondHistory { at_least_ms: 8_000 }
        );
    }

    #[test]
    fn nothing_kept_or_nonsense_is_unknown() {
        assert_eq!(PositionHistory::default().lag(M, "0-1-5", 1), Lag::Unknown);
        assert_eq!(history().lag(M, "not a gtid", 1), Lag::Unknown);
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
            h.lag(M, "0-1-1", 1_000),
            Lag::BeyondHistory { at_least_ms: 950 }
        );
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn several_domains_need_every_one_applied() {
        let mut h = PositionHistory::default();
        h.record(1_000, "0-1-10,1-1-5");
        h.record(2_000, "0-1-11,1-1-9");
        assert_eq!(h.lag(M, "0-1-11,1-1-5", 4_000), Lag::Behind { ms: 2_000 });
        assert_eq!(h.lag(M, "0-1-11,1-1-9", 4_000), Lag::CaughtUp);
    }
}
