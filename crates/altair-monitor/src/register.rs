//! Registering hosts for their agents. An agent holds no ZooKeeper credential (a
//! database host must not be able to change altair's state: plant a journal, move the
//! cluster's state, point another host's record anywhere), so it asks a monitor to
//! write its host record; the service lets it do so only for the host its certificate
//! names.

use altair_core::registry::{HostRecord, to_json};
use altair_core::{ClusterName, HostName};
use altair_zk::{Zk, ZkError};

/// Writes `record` at `<cluster>/hosts/<host>` unless ZooKeeper already holds exactly
/// it (an agent registers at every start and every new ZooKeeper session: the common
/// case is one read, no write). A host's first record creates its cluster's nodes.
/// `Ok(true)`: written.
pub async fn write(zk: &Zk, record: &HostRecord) -> Result<bool, ZkError> {
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
    match zk.get(&path).await? {
        Some(current) if current == data => return Ok(false),
        Some(_) => {}
        None => {
            for parent in l.cluster_parents(&cluster) {
                zk.ensure_path(&parent).await?;
            }
        }
    }
    zk.put(&path, &data).await?;
    Ok(true)
}
