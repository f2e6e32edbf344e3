//! `altairctl status [CLUSTER]`: every cluster's hosts with role, health, read_only,
//! GTID position and lag. Registrations and published health come from ZooKeeper; live
//! health and each host's latest snapshot from the monitor that owns the cluster (when
//! it does not answer, the published health is shown and `source` says so).

use std::collections::BTreeMap;
use std::time::Duration;

use altair_core::config::ZkConfig;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, MonitorRecord};
use altair_core::rendezvous;
use altair_core::topology::{HostView, infer_roles};
use altair_core::{ClusterName, HostName, Role};
use altair_proto::v1::ClusterHealthRequest;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_zk::Zk;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Status {
    /// Admission holds in force: datacenters whose failovers wait (see `altairctl release`).
    pub holds: Vec<HoldStatus>,
    pub clusters: Vec<ClusterStatus>,
}

#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
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
    pub readiness: Option<crate::readiness::ReadinessStatus>,
    /// Old primaries fenced by a failover, waiting for a rejoin.
    pub needs_rejoin: Vec<String>,
    /// Old primaries refused an automatic rejoin: host → errant GTIDs.
    pub errant: std::collections::BTreeMap<String, String>,
    pub hosts: Vec<HostStatus>,
}

#[derive(Debug, Serialize)]
pub struct PauseStatus {
    pub by: String,
    pub reason: String,
    pub since_unix_ms: u64,
    /// When it ends by itself; null: at `altairctl resume`.
    pub until_unix_ms: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct HostStatus {
    pub name: String,
    /// `primary`, `replica`, or null when unknown.
    pub role: Option<String>,
    /// healthy | suspect | unreachable | mysql_down | replication_broken, or null before
    /// the first judgement.
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

/// The fleet (or one cluster) from ZooKeeper, with each owning monitor's live view
/// asked over `tls`.
pub async fn status(
    zk_config: &ZkConfig,
    only: Option<&str>,
    timeout: Duration,
    tls: &altair_svc::Tls,
) -> Result<Status, StatusError> {
    let zk = tokio::time::timeout(timeout, Zk::connect(zk_config, None))
        .await
        .map_err(|_| {
            StatusError::Unreachable(format!(
                "no ZooKeeper answer within {} ms from {}",
                timeout.as_millis(),
                zk_config.servers.join(",")
            ))
        })?
        .map_err(|e| StatusError::Unreachable(e.to_string()))?;
    let mut names = zk
        .children(&zk.layout().clusters())
        .await
        .map_err(|e| StatusError::Unreachable(e.to_string()))?;
    names.sort();
    if let Some(one) = only {
        if !names.iter().any(|n| n == one) {
            return Err(StatusError::NotFound(format!(
                "no cluster named {one:?} (known: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )));
        }
        names.retain(|n| n == one);
    }
    let read = async {
        let monitors = read_monitors(&zk).await?;
        let holds: altair_core::admission::Holds =
            read_record(&zk, "admission holds", &zk.layout().admission())
                .await?
                .unwrap_or_default();
        let mut clusters = Vec::new();
        for name in names {
            let Ok(cluster) = ClusterName::new(name.clone()) else {
                continue;
            };
            let mut c = cluster_status(&zk, &cluster, &monitors, timeout, tls).await?;
            c.failover_held_in = held_in(&c, &holds);
            clusters.push(c);
        }
        let holds = holds
            .holds
            .into_iter()
            .map(|(datacenter, h)| HoldStatus {
                datacenter,
                raised_at_unix_ms: h.raised_at_ms,
                primaries: h.primaries,
                unreachable: h.unreachable,
                released_by: h.released.as_ref().map(|r| r.by.clone()),
                released_reason: h.released.map(|r| r.reason),
            })
            .collect();
        Ok(Status { holds, clusters })
    };
    read.await.map_err(StatusError::Unreachable)
}

/// The held datacenter of a cluster whose unreachable primary waits on its hold.
fn held_in(c: &ClusterStatus, holds: &altair_core::admission::Holds) -> Option<String> {
    if c.failover_in_progress.is_some() {
        return None;
    }
    let p = c
        .hosts
        .iter()
        .find(|h| Some(&h.name) == c.primary.as_ref())?;
    let hold = holds.holds.get(&p.datacenter)?;
    (hold.released.is_none() && p.health.as_deref() == Some("unreachable"))
        .then(|| p.datacenter.clone())
}

async fn read_record<T: for<'de> serde::Deserialize<'de>>(
    zk: &Zk,
    what: &str,
    path: &str,
) -> Result<Option<T>, String> {
    zk.get_record(what, path).await.map_err(|e| e.to_string())
}

async fn read_monitors(zk: &Zk) -> Result<Vec<MonitorRecord>, String> {
    let dir = zk.layout().monitors();
    let mut out = Vec::new();
    for id in zk.children(&dir).await.map_err(|e| e.to_string())? {
        out.extend(read_record::<MonitorRecord>(zk, "monitor", &format!("{dir}/{id}")).await?);
    }
    Ok(out)
}

async fn cluster_status(
    zk: &Zk,
    cluster: &ClusterName,
    monitors: &[MonitorRecord],
    timeout: Duration,
    tls: &altair_svc::Tls,
) -> Result<ClusterStatus, String> {
    let layout = zk.layout();
    let mut records: BTreeMap<String, HostRecord> = BTreeMap::new();
    let mut published: BTreeMap<String, HealthRecord> = BTreeMap::new();
    for host in zk
        .children(&layout.hosts(cluster))
        .await
        .map_err(|e| e.to_string())?
    {
        let Ok(h) = HostName::new(host.clone()) else {
            continue;
        };
        if let Some(r) = read_record::<HostRecord>(zk, "host", &layout.host(cluster, &h)).await? {
            records.insert(host.clone(), r);
        }
        if let Some(r) =
            read_record::<HealthRecord>(zk, "health", &layout.host_health(cluster, &h)).await?
        {
            published.insert(host.clone(), r);
        }
    }
    let ids: Vec<&str> = monitors.iter().map(|m| m.id.as_str()).collect();
    let owner = rendezvous::owner(cluster.as_str(), &ids)
        .and_then(|id| monitors.iter().find(|m| m.id == id));
    let live = match owner {
        Some(m) => ask_monitor(tls, &m.address, cluster.as_str(), timeout)
            .await
            .ok(),
        None => None,
    };
    let mut hosts: Vec<HostStatus> = records
        .iter()
        .map(|(name, r)| {
            let snap = live.as_ref().and_then(|l| {
                l.hosts.iter().find(|h| {
                    h.registration
                        .as_ref()
                        .and_then(|r| r.id.as_ref())
                        .is_some_and(|id| id.host == *name)
                })
            });
            let health = match (&live, snap) {
                (Some(_), Some(h)) => altair_proto::v1::Health::try_from(h.health)
                    .ok()
                    .and_then(|h| h.to_core())
                    .map(|h| h.as_str().to_owned()),
                _ => published.get(name).map(|p| p.health.as_str().to_owned()),
            };
            let s = snap
                .and_then(|h| h.snapshot.as_ref())
                .filter(|s| s.reachable);
            HostStatus {
                name: name.clone(),
                role: None,
                health,
                mysql: r.mysql.clone(),
                read_only: s.map(|s| s.read_only),
                gtid_executed: s.map(|s| s.gtid_executed.clone()),
                seconds_behind: s
                    .and_then(|s| s.replication.as_ref())
                    .and_then(|r| r.seconds_behind),
                replicates_from: None,
                datacenter: r.datacenter.clone(),
                last_heartbeat_unix_ms: snap.map(|h| h.last_heartbeat_unix_ms).filter(|t| *t > 0),
                health_since_unix_ms: match snap {
                    Some(h) => Some(h.health_since_unix_ms),
                    None => published.get(name).map(|p| p.since_unix_ms as i64),
                },
                missed_heartbeats: snap.map(|h| h.consecutive_misses),
                semi_sync: s.and_then(|s| {
                    let ss = s.semi_sync.as_ref()?;
                    let writable = !s.read_only && s.replication.is_none();
                    Some(
                        match (writable, ss.master_active, ss.slave_enabled) {
                            (true, true, _) => "waiting",
                            (true, false, _) => "degraded",
                            (false, _, true) => "acking",
                            (false, _, false) => "off",
                        }
                        .to_owned(),
                    )
                }),
                semi_sync_clients: s.and_then(|s| s.semi_sync.as_ref()).map(|ss| ss.clients),
            }
        })
        .collect();
    let views: Vec<HostView> = hosts
        .iter()
        .filter_map(|h| {
            let name = HostName::new(h.name.clone()).ok()?;
            let snap = live
                .as_ref()?
                .hosts
                .iter()
                .find(|x| {
                    x.registration
                        .as_ref()
                        .and_then(|r| r.id.as_ref())
                        .is_some_and(|id| id.host == h.name)
                })?
                .snapshot
                .as_ref()?;
            Some(HostView {
                name,
                mysql: h.mysql.clone(),
                source: snap.source_address(),
                reachable: snap.reachable,
            })
        })
        .collect();
    let (primary, roles) = infer_roles(&views);
    for (view, role) in views.iter().zip(roles) {
        if let Some(h) = hosts.iter_mut().find(|h| h.name == view.name.as_str()) {
            h.role = role.role.map(|r| match r {
                Role::Primary => "primary".to_owned(),
                Role::Replica => "replica".to_owned(),
            });
            h.replicates_from = role.replicates_from.map(String::from);
        }
    }
    let state: Option<ClusterState> =
        read_record(zk, "cluster state", &layout.cluster_state(cluster)).await?;
    let journal: Option<altair_core::failover::Journal> =
        read_record(zk, "failover journal", &layout.failover_journal(cluster)).await?;
    // The orchestrator's record of the primary wins over inference from replication.
    let primary = state
        .as_ref()
        .and_then(|s| s.primary.clone())
        .or(primary.map(String::from));
    Ok(ClusterStatus {
        epoch: state.as_ref().map(|s| s.epoch),
        failover_blocked: state.as_ref().and_then(|s| s.failover_blocked.clone()),
        failover_in_progress: journal.map(|j| j.id),
        readiness: live
            .as_ref()
            .and_then(|l| l.readiness.as_ref())
            .map(crate::readiness::ReadinessStatus::from),
        paused: state
            .as_ref()
            .and_then(|s| s.paused.as_ref())
            .filter(|p| p.active(now_ms()))
            .map(|p| PauseStatus {
                by: p.by.clone(),
                reason: p.reason.clone(),
                since_unix_ms: p.since_ms,
                until_unix_ms: p.until_ms,
            }),
        failover_held_in: None,
        needs_rejoin: state
            .as_ref()
            .map(|s| s.needs_rejoin.clone())
            .unwrap_or_default(),
        errant: state.map(|s| s.errant).unwrap_or_default(),
        name: cluster.to_string(),
        primary,
        monitor: owner.map(|m| m.id.clone()),
        source: if live.is_some() {
            "monitor"
        } else {
            "zookeeper"
        }
        .to_owned(),
        hosts,
    })
}

async fn ask_monitor(
    tls: &altair_svc::Tls,
    address: &str,
    cluster: &str,
    timeout: Duration,
) -> Result<altair_proto::v1::ClusterHealthResponse, String> {
    let endpoint = tls
        .endpoint(address)?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    MonitorClient::new(channel)
        .cluster_health(ClusterHealthRequest {
            cluster: cluster.to_owned(),
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.message().to_owned())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The human table.
pub fn render(status: &Status) -> String {
    let mut out = String::new();
    for h in &status.holds {
        let ago = humantime::format_duration(Duration::from_secs(
            now_ms().saturating_sub(h.raised_at_unix_ms) / 1000,
        ));
        let what = format!(
            "{} of {} primaries unreachable together ({})",
            h.unreachable.len(),
            h.primaries,
            h.unreachable.join(", ")
        );
        match &h.released_by {
            Some(by) => out.push_str(&format!(
                "FAILOVER HOLD on datacenter {} released by {by} ({}): raised {ago} ago, {what}; it ends once none of its primaries is unreachable\n",
                h.datacenter,
                h.released_reason.as_deref().unwrap_or("")
            )),
            None => out.push_str(&format!(
                "FAILOVER HOLD on datacenter {} (raised {ago} ago): {what} — possibly this control plane's own partition. A cluster fails over only when a replica in {} confirms its primary dead; `altairctl release {} --reason ...` once the datacenter is known to be down\n",
                h.datacenter, h.datacenter, h.datacenter
            )),
        }
    }
    for c in &status.clusters {
        out.push_str(&format!(
            "cluster {}  primary {}  monitor {} ({})\n",
            c.name,
            c.primary.as_deref().unwrap_or("-"),
            c.monitor.as_deref().unwrap_or("-"),
            c.source
        ));
        if let Some(epoch) = c.epoch {
            out.push_str(&format!("  epoch {epoch}"));
            if let Some(f) = &c.failover_in_progress {
                out.push_str(&format!("  failover in progress: {f}"));
            }
            if !c.needs_rejoin.is_empty() {
                out.push_str(&format!("  needs rejoin: {}", c.needs_rejoin.join(", ")));
            }
            for (host, gtids) in &c.errant {
                out.push_str(&format!(
                    "\n  {host} has errant transactions {gtids}: `altairctl rejoin {host} --force` after inspection"
                ));
            }
            out.push('\n');
        }
        if let Some(p) = c
            .hosts
            .iter()
            .find(|h| matches!(h.semi_sync.as_deref(), Some("waiting" | "degraded")))
        {
            if p.semi_sync.as_deref() == Some("degraded") {
                out.push_str(&format!(
                    "  durability semi_sync: DEGRADED: {} commits without waiting for a replica (no acknowledgement within the timeout)\n",
                    p.name
                ));
            } else {
                out.push_str(&format!(
                    "  durability semi_sync: {} waits for a replica's acknowledgement ({} semi-sync replicas connected)\n",
                    p.name,
                    p.semi_sync_clients.unwrap_or(0)
                ));
            }
        }
        if let Some(r) = &c.readiness {
            out.push_str(&format!(
                "  failover readiness: {}\n",
                crate::readiness::line(r)
            ));
        }
        if let Some(p) = &c.paused {
            let until = match p.until_unix_ms {
                Some(u) => format!(
                    "for {} more",
                    humantime::format_duration(Duration::from_secs(
                        u.saturating_sub(now_ms()).div_ceil(1000)
                    ))
                ),
                None => "until `altairctl resume`".to_owned(),
            };
            out.push_str(&format!(
                "  PAUSED by {}: {} ({until}): no automatic failover\n",
                p.by, p.reason
            ));
        }
        if let Some(dc) = &c.failover_held_in {
            out.push_str(&format!(
                "  FAILOVER HELD by admission control (datacenter {dc}): the primary is unreachable; no replica in {dc} confirms it dead\n"
            ));
        }
        if let Some(b) = &c.failover_blocked {
            out.push_str(&format!(
                "  AUTOMATIC FAILOVER BLOCKED: {b}\n  (run `altairctl ack {}` to allow it)\n",
                c.name
            ));
        }
        out.push_str(&format!(
            "  {:<12} {:<8} {:<19} {:<22} {:<9} {:<24} {}\n",
            "host", "role", "health", "mysql", "read_only", "gtid", "lag"
        ));
        for h in &c.hosts {
            out.push_str(&format!(
                "  {:<12} {:<8} {:<19} {:<22} {:<9} {:<24} {}\n",
                h.name,
                h.role.as_deref().unwrap_or("-"),
                h.health.as_deref().unwrap_or("-"),
                h.mysql,
                h.read_only.map_or("-", |r| if r { "ON" } else { "OFF" }),
                match h.gtid_executed.as_deref() {
                    Some("") => "(none)",
                    Some(g) => g,
                    None => "-",
                },
                h.seconds_behind
                    .map_or_else(|| "-".to_owned(), |s| format!("{s}s")),
            ));
        }
    }
    out
}
