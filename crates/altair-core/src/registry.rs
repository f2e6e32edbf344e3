//! What services write about themselves in ZooKeeper (JSON in the znodes of
//! `zkpath`). Fields are only ever added, so old and new releases read each other.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::health::Health;
use crate::ids::PromotionRule;

/// `<root>/clusters/<cluster>/hosts/<host>`: written by the host's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub cluster: String,
    pub host: String,
    pub datacenter: String,
    /// `host:port` of the mysqld, as others reach it.
    pub mysql: String,
    /// `host:port` of the agent's gRPC API.
    pub agent: String,
    pub promotion_rule: PromotionRule,
    /// The agent's self-fencing bound and probe interval (see `selffence`); absent from
    /// agents that predate self-fencing.
    #[serde(default)]
    pub self_fence_after_ms: Option<u64>,
    #[serde(default)]
    pub probe_interval_ms: Option<u64>,
    /// `async` or `semi_sync` (see `config::Durability`).
    #[serde(default)]
    pub durability: crate::config::Durability,
}

impl HostRecord {
    /// Whether the record read at `<cluster>/hosts/<host>` is usable: it names that host,
    /// its addresses are `host:port` and its numbers are in range. A record that is not
    /// (written by hand, or by something else) is ignored, never dialled.
    pub fn check(&self, cluster: &str, host: &str) -> Result<(), String> {
        use crate::config::is_host_port;
        let bad = |what: &str, v: &dyn std::fmt::Debug| Err(format!("{what} {v:?}"));
        if self.cluster != cluster || crate::ClusterName::new(self.cluster.clone()).is_err() {
            return bad("cluster", &self.cluster);
        }
        if self.host != host || crate::HostName::new(self.host.clone()).is_err() {
            return bad("host", &self.host);
        }
        if !is_host_port(&self.mysql) {
            return bad("mysql address", &self.mysql);
        }
        if !is_host_port(&self.agent) {
            return bad("agent address", &self.agent);
        }
        if self.datacenter.len() > 63 || self.datacenter.chars().any(char::is_control) {
            return bad("datacenter", &self.datacenter);
        }
        if self
            .self_fence_after_ms
            .is_some_and(|ms| !(100..=3_600_000).contains(&ms))
        {
            return bad("self_fence_after_ms", &self.self_fence_after_ms);
        }
        if self
            .probe_interval_ms
            .is_some_and(|ms| !(10..=600_000).contains(&ms))
        {
            return bad("probe_interval_ms", &self.probe_interval_ms);
        }
        Ok(())
    }
}

/// `<root>/monitors/<id>`: an ephemeral node per live monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub id: String,
    /// `host:port` of its gRPC API.
    pub address: String,
}

impl MonitorRecord {
    /// Whether the record read at `monitors/<id>` names that monitor and a `host:port`.
    pub fn check(&self, id: &str) -> Result<(), String> {
        if self.id != id || crate::HostName::new(self.id.clone()).is_err() {
            return Err(format!("id {:?}", self.id));
        }
        if !crate::config::is_host_port(&self.address) {
            return Err(format!("address {:?}", self.address));
        }
        Ok(())
    }
}

/// `<root>/clusters/<cluster>/health/<host>` and each event under `events/`: written
/// by the owning monitor on transitions only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthRecord {
    pub cluster: String,
    pub host: String,
    pub health: Health,
    pub previous: Option<Health>,
    /// Monitor clock, ms since the Unix epoch.
    pub since_unix_ms: u64,
    pub monitor: String,
    /// Why, in words (the agent's probe error, the number of missed heartbeats).
    pub reason: String,
    /// The last heartbeat the monitor received from the host (monitor clock).
    #[serde(default)]
    pub last_heartbeat_unix_ms: Option<u64>,
    /// When the host's agent last fenced its mysqld itself, as its heartbeat reported
    /// (agent clock): a record written again with a new value, its health unchanged,
    /// tells the leader to look at a primary made read-only in a lapse too short for
    /// its monitor to judge (`None`: not since its monitor began hearing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_fenced_at_unix_ms: Option<u64>,
}

/// `<root>/clusters/<cluster>/state`: written by the orchestrator leader only, with a
/// compare-and-set on the znode version inside a leadership-checked multi-op.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Increases with every failover; every action carries it.
    pub epoch: u64,
    pub primary: Option<String>,
    pub last_failover_ms: Option<u64>,
    /// An operator acknowledged the last failover (`altairctl ack`): the block is lifted.
    pub acknowledged: bool,
    /// Why the last automatic failover was refused, if it was (shown by `altairctl status`).
    pub failover_blocked: Option<String>,
    /// Old primaries fenced by a failover that need an operator or a rejoin.
    pub needs_rejoin: Vec<String>,
    /// For each host in `needs_rejoin`: the new primary's GTID position when it was
    /// promoted (the fork point its errant transactions are measured from).
    #[serde(default)]
    pub rejoin_fork: BTreeMap<String, String>,
    /// Hosts refused an automatic rejoin: their errant GTIDs, until an operator acts
    /// (`altairctl rejoin HOST --force`).
    #[serde(default)]
    pub errant: BTreeMap<String, String>,
    /// Automatic failover is held until `altairctl ack` (a pre-failover hook refused
    /// one); `failover_blocked` says why.
    #[serde(default)]
    pub held: bool,
    /// Old primaries that rejoined, with their fork point, until every replica is seen
    /// replicating from elsewhere: one still fed by such a host (cut off with it, not
    /// yet seen when it rejoined) is queued for rejoin with that fork point.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub former_forks: BTreeMap<String, String>,
    /// The epoch each fork point of `rejoin_fork` / `former_forks` was recorded at (its
    /// promotion's). While the cluster is still at that epoch its primary is the host
    /// promoted at that fork, and what that host wrote past it is in the cluster's
    /// history (`gtid::errant_for_rejoin`). Absent (an older record): the fork decides.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fork_epoch: BTreeMap<String, u64>,
    /// A maintenance pause (`altairctl pause`): nothing automatic while it is in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<crate::pause::Pause>,
}

impl ClusterState {
    /// `host` rejoined: it no longer waits for anything (its fork point is kept in
    /// `former_forks` for the replicas it may still feed).
    pub fn rejoined(&mut self, host: &str) {
        self.needs_rejoin.retain(|h| h != host);
        if let Some(fork) = self.rejoin_fork.remove(host) {
            self.former_forks.insert(host.to_owned(), fork);
        }
        self.errant.remove(host);
    }

    /// Whether `host`'s fork point was recorded at the current epoch (its primary is the
    /// one promoted at that fork).
    pub fn fork_is_current(&self, host: &str) -> bool {
        self.fork_of(host).is_some() && self.fork_epoch.get(host) == Some(&self.epoch)
    }

    /// Drops the fork epochs of hosts that no longer have a fork point.
    pub fn tidy_fork_epochs(&mut self) {
        let (waiting, former) = (&self.rejoin_fork, &self.former_forks);
        self.fork_epoch
            .retain(|h, _| waiting.contains_key(h) || former.contains_key(h));
    }

    /// The fork point a replica fed by `host` is judged by, if `host` is an old primary
    /// (waiting for rejoin, or rejoined but possibly still feeding a stray).
    pub fn fork_of(&self, host: &str) -> Option<&String> {
        if self.needs_rejoin.iter().any(|h| h == host) {
            return self.rejoin_fork.get(host);
        }
        self.former_forks.get(host)
    }
}

/// `<root>/clusters/<cluster>/history/<id>`: the audit record of one failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverAudit {
    pub journal: crate::failover::Journal,
    /// `succeeded`, `failed`, `refused`, `aborted`, `primary_alive`.
    pub outcome: String,
    pub new_primary: Option<String>,
    pub finished_at_ms: u64,
    pub total_ms: u64,
    pub detail: String,
}

/// `<root>/clusters/<cluster>/abort`: an operator asked to abort the failover in
/// progress. The leader honours it before promotion starts and removes it when the
/// failover ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortRequest {
    /// The failover it is meant for (a later failover is not aborted by it).
    pub failover_id: String,
    pub reason: String,
    pub requested_at_ms: u64,
}

/// How many audit records a cluster keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// At most this many (the one being written included).
    pub keep: usize,
    /// None older than this (ms); `None`: no age limit.
    pub max_age_ms: Option<u64>,
}

/// The audit records to delete as one more is written at `now_ms`: those older than
/// the age limit, then the oldest beyond `keep` (ids start with their start time in ms,
/// so they sort by age; an id without one counts but never ages out), at most
/// `per_write` at a time (one multi-op stays small; later writes finish the job).
pub fn history_to_prune(
    ids: &[String],
    retention: Retention,
    now_ms: u64,
    per_write: usize,
) -> Vec<String> {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let excess = (sorted.len() + 1).saturating_sub(retention.keep.max(1));
    let too_old = |id: &str| {
        let started = id.split('-').next().and_then(|t| t.parse::<u64>().ok());
        matches!((retention.max_age_ms, started), (Some(age), Some(t)) if now_ms.saturating_sub(t) > age)
    };
    sorted
        .into_iter()
        .enumerate()
        .filter(|(i, id)| *i < excess || too_old(id))
        .map(|(_, id)| id.clone())
        .take(per_write)
        .collect()
}

/// JSON encoding of a record.
pub fn to_json<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

/// Decodes a record; a malformed znode is an error naming what was expected.
pub fn from_json<T: for<'de> Deserialize<'de>>(what: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("malformed {what} record: {e}"))
}

#[cfg(test)]
mod rejoin_tests {
    use super::ClusterState;

    #[test]
    fn a_rejoined_old_primary_keeps_its_fork_for_the_replicas_it_may_feed() {
        let mut s = ClusterState {
            needs_rejoin: vec!["db1".into()],
            ..ClusterState::default()
        };
        s.rejoin_fork.insert("db1".into(), "0-2-9".into());
        assert_eq!(s.fork_of("db1").map(String::as_str), Some("0-2-9"));
        s.rejoined("db1");
        assert!(s.needs_rejoin.is_empty() && s.rejoin_fork.is_empty());
        assert_eq!(s.fork_of("db1").map(String::as_str), Some("0-2-9"));
        assert_eq!(s.fork_of("db2"), None);
    }

    #[test]
    fn a_fork_is_current_only_at_its_own_epoch() {
        let mut s = ClusterState {
            epoch: 2,
            needs_rejoin: vec!["db1".into()],
            ..ClusterState::default()
        };
        s.rejoin_fork.insert("db1".into(), "0-1-76".into());
        assert!(
            !s.fork_is_current("db1"),
            "no epoch recorded: the fork decides"
        );
        s.fork_epoch.insert("db1".into(), 2);
        assert!(s.fork_is_current("db1"));
        s.rejoined("db1");
        assert!(
            s.fork_is_current("db1"),
            "kept for the replicas it may feed"
        );
        s.epoch = 3;
        assert!(!s.fork_is_current("db1"), "promoted since");
        s.former_forks.clear();
        s.tidy_fork_epochs();
        assert!(s.fork_epoch.is_empty());
    }
}

#[cfg(test)]
mod history_tests {
    use super::{Retention, history_to_prune};

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn keep(n: usize) -> Retention {
        Retention {
            keep: n,
            max_age_ms: None,
        }
    }

    #[test]
    fn the_oldest_records_beyond_the_limit_go_first() {
        let h = ids(&["1796-c", "1794-a", "1795-b"]);
        // Keeping 3 with one more coming: the oldest one goes.
        assert_eq!(history_to_prune(&h, keep(3), 0, 10), ids(&["1794-a"]));
        assert_eq!(
            history_to_prune(&h, keep(2), 0, 10),
            ids(&["1794-a", "1795-b"])
        );
        assert!(history_to_prune(&h, keep(4), 0, 10).is_empty());
        // Bounded per write.
        assert_eq!(history_to_prune(&h, keep(1), 0, 1), ids(&["1794-a"]));
        // keep 0 is treated as 1: the new record stays.
        assert_eq!(history_to_prune(&h, keep(0), 0, 10).len(), 3);
        assert!(history_to_prune(&[], keep(1), 0, 10).is_empty());
    }

    #[test]
    fn records_past_the_age_limit_go_whatever_the_count() {
        let h = ids(&["1000-a", "5000-b", "9000-c", "junk"]);
        let r = Retention {
            keep: 100,
            max_age_ms: Some(4_500),
        };
        // At 10,000 ms: 1000-a (9 s old) and 5000-b (5 s) are past 4.5 s; 9000-c is not,
        // and an id without a time never ages out.
        assert_eq!(
            history_to_prune(&h, r, 10_000, 10),
            ids(&["1000-a", "5000-b"])
        );
        assert!(history_to_prune(&h, r, 5_000, 10).is_empty());
        // Count and age together, still bounded per write.
        let both = Retention {
            keep: 2,
            max_age_ms: Some(4_500),
        };
        assert_eq!(history_to_prune(&h, both, 10_000, 10).len(), 3);
        assert_eq!(history_to_prune(&h, both, 10_000, 1), ids(&["1000-a"]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let r = MonitorRecord {
            id: "m1".into(),
            address: "10.0.0.1:7500".into(),
        };
        let back: MonitorRecord = from_json("monitor", &to_json(&r)).expect("round trip");
        assert_eq!(back, r);
        let e = from_json::<MonitorRecord>("monitor", b"{nope").expect_err("garbage");
        assert!(e.starts_with("malformed monitor record"), "{e}");
        assert_eq!(r.check("m1"), Ok(()));
        assert!(r.check("m2").is_err(), "a record under another id");
        let planted = MonitorRecord {
            id: "m1".into(),
            address: "evil; rm -rf /".into(),
        };
        assert!(planted.check("m1").is_err());
    }

    #[test]
    fn a_host_record_is_used_only_when_it_names_its_place_and_valid_values() {
        let good = HostRecord {
            cluster: "c1".into(),
            host: "db1".into(),
            datacenter: "dc1".into(),
            mysql: "10.0.0.1:3306".into(),
            agent: "10.0.0.1:7400".into(),
            promotion_rule: PromotionRule::default(),
            self_fence_after_ms: Some(2_000),
            probe_interval_ms: Some(1_000),
            durability: crate::config::Durability::default(),
        };
        assert_eq!(good.check("c1", "db1"), Ok(()));
        assert!(
            good.check("c1", "db2").is_err(),
            "under another host's path"
        );
        assert!(
            good.check("c2", "db1").is_err(),
            "under another cluster's path"
        );
        for bad in [
            HostRecord {
                agent: "10.0.0.1".into(),
                ..good.clone()
            },
            HostRecord {
                mysql: "db:0".into(),
                ..good.clone()
            },
            HostRecord {
                self_fence_after_ms: Some(0),
                ..good.clone()
            },
            HostRecord {
                probe_interval_ms: Some(u64::MAX),
                ..good.clone()
            },
            HostRecord {
                datacenter: "x".repeat(64),
                ..good.clone()
            },
        ] {
            assert!(bad.check("c1", "db1").is_err(), "{bad:?}");
        }
    }
}
