//! New clusters' nodes, created by the leader for the monitors. With role identities
//! (`zookeeper.monitor_id`) a monitor may not create a cluster's node: whoever creates it
//! chooses the ACL of everything under it, journal and state included. A monitor asked
//! to register the first host of a new cluster leaves a request at `enrol/<cluster>`;
//! the leader creates the cluster's nodes with the right ACLs and deletes the request.
//! With one shared credential monitors create the nodes themselves and no request comes.

use std::time::Duration;

use altair_core::ClusterName;
use altair_zk::ZkError;

use crate::ctx::Ctx;

/// How soon a request is looked at again after a failure.
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// Requests are listed at least this often (a lost watch event delays one no longer).
const RELIST_EVERY: Duration = Duration::from_secs(30);

/// Serves requests until the session is lost (its error).
pub async fn serve(ctx: &Ctx) -> Result<(), ZkError> {
    let l = ctx.zk.layout().clone();
    let dir = l.enrol();
    loop {
        let (names, watcher) = match ctx.zk.children_and_watch(&dir).await {
            Ok(listed) => listed,
            Err(e) if e.is_session_lost() => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "listing the new-cluster requests failed; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
                continue;
            }
        };
        // A request that failed is tried again soon: monitors asking again for it
        // change nothing the watch would see.
        let mut again = RELIST_EVERY;
        for name in names {
            match create(ctx, &name).await {
                Ok(()) => {}
                Err(e) if e.is_session_lost() => return Err(e),
                Err(e) => {
                    tracing::warn!(cluster = %name, error = %e, "creating a new cluster's nodes failed; retrying");
                    again = RETRY_EVERY;
                }
            }
        }
        tokio::select! {
            _ = watcher.changed() => {}
            () = tokio::time::sleep(again) => {}
        }
    }
}

/// Creates `name`'s nodes (a request naming no valid cluster is dropped), then deletes
/// the request.
async fn create(ctx: &Ctx, name: &str) -> Result<(), ZkError> {
    let l = ctx.zk.layout();
    match ClusterName::new(name.to_owned()) {
        Ok(cluster) => {
            // In order, each under the one before (`clusters` is part of the layout):
            // the last one tells a waiting monitor that all are there.
            for parent in l.cluster_parents(&cluster) {
                ctx.zk.create_once(&parent).await?;
            }
            tracing::info!(cluster = %cluster, "created a new cluster's nodes for its monitor");
        }
        Err(e) => {
            tracing::warn!(request = %name, error = %e, "dropping a new-cluster request that names no valid cluster");
        }
    }
    ctx.zk.delete(&format!("{}/{name}", l.enrol())).await
}
