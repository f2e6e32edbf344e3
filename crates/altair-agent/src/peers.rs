//! The agent's view of its cluster: the peers it must keep in touch with (self-fencing's
//! failsafe) and the mysqld addresses registered in the cluster, kept from ZooKeeper.
//!
//! The cluster's state and host records are read once per session, then again only when
//! a watch says one changed, after a reconnection (events of the gap may be lost), and
//! every `RESYNC` as a safety net. An idle agent costs ZooKeeper no reads: polling every
//! 2 s, as it once did, cost ~2.5 reads/s per agent, 75,000/s for a fleet of 30,000.
//! The last lists stay in force while ZooKeeper is unreachable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use altair_core::registry::{ClusterState, HostRecord};
use altair_core::{ClusterName, HostName};
use altair_zk::{EventType, Read, SessionState, WatchedEvent, Zk, ZkError};

use crate::selffence::Contact;

/// How often the records are read even when no watch event came (a random part of a
/// second `RESYNC` is added, so a fleet that reconnected at once does not read at once).
const RESYNC: Duration = Duration::from_secs(300);
/// Events arriving together (a failover writes the state and several records) are read
/// once: how long to wait for the rest after the first.
const SETTLE: Duration = Duration::from_millis(50);
/// How soon a read or a watch that failed (connection loss) is tried again.
const RETRY_EVERY: Duration = Duration::from_millis(500);

/// What a watch event asks for.
enum Next {
    /// Nothing (another part of the cluster changed).
    Nothing,
    /// Read the records again.
    Read,
    /// Set the watch again, then read (a reconnection: events of the gap may be lost).
    Rewatch,
    /// The session ended.
    End,
}

/// Keeps `contact`'s peers and cluster addresses and `cluster_epoch` current until the
/// session ends (an error; `Ok` when it ended on its own).
pub async fn follow(
    zk: &Zk,
    cluster: &ClusterName,
    me: &HostName,
    contact: &Contact,
    cluster_epoch: &AtomicU64,
) -> Result<(), ZkError> {
    let l = zk.layout().clone();
    let (node, state, hosts) = (
        l.cluster(cluster),
        l.cluster_state(cluster),
        l.hosts(cluster),
    );
    // Watch first, then read: nothing written in between is missed.
    let mut watch = retrying(|| zk.watch_tree(&node)).await?;
    let mut disconnected = false;
    let mut next = Next::Read;
    loop {
        match next {
            Next::End => return Ok(()),
            Next::Rewatch => {
                // The new watch is set before the old one is dropped (dropping it then
                // removes nothing on the server).
                watch = retrying(|| zk.watch_tree(&node)).await?;
                retrying(|| read(zk, cluster, me, contact, cluster_epoch)).await?;
            }
            Next::Read => retrying(|| read(zk, cluster, me, contact, cluster_epoch)).await?,
            Next::Nothing => {}
        }
        let resync = RESYNC + RESYNC.mul_f64(rand::random::<f64>());
        let event = tokio::select! {
            e = watch.changed() => e,
            () = tokio::time::sleep(resync) => {
                next = Next::Read;
                continue;
            }
        };
        next = judge(&event, &state, &hosts, &mut disconnected);
        if matches!(next, Next::Read) {
            // The rest of a burst is read with it; a session event among them wins.
            tokio::time::sleep(SETTLE).await;
            while let Some(e) = futures_util::FutureExt::now_or_never(watch.changed()) {
                match judge(&e, &state, &hosts, &mut disconnected) {
                    Next::Nothing | Next::Read => {}
                    other => {
                        next = other;
                        break;
                    }
                }
            }
        }
    }
}

/// What `event` asks for; `disconnected` remembers a `Disconnected` until the
/// `SyncConnected` that ends it.
fn judge(event: &WatchedEvent, state: &str, hosts: &str, disconnected: &mut bool) -> Next {
    if event.event_type == EventType::Session {
        return match event.session_state {
            // Never wait on the watcher again: the client panics.
            s if s.is_terminated() => Next::End,
            SessionState::Disconnected => {
                *disconnected = true;
                Next::Nothing
            }
            // zookeeper-client does not set persistent watches again after a
            // reconnection.
            SessionState::SyncConnected if *disconnected => {
                *disconnected = false;
                Next::Rewatch
            }
            _ => Next::Nothing,
        };
    }
    // Health, journals and history change far more often than membership.
    if event.path == state || event.path.starts_with(&format!("{hosts}/")) || event.path == hosts {
        Next::Read
    } else {
        Next::Nothing
    }
}

/// `op` until it succeeds or fails with anything but a lost connection (a lost
/// connection is tried again after `RETRY_EVERY`: the session may well survive it).
async fn retrying<T, F, Fut>(mut op: F) -> Result<T, ZkError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ZkError>>,
{
    loop {
        match op().await {
            Err(e) if e.is_retryable() => {
                tracing::debug!(error = %e, "following the cluster's members: retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
            other => return other,
        }
    }
}

/// Reads the cluster's state and host records (two requests) into `contact`.
async fn read(
    zk: &Zk,
    cluster: &ClusterName,
    me: &HostName,
    contact: &Contact,
    cluster_epoch: &AtomicU64,
) -> Result<(), ZkError> {
    let l = zk.layout();
    let (state_path, hosts_path) = (l.cluster_state(cluster), l.hosts(cluster));
    let mut first = zk
        .read_all(&[Read::Data(&state_path), Read::Children(&hosts_path)])
        .await?
        .into_iter();
    let state = first
        .next()
        .and_then(|a| a.into_record::<ClusterState>("cluster state", &state_path));
    let names: Vec<HostName> = first
        .next()
        .map(altair_zk::Answer::into_children)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| HostName::new(n).ok())
        .collect();
    if let Some(s) = &state {
        cluster_epoch.fetch_max(s.epoch, Ordering::SeqCst);
    }
    // Old primaries waiting for rejoin are no replicas of this one (and may be dead
    // hardware): they never count in "every replica".
    let waiting = state.map(|s| s.needs_rejoin).unwrap_or_default();
    let paths: Vec<String> = names.iter().map(|h| l.host(cluster, h)).collect();
    let reads: Vec<Read<'_>> = paths.iter().map(|p| Read::Data(p)).collect();
    let answers = zk.read_all(&reads).await?;
    let mut peers = Vec::new();
    let mut mysql = Vec::new();
    for ((h, path), answer) in names.iter().zip(&paths).zip(answers) {
        let Some(r) = answer.into_record::<HostRecord>("host", path) else {
            continue;
        };
        if let Err(e) = r.check(cluster.as_str(), h.as_str()) {
            tracing::warn!(host = %h, problem = %e, "ignoring an invalid host record in ZooKeeper");
            continue;
        }
        mysql.push(r.mysql);
        if h != me && !waiting.iter().any(|w| w == h.as_str()) {
            peers.push(r.agent);
        }
    }
    mysql.sort();
    contact.set_cluster_mysql(mysql);
    peers.sort();
    contact.set_peers(peers);
    Ok(())
}
