//! What `altair_status::status` answers: the shapes of `altairctl status --json` and
//! of the console's JSON API (`/api/v1/...`). Fields are only ever added.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// Admission holds in force: datacenters whose failovers wait (see `altairctl release`).
    pub holds: Vec<HoldStatus>,
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldStatus {
    pub datacenter: String,
    pub raised_at_unix_ms: u64,
    /// The datacenter's primaries when it was raised.
    pub primaries: u32,
    /// The clusters whose primary had become unreachable together then.
    pub unreachable: Vec<String>,
    /// Who released it and why (the held failovers go ahead); null: still holding.
    pub released_by: Option<String>,
    pub released_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub name: String,
    /// The host that replicates from no one, when exactly one does.
    pub primary: Option<String>,
    /// The monitor that owns the cluster.
    pub monitor: Option<String>,
    /// `monitor` (live) or `zookeeper` (published transitions only: the monitor did not answer).
    pub source: String,
    /// The cluster epoch (increases with every failover); null before the orchestrator
    /// recorded the cluster.
    pub epoch: Option<u64>,
    /// Why automatic failover is refused right now (anti-flapping), if it is.
    pub failover_blocked: Option<String>,
    /// Id of a failover in progress.
    pub failover_in_progress: Option<String>,
    /// A maintenance pause in force (`altairctl pause`): who, why, since and until when.
    pub paused: Option<PauseStatus>,
    /// The datacenter whose admission hold holds this cluster's failover now (its primary
    /// is unreachable there and the hold is not released).
    pub failover_held_in: Option<String>,
    /// What a failover would do now, as the owning monitor judges it (null when it did
    /// not answer).
    pub readiness: Option<ReadinessStatus>,
    /// Old primaries fenced by a failover, waiting for a rejoin.
    pub needs_rejoin: Vec<String>,
    /// Old primaries refused an automatic rejoin: host → errant GTIDs.
    pub errant: std::collections::BTreeMap<String, String>,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PauseStatus {
    pub by: String,
    pub reason: String,
    pub since_unix_ms: u64,
    /// When it ends by itself; null: at `altairctl resume`.
    pub until_unix_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    pub name: String,
    /// `primary`, `replica`, or null when unknown.
    pub role: Option<String>,
    /// healthy | suspect | unreachable | mysql_down | replication_broken | write_stalled,
    /// or null before the first judgement.
    pub health: Option<String>,
    pub mysql: String,
    pub read_only: Option<bool>,
    pub gtid_executed: Option<String>,
    pub seconds_behind: Option<i64>,
    pub replicates_from: Option<String>,
    pub datacenter: String,
    /// Last heartbeat the owning monitor received (its clock, ms since the Unix epoch).
    pub last_heartbeat_unix_ms: Option<i64>,
    /// When the current health began (monitor clock, ms since the Unix epoch).
    pub health_since_unix_ms: Option<i64>,
    /// Heartbeat intervals passed without a heartbeat, as the monitor counts them now.
    pub missed_heartbeats: Option<u32>,
    /// Semi-sync (null in async clusters): on a writable primary `waiting` (commits wait
    /// for a replica's acknowledgement) or `degraded` (an ack timeout expired: commits are
    /// asynchronous); on a replica `acking` or `off`.
    pub semi_sync: Option<String>,
    /// Semi-synchronous replicas connected to this host (a primary's ackers).
    pub semi_sync_clients: Option<u32>,
    /// Why the agent's last write probe on this primary failed (null when it committed,
    /// or on a host that is not a writable primary).
    #[serde(default)]
    pub write_probe_error: Option<String>,
    /// A replica's end-to-end replication lag at its last heartbeat, ms (the age of the
    /// oldest transaction of the primary it has not applied; a lower bound at heartbeat
    /// resolution), beside `seconds_behind` (what mysqld says). Null when unknown.
    #[serde(default)]
    pub replication_lag_ms: Option<i64>,
}

/// One cluster's failover readiness.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadinessStatus {
    /// `lossless`, `lossy` or `blocked`.
    pub verdict: String,
    /// Why no failover could promote anyone (`blocked`).
    pub blocked_reason: Option<String>,
    pub primary: Option<String>,
    /// The replica a failover would promote now.
    pub candidate: Option<String>,
    /// Transactions the candidate lacks, and which.
    pub missing_transactions: u64,
    pub missing_gtids: String,
    pub candidate_lag_s: Option<i64>,
    /// After a crash of mysqld alone, salvage could read the primary's binlog.
    pub salvage_possible: bool,
    /// Replica → transactions it wrote itself.
    pub errant: BTreeMap<String, String>,
    /// Hosts whose agent is not heard.
    pub unasked: Vec<String>,
}

impl From<&altair_proto::v1::Readiness> for ReadinessStatus {
    fn from(r: &altair_proto::v1::Readiness) -> Self {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Self {
            verdict: r.verdict.clone(),
            blocked_reason: some(&r.blocked_reason),
            primary: some(&r.primary),
            candidate: some(&r.candidate),
            missing_transactions: r.missing_transactions,
            missing_gtids: r.missing_gtids.clone(),
            candidate_lag_s: r.candidate_lag_s,
            salvage_possible: r.salvage_possible,
            errant: r.errant.clone().into_iter().collect(),
            unasked: r.unasked.clone(),
        }
    }
}

/// Why `status` could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The cluster asked for does not exist (exit 1).
    #[error("{0}")]
    NotFound(String),
    /// ZooKeeper could not be read (exit 3).
    #[error("{0}")]
    Unreachable(String),
}
