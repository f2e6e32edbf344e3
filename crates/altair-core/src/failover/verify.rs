//! Verification and anti-flapping.

use serde::{Deserialize, Serialize};

/// Whether the primary counts as alive (DESIGN §3, layer 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Someone can still connect to it: no failover.
    Alive { seen_by: String },
    /// Neither the orchestrator nor any replica could connect.
    Dead,
}

/// The primary is alive if the orchestrator itself or at least one replica (through its
/// agent) can connect to it. `replica_checks` are `(replica, reached)`; an agent that did
/// not answer counts as "could not reach".
pub fn verdict(orchestrator_reached: bool, replica_checks: &[(String, bool)]) -> Verdict {
    if orchestrator_reached {
        return Verdict::Alive {
            seen_by: "orchestrator".into(),
        };
    }
    match replica_checks.iter().find(|(_, reached)| *reached) {
        Some((replica, _)) => Verdict::Alive {
            seen_by: replica.clone(),
        },
        None => Verdict::Dead,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlockReason {
    /// A failover ran recently and no operator acknowledged it.
    RecentFailover { last_ms: u64, until_ms: u64 },
}

impl std::fmt::Display for BlockReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::RecentFailover { until_ms, .. } => write!(
                f,
                "a failover ran recently: automatic failover is blocked until {until_ms} (ms since the Unix epoch) or `altairctl ack`"
            ),
        }
    }
}

/// Anti-flapping: no automatic failover within `block_period_ms` of the last one unless
/// it was acknowledged.
pub fn failover_blocked(
    now_ms: u64,
    last_failover_ms: Option<u64>,
    acknowledged: bool,
    block_period_ms: u64,
) -> Option<BlockReason> {
    let last = last_failover_ms?;
    let until = last.saturating_add(block_period_ms);
    (!acknowledged && now_ms < until).then_some(BlockReason::RecentFailover {
        last_ms: last,
        until_ms: until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_if_anyone_reaches_it() {
        assert_eq!(
            verdict(false, &[("db2".into(), false), ("db3".into(), true)]),
            Verdict::Alive {
                seen_by: "db3".into()
            }
        );
        assert!(matches!(verdict(true, &[]), Verdict::Alive { .. }));
        assert_eq!(verdict(false, &[("db2".into(), false)]), Verdict::Dead);
        assert_eq!(verdict(false, &[]), Verdict::Dead);
    }

    #[test]
    fn blocks_within_the_period_until_acknowledged() {
        let h = 3_600_000;
        assert_eq!(failover_blocked(10, None, false, h), None);
        assert!(failover_blocked(1_000 + h - 1, Some(1_000), false, h).is_some());
        assert_eq!(failover_blocked(1_000 + h, Some(1_000), false, h), None);
        assert_eq!(failover_blocked(2_000, Some(1_000), true, h), None);
    }
}
