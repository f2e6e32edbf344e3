//! A cluster as ZooKeeper records it: state, journal, hosts, published health.

use std::collections::BTreeMap;

use altair_core::failover::Journal;
use altair_core::registry::{AbortRequest, ClusterState, HealthRecord, HostRecord, from_json};
use altair_core::{ClusterName, HostName};
use altair_zk::{Answer, Read, Zk, ZkError};

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
    /// Two requests: the state, the journal and the hosts' names; then every host's
    /// record and health (and, while a journal exists, the audit records kept and an
    /// abort request), each batch one `multiRead`.
    pub async fn load(zk: &Zk, name: &ClusterName) -> Result<Self, ZkError> {
        let began = crate::agents::reads_from();
        let l = zk.layout();
        let (state_path, journal_path, hosts_path) = (
            l.cluster_state(name),
            l.failover_journal(name),
            l.hosts(name),
        );
        let mut first = answers(
            zk.read_all(&[
                Read::Data(&state_path),
                Read::Data(&journal_path),
                Read::Children(&hosts_path),
            ])
            .await?,
        );
        let (state, journal, names) = (
            first().into_versioned(),
            first().into_data(),
            first().into_children(),
        );
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
        // (host, its record's path, its health's path) for every valid name.
        let paths: Vec<(String, String, String)> = names
            .into_iter()
            .filter_map(|host| {
                let h = HostName::new(host.clone()).ok()?;
                Some((host, l.host(name, &h), l.host_health(name, &h)))
            })
            .collect();
        let (history_path, abort_path) = (l.history(name), l.failover_abort(name));
        let mut reads: Vec<Read<'_>> = paths
            .iter()
            .flat_map(|(_, record, health)| [Read::Data(record), Read::Data(health)])
            .collect();
        if journal.is_some() {
            reads.extend([Read::Children(&history_path), Read::Data(&abort_path)]);
        }
        let mut second = answers(zk.read_all(&reads).await?);
        let mut hosts = BTreeMap::new();
        let mut health = BTreeMap::new();
        for (host, record, health_path) in &paths {
            let host = host.clone();
            let r = second().into_record::<HostRecord>("host", record);
            let hr = second().into_record::<HealthRecord>("health", health_path);
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
        // A host whose record is gone (forgotten) or invalid is admitted nowhere.
        crate::agents::cluster_hosts_listed(name, began, |h| hosts.contains_key(h));
        let (history, abort) = match &journal {
            Some(_) => (
                second().into_children(),
                second().into_record::<AbortRequest>("abort request", &abort_path),
            ),
            None => (Vec::new(), None),
        };
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
    /// while: a host silent since is dialled as one). One request, not a whole view.
    pub async fn started(
        mut self,
        zk: &Zk,
        state: ClusterState,
        version: i32,
        journal: Journal,
    ) -> Result<Self, ZkError> {
        let l = zk.layout();
        let (history_path, abort_path) = (l.history(&self.name), l.failover_abort(&self.name));
        let healths: Vec<(String, String)> = self
            .hosts
            .keys()
            .filter_map(|host| {
                let path = l.host_health(&self.name, &HostName::new(host.clone()).ok()?);
                Some((host.clone(), path))
            })
            .collect();
        let mut reads = vec![Read::Children(&history_path), Read::Data(&abort_path)];
        reads.extend(healths.iter().map(|(_, path)| Read::Data(path)));
        let mut next = answers(zk.read_all(&reads).await?);
        self.history = next().into_children();
        self.abort = next().into_record::<AbortRequest>("abort request", &abort_path);
        for (host, path) in healths {
            match next().into_record::<HealthRecord>("health", &path) {
                Some(h) => self.health.insert(host, h),
                None => self.health.remove(&host),
            };
        }
        self.state = Some((state, version));
        self.journal = Some(journal);
        Ok(self)
    }
}

/// The answers of a `read_all`, one per call, in order (its length is the reads').
fn answers(all: Vec<Answer>) -> impl FnMut() -> Answer {
    let mut all = all.into_iter();
    move || all.next().unwrap_or(Answer::Data(None))
}
