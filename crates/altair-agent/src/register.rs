//! Keeping this host registered. The agent holds no ZooKeeper credential: a database
//! host must not be able to change altair's state (plant a journal, move the cluster's
//! state, point another host's record anywhere). It reads its own record (altair's
//! znodes are world-readable and hold no secret) and, when it is missing or differs
//! from this agent's configuration, asks a monitor to write it; the monitor does so only
//! for the host this agent's certificate names.

use std::time::Duration;

use altair_core::registry::{HostRecord, MonitorRecord, to_json};
use altair_core::rendezvous;
use altair_proto::v1::RegisterRequest;
use altair_proto::v1::monitor_client::MonitorClient;
use altair_zk::{Zk, ZkError};
use tokio::sync::watch;

/// How soon a registration a monitor wrote is read back.
const VERIFY_AFTER: Duration = Duration::from_secs(1);

/// How long one monitor gets to answer a registration.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs for the life of a ZooKeeper session: registers once (at every new session, as
/// an agent that wrote its own record did), sets `registered`, then waits. Returns only
/// a ZooKeeper error.
pub async fn keep(
    zk: &Zk,
    path: &str,
    record: &HostRecord,
    mut monitors: watch::Receiver<Vec<MonitorRecord>>,
    tls: &altair_svc::Tls,
    registered: &watch::Sender<bool>,
) -> Result<(), ZkError> {
    let want = to_json(record);
    let mut backoff = Duration::from_millis(200);
    loop {
        if zk.get(path).await?.as_deref() == Some(want.as_slice()) {
            tracing::info!(cluster = %record.cluster, host = %record.host, "host registered in ZooKeeper");
            registered.send_replace(true);
            return std::future::pending().await;
        }
        let listed = monitors.borrow().clone();
        match ask(record, &listed, tls).await {
            Ok(monitor) => {
                tracing::info!(cluster = %record.cluster, host = %record.host, %monitor, "host registered in ZooKeeper by its monitor");
                registered.send_replace(true);
                // Read it back a moment later (this session's server may lag the
                // monitor's): a late write of an older record would be seen and fixed.
                tokio::time::sleep(VERIFY_AFTER).await;
                backoff = Duration::from_millis(200);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot register this host yet");
                // A new list of monitors is worth trying at once.
                let _ = tokio::time::timeout(backoff, monitors.changed()).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Asks the cluster's owning monitor first, then the others; the id of the one that
/// wrote (or already held) the record.
async fn ask(
    record: &HostRecord,
    monitors: &[MonitorRecord],
    tls: &altair_svc::Tls,
) -> Result<String, String> {
    if monitors.is_empty() {
        return Err("no live monitor registered in ZooKeeper".into());
    }
    let ids: Vec<&str> = monitors.iter().map(|m| m.id.as_str()).collect();
    let owner = rendezvous::owner(&record.cluster, &ids).unwrap_or_default();
    let mut order: Vec<&MonitorRecord> = monitors.iter().collect();
    order.sort_by_key(|m| m.id != owner);
    let mut errors = Vec::new();
    for m in order {
        let endpoint = match tls.endpoint(
            &m.address,
            altair_core::authz_peer::Expected::Monitor(Some(m.id.clone())),
        ) {
            Ok(e) => e.connect_timeout(Duration::from_secs(1)),
            Err(e) => {
                errors.push(format!("{}: {e}", m.id));
                continue;
            }
        };
        let mut client = MonitorClient::new(endpoint.connect_lazy());
        let asked = client.register(RegisterRequest::from(record));
        match tokio::time::timeout(ASK_TIMEOUT, asked).await {
            Ok(Ok(_)) => return Ok(m.id.clone()),
            Ok(Err(status)) => errors.push(format!("{}: {}", m.id, status.message())),
            Err(_) => errors.push(format!("{}: no answer in {ASK_TIMEOUT:?}", m.id)),
        }
    }
    Err(errors.join("; "))
}
