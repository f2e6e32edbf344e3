//! One line per cluster for a fleet view (the console's fleet page): what state the
//! cluster is in, judged from its status, and how many clusters are in each state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::ClusterStatus;

/// A cluster's state at a glance, most urgent first: a cluster is in the first state
/// that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterState {
    /// A failover is running.
    FailingOver,
    /// The primary is unreachable or mysqld is down (and no failover is running yet).
    PrimaryDown,
    /// No host is known as the primary.
    NoPrimary,
    /// Automatic failover would not run: an admission hold, the anti-flapping block or
    /// a blocked readiness verdict.
    Blocked,
    /// A maintenance pause is in force.
    Paused,
    /// Works, but something needs a look: a host not healthy, a lossy readiness verdict,
    /// an old primary waiting for rejoin, the live view missing.
    Degraded,
    Ok,
}

impl ClusterState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailingOver => "failing_over",
            Self::PrimaryDown => "primary_down",
            Self::NoPrimary => "no_primary",
            Self::Blocked => "blocked",
            Self::Paused => "paused",
            Self::Degraded => "degraded",
            Self::Ok => "ok",
        }
    }

    pub const ALL: [Self; 7] = [
        Self::FailingOver,
        Self::PrimaryDown,
        Self::NoPrimary,
        Self::Blocked,
        Self::Paused,
        Self::Degraded,
        Self::Ok,
    ];
}

/// What the fleet page shows of one cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterSummary {
    pub name: String,
    pub state: ClusterState,
    /// Why it is in that state, in words (empty for `ok`).
    pub why: String,
    pub primary: Option<String>,
    pub primary_health: Option<String>,
    pub epoch: Option<u64>,
    pub hosts: usize,
    pub healthy_hosts: usize,
    pub datacenter: Option<String>,
    pub monitor: Option<String>,
    /// `lossless`, `lossy`, `blocked`, or null when the monitor did not answer.
    pub readiness: Option<String>,
    pub paused_by: Option<String>,
    pub failover_held_in: Option<String>,
    pub failover_in_progress: Option<String>,
}

impl ClusterSummary {
    pub fn of(c: &ClusterStatus) -> Self {
        let primary = c
            .primary
            .as_ref()
            .and_then(|p| c.hosts.iter().find(|h| &h.name == p));
        let primary_health = primary.and_then(|p| p.health.clone());
        let healthy_hosts = c
            .hosts
            .iter()
            .filter(|h| h.health.as_deref() == Some("healthy"))
            .count();
        let readiness = c.readiness.as_ref().map(|r| r.verdict.clone());
        let (state, why) = judge(c, primary_health.as_deref(), healthy_hosts);
        Self {
            name: c.name.clone(),
            state,
            why,
            primary: c.primary.clone(),
            primary_health,
            epoch: c.epoch,
            hosts: c.hosts.len(),
            healthy_hosts,
            datacenter: primary.map(|p| p.datacenter.clone()),
            monitor: c.monitor.clone(),
            readiness,
            paused_by: c.paused.as_ref().map(|p| p.by.clone()),
            failover_held_in: c.failover_held_in.clone(),
            failover_in_progress: c.failover_in_progress.clone(),
        }
    }
}

fn judge(
    c: &ClusterStatus,
    primary_health: Option<&str>,
    healthy_hosts: usize,
) -> (ClusterState, String) {
    use ClusterState as S;
    if let Some(id) = &c.failover_in_progress {
        return (S::FailingOver, format!("failover {id} is running"));
    }
    if let Some(h @ ("unreachable" | "mysql_down" | "suspect")) = primary_health {
        let held = match &c.failover_held_in {
            Some(dc) => format!("; held by admission control in {dc}"),
            None => String::new(),
        };
        return (S::PrimaryDown, format!("the primary is {h}{held}"));
    }
    if c.primary.is_none() {
        return (S::NoPrimary, "no host is the primary".into());
    }
    if let Some(dc) = &c.failover_held_in {
        return (S::Blocked, format!("failover held in datacenter {dc}"));
    }
    if let Some(b) = &c.failover_blocked {
        return (S::Blocked, format!("automatic failover blocked: {b}"));
    }
    if let Some(r) = c.readiness.as_ref().filter(|r| r.verdict == "blocked") {
        return (
            S::Blocked,
            format!(
                "a failover could promote no one: {}",
                r.blocked_reason.as_deref().unwrap_or("no candidate")
            ),
        );
    }
    if let Some(p) = &c.paused {
        return (S::Paused, format!("paused by {}: {}", p.by, p.reason));
    }
    let mut why = Vec::new();
    if primary_health == Some("write_stalled") {
        why.push("the primary answers reads but its writes do not commit".to_owned());
    }
    if healthy_hosts < c.hosts.len() {
        why.push(format!(
            "{} of {} hosts not healthy",
            c.hosts.len() - healthy_hosts,
            c.hosts.len()
        ));
    }
    if let Some(r) = c.readiness.as_ref().filter(|r| r.verdict == "lossy") {
        why.push(format!(
            "a failover now would lose {} transaction(s)",
            r.missing_transactions
        ));
    }
    if !c.needs_rejoin.is_empty() {
        why.push(format!("needs rejoin: {}", c.needs_rejoin.join(", ")));
    }
    if c.source != "monitor" {
        why.push("its monitor did not answer".into());
    }
    if why.is_empty() {
        (S::Ok, String::new())
    } else {
        (S::Degraded, why.join("; "))
    }
}

/// How many clusters are in one state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: ClusterState,
    pub clusters: usize,
}

/// How many clusters are in each state: every state, most urgent first, zeros included.
pub fn counts(clusters: &[ClusterSummary]) -> Vec<StateCount> {
    let mut n: BTreeMap<ClusterState, usize> = BTreeMap::new();
    for c in clusters {
        *n.entry(c.state).or_default() += 1;
    }
    ClusterState::ALL
        .iter()
        .map(|s| StateCount {
            state: *s,
            clusters: n.get(s).copied().unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{HostStatus, PauseStatus, ReadinessStatus};

    fn host(name: &str, health: &str) -> HostStatus {
        HostStatus {
            name: name.into(),
            role: None,
            health: Some(health.into()),
            mysql: format!("{name}:3306"),
            read_only: None,
            gtid_executed: None,
            seconds_behind: None,
            replicates_from: None,
            datacenter: "dc1".into(),
            last_heartbeat_unix_ms: None,
            health_since_unix_ms: None,
            missed_heartbeats: None,
            semi_sync: None,
            semi_sync_clients: None,
            write_probe_error: None,
            replication_lag_ms: None,
        }
    }

    fn cluster(hosts: Vec<HostStatus>) -> ClusterStatus {
        ClusterStatus {
            name: "c1".into(),
            primary: Some("db1".into()),
            monitor: Some("m1".into()),
            source: "monitor".into(),
            epoch: Some(3),
            failover_blocked: None,
            failover_in_progress: None,
            paused: None,
            failover_held_in: None,
            readiness: Some(readiness("lossless")),
            needs_rejoin: Vec::new(),
            errant: BTreeMap::new(),
            hosts,
        }
    }

    fn readiness(verdict: &str) -> ReadinessStatus {
        ReadinessStatus {
            verdict: verdict.into(),
            blocked_reason: None,
            primary: Some("db1".into()),
            candidate: Some("db2".into()),
            missing_transactions: 4,
            missing_gtids: String::new(),
            candidate_lag_s: None,
            salvage_possible: true,
            errant: BTreeMap::new(),
            unasked: Vec::new(),
        }
    }

    #[test]
    fn the_most_urgent_state_wins() {
        let healthy = || vec![host("db1", "healthy"), host("db2", "healthy")];
        let ok = ClusterSummary::of(&cluster(healthy()));
        assert_eq!((ok.state, ok.why.as_str()), (ClusterState::Ok, ""));
        assert_eq!(ok.datacenter.as_deref(), Some("dc1"));

        let mut c = cluster(vec![host("db1", "unreachable"), host("db2", "healthy")]);
        c.paused = Some(PauseStatus {
            by: "operator/alice".into(),
            reason: "upgrade".into(),
            since_unix_ms: 0,
            until_unix_ms: None,
        });
        let s = ClusterSummary::of(&c);
        assert_eq!(s.state, ClusterState::PrimaryDown, "{}", s.why);
        c.failover_in_progress = Some("f-1".into());
        assert_eq!(ClusterSummary::of(&c).state, ClusterState::FailingOver);

        let mut c = cluster(healthy());
        c.readiness = Some(readiness("lossy"));
        let s = ClusterSummary::of(&c);
        assert_eq!(s.state, ClusterState::Degraded);
        assert!(s.why.contains("lose 4"), "{}", s.why);
        c.readiness = Some(readiness("blocked"));
        assert_eq!(ClusterSummary::of(&c).state, ClusterState::Blocked);
        c.primary = None;
        assert_eq!(ClusterSummary::of(&c).state, ClusterState::NoPrimary);
    }

    #[test]
    fn a_write_stalled_primary_is_degraded_and_says_why() {
        let s = ClusterSummary::of(&cluster(vec![
            host("db1", "write_stalled"),
            host("db2", "healthy"),
        ]));
        assert_eq!(s.state, ClusterState::Degraded, "{}", s.why);
        assert!(
            s.why
                .starts_with("the primary answers reads but its writes do not commit"),
            "{}",
            s.why
        );
    }

    #[test]
    fn counts_list_every_state() {
        let a = ClusterSummary::of(&cluster(vec![host("db1", "healthy")]));
        let n = counts(&[a.clone(), a]);
        assert_eq!(n.len(), ClusterState::ALL.len());
        assert_eq!(n[0].state, ClusterState::FailingOver);
        assert_eq!(
            (n[0].clusters, n[6].state, n[6].clusters),
            (0, ClusterState::Ok, 2)
        );
    }
}
