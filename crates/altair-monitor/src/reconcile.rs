//! Taking clusters over and letting them go: on every membership change, and every few
//! seconds to find new clusters and hosts (and forgotten ones), compare what ZooKeeper lists with what this
//! monitor tracks. Only reads: reconciliation never writes to ZooKeeper.

use std::sync::{Arc, Mutex};

use altair_core::ClusterName;
use altair_core::health::Health;
use altair_core::registry::{HealthRecord, from_json};
use altair_zk::{Zk, ZkError};

use crate::state::{Clock, Ownership, State};

pub async fn reconcile(zk: &Zk, state: &Arc<Mutex<State>>, clock: &Clock) -> Result<(), ZkError> {
    let released = lock(state).release_foreign();
    for c in released {
        tracing::info!(cluster = %c, "cluster moved to another monitor");
    }
    let clusters = zk.children(&zk.layout().clusters()).await?;
    for name in clusters {
        if !matches!(lock(state).ownership(&name), Ownership::Mine) {
            continue;
        }
        let Ok(cluster) = ClusterName::new(name.clone()) else {
            continue;
        };
        let hosts = zk.children(&zk.layout().hosts(&cluster)).await?;
        for host in lock(state).drop_unlisted(clock.now_ms(), &name, &hosts) {
            tracing::info!(cluster = %name, host = %host, "host no longer registered (forgotten): not tracking it");
        }
        let newly_owned = !lock(state).clusters.contains_key(&name);
        for host in hosts {
            let tracked = lock(state)
                .clusters
                .get(&name)
                .is_some_and(|h| h.contains_key(&host));
            if tracked {
                continue;
            }
            let known = match altair_core::HostName::new(host.clone()) {
                Ok(h) => zk
                    .get(&zk.layout().host_health(&cluster, &h))
                    .await?
                    .and_then(|b| from_json::<HealthRecord>("health", &b).ok())
                    .map(|r| r.health),
                Err(_) => None,
            };
            lock(state).adopt(clock.now_ms(), &name, &host, known);
            tracing::info!(cluster = %name, host = %host, known = ?known.map(Health::as_str), "tracking host (full detection window)");
        }
        if newly_owned {
            tracing::info!(cluster = %name, "took ownership of cluster");
        }
    }
    Ok(())
}

pub fn lock(state: &Arc<Mutex<State>>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
