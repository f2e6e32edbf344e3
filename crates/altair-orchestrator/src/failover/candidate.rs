//! The candidate: who may be promoted, choosing one, and its catch-up.

use altair_core::failover::{Candidate, CandidateRules, Journal, Kind, choose};
use altair_core::gtid::{Flavor, GtidState};
use altair_proto::v1::*;

use crate::agents::{AgentRpc, agent};
use crate::ctx::Ctx;
use crate::view::ClusterView;

use super::AGENT_TIMEOUT;

pub(super) fn candidate_record<'a>(
    view: &'a ClusterView,
    j: &Journal,
) -> Result<&'a altair_core::registry::HostRecord, String> {
    let name = j.candidate.as_ref().ok_or("no candidate chosen")?;
    view.hosts
        .get(name)
        .ok_or_else(|| format!("candidate {name} is not registered"))
}

pub(super) async fn candidate_agent(view: &ClusterView, j: &Journal) -> Result<AgentRpc, String> {
    agent(&candidate_record(view, j)?.agent, AGENT_TIMEOUT).await
}

/// Asks the candidate to apply everything it received (idempotent: a caught-up candidate
/// answers at once with its position).
pub(super) async fn candidate_catch_up(
    view: &ClusterView,
    j: &Journal,
    gtid: &str,
    timeout_ms: u32,
) -> Result<CatchUpResponse, String> {
    // The agent bounds the wait itself; the RPC's deadline leaves it time to answer.
    let deadline = std::time::Duration::from_millis(u64::from(timeout_ms) + 2_000);
    let mut c = agent(&candidate_record(view, j)?.agent, deadline).await?;
    c.catch_up(CatchUpRequest {
        epoch: j.epoch,
        gtid: gtid.to_owned(),
        timeout_ms,
    })
    .await
    .map(tonic::Response::into_inner)
    .map_err(|s| s.message().to_owned())
}

/// Old primaries not yet rejoined: neither candidates nor repointed.
pub(super) fn waiting_for_rejoin(view: &ClusterView) -> Vec<String> {
    view.state
        .as_ref()
        .map(|(s, _)| s.needs_rejoin.clone())
        .unwrap_or_default()
}

pub(super) async fn choose_candidate(
    ctx: &Ctx,
    view: &ClusterView,
    j: &Journal,
) -> Result<String, String> {
    let old = &view.hosts[&j.old_primary];
    let waiting = waiting_for_rejoin(view);
    if let Some(t) = &j.target
        && (!view.hosts.contains_key(t) || *t == j.old_primary || waiting.contains(t))
    {
        return Err(format!("{t} is not a replica of this cluster"));
    }
    let eligible = view.hosts.iter().filter(|(n, _)| {
        **n != j.old_primary
            && !waiting.contains(n)
            && !j.lost_candidates.contains(n)
            && j.target.as_ref().is_none_or(|t| t == *n)
    });
    // Every eligible replica is asked at once; one whose monitor reports it silent gets a
    // short chance only, so a dead host costs half a second, not one timeout per host.
    let asks = eligible.map(|(name, h)| async move {
        let status =
            match super::host_agent(view, name, &h.agent, super::SILENT_AGENT_TIMEOUT).await {
                Ok(mut a) => a
                    .status(StatusRequest {})
                    .await
                    .ok()
                    .map(tonic::Response::into_inner),
                Err(_) => None,
            };
        (name, h, status)
    });
    let mut candidates = Vec::new();
    for (name, h, status) in futures_util::future::join_all(asks).await {
        let snap = status.and_then(|s| s.snapshot).filter(|s| s.reachable);
        let flavor = match snap.as_ref().map(|s| s.flavor) {
            Some(f) if f == altair_proto::v1::Flavor::Mysql as i32 => Flavor::Mysql,
            _ => Flavor::MariaDb,
        };
        let received = snap
            .as_ref()
            .and_then(|s| {
                let r = GtidState::parse(flavor, &s.gtid_received).ok()?;
                let e = GtidState::parse(flavor, &s.gtid_executed).ok()?;
                r.union(&e).ok()
            })
            .unwrap_or_else(|| GtidState::empty(flavor));
        candidates.push(Candidate {
            name: name.clone(),
            healthy: snap.is_some(),
            promotion_rule: h.promotion_rule,
            datacenter: h.datacenter.clone(),
            received,
            lag_s: snap
                .as_ref()
                .and_then(|s| s.replication.as_ref())
                .and_then(|r| r.seconds_behind),
        });
    }
    // Seconds_Behind_Master is NULL once the IO thread lost the dead primary: the limit
    // applies to replicas that still report a lag.
    let rules = CandidateRules {
        max_lag_s: match j.kind {
            Kind::Switchover => ctx.config.orchestrator.switchover_max_lag_s,
            _ => ctx.config.orchestrator.max_candidate_lag_s,
        },
        primary_datacenter: old.datacenter.clone(),
    };
    choose(&candidates, &rules).map_err(|e| e.to_string())
}
