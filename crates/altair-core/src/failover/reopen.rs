//! A recorded primary that is read-only although no failover replaced it: its mysqld
//! restarted (every mysqld starts read-only) while the control plane could not act, or
//! its agent fenced it in a partition the orchestrator saw through (verified alive, so
//! nothing was promoted). Nothing else would ever make it writable again: the cluster
//! would have no writable primary until a human acted. The leader lifts `read_only`
//! (with the cluster's epoch) when this says so.

use crate::health::Health;

/// What the leader knows of the recorded primary of a cluster with no failover running,
/// not paused and not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePrimary {
    /// Its health as its monitor published it, and since when (monitor clock, ms).
    pub health: Health,
    pub health_since_ms: u64,
    /// Its agent's snapshot: mysqld answered, is read-only, replicates from someone.
    pub reachable: bool,
    pub read_only: bool,
    pub replicating: bool,
    /// When its agent last fenced it by itself (agent clock, ms); 0: never.
    pub self_fenced_at_ms: u64,
}

/// Why a read-only primary may be made writable again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// Read-only without having fenced itself: its mysqld restarted (every mysqld starts
    /// read-only), or a switchover roll-back could not make it writable again.
    Restarted,
    /// It fenced itself, and its monitor heard it again since (the partition healed).
    FencedThenHeard,
}

impl Reopen {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Restarted => {
                "it is read-only without having fenced itself (mysqld restarted, or a rolled-back switchover left it so) and nothing failed it over"
            }
            Self::FencedThenHeard => {
                "it fenced itself in a partition that did not fail it over, and is heard again"
            }
        }
    }
}

/// Whether to make the primary writable again. Only a `healthy` primary (its monitor hears
/// it: it holds a lease, so its agent will not fence it again at once) that answers,
/// replicates from no one and is read-only. One that fenced itself must have been heard
/// anew since — a health that changed after the fence — or a monitor that vouches for
/// nothing (no ZooKeeper session) would have it lifted and fenced again in a loop.
pub fn reopen(p: &IdlePrimary) -> Option<Reopen> {
    if p.health != Health::Healthy || !p.reachable || !p.read_only || p.replicating {
        return None;
    }
    if p.self_fenced_at_ms == 0 {
        return Some(Reopen::Restarted);
    }
    (p.health_since_ms > p.self_fenced_at_ms).then_some(Reopen::FencedThenHeard)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_only_primary() -> IdlePrimary {
        IdlePrimary {
            health: Health::Healthy,
            health_since_ms: 10_000,
            reachable: true,
            read_only: true,
            replicating: false,
            self_fenced_at_ms: 0,
        }
    }

    #[test]
    fn a_restarted_read_only_primary_is_reopened() {
        assert_eq!(reopen(&read_only_primary()), Some(Reopen::Restarted));
    }

    #[test]
    fn a_self_fenced_primary_is_reopened_only_once_heard_again_after_the_fence() {
        let fenced = IdlePrimary {
            self_fenced_at_ms: 12_000,
            ..read_only_primary()
        };
        assert_eq!(reopen(&fenced), None, "healthy since before the fence");
        let heard = IdlePrimary {
            health_since_ms: 15_000,
            ..fenced
        };
        assert_eq!(reopen(&heard), Some(Reopen::FencedThenHeard));
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
}
