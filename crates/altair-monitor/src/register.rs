//! Registering hosts for their agents. An agent holds no ZooKeeper credential (a
//! database host must not be able to change altair's state: plant a journal, move the
//! cluster's state, point another host's record anywhere), so it asks a monitor to
//! write its host record; the service lets it do so only for the host its certificate
//! names.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use altair_core::registry::{HostRecord, to_json};
use altair_core::{ClusterName, HostName};
use altair_zk::{Zk, ZkError};

/// What a registration did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// ZooKeeper already held exactly this record.
    Unchanged,
    /// A write was needed but this host's record was written less than `WRITE_EVERY`
    /// ago: ask again after this long.
    TooSoon(Duration),
    /// The cluster is new and this monitor may not create its nodes (role identities):
    /// the leader was asked to (`ZkLayout::enrol`) and has not yet.
    Enrolling,
}

/// How long a registration of a new cluster's first host waits for the leader to create
/// the cluster's nodes before it answers "ask again".
const ENROL_WAIT: Duration = Duration::from_secs(3);

/// Writes `record` at `<cluster>/hosts/<host>` unless ZooKeeper already holds exactly
/// it (an agent registers at every start and every new ZooKeeper session: the common
/// case is one read, no write) or `throttle` says this host's record was written
/// moments ago. A host's first record creates its cluster's nodes.
pub async fn write(zk: &Zk, record: &HostRecord, throttle: &Throttle) -> Result<Outcome, ZkError> {
    let (Ok(cluster), Ok(host)) = (
        ClusterName::new(record.cluster.clone()),
        HostName::new(record.host.clone()),
    ) else {
        // The service checks the record first (`RegisterRequest::to_record`).
        return Err(ZkError::Conflict {
            detail: format!("invalid host name {}/{}", record.cluster, record.host),
        });
    };
    let l = zk.layout();
    let path = l.host(&cluster, &host);
    let data = to_json(record);
    let current = zk.get(&path).await?;
    if current.as_deref() == Some(data.as_slice()) {
        return Ok(Outcome::Unchanged);
    }
    let now = Instant::now();
    if let Err(wait) = throttle.check(&record.cluster, &record.host, now) {
        return Ok(Outcome::TooSoon(wait));
    }
    if current.is_none() {
        if zk.creates_clusters() {
            for parent in l.cluster_parents(&cluster) {
                zk.ensure_path(&parent).await?;
            }
        } else if !enrolled(zk, &cluster).await? {
            return Ok(Outcome::Enrolling);
        }
    }
    zk.put(&path, &data).await?;
    throttle.wrote(&record.cluster, &record.host, now);
    Ok(Outcome::Written)
}

/// Whether `cluster`'s nodes exist, after asking the leader to create them when they do
/// not (a request under `enrol/`) and waiting up to `ENROL_WAIT`. A monitor with an
/// identity of its own may create nothing outside its zone: a role that could create a
/// cluster's node would choose its children's ACL, and could plant a journal there.
async fn enrolled(zk: &Zk, cluster: &ClusterName) -> Result<bool, ZkError> {
    let l = zk.layout();
    // The leader creates the cluster's nodes in order: the last one says all are there.
    let last = l
        .cluster_parents(cluster)
        .pop()
        .unwrap_or_else(|| l.hosts(cluster));
    if zk.exists(&last).await? {
        return Ok(true);
    }
    zk.create_once(&l.enrol_request(cluster)).await?;
    tracing::info!(cluster = %cluster, "a new cluster: asked the leader to create its nodes");
    let until = Instant::now() + ENROL_WAIT;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if zk.exists(&last).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Waits until an orchestrator has created the layout's parents (a monitor with an
/// identity of its own may not); `Ok` also when `cancel` fires.
pub async fn wait_for_layout(
    zk: &Zk,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), ZkError> {
    let l = zk.layout();
    let mut logged = false;
    loop {
        if zk.exists(&l.monitors()).await? && zk.exists(&l.enrol()).await? {
            return Ok(());
        }
        if !logged {
            tracing::warn!(root = %l.root(), "waiting for an orchestrator to create altair's nodes in ZooKeeper (monitors may not, with zookeeper.monitor_id set)");
            logged = true;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}

/// At most one registration write per host in `WRITE_EVERY`: an agent registers once
/// per ZooKeeper session, so only a misbehaving (or stolen) certificate asks more often,
/// and each write also wakes the leader's watch. Refused ones are retried by the agent.
pub const WRITE_EVERY: Duration = Duration::from_secs(2);

/// When each host's record was last written by this monitor.
#[derive(Default)]
pub struct Throttle {
    written: Mutex<HashMap<(String, String), Instant>>,
}

impl Throttle {
    /// `Err(wait)` when `cluster/host` was written less than `WRITE_EVERY` ago.
    pub fn check(&self, cluster: &str, host: &str, now: Instant) -> Result<(), Duration> {
        let written = self.lock();
        match written.get(&(cluster.to_owned(), host.to_owned())) {
            Some(at) if now.saturating_duration_since(*at) < WRITE_EVERY => {
                Err(WRITE_EVERY - now.saturating_duration_since(*at))
            }
            _ => Ok(()),
        }
    }

    /// Notes a write of `cluster/host` (old entries go once many are kept).
    pub fn wrote(&self, cluster: &str, host: &str, now: Instant) {
        let mut written = self.lock();
        if written.len() >= 4096 {
            written.retain(|_, at| now.saturating_duration_since(*at) < WRITE_EVERY);
        }
        written.insert((cluster.to_owned(), host.to_owned()), now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Instant>> {
        self.written
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_write_per_host_per_window() {
        let t = Throttle::default();
        let now = Instant::now();
        assert!(t.check("c1", "db1", now).is_ok());
        t.wrote("c1", "db1", now);
        let wait = t
            .check("c1", "db1", now + Duration::from_millis(500))
            .expect_err("too soon");
        assert_eq!(wait, WRITE_EVERY - Duration::from_millis(500));
        assert!(t.check("c1", "db2", now).is_ok(), "another host");
        assert!(t.check("c2", "db1", now).is_ok(), "another cluster");
        assert!(t.check("c1", "db1", now + WRITE_EVERY).is_ok());
    }

    #[test]
    fn old_entries_go_once_many_are_kept() {
        let t = Throttle::default();
        let now = Instant::now();
        for i in 0..4096 {
            t.wrote("c", &format!("h{i}"), now);
        }
        t.wrote("c", "last", now + WRITE_EVERY);
        assert_eq!(t.lock().len(), 1);
    }
}
