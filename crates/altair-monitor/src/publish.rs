//! Publishing health transitions to ZooKeeper: the host's health znode and an event the
//! orchestrator can watch. Only transitions are written, never a heartbeat. While
//! ZooKeeper is unreachable the latest record per host is kept and written on return —
//! within the same session: records judged before a session that expired are dropped.
//! Records of different hosts are written concurrently (bounded), one host's in order.

use std::collections::BTreeMap;

use altair_core::registry::to_json;
use altair_core::{ClusterName, HostName};
use altair_zk::Zk;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::state::Published;

pub async fn run(
    mut rx: mpsc::UnboundedReceiver<Published>,
    mut session: watch::Receiver<Option<Zk>>,
    cancel: CancellationToken,
) {
    let mut pending: BTreeMap<(String, String), Published> = BTreeMap::new();
    let mut written_with: Option<i64> = None;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                Some(p) => { pending.insert((p.cluster.clone(), p.host.clone()), p); }
                None => return,
            },
            r = session.changed() => if r.is_err() { return },
            () = tokio::time::sleep(RETRY_EVERY), if !pending.is_empty() => {}
            () = cancel.cancelled() => return,
        }
        while let Ok(p) = rx.try_recv() {
            pending.insert((p.cluster.clone(), p.host.clone()), p);
        }
        let zk = session.borrow().clone();
        let Some(zk) = zk else { continue };
        // A session other than the last one written with (the watch may have gone
        // from it to none to this one while a batch was being written): what was
        // judged before it (under an expired session, by state since cleared) is
        // dropped, not written late — another monitor may have owned those clusters
        // meanwhile, and a stale "unreachable" would date the host's last heartbeat too
        // early. The rebuilt state judges afresh, after a full detection window.
        let id = zk.session_id();
        if written_with.is_some_and(|last| last != id) {
            let mut dropped = pending.len();
            pending.clear();
            while rx.try_recv().is_ok() {
                dropped += 1;
            }
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "health records judged under an earlier ZooKeeper session dropped: the new session judges afresh"
                );
            }
        }
        written_with = Some(id);
        let batch: Vec<Published> = std::mem::take(&mut pending).into_values().collect();
        let results: Vec<(Published, Result<(), altair_zk::ZkError>)> =
            futures_util::stream::iter(batch)
                .map(|p| {
                    let zk = zk.clone();
                    async move {
                        let r = write(&zk, &p).await;
                        (p, r)
                    }
                })
                .buffer_unordered(WRITE_CONCURRENCY)
                .collect()
                .await;
        for (p, result) in results {
            match result {
                Ok(()) => {
                    crate::metrics::TRANSITIONS
                        .get_or_create(&vec![("health", p.record.health.as_str().to_owned())])
                        .inc();
                    tracing::info!(
                    cluster = %p.cluster, host = %p.host,
                    health = %p.record.health,
                    previous = ?p.record.previous.map(|h| h.as_str()),
                    reason = %p.record.reason,
                    "health transition published"
                    )
                }
                Err(e) => {
                    crate::metrics::ZK_WRITE_ERRORS.inc();
                    tracing::warn!(cluster = %p.cluster, host = %p.host, error = %e, "cannot publish health; will retry");
                    // Keep it unless a newer record for the host arrived meanwhile.
                    pending
                        .entry((p.cluster.clone(), p.host.clone()))
                        .or_insert(p);
                }
            }
        }
    }
}

/// How soon records that could not be written are tried again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// ZooKeeper writes in flight at once.
const WRITE_CONCURRENCY: usize = 64;

async fn write(zk: &Zk, p: &Published) -> Result<(), altair_zk::ZkError> {
    let (Ok(cluster), Ok(host)) = (
        ClusterName::new(p.cluster.clone()),
        HostName::new(p.host.clone()),
    ) else {
        // Names come from validated agent configs; a bad one is dropped, not written.
        tracing::warn!(cluster = %p.cluster, host = %p.host, "not publishing health of an invalid name");
        return Ok(());
    };
    let data = to_json(&p.record);
    // One write per transition: the health record is what the leader reads (the
    // append-only events log this once also wrote was never read and grew forever).
    // A host's first record is created only while it is registered: a host an operator
    // forgot (`altairctl forget`) gets no health record back.
    let l = zk.layout();
    if !zk
        .put_while(
            &l.host(&cluster, &host),
            &l.host_health(&cluster, &host),
            &data,
        )
        .await?
    {
        tracing::info!(cluster = %p.cluster, host = %p.host, health = %p.record.health, "not publishing the health of a host no longer registered");
    }
    Ok(())
}
