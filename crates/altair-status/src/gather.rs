//! Reading the fleet: ZooKeeper's records, joined with each owning monitor's live view.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use altair_core::config::ZkConfig;
use altair_core::registry::{ClusterState, HealthRecord, HostRecord, MonitorRecord};
use altair_core::rendezvous;
use altair_core::topology::{HostView, infer_roles};
use altair_core::{ClusterName, HostName, Role};
use altair_proto::v1::ClusterHealthRequest;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_zk::Zk;
use futures_util::StreamExt;
use tonic::transport::Channel;

use crate::types::*;

/// Clusters read at once (their ZooKeeper reads share one session, pipelined).
const PARALLEL_CLUSTERS: usize = 16;

/// Connects to ZooKeeper and reads the fleet (or one cluster) once: `altairctl status`.
pub async fn status(
    zk_config: &ZkConfig,
    only: Option<&str>,
    timeout: Duration,
    tls: &altair_svc::Tls,
) -> Result<Status, StatusError> {
    let zk = tokio::time::timeout(timeout, Zk::connect_reader(zk_config))
        .await
        .map_err(|_| {
            StatusError::Unreachable(format!(
                "no ZooKeeper answer within {} ms from {}",
                timeout.as_millis(),
                zk_config.servers.join(",")
            ))
        })?
        .map_err(|e| StatusError::Unreachable(e.to_string()))?;
    Reader::new(tls.clone(), timeout).read(&zk, only).await
}

/// Reads the fleet again and again, keeping a channel to each monitor (the console's
/// collector).
pub struct Reader {
    tls: altair_svc::Tls,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Reader {
    pub fn new(tls: altair_svc::Tls, timeout: Duration) -> Self {
        Self {
            tls,
            timeout,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Every cluster (or `only`), sorted by name, with the admission holds.
    pub async fn read(&self, zk: &Zk, only: Option<&str>) -> Result<Status, StatusError> {
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
            let monitors = read_monitors(zk).await?;
            let holds: altair_core::admission::Holds =
                read_record(zk, "admission holds", &zk.layout().admission())
                    .await?
                    .unwrap_or_default();
            let monitors = &monitors;
            let holds_ref = &holds;
            let clusters: Vec<Result<Option<ClusterStatus>, String>> =
                futures_util::stream::iter(names)
                    .map(|name| async move {
                        let Ok(cluster) = ClusterName::new(name) else {
                            return Ok(None);
                        };
                        let mut c = cluster_status(self, zk, &cluster, monitors).await?;
                        c.failover_held_in = held_in(&c, holds_ref);
                        Ok(Some(c))
                    })
                    .buffered(PARALLEL_CLUSTERS)
                    .collect()
                    .await;
            let mut out = Vec::with_capacity(clusters.len());
            for c in clusters {
                out.extend(c?);
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
            Ok(Status {
                holds,
                clusters: out,
            })
        };
        read.await.map_err(StatusError::Unreachable)
    }

    /// The monitor's channel, made once per address (lazily connected; it reconnects by
    /// itself after a failure).
    fn channel(&self, address: &str) -> Result<Channel, String> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(address) {
            return Ok(c.clone());
        }
        let channel = self
            .tls
            .endpoint(address, altair_core::authz_peer::Expected::Monitor(None))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect_lazy();
        channels.insert(address.to_owned(), channel.clone());
        Ok(channel)
    }

    async fn ask_monitor(
        &self,
        address: &str,
        cluster: &str,
    ) -> Result<altair_proto::v1::ClusterHealthResponse, String> {
        MonitorClient::new(self.channel(address)?)
            .cluster_health(ClusterHealthRequest {
                cluster: cluster.to_owned(),
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| s.message().to_owned())
    }
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
    reader: &Reader,
    zk: &Zk,
    cluster: &ClusterName,
    monitors: &[MonitorRecord],
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
        Some(m) => reader.ask_monitor(&m.address, cluster.as_str()).await.ok(),
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
                // Kept from a snapshot whose probe got no answer too: a binlog stuck on
                // a full disk blocks the probe, not the write probe's report.
                write_probe_error: snap
                    .and_then(|h| h.snapshot.as_ref())
                    .map(|s| s.write_probe_error.clone())
                    .filter(|e| !e.is_empty()),
                replication_lag_ms: snap.and_then(|h| h.replication_lag_ms),
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
            .map(ReadinessStatus::from),
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

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
