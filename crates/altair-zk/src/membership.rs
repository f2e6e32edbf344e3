//! Following the live monitors (`<root>/monitors/*` ephemeral nodes).

use altair_core::registry::{MonitorRecord, from_json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{Result, Zk};

/// Publishes the live monitors (sorted by id) on `tx` now and on every change, until the
/// session ends (returns its error) or `cancel` fires (returns `Ok`).
pub async fn follow_monitors(
    zk: &Zk,
    tx: &watch::Sender<Vec<MonitorRecord>>,
    cancel: &CancellationToken,
) -> Result<()> {
    let dir = zk.layout().monitors();
    // A reader (an agent) creates nothing: until a monitor or orchestrator has laid out
    // the root there is no list to watch, and no monitor either.
    loop {
        let (exists, watcher) = zk.exists_and_watch(&dir).await?;
        if exists {
            break;
        }
        tracing::info!(path = %dir, "no monitor has registered in ZooKeeper yet; waiting");
        tokio::select! {
            _ = watcher.changed() => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
    loop {
        let (children, watcher) = zk.children_and_watch(&dir).await?;
        let mut monitors = Vec::with_capacity(children.len());
        for child in children {
            let path = format!("{dir}/{child}");
            let Some(bytes) = zk.get(&path).await? else {
                continue; // gone between list and get: the next watch event tells
            };
            match from_json::<MonitorRecord>("monitor", &bytes)
                .and_then(|r| r.check(&child).map(|()| r))
            {
                Ok(record) => monitors.push(record),
                Err(e) => {
                    tracing::warn!(path = %path, error = %e, "ignoring a malformed or invalid monitor registration")
                }
            }
        }
        monitors.sort_by(|a, b| a.id.cmp(&b.id));
        tx.send_if_modified(|current| {
            if *current == monitors {
                false
            } else {
                *current = monitors;
                true
            }
        });
        tokio::select! {
            _ = watcher.changed() => {}
            () = cancel.cancelled() => return Ok(()),
        }
    }
}
