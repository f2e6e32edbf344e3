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
        // Issued together: one session answers its requests in order, so this reads what
        // the same reads one after another would.
        let (state_path, journal_path, hosts_path) = (
            l.cluster_state(name),
            l.failover_journal(name),
            l.hosts(name),
        );
        let (state, journal, names) = tokio::join!(
            zk.get_versioned(&state_path),
            zk.get(&journal_path),
            zk.children(&hosts_path),
        );
        let (state, journal, names) = (state?, journal?, names?);
        let state = match state {
            Some((bytes, version)) => match from_json::<ClusterState>("cluster state", &bytes) {
                Ok(s) => Some((s, version)),
                Err(e) => {
                    tracing::error!(cluster = %name, error = %e, "cluster state is unreadable; not acting on this cluster");
                    return Err(ZkError::Conflict { detail: e });
                }
            },
            None => None,
        };
        let journal = match journal {
            Some(bytes) => Some(
                from_json::<Journal>("failover journal", &bytes)
                    .map_err(|detail| ZkError::Conflict { detail })?,
            ),
            None => None,
        };
        let (history, abort) = match &journal {
            Some(_) => failover_records(zk, name).await?,
            None => (Vec::new(), None),
        };
        // Every host's records at once.
        let reads = names.iter().filter_map(|host| {
            let h = HostName::new(host.clone()).ok()?;
            let (record, health) = (l.host(name, &h), l.host_health(name, &h));
            Some(async move {
                let (r, hr) = futures_util::future::join(
                    zk.get_record::<HostRecord>("host", &record),
                    zk.get_record::<HealthRecord>("health", &health),
                )
                .await;
                Ok::<_, ZkError>((host.clone(), r?, hr?))
            })
        });
        let mut hosts = BTreeMap::new();
        let mut health = BTreeMap::new();
        for read in futures_util::future::join_all(reads).await {
            let (host, r, hr) = read?;
            match r.map(|r| r.check(name.as_str(), &host).map(|()| r)) {
                Some(Ok(r)) => {
                    crate::agents::agent_registered_at(&r.agent, name, &host);
                    hosts.insert(host.clone(), r);
                }
                Some(Err(e)) => {
                    tracing::warn!(cluster = %name, host = %host, problem = %e, "ignoring an invalid host record in ZooKeeper");
                }
                None => {}
            }
            if let Some(hr) = hr {
                health.insert(host, hr);
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

    /// This view once a failover has started on it: the state and journal its start
    /// wrote (the state's znode version is `version`), what is read only while a
    /// journal exists, and every host's health afresh (verification may have taken a
    /// while: a host silent since is dialled as one). One round trip, not a whole view.
    pub async fn started(
        mut self,
        zk: &Zk,
        state: ClusterState,
        version: i32,
        journal: Journal,
    ) -> Result<Self, ZkError> {
        let l = zk.layout();
        let healths = self.hosts.keys().filter_map(|host| {
            let path = l.host_health(&self.name, &HostName::new(host.clone()).ok()?);
            Some(async move {
                let h = zk.get_record::<HealthRecord>("health", &path).await?;
                Ok::<_, ZkError>((host.clone(), h))
            })
        });
        let (records, healths) = tokio::join!(
            failover_records(zk, &self.name),
            futures_util::future::join_all(healths),
        );
        let (history, abort) = records?;
        let mut health = std::mem::take(&mut self.health);
        for read in healths {
            match read? {
                (host, Some(h)) => health.insert(host, h),
                (host, None) => health.remove(&host),
            };
        }
        self.state = Some((state, version));
        self.journal = Some(journal);
        self.history = history;
        self.abort = abort;
        self.health = health;
        Ok(self)
    }
}

/// The audit records kept and an operator's abort request (read while a failover runs).
async fn failover_records(
    zk: &Zk,
    name: &ClusterName,
) -> Result<(Vec<String>, Option<AbortRequest>), ZkError> {
    let l = zk.layout();
    let (history_path, abort_path) = (l.history(name), l.failover_abort(name));
    let (h, a) = tokio::join!(
        zk.children(&history_path),
        zk.get_record::<AbortRequest>("abort request", &abort_path),
    );
    Ok((h?, a?))
}
