//! A cluster as ZooKeeper records it: state, journal, hosts, published health.

use std::collections::BTreeMap;

use altair_core::failover::Journal;
use altair_core::registry::{AbortRequest, ClusterState, HealthRecord, HostRecord, from_json};
use altair_core::{ClusterName, HostName};
use altair_zk::{Zk, ZkError};

#[derive(Debug, Clone)]
pub struct ClusterView {
    pub name: ClusterName,
    /// The state and its znode version.
    pub state: Option<(ClusterState, i32)>,
    pub journal: Option<Journal>,
    /// An operator's abort request (only read while a journal exists).
    pub abort: Option<AbortRequest>,
    /// Ids of the audit records kept (only read while a journal exists: the failover's
    /// closing write prunes the oldest).
    pub history: Vec<String>,
    pub hosts: BTreeMap<String, HostRecord>,
    pub health: BTreeMap<String, HealthRecord>,
}

impl ClusterView {
    pub async fn load(zk: &Zk, name: &ClusterName) -> Result<Self, ZkError> {
        let l = zk.layout();
        let state = match zk.get_versioned(&l.cluster_state(name)).await? {
            Some((bytes, version)) => match from_json::<ClusterState>("cluster state", &bytes) {
                Ok(s) => Some((s, version)),
                Err(e) => {
                    tracing::error!(cluster = %name, error = %e, "cluster state is unreadable; not acting on this cluster");
                    return Err(ZkError::Conflict { detail: e });
                }
            },
            None => None,
        };
        let journal = match zk.get(&l.failover_journal(name)).await? {
            Some(bytes) => Some(
                from_json::<Journal>("failover journal", &bytes)
                    .map_err(|detail| ZkError::Conflict { detail })?,
            ),
            None => None,
        };
        let history = match &journal {
            Some(_) => zk.children(&l.history(name)).await?,
            None => Vec::new(),
        };
        let abort = match &journal {
            Some(_) => {
                zk.get_record::<AbortRequest>("abort request", &l.failover_abort(name))
                    .await?
            }
            None => None,
        };
        let mut hosts = BTreeMap::new();
        let mut health = BTreeMap::new();
        for host in zk.children(&l.hosts(name)).await? {
            let Ok(h) = HostName::new(host.clone()) else {
                continue;
            };
            if let Some(r) = zk
                .get_record::<HostRecord>("host", &l.host(name, &h))
                .await?
            {
                hosts.insert(host.clone(), r);
            }
            if let Some(r) = zk
                .get_record::<HealthRecord>("health", &l.host_health(name, &h))
                .await?
            {
                health.insert(host.clone(), r);
            }
        }
        Ok(Self {
            name: name.clone(),
            state,
            journal,
            abort,
            history,
            hosts,
            health,
        })
    }
}
