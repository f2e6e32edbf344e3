//! Which epoch an agent accepts (issue "Security"): an action carries the cluster epoch
//! that authorised it. The agent refuses one older than the newest it accepted (a
//! deposed orchestrator) and one ahead of what ZooKeeper says the cluster is at (a
//! forged `u64::MAX` would otherwise lock the real orchestrator out). The orchestrator
//! writes a new epoch to ZooKeeper before it calls any agent with it, so a legitimate
//! epoch is the cluster's: one less is a deposed orchestrator's, one more is tolerated
//! for an agent whose copy of the cluster state is a moment old or that cannot reach
//! ZooKeeper right now. The bound comes from ZooKeeper's epoch only (seeded at start from
//! the last accepted one), never from epochs accepted since: accepting `cluster + 1`
//! does not let the next call go one further.

use std::fmt;

/// Why an epoch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EpochRefusal {
    Missing,
    Stale { requested: u64, seen: u64 },
    Ahead { requested: u64, cluster: u64 },
}

impl fmt::Display for EpochRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("epoch is required (> 0)"),
            Self::Stale { requested, seen } => write!(
                f,
                "epoch {requested} is older than epoch {seen} already seen: refusing a stale orchestrator"
            ),
            Self::Ahead { requested, cluster } => write!(
                f,
                "epoch {requested} is ahead of the cluster's epoch {cluster} in ZooKeeper: refusing it"
            ),
        }
    }
}

/// May an action of epoch `requested` run, given the newest epoch this agent accepted
/// (`seen`) and the cluster's epoch as last read from ZooKeeper (`cluster`)?
pub fn accept(requested: u64, seen: u64, cluster: u64) -> Result<(), EpochRefusal> {
    if requested == 0 {
        return Err(EpochRefusal::Missing);
    }
    if requested < seen.max(cluster) {
        return Err(EpochRefusal::Stale {
            requested,
            seen: seen.max(cluster),
        });
    }
    if requested > cluster.saturating_add(1) {
        return Err(EpochRefusal::Ahead { requested, cluster });
    }
    Ok(())
}

/// The text of the file an agent keeps its accepted epoch in.
pub fn to_file(epoch: u64) -> String {
    format!("{epoch}\n")
}

/// Parses that file; `Err` says what is wrong with it.
pub fn from_file(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .map_err(|e| format!("{:?} is not an epoch: {e}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_between_the_seen_one_and_the_clusters_plus_one_is_accepted() {
        assert_eq!(accept(5, 4, 5), Ok(()));
        assert_eq!(accept(6, 4, 5), Ok(()), "a moment-old copy of the state");
        assert_eq!(accept(5, 5, 5), Ok(()), "the same failover again");
    }

    #[test]
    fn stale_missing_and_forged_epochs_are_refused() {
        assert_eq!(accept(0, 0, 3), Err(EpochRefusal::Missing));
        assert_eq!(
            accept(3, 4, 2),
            Err(EpochRefusal::Stale {
                requested: 3,
                seen: 4
            })
        );
        assert_eq!(
            accept(u64::MAX, 4, 5),
            Err(EpochRefusal::Ahead {
                requested: u64::MAX,
                cluster: 5
            })
        );
        assert!(accept(7, 4, 5).is_err());
        assert!(accept(u64::MAX, u64::MAX, u64::MAX).is_ok(), "no overflow");
        // A deposed orchestrator's epoch, even to an agent that accepted nothing yet.
        assert_eq!(
            accept(4, 0, 5),
            Err(EpochRefusal::Stale {
                requested: 4,
                seen: 5
            })
        );
    }

    #[test]
    fn accepted_epochs_do_not_raise_the_bound() {
        // Accepting cluster + 1 again and again never lets cluster + 2 through.
        let (cluster, mut seen) = (5, 0);
        for _ in 0..3 {
            assert_eq!(accept(6, seen, cluster), Ok(()));
            seen = 6;
        }
        assert!(matches!(
            accept(7, seen, cluster),
            Err(EpochRefusal::Ahead { .. })
        ));
    }

    #[test]
    fn the_epoch_file_round_trips_and_refuses_garbage() {
        assert_eq!(from_file(&to_file(42)), Ok(42));
        assert!(from_file("").is_err());
        assert!(from_file("x7").is_err());
    }
}
