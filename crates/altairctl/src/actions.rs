//! Operator actions through the leader: switchover, forced failover, rejoin.

use std::time::Duration;

use altair_proto::v1::*;
use serde::Serialize;

use crate::admin::{ACTION_TIMEOUT, AdminError, Audit, each_within};

pub async fn switchover(
    orchestrators: &[String],
    cluster: &str,
    to: Option<&str>,
    timeout: Duration,
) -> Result<Audit, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = SwitchoverRequest {
            cluster: cluster.to_owned(),
            to_host: to.unwrap_or_default().to_owned(),
        };
        async move { c.switchover(req).await }
    })
    .await?;
    Ok(Audit::from(&r))
}

pub async fn failover(
    orchestrators: &[String],
    cluster: &str,
    to: Option<&str>,
    force: bool,
    timeout: Duration,
) -> Result<Audit, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = FailoverRequest {
            cluster: cluster.to_owned(),
            to_host: to.unwrap_or_default().to_owned(),
            force,
        };
        async move { c.failover(req).await }
    })
    .await?;
    Ok(Audit::from(&r))
}

/// What `altairctl rejoin` reports.
#[derive(Debug, Serialize)]
pub struct Rejoin {
    pub cluster: String,
    pub host: String,
    pub rejoined: bool,
    pub errant_gtids: String,
    pub saved_to: String,
}

pub async fn rejoin(
    orchestrators: &[String],
    cluster: &str,
    host: &str,
    force: bool,
    timeout: Duration,
) -> Result<Rejoin, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = RejoinRequest {
            cluster: cluster.to_owned(),
            host: host.to_owned(),
            force,
        };
        async move { c.rejoin(req).await }
    })
    .await?;
    Ok(Rejoin {
        cluster: cluster.to_owned(),
        host: host.to_owned(),
        rejoined: r.rejoined,
        errant_gtids: r.errant_gtids,
        saved_to: r.saved_to,
    })
}

/// The cluster in which `host` waits for rejoin (asks every cluster's topology).
pub async fn cluster_of_waiting_host(
    orchestrators: &[String],
    host: &str,
    timeout: Duration,
) -> Result<Option<String>, AdminError> {
    let list = each_within(orchestrators, timeout, timeout, |mut c| async move {
        c.list_clusters(ListClustersRequest {}).await
    })
    .await?;
    for cl in list.clusters {
        let t = crate::topology::topology(orchestrators, &cl.name, timeout).await?;
        let waiting = t.hosts.iter().any(|h| {
            h.needs_rejoin
                && h.registration
                    .as_ref()
                    .and_then(|r| r.id.as_ref())
                    .is_some_and(|id| id.host == host)
        });
        if waiting {
            return Ok(Some(cl.name));
        }
    }
    Ok(None)
}

/// Aborts the failover in progress (before its promotion); waits until the leader ended it.
pub async fn abort(
    orchestrators: &[String],
    cluster: &str,
    reason: &str,
    timeout: Duration,
) -> Result<Audit, AdminError> {
    let r = each_within(orchestrators, timeout, ACTION_TIMEOUT, |mut c| {
        let req = AbortRequest {
            cluster: cluster.to_owned(),
            reason: reason.to_owned(),
        };
        async move { c.abort(req).await }
    })
    .await?;
    Ok(Audit::from(&r))
}
