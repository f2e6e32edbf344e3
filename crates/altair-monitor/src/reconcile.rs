//! Taking clusters over and letting them go: on every membership change, and every few
//! seconds to find new clusters and hosts (and forgotten ones), compare what ZooKeeper lists with what this
//! monitor tracks. Only reads, batched: reconciliation never writes to ZooKeeper.

use std::sync::{Arc, Mutex};

use altair_core::ClusterName;
use altair_core::health::Health;
use altair_core::registry::{HealthRecord, from_json};
use altair_zk::{Read, Zk, ZkError};

use crate::state::{Clock, Ownership, State};

/// One reconciliation: the list of clusters, then every owned cluster's hosts in
/// `multiRead` batches (one request per 256 clusters, not one per cluster: at 10,000
/// clusters every 2 s that is ~20 requests/s instead of ~5,000), then the last
/// published health of every host newly tracked, in one batch too.
pub async fn reconcile(zk: &Zk, state: &Arc<Mutex<State>>, clock: &Clock) -> Result<(), ZkError> {
    let released = lock(state).release_foreign();
    for c in released {
        tracing::info!(cluster = %c, "cluster moved to another monitor");
    }
    let l = zk.layout();
    let mine: Vec<ClusterName> = zk
        .children(&l.clusters())
        .await?
        .into_iter()
        .filter(|name| matches!(lock(state).ownership(name), Ownership::Mine))
        .filter_map(|name| ClusterName::new(name).ok())
        .collect();
    let listing_paths: Vec<String> = mine.iter().map(|c| l.hosts(c)).collect();
    let listings = zk
        .read_all(
            &listing_paths
                .iter()
                .map(|p| Read::Children(p))
                .collect::<Vec<_>>(),
        )
        .await?;
    // (cluster, host, its health's path) of every host not tracked yet.
    let mut new = Vec::new();
    for (cluster, listing) in mine.iter().zip(listings) {
        let (name, hosts) = (cluster.as_str(), listing.into_children());
        for host in lock(state).drop_unlisted(clock.now_ms(), name, &hosts) {
            tracing::info!(cluster = %name, host = %host, "host no longer registered (forgotten): not tracking it");
        }
        if !lock(state).clusters.contains_key(name) {
            tracing::info!(cluster = %name, "took ownership of cluster");
        }
        for host in hosts {
            if is_tracked(state, name, &host) {
                continue;
            }
            let health = altair_core::HostName::new(host.clone())
                .ok()
                .map(|h| l.host_health(cluster, &h));
            new.push((name.to_owned(), host, health));
        }
    }
    let health_paths: Vec<&str> = new.iter().filter_map(|(_, _, p)| p.as_deref()).collect();
    let mut healths = zk
        .read_all(
            &health_paths
                .iter()
                .map(|p| Read::Data(p))
                .collect::<Vec<_>>(),
        )
        .await?
        .into_iter();
    for (name, host, path) in new {
        let known = match path {
            Some(_) => healths
                .next()
                .and_then(|a| a.into_data())
                .and_then(|b| from_json::<HealthRecord>("health", &b).ok())
                .map(|r| r.health),
            None => None,
        };
        // A heartbeat may have started tracking it meanwhile: adopting keeps that.
        if is_tracked(state, &name, &host) {
            continue;
        }
        lock(state).adopt(clock.now_ms(), &name, &host, known);
        tracing::info!(cluster = %name, host = %host, known = ?known.map(Health::as_str), "tracking host (full detection window)");
    }
    Ok(())
}

fn is_tracked(state: &Arc<Mutex<State>>, cluster: &str, host: &str) -> bool {
    lock(state)
        .clusters
        .get(cluster)
        .is_some_and(|h| h.contains_key(host))
}

pub fn lock(state: &Arc<Mutex<State>>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
