//! Maintenance pause: while a cluster is paused nothing automatic happens to it (no
//! failover starts, no old primary is rejoined); detection, status and operator actions
//! go on. A pause given a duration ends by itself.

use serde::{Deserialize, Serialize};

/// The longest pause that may be given a duration (a week); longer needs no `--for`
/// (an open-ended pause, ended by `resume`).
pub const MAX_PAUSE_MS: u64 = 7 * 24 * 3600 * 1000;

/// Stored in the cluster state while a pause is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// The caller's identity (`operator/alice`).
    pub by: String,
    pub reason: String,
    pub since_ms: u64,
    /// When it ends by itself; `None`: at `resume`.
    pub until_ms: Option<u64>,
}

/// Why a pause request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PauseError {
    #[error(
        "reason is required: say why automatic failover is paused (it goes into the audit record and status)"
    )]
    NoReason,
    #[error("reason is longer than 1000 bytes")]
    ReasonTooLong,
    #[error("duration {0} ms is longer than a week: pause without a duration and resume by hand")]
    TooLong(u64),
}

impl Pause {
    /// A pause from `now`, for `for_ms` (0: until resumed).
    pub fn new(by: &str, reason: &str, now: u64, for_ms: u64) -> Result<Self, PauseError> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(PauseError::NoReason);
        }
        if reason.len() > 1000 {
            return Err(PauseError::ReasonTooLong);
        }
        if for_ms > MAX_PAUSE_MS {
            return Err(PauseError::TooLong(for_ms));
        }
        Ok(Self {
            by: by.to_owned(),
            reason: reason.to_owned(),
            since_ms: now,
            until_ms: (for_ms > 0).then(|| now.saturating_add(for_ms)),
        })
    }

    /// In force at `now`.
    pub fn active(&self, now: u64) -> bool {
        self.until_ms.is_none_or(|u| now < u)
    }

    /// How long until it ends by itself, if it does.
    pub fn remaining_ms(&self, now: u64) -> Option<u64> {
        self.until_ms.map(|u| u.saturating_sub(now))
    }

    /// One line for logs, status and a failover's trigger.
    pub fn describe(&self, now: u64) -> String {
        let until = match self.remaining_ms(now) {
            Some(ms) => format!(", {} s left", ms.div_ceil(1000)),
            None => ", until resumed".to_owned(),
        };
        format!("paused by {}: {}{until}", self.by, self.reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_needs_a_reason_and_a_bounded_duration() {
        assert_eq!(Pause::new("op/a", "  ", 0, 0), Err(PauseError::NoReason));
        assert_eq!(
            Pause::new("op/a", &"x".repeat(1001), 0, 0),
            Err(PauseError::ReasonTooLong)
        );
        assert_eq!(
            Pause::new("op/a", "kernel", 0, MAX_PAUSE_MS + 1),
            Err(PauseError::TooLong(MAX_PAUSE_MS + 1))
        );
        let p = Pause::new("op/a", " kernel upgrade ", 5, 0).expect("a valid pause");
        assert_eq!(p.reason, "kernel upgrade");
        assert_eq!(p.until_ms, None);
    }

    #[test]
    fn an_open_pause_lasts_and_a_timed_one_ends_by_itself() {
        let open = Pause::new("op/a", "r", 1000, 0).expect("open-ended");
        assert!(open.active(u64::MAX));
        assert_eq!(open.remaining_ms(5000), None);
        assert!(open.describe(2000).ends_with("until resumed"));
        let timed = Pause::new("op/a", "r", 1000, 30_000).expect("timed");
        assert!(timed.active(30_999));
        assert!(!timed.active(31_000));
        assert_eq!(timed.remaining_ms(21_000), Some(10_000));
        assert_eq!(timed.remaining_ms(40_000), Some(0));
        assert_eq!(timed.describe(20_500), "paused by op/a: r, 11 s left");
    }
}
