//! Verification and anti-flapping.

use serde::{Deserialize, Serialize};

/// Whether the primary counts as alive (DESIGN §3, layer 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Someone can still connect to it: no failover.
    Alive { seen_by: String },
    /// Neither the orchestrator nor any replica that answered could connect, and at
    /// least one replica answered (or there is none). Replicas whose agent did not
    /// answer are listed: they are unknown, not evidence.
    Dead { unknown: Vec<String> },
    /// The orchestrator could not connect and no replica's agent answered: nothing says
    /// the primary is dead (it may be cut off together with its replicas). Asked again
    /// at the next verification.
    Inconclusive { unknown: Vec<String> },
}

/// The primary is alive if the orchestrator itself or at least one replica (through its
/// agent) can connect to it. `replica_checks` are `(replica, Some(reached))`, or `None`
/// when that replica's agent did not answer — unknown, never "could not reach".
pub fn verdict(orchestrator_reached: bool, replica_checks: &[(String, Option<bool>)]) -> Verdict {
    if orchestrator_reached {
        return Verdict::Alive {
            seen_by: "orchestrator".into(),
        };
    }
    if let Some((replica, _)) = replica_checks.iter().find(|(_, r)| *r == Some(true)) {
        return Verdict::Alive {
            seen_by: replica.clone(),
        };
    }
    let unknown: Vec<String> = replica_checks
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(n, _)| n.clone())
        .collect();
    if !replica_checks.is_empty() && unknown.len() == replica_checks.len() {
        Verdict::Inconclusive { unknown }
    } else {
        Verdict::Dead { unknown }
    }
}

/// The last verification of a cluster's unhealthy primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastVerify {
    /// The health transition it was made for.
    pub since_ms: u64,
    pub at_ms: u64,
    /// The cluster's health as it was then (see `health_fingerprint`).
    pub fingerprint: u64,
}

/// Verify (again) now? Once per health transition of the primary, again at every
/// `interval_ms` while it stays unhealthy ("verified alive once" is not "alive
/// forever"), and at once when any host's health changed since.
pub fn verify_due(
    now_ms: u64,
    since_ms: u64,
    fingerprint: u64,
    last: Option<&LastVerify>,
    interval_ms: u64,
) -> bool {
    match last {
        None => true,
        Some(l) => {
            l.since_ms != since_ms
                || l.fingerprint != fingerprint
                || now_ms >= l.at_ms.saturating_add(interval_ms)
        }
    }
}

/// A fingerprint of every host's `(name, health, since)`: it changes whenever any agent's
/// report changes what its monitor published.
pub fn health_fingerprint<'a>(hosts: impl IntoIterator<Item = (&'a str, &'a str, u64)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut all: Vec<_> = hosts.into_iter().collect();
    all.sort();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    all.hash(&mut h);
    h.finish()
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
            verdict(
                false,
                &[("db2".into(), Some(false)), ("db3".into(), Some(true))]
            ),
            Verdict::Alive {
                seen_by: "db3".into()
            }
        );
        assert!(matches!(verdict(true, &[]), Verdict::Alive { .. }));
        assert_eq!(
            verdict(false, &[("db2".into(), Some(false))]),
            Verdict::Dead { unknown: vec![] }
        );
        assert_eq!(verdict(false, &[]), Verdict::Dead { unknown: vec![] });
    }

    #[test]
    fn a_silent_replica_is_unknown_not_evidence() {
        // The primary and db2 cut off together: db2's agent does not answer.
        assert_eq!(
            verdict(false, &[("db2".into(), None), ("db3".into(), Some(false))]),
            Verdict::Dead {
                unknown: vec!["db2".into()]
            }
        );
        assert_eq!(
            verdict(false, &[("db2".into(), None), ("db3".into(), None)]),
            Verdict::Inconclusive {
                unknown: vec!["db2".into(), "db3".into()]
            }
        );
    }

    #[test]
    fn verification_is_repeated_while_the_primary_stays_unhealthy() {
        let last = LastVerify {
            since_ms: 100,
            at_ms: 1_000,
            fingerprint: 7,
        };
        assert!(verify_due(1_000, 100, 7, None, 2_000), "first time");
        assert!(
            !verify_due(2_999, 100, 7, Some(&last), 2_000),
            "within the interval"
        );
        assert!(
            verify_due(3_000, 100, 7, Some(&last), 2_000),
            "the interval passed"
        );
        assert!(
            verify_due(1_001, 200, 7, Some(&last), 2_000),
            "a new transition"
        );
        assert!(
            verify_due(1_001, 100, 8, Some(&last), 2_000),
            "another host changed"
        );
        let a = health_fingerprint([("db1", "unreachable", 5), ("db2", "healthy", 1)]);
        let b = health_fingerprint([("db2", "healthy", 1), ("db1", "unreachable", 5)]);
        let c = health_fingerprint([("db2", "replication_broken", 9), ("db1", "unreachable", 5)]);
        assert_eq!(a, b);
        assert_ne!(a, c);
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
