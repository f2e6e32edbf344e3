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
use altair_zk::{EventType, Read, SessionState, Zk, ZkError};

use crate::selffence::Contact;

/// How often the records are read even when no watch event came.
const RESYNC: Duration = Duration::from_secs(300);
/// Events arriving together (a failover writes the state and several records) are read
/// once: how long to wait for the rest after the first.
const SETTLE: Duration = Duration::from_millis(50);

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
    let (state, hosts) = (l.cluster_state(cluster), l.hosts(cluster));
    loop {
        // Watch first, then read: nothing written in between is missed.
        let mut watch = zk.watch_tree(&l.cluster(cluster)).await?;
        read(zk, cluster, me, contact, cluster_epoch).await?;
        let resync = tokio::time::sleep(RESYNC);
        tokio::pin!(resync);
        let mut disconnected = false;
        loop {
            let event = tokio::select! {
                e = watch.changed() => e,
                () = &mut resync => break,
            };
            if event.event_type == EventType::Session {
                match event.session_state {
                    s if s.is_terminated() => return Ok(()),
                    SessionState::Disconnected => disconnected = true,
                    // zookeeper-client does not set persistent watches again after a
                    // reconnection: set it again and read everything.
                    SessionState::SyncConnected if disconnected => break,
                    _ => {}
                }
                continue;
            }
            // Health, journals and history change far more often than membership.
            if event.path != state && !event.path.starts_with(&hosts) {
                continue;
            }
            tokio::time::sleep(SETTLE).await;
            read(zk, cluster, me, contact, cluster_epoch).await?;
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
