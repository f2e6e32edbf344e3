//! Ending a failover without a new primary: refused before anything was done (a
//! pre-failover hook said no), aborted by an operator before promotion, or a switchover
//! rolled back before promotion (the old primary is made writable again). Each way an
//! audit record says what happened.

use std::time::Duration;

use altair_core::failover::{Journal, Kind, Stage};
use altair_core::registry::{ClusterState, FailoverAudit, to_json};
use altair_proto::v1::SetReadOnlyRequest;
use altair_zk::Op;

use crate::agents::agent;
use crate::ctx::{Ctx, now_ms};
use crate::failover::FailoverError;
use crate::view::ClusterView;

/// Nothing was fenced yet: record `outcome` and end the journal. An automatic failover
/// refused this way holds automatic failover until an operator acknowledges.
pub async fn refuse(
    ctx: &Ctx,
    view: &ClusterView,
    j: Journal,
    reason: &str,
) -> Result<(), FailoverError> {
    let hold = (j.kind == Kind::Automatic).then(|| reason.to_owned());
    finish(ctx, view, j, "refused", reason, hold).await
}

/// An operator aborted before promotion started. The old primary stays fenced (it may
/// be dead, or cut off and self-fenced); automatic failover of the cluster is held until
/// an operator acknowledges (`altairctl ack`), so it is not started again behind them.
pub async fn aborted(
    ctx: &Ctx,
    view: &ClusterView,
    j: Journal,
    reason: &str,
) -> Result<(), FailoverError> {
    let detail = format!(
        "aborted by an operator at step {}: {reason}; {} was not promoted around",
        j.step.as_str(),
        j.old_primary
    );
    tracing::error!(cluster = %j.cluster, failover_id = %j.id, step = j.step.as_str(), reason = %reason, "failover aborted by an operator");
    finish(ctx, view, j, "aborted", &detail, Some(detail.clone())).await
}

/// `s` with automatic failover held until an acknowledgement.
fn hold(s: &mut ClusterState, j: &Journal, why: &str) {
    s.epoch = s.epoch.max(j.epoch);
    s.held = true;
    s.failover_blocked = Some(format!(
        "{why}; automatic failover held until `altairctl ack {}`",
        j.cluster
    ));
}

/// Rolls a switchover back: the old primary is made writable again (it was only fenced
/// read-only; nothing was promoted). If its agent cannot be reached after a few tries the
/// switchover still ends (so automatic failover and operators are not blocked behind it)
/// and the audit record says the primary stayed read-only.
pub async fn abort(ctx: &Ctx, view: &ClusterView, j: Journal) -> Result<(), FailoverError> {
    let reason = j.aborting.clone().unwrap_or_default();
    let mut unfenced = Err(String::new());
    for attempt in 0..UNFENCE_ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        unfenced = unfence(view, &j).await;
        if unfenced.is_ok() {
            break;
        }
    }
    let detail = match unfenced {
        Ok(()) => {
            tracing::error!(cluster = %j.cluster, failover_id = %j.id, reason = %reason, old_primary = %j.old_primary, "switchover rolled back: the old primary is writable again");
            format!(
                "{reason}; rolled back: {} is the primary again",
                j.old_primary
            )
        }
        Err(e) => {
            tracing::error!(cluster = %j.cluster, failover_id = %j.id, reason = %reason, error = %e, "switchover rolled back but the old primary stays read-only");
            format!(
                "{reason}; rolled back, but {} could not be made writable again ({e}): it is read-only; run `altairctl switchover {}` or `altairctl failover {}`",
                j.old_primary, j.cluster, j.cluster
            )
        }
    };
    finish(ctx, view, j, "failed", &detail, None).await
}

const UNFENCE_ATTEMPTS: u32 = 3;

async fn unfence(view: &ClusterView, j: &Journal) -> Result<(), String> {
    let old = view
        .hosts
        .get(&j.old_primary)
        .ok_or("the old primary is not registered")?;
    let mut a = agent(&old.agent, Duration::from_secs(3)).await?;
    a.set_read_only(SetReadOnlyRequest {
        epoch: j.epoch,
        read_only: false,
    })
    .await
    .map(|_| ())
    .map_err(|s| s.message().to_owned())
}

async fn finish(
    ctx: &Ctx,
    view: &ClusterView,
    mut j: Journal,
    outcome: &str,
    detail: &str,
    held: Option<String>,
) -> Result<(), FailoverError> {
    let now = now_ms();
    j.stages.push(Stage {
        error: detail.to_owned(),
        ..Stage::new(j.step.as_str(), now, now)
    });
    let audit = FailoverAudit {
        outcome: outcome.into(),
        new_primary: None,
        finished_at_ms: now,
        total_ms: now.saturating_sub(j.started_at_ms),
        detail: detail.to_owned(),
        journal: j.clone(),
    };
    let l = ctx.zk.layout();
    // The hold is applied to the state as it is now (a pause or resume may have landed
    // while a hook ran), compare-and-set.
    let mut tries = 0;
    loop {
        let mut ops = crate::failover::closing_ops(ctx, view, &audit);
        if let Some(why) = &held
            && let Some((bytes, version)) =
                ctx.zk.get_versioned(&l.cluster_state(&view.name)).await?
        {
            let mut s: ClusterState = altair_core::registry::from_json("state", &bytes)
                .map_err(|detail| altair_zk::ZkError::Conflict { detail })?;
            hold(&mut s, &j, why);
            ops.push(Op::Set {
                path: l.cluster_state(&view.name),
                data: to_json(&s),
                version: Some(version),
            });
        }
        match ctx.write(&ops).await {
            Ok(()) => break,
            Err(altair_zk::ZkError::Conflict { .. }) if tries < 3 => {
                tries += 1;
                crate::failover::ensure_history(ctx, view).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    crate::metrics::observe_failover(&audit);
    Ok(())
}
