//! `altairctl pause` / `resume`: a maintenance pause is set or cleared on a cluster's
//! state with a compare-and-set, in the same leadership-checked write as its audit
//! record. A pause given a duration is ended by the leader's pass when it runs out
//! (`expire`), also audited.

use altair_core::ClusterName;
use altair_core::failover::{Journal, Step};
use altair_core::pause::Pause;
use altair_core::registry::{ClusterState, FailoverAudit, from_json, history_to_prune, to_json};
use altair_zk::{Op, ZkError};
use futures_util::StreamExt;
use tonic::Status;

use crate::ctx::{Ctx, now_ms};
use crate::leader::failover_id;

/// A compare-and-set lost to a concurrent change is retried this many times.
const ATTEMPTS: usize = 5;
/// Clusters of one `--all` request changed at the same time.
const CONCURRENCY: usize = 16;

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

/// Why a change was not made.
#[derive(Debug)]
pub enum ApplyError {
    /// ZooKeeper failed, or this orchestrator no longer leads.
    Zk(ZkError),
    /// The cluster has no state (its primary is not known yet).
    NoState,
    /// The state kept changing under the compare-and-set.
    Busy,
    /// The stored state does not parse.
    Corrupt(String),
}

impl ApplyError {
    pub fn status(&self, c: &ClusterName) -> Status {
        match self {
            Self::Zk(e @ (ZkError::NotLeader { .. } | ZkError::SessionExpired { .. })) => {
                Status::unavailable(format!("not the leader any more: {e}"))
            }
            Self::Zk(e) => Status::unavailable(format!("ZooKeeper: {e}")),
            Self::NoState => Status::failed_precondition(format!(
                "cluster {c} has no state yet (its primary is not known): nothing to pause"
            )),
            Self::Busy => Status::aborted(format!(
                "cluster {c} kept changing (a failover step?): retry"
            )),
            Self::Corrupt(e) => Status::internal(format!("cluster {c}: {e}")),
        }
    }
}

impl From<ZkError> for ApplyError {
    fn from(e: ZkError) -> Self {
        Self::Zk(e)
    }
}

/// A new pause while one is in force keeps the later end (an open-ended one wins) and
/// takes the new caller and reason; what it replaced is in the audit record.
fn merged(old: Option<&Pause>, new: &Pause, now: u64) -> (Pause, Option<String>) {
    let Some(old) = old.filter(|o| o.active(now)) else {
        return (new.clone(), None);
    };
    let until_ms = match (old.until_ms, new.until_ms) {
        (None, _) | (_, None) => None,
        (Some(a), Some(b)) => Some(a.max(b)),
    };
    let mut p = new.clone();
    p.until_ms = until_ms;
    (p, Some(format!("replaces the pause {}", old.describe(now))))
}

/// Applies `change` to one cluster. `Ok(false)`: nothing to do (resume of a cluster
/// that is not paused; an expiry that found a newer pause).
pub async fn apply(ctx: &Ctx, c: &ClusterName, change: &Change) -> Result<bool, ApplyError> {
    let l = ctx.zk.layout();
    for _ in 0..ATTEMPTS {
        let Some((bytes, version)) = ctx.zk.get_versioned(&l.cluster_state(c)).await? else {
            return Err(ApplyError::NoState);
        };
        let mut state: ClusterState = from_json("state", &bytes).map_err(ApplyError::Corrupt)?;
        let now = now_ms();
        let (outcome, detail) = match change {
            Change::Set(p) => {
                let (p, replaced) = merged(state.paused.as_ref(), p, now);
                let mut detail = p.describe(now);
                if let Some(r) = replaced {
                    detail = format!("{detail} ({r})");
                }
                state.paused = Some(p);
                ("paused", detail)
            }
            Change::Clear { by, expired } => {
                let Some(p) = state.paused.take() else {
                    return Ok(false);
                };
                // Re-paused since the pass saw the old one run out: the new one stands.
                if *expired && p.active(now) {
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
        let audit = record(c, &state, outcome, &detail, now);
        let kept = ctx.zk.children(&l.history(c)).await?;
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
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApplyError::Busy)
}

/// The audit record of a pause or resume (or an automatic action outside a failover,
/// `reopen`): an action in the failover trail, with no stages.
pub(crate) fn record(
    c: &ClusterName,
    state: &ClusterState,
    outcome: &str,
    detail: &str,
    now: u64,
) -> FailoverAudit {
    let mut j = Journal::new(
        failover_id(),
        c.to_string(),
        state.epoch,
        state.primary.clone().unwrap_or_default(),
        outcome.to_owned(),
        now,
        Vec::new(),
    );
    j.step = Step::Done;
    FailoverAudit {
        journal: j,
        outcome: outcome.to_owned(),
        new_primary: None,
        finished_at_ms: now,
        total_ms: 0,
        detail: detail.to_owned(),
    }
}

/// Applies `change` to the clusters a request names: one, or (`all`) every cluster that
/// has a state, several at a time; clusters without a state are skipped under `all`.
/// The names changed, or the first error with what was already done.
pub async fn apply_all(
    ctx: &Ctx,
    cluster: &str,
    all: bool,
    change: &Change,
) -> Result<Vec<String>, Status> {
    let targets = targets(ctx, cluster, all).await?;
    let results: Vec<(ClusterName, Result<bool, ApplyError>)> = futures_util::stream::iter(targets)
        .map(|c| async move {
            let r = apply(ctx, &c, change).await;
            (c, r)
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut done = Vec::new();
    let mut first_error = None;
    for (c, r) in results {
        match r {
            Ok(true) => done.push(c.to_string()),
            Ok(false) => {}
            Err(ApplyError::NoState) if all => {}
            Err(e) => {
                first_error.get_or_insert_with(|| e.status(&c));
            }
        }
    }
    done.sort();
    match first_error {
        None => Ok(done),
        Some(e) if done.is_empty() => Err(e),
        Some(e) => Err(Status::new(
            e.code(),
            format!("{} (already done: {})", e.message(), done.join(", ")),
        )),
    }
}

/// The clusters a request names: one, or every cluster (`all`).
async fn targets(ctx: &Ctx, cluster: &str, all: bool) -> Result<Vec<ClusterName>, Status> {
    let zk_status = |e: ZkError| Status::unavailable(format!("ZooKeeper: {e}"));
    let l = ctx.zk.layout();
    match (all, cluster.is_empty()) {
        (true, false) => Err(Status::invalid_argument("give a cluster or all, not both")),
        (false, true) => Err(Status::invalid_argument(
            "cluster: required (or all, for every cluster)",
        )),
        (false, false) => {
            let c = ClusterName::new(cluster.to_owned())
                .map_err(|e| Status::invalid_argument(format!("cluster: {e}")))?;
            if !ctx.zk.exists(&l.cluster(&c)).await.map_err(zk_status)? {
                return Err(Status::not_found(format!(
                    "no cluster {c}: `altairctl status` lists the clusters"
                )));
            }
            Ok(vec![c])
        }
        (true, true) => Ok(ctx
            .zk
            .children(&l.clusters())
            .await
            .map_err(zk_status)?
            .into_iter()
            .filter_map(|name| ClusterName::new(name).ok())
            .collect()),
    }
}

/// Ends a pause whose duration ran out (the leader's pass). A lost leadership is the
/// caller's to handle; other errors are logged and the next pass tries again.
pub async fn expire(ctx: &Ctx, c: &ClusterName) -> Result<(), ZkError> {
    let change = Change::Clear {
        by: String::new(),
        expired: true,
    };
    match apply(ctx, c, &change).await {
        Ok(_) => Ok(()),
        Err(ApplyError::Zk(e)) if e.is_session_lost() || matches!(e, ZkError::NotLeader { .. }) => {
            Err(e)
        }
        Err(e) => {
            tracing::warn!(cluster = %c, error = %e.status(c).message(), "an expired pause could not be cleared yet");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(by: &str, until: Option<u64>) -> Pause {
        Pause {
            by: by.into(),
            reason: "r".into(),
            since_ms: 0,
            until_ms: until,
        }
    }

    #[test]
    fn a_new_pause_never_shortens_one_in_force() {
        let open = pause("alice", None);
        let timed = pause("bob", Some(1_000));
        let (p, replaced) = merged(Some(&open), &timed, 10);
        assert_eq!(p.until_ms, None, "the open-ended one wins");
        assert_eq!(p.by, "bob");
        assert!(replaced.is_some_and(|r| r.contains("alice")));
        let (p, _) = merged(Some(&pause("a", Some(5_000))), &timed, 10);
        assert_eq!(p.until_ms, Some(5_000), "the later end wins");
        let (p, replaced) = merged(Some(&pause("a", Some(5))), &timed, 10);
        assert_eq!(p.until_ms, Some(1_000), "an expired one is not kept");
        assert!(replaced.is_none());
        let (p, replaced) = merged(None, &timed, 10);
        assert_eq!((p, replaced), (timed, None));
    }
}
