//! `altairctl pause` / `resume`: a maintenance pause is set or cleared on a cluster's
//! state with a compare-and-set, in the same leadership-checked write as its audit
//! record. A pause given a duration is ended by the leader's pass when it runs out
//! (`expire`), also audited.

use altair_core::ClusterName;
use altair_core::pause::Pause;
use altair_core::registry::{ClusterState, from_json, history_to_prune, to_json};
use altair_zk::{Op, ZkError};
use tonic::Status;

use crate::ctx::{Ctx, now_ms};
use crate::leader::audit_only;

/// A compare-and-set lost to a concurrent change is retried this many times.
const ATTEMPTS: usize = 5;

/// What a pause or resume changes.
#[derive(Debug, Clone)]
pub enum Change {
    Set(Pause),
    /// Resumed by an operator (`by`) or by the pause's own end.
    Clear {
        by: String,
        expired: bool,
    },
}

fn zk_status(e: ZkError) -> Status {
    match e {
        ZkError::NotLeader { .. } | ZkError::SessionExpired { .. } => {
            Status::unavailable(format!("not the leader any more: {e}"))
        }
        e => Status::unavailable(format!("ZooKeeper: {e}")),
    }
}

/// Applies `change` to one cluster. `Ok(false)`: nothing to do (resume of a cluster
/// that is not paused).
pub async fn apply(ctx: &Ctx, c: &ClusterName, change: &Change) -> Result<bool, Status> {
    let l = ctx.zk.layout();
    for _ in 0..ATTEMPTS {
        let Some((bytes, version)) = ctx
            .zk
            .get_versioned(&l.cluster_state(c))
            .await
            .map_err(zk_status)?
        else {
            return Err(Status::failed_precondition(format!(
                "cluster {c} has no state yet (its primary is not known): nothing to pause"
            )));
        };
        let mut state: ClusterState = from_json("state", &bytes).map_err(Status::internal)?;
        let (outcome, detail) = match change {
            Change::Set(p) => {
                state.paused = Some(p.clone());
                ("paused", p.describe(now_ms()))
            }
            Change::Clear { by, expired } => {
                let Some(p) = state.paused.take() else {
                    return Ok(false);
                };
                // Re-paused since the pass saw the old one run out: the new one stands.
                if *expired && p.active(now_ms()) {
                    return Ok(false);
                }
                let how = if *expired {
                    "its duration ran out".to_owned()
                } else {
                    format!("resumed by {by}")
                };
                (
                    "resumed",
                    format!("{how} (paused by {}: {})", p.by, p.reason),
                )
            }
        };
        let primary = state.primary.clone().unwrap_or_default();
        let now = now_ms();
        let audit = audit_only(c, &state, &primary, outcome, &detail, now);
        let kept = ctx.zk.children(&l.history(c)).await.map_err(zk_status)?;
        let mut ops = vec![
            Op::Set {
                path: l.cluster_state(c),
                data: to_json(&state),
                version: Some(version),
            },
            Op::Create {
                path: l.history_entry(c, &audit.journal.id),
                data: to_json(&audit),
            },
        ];
        let retention = ctx.config.orchestrator.retention();
        for id in history_to_prune(&kept, retention, now, 20) {
            ops.push(Op::Delete {
                path: l.history_entry(c, &id),
                version: None,
            });
        }
        match ctx.write(&ops).await {
            Ok(()) => {
                tracing::warn!(cluster = %c, "{outcome}: {detail}");
                crate::metrics::paused(c.as_str(), state.paused.as_ref());
                return Ok(true);
            }
            Err(ZkError::Conflict { .. }) => continue,
            Err(e) => return Err(zk_status(e)),
        }
    }
    Err(Status::aborted(format!(
        "cluster {c} kept changing (a failover step?): retry"
    )))
}

/// The clusters a request names: one, or every cluster that has a state (`all`).
pub async fn targets(ctx: &Ctx, cluster: &str, all: bool) -> Result<Vec<ClusterName>, Status> {
    match (all, cluster.is_empty()) {
        (true, false) => Err(Status::invalid_argument("give a cluster or all, not both")),
        (false, true) => Err(Status::invalid_argument(
            "cluster: required (or all, for every cluster)",
        )),
        (false, false) => {
            let c = ClusterName::new(cluster.to_owned())
                .map_err(|e| Status::invalid_argument(format!("cluster: {e}")))?;
            let l = ctx.zk.layout();
            if !ctx.zk.exists(&l.cluster(&c)).await.map_err(zk_status)? {
                return Err(Status::not_found(format!(
                    "no cluster {c}: `altairctl status` lists the clusters"
                )));
            }
            Ok(vec![c])
        }
        (true, true) => {
            let l = ctx.zk.layout();
            let mut out = Vec::new();
            for name in ctx.zk.children(&l.clusters()).await.map_err(zk_status)? {
                let Ok(c) = ClusterName::new(name) else {
                    continue;
                };
                if ctx
                    .zk
                    .exists(&l.cluster_state(&c))
                    .await
                    .map_err(zk_status)?
                {
                    out.push(c);
                }
            }
            out.sort();
            Ok(out)
        }
    }
}

/// Ends a pause whose duration ran out (the leader's pass). Errors are logged: the next
/// pass tries again.
pub async fn expire(ctx: &Ctx, c: &ClusterName) {
    let change = Change::Clear {
        by: String::new(),
        expired: true,
    };
    if let Err(e) = apply(ctx, c, &change).await {
        tracing::warn!(cluster = %c, error = %e.message(), "an expired pause could not be cleared yet");
    }
}
