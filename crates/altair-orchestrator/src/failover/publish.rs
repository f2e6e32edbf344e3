//! Publishing the new primary (RFC 2136 compare-and-swap, checked with an uncached
//! query) and, for a switchover, re-attaching the old primary once clients have moved.

use std::net::Ipv4Addr;
use std::time::Duration;

use altair_core::failover::Journal;
use altair_proto::v1::*;

use crate::agents::{agent, endpoint};
use crate::ctx::Ctx;
use crate::view::ClusterView;

use super::AGENT_TIMEOUT;
use super::candidate::candidate_record;

pub(super) fn ipv4(mysql: &str) -> Option<Ipv4Addr> {
    mysql.rsplit_once(':')?.0.parse().ok()
}

pub(super) async fn publish(ctx: &Ctx, view: &ClusterView, j: &mut Journal) -> Result<(), String> {
    publish_dns(ctx, view, j).await.inspect_err(|_| {
        crate::metrics::DNS_ERRORS.inc();
    })
}

pub(super) async fn publish_dns(
    ctx: &Ctx,
    view: &ClusterView,
    j: &mut Journal,
) -> Result<(), String> {
    let new = candidate_record(view, j)?;
    let new_ip = ipv4(&new.mysql).ok_or_else(|| format!("{} is not an IPv4 address", new.mysql))?;
    // replicas.<cluster>: every host but the old and the new primary.
    let mut replicas: Vec<Ipv4Addr> = view
        .hosts
        .iter()
        .filter(|(n, _)| **n != j.old_primary && Some(*n) != j.candidate.as_ref())
        .filter_map(|(_, h)| ipv4(&h.mysql))
        .collect();
    replicas.sort_unstable();
    // Both records at once: their swaps can go to the server in one update.
    let (plabel, rlabel) = (
        format!("primary.{}", view.name),
        format!("replicas.{}", view.name),
    );
    let (primary, replicas) = tokio::join!(
        publish_primary(ctx, &plabel, new_ip),
        publish_replicas(ctx, &rlabel, &replicas)
    );
    if let Err(e) = replicas {
        j.notes.push(e);
    }
    primary
}

/// `label` → `new_ip`, checked with an uncached query.
async fn publish_primary(ctx: &Ctx, label: &str, new_ip: Ipv4Addr) -> Result<(), String> {
    let current = ctx.dns.query_a(label).await.map_err(|e| e.to_string())?;
    if current != [new_ip] {
        ctx.dns
            .compare_and_swap_a(label, &current, &[new_ip], ctx.config.dns.ttl_s)
            .await
            .map_err(|e| e.to_string())?;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if ctx.dns.query_a(label).await.map_err(|e| e.to_string())? == [new_ip] {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{label} does not answer {new_ip} after the update"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `label` → `replicas` (left as it is when there are none); a failure is a note.
async fn publish_replicas(ctx: &Ctx, label: &str, replicas: &[Ipv4Addr]) -> Result<(), String> {
    let not_updated = |e: String| format!("{label} not updated: {e}");
    let current = ctx
        .dns
        .query_a(label)
        .await
        .map_err(|e| not_updated(e.to_string()))?;
    if current != replicas && !replicas.is_empty() {
        ctx.dns
            .compare_and_swap_a(label, &current, replicas, ctx.config.dns.ttl_s)
            .await
            .map_err(|e| not_updated(e.to_string()))?;
    }
    Ok(())
}

/// A switchover's old primary becomes a replica of the new one (errant check first);
/// when it cannot, it waits for rejoin like a failed-over one.
pub(super) async fn reattach_old_primary(
    view: &ClusterView,
    j: &mut Journal,
    old: &altair_core::registry::HostRecord,
) {
    let result = async {
        let new = candidate_record(view, j)?;
        let source = endpoint(&new.mysql).ok_or("bad candidate address")?;
        let mut a = agent(&old.agent, AGENT_TIMEOUT).await?;
        a.rejoin(AgentRejoinRequest {
            epoch: j.epoch,
            source: Some(source),
            fork_gtid: j.fork_gtid.clone(),
            revert_errant: false,
            // The fork point is the whole measure here: nothing has run since.
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.message().to_owned())
    }
    .await;
    match result {
        Ok(r) if r.rejoined => j.old_primary_rejoined = true,
        Ok(r) => j.notes.push(format!(
            "old primary {} not re-attached: errant transactions {} (it waits for rejoin)",
            j.old_primary, r.errant_gtids
        )),
        Err(e) => j.notes.push(format!(
            "old primary {} not re-attached: {e} (it waits for rejoin)",
            j.old_primary
        )),
    }
}
