//! A recorded primary that is read-only although no failover replaced it: its mysqld
//! restarted (every mysqld starts read-only) while the control plane could not act, or
//! its agent fenced it in a partition the orchestrator saw through (verified alive, so
//! nothing was promoted). Nothing else would ever make it writable again: the cluster
//! would have no writable primary until a human acted. The leader lifts `read_only`
//! (with the cluster's epoch) when this says so; the agent itself refuses while it holds
//! no lease and does not reach every replica (it would fence itself again).

use crate::gtid::{Flavor, GtidState};
use crate::health::Health;

/// What the leader knows of the recorded primary of a cluster with no failover running,
/// not paused and not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePrimary {
    /// Its health as its monitor published it.
    pub health: Health,
    /// Its agent's snapshot: mysqld answered, is read-only, replicates from someone.
    pub reachable: bool,
    pub read_only: bool,
    pub replicating: bool,
    /// Its agent fenced it by itself at some point.
    pub self_fenced: bool,
}

/// Why a read-only primary may be made writable again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// Read-only without having fenced itself: its mysqld restarted (every mysqld starts
    /// read-only), or a switchover roll-back could not make it writable again.
    Restarted,
    /// It fenced itself in a partition that failed nothing over.
    SelfFenced,
}

impl Reopen {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Restarted => {
                "it was read-only without having fenced itself (mysqld restarted, or a rolled-back switchover left it so) and nothing failed it over"
            }
            Self::SelfFenced => {
                "it fenced itself in a partition that failed nothing over, and holds a lease again"
            }
        }
    }
}

/// Whether a primary is one to make writable again: `healthy` (its monitor hears it),
/// answering, replicating from no one and read-only.
pub fn reopen(p: &IdlePrimary) -> Option<Reopen> {
    if p.health != Health::Healthy || !p.reachable || !p.read_only || p.replicating {
        return None;
    }
    Some(if p.self_fenced {
        Reopen::SelfFenced
    } else {
        Reopen::Restarted
    })
}

/// The hosts among `others` (name, executed GTIDs) holding a transaction the primary
/// lacks: a primary that restarted after a host crash may have lost its binlog's tail
/// (`sync_binlog` other than 1) that a replica already received. Writable again it would
/// write new transactions under the same GTIDs, and the cluster would diverge silently:
/// it stays read-only for a human. A state that does not parse counts as ahead.
pub fn hosts_ahead(flavor: Flavor, primary: &str, others: &[(String, String)]) -> Vec<String> {
    let Ok(mine) = GtidState::parse(flavor, primary) else {
        return others.iter().map(|(n, _)| n.clone()).collect();
    };
    others
        .iter()
        .filter(|(_, gtid)| {
            GtidState::parse(flavor, gtid)
                .and_then(|theirs| mine.contains(&theirs))
                .map_or(true, |contained| !contained)
        })
        .map(|(n, _)| n.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_only_primary() -> IdlePrimary {
        IdlePrimary {
            health: Health::Healthy,
            reachable: true,
            read_only: true,
            replicating: false,
            self_fenced: false,
        }
    }

    #[test]
    fn a_restarted_or_self_fenced_read_only_primary_is_reopened() {
        assert_eq!(reopen(&read_only_primary()), Some(Reopen::Restarted));
        let fenced = IdlePrimary {
            self_fenced: true,
            ..read_only_primary()
        };
        assert_eq!(reopen(&fenced), Some(Reopen::SelfFenced));
    }

    #[test]
    fn nothing_else_is_reopened() {
        let p = read_only_primary();
        for h in Health::ALL.into_iter().filter(|h| *h != Health::Healthy) {
            assert_eq!(reopen(&IdlePrimary { health: h, ..p }), None, "{h}");
        }
        assert_eq!(
            reopen(&IdlePrimary {
                read_only: false,
                ..p
            }),
            None,
            "writable"
        );
        assert_eq!(
            reopen(&IdlePrimary {
                reachable: false,
                ..p
            }),
            None,
            "down"
        );
        assert_eq!(
            reopen(&IdlePrimary {
                replicating: true,
                ..p
            }),
            None,
            "a replica"
        );
    }

    #[test]
    fn replicas_ahead_of_a_restarted_primary_are_named() {
        let others = vec![
            ("db2".to_owned(), "0-1-100".to_owned()),
            ("db3".to_owned(), "0-1-103".to_owned()),
            ("db4".to_owned(), "garbage".to_owned()),
        ];
        assert_eq!(
            hosts_ahead(Flavor::MariaDb, "0-1-101", &others),
            ["db3", "db4"]
        );
        assert_eq!(
            hosts_ahead(Flavor::MariaDb, "0-1-103", &others[..2]),
            Vec::<String>::new()
        );
        assert_eq!(hosts_ahead(Flavor::MariaDb, "bad", &others[..1]), ["db2"]);
    }
}
