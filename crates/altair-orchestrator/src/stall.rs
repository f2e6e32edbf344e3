//! A primary reported `write_stalled` in a cluster whose `[write_stall]` policy is
//! `failover`: once the report has stood for `write_stall.failover_after_ms`, the
//! primary's agent is asked whether it is still writable and still not committing, and
//! if so the cluster fails over like one whose primary is down (the old primary is
//! fenced read-only, or stopped when it cannot be made read-only).

use std::time::Duration;

use altair_core::failover::{
    LastVerify, StallAction, StallAnswer, StallCheck, stall_action, stall_check,
};
use altair_proto::v1::StatusRequest;
use altair_zk::ZkError;

use crate::agents::agent;
use crate::ctx::{Ctx, now_ms};
use crate::leader::{Pace, Start, start_failover};
use crate::view::ClusterView;
use crate::workers::Slots;

/// How soon a stalled primary whose agent did not answer, said the stall cleared, or
/// reported an error rather than stuck commits is asked again (its health changes wake
/// the worker at once meanwhile).
const AGAIN: Duration = Duration::from_secs(5);

/// One look at a cluster whose primary is reported `write_stalled` under a `failover`
/// policy. `seen` remembers the stall already judged not to fail over (logged once per
/// stall, not at every look).
pub(crate) async fn pass(
    ctx: &Ctx,
    view: &ClusterView,
    start: Start<'_>,
    (now, idle): (u64, Pace),
    seen: &mut Option<LastVerify>,
    slots: &Slots,
) -> Result<Pace, ZkError> {
    let cluster = &view.name;
    let since = start.health.since_unix_ms;
    if let StallAction::WaitUntil(at) =
        stall_action(since, now, ctx.config.write_stall.failover_after_ms)
    {
        return Ok(idle.at_most(Duration::from_millis(at.saturating_sub(now).max(20))));
    }
    let asked = now_ms();
    let check = confirm(ctx, view, start.primary).await;
    let first = seen.is_none_or(|s| s.since_ms != since);
    match check {
        StallCheck::Stalled { why } => {
            tracing::warn!(cluster = %cluster, primary = %start.primary, why = %why, stalled_ms = now.saturating_sub(since), "primary cannot commit and the cluster's policy is to fail over");
            let note = format!(
                "{} write_stalled for {} ms (write_stall policy: failover); its agent confirmed: {why}",
                start.primary,
                now.saturating_sub(since)
            );
            return start_failover(ctx, view, start, (asked, None), vec![note], slots).await;
        }
        _ if !first => {}
        StallCheck::Cleared { why } => {
            tracing::info!(cluster = %cluster, primary = %start.primary, why = %why, "primary reported write_stalled, but its agent says it cleared: no failover");
        }
        StallCheck::NotStuck { why } => {
            tracing::warn!(cluster = %cluster, primary = %start.primary, why = %why, "primary reported write_stalled by an error its write probe gets back, not by stuck commits: alert only, no failover");
        }
        StallCheck::NoAnswer { error } => {
            tracing::warn!(cluster = %cluster, primary = %start.primary, error = %error, "primary reported write_stalled, but its agent did not answer: no failover on the stall (a lost host is verified as unreachable)");
        }
    }
    *seen = Some(LastVerify {
        since_ms: since,
        at_ms: asked,
        fingerprint: 0,
    });
    Ok(idle.at_most(AGAIN))
}

/// What the primary's agent says now.
async fn confirm(ctx: &Ctx, view: &ClusterView, primary: &str) -> StallCheck {
    let Some(p) = view.hosts.get(primary) else {
        return stall_check(Err(format!("{primary} is not registered")));
    };
    let deadline = Duration::from_millis(ctx.config.orchestrator.verify_timeout_ms);
    let answer = async {
        let mut a = agent(&p.agent, deadline).await?;
        let snap = a
            .status(StatusRequest {})
            .await
            .map_err(|s| format!("status from the agent of {primary}: {}", s.message()))?
            .into_inner()
            .snapshot
            .ok_or_else(|| format!("the agent of {primary} answered without a snapshot"))?;
        Ok(StallAnswer {
            reachable: snap.reachable,
            read_only: snap.read_only,
            write_stalled: snap.write_stalled,
            commits_stuck: snap.write_stall_commits_stuck,
            probe_error: snap.write_probe_error,
        })
    }
    .await;
    stall_check(answer)
}

/// Logs every cluster `[write_stall.clusters]` names that is not registered (a typo there
/// would quietly keep that cluster alert only). Read once when leadership starts.
pub(crate) async fn warn_unknown_clusters(ctx: &Ctx) {
    let named = &ctx.config.write_stall.clusters;
    if named.is_empty() {
        return;
    }
    let registered = match ctx.zk.children(&ctx.zk.layout().clusters()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "could not list the clusters to check [write_stall.clusters]");
            return;
        }
    };
    for (name, policy) in named {
        if !registered.contains(name) {
            tracing::warn!(cluster = %name, policy = ?policy, "[write_stall.clusters] names a cluster that is not registered: its policy applies to nothing yet");
        }
    }
}
