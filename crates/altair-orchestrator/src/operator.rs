//! Failovers an operator asks for: a planned switchover, or a forced failover. Both are
//! pre-checked here, then run by the leader's loop from the journal like an automatic
//! one (so a leader change mid-way resumes them); the caller waits for the audit record.

use std::time::Duration;

use altair_core::failover::{Journal, Kind, Stage};
use altair_core::health::Health;
use altair_core::registry::{FailoverAudit, to_json};
use altair_proto::v1::StatusRequest;
use altair_zk::Op;
use tonic::Status;

use crate::agents::agent;
use crate::ctx::{Ctx, now_ms};
use crate::view::ClusterView;

fn precondition(msg: String) -> Status {
    Status::failed_precondition(msg)
}

/// Checks, then writes the journal with a new epoch. Returns its id.
pub async fn start(
    ctx: &Ctx,
    view: &ClusterView,
    kind: Kind,
    target: Option<String>,
    force: bool,
    by: &str,
) -> Result<String, Status> {
    let c = &view.name;
    let (state, version) = view
        .state
        .clone()
        .ok_or_else(|| precondition(format!("cluster {c} has no state yet (no primary known)")))?;
    if let Some(j) = &view.journal {
        return Err(Status::aborted(format!(
            "failover {} is in progress on {c} (step {}); wait for it (`altairctl history {c}`)",
            j.id,
            j.step.as_str()
        )));
    }
    let primary = state
        .primary
        .clone()
        .ok_or_else(|| precondition(format!("cluster {c} has no primary")))?;
    if let Some(t) = &target {
        if !view.hosts.contains_key(t) {
            return Err(Status::not_found(format!(
                "host {t} is not registered in cluster {c} (hosts: {})",
                view.hosts.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        if *t == primary {
            return Err(Status::invalid_argument(format!(
                "{t} is already the primary of {c}"
            )));
        }
        if state.needs_rejoin.contains(t) {
            return Err(precondition(format!(
                "{t} is an old primary waiting for rejoin: `altairctl rejoin {t}` first"
            )));
        }
    }
    let primary_health = view.health.get(&primary).map(|h| h.health);
    match kind {
        Kind::Switchover => {
            if primary_health != Some(Health::Healthy) {
                return Err(precondition(format!(
                    "the primary {primary} is {}: a switchover needs a healthy primary (use `altairctl failover`)",
                    primary_health.map_or("unknown".to_owned(), |h| h.to_string())
                )));
            }
            check_candidates(ctx, view, &state.needs_rejoin, &primary, target.as_deref()).await?;
        }
        Kind::Forced if !force => {
            if let altair_core::failover::Verdict::Alive { seen_by } =
                crate::leader::verify(ctx, view, &primary).await.verdict
            {
                return Err(precondition(format!(
                    "the primary {primary} is alive (reachable from {seen_by}): use `altairctl switchover {c}` for a planned change, or force it"
                )));
            }
        }
        _ => {}
    }
    let now = now_ms();
    let mut journal = Journal::new(
        crate::leader::failover_id(),
        c.to_string(),
        state.epoch + 1,
        primary.clone(),
        match state.paused.as_ref().filter(|p| p.active(now)) {
            // The operator's action goes ahead; the record says the cluster was paused.
            Some(p) => format!(
                "{} requested by {by} (cluster {})",
                kind.as_str(),
                p.describe(now)
            ),
            None => format!("{} requested by {by}", kind.as_str()),
        },
        now,
        vec![Stage::new("request", now, now)],
    );
    journal.kind = kind;
    journal.target = target;
    let mut s = state.clone();
    s.epoch = journal.epoch;
    let l = ctx.zk.layout();
    ctx.write(&[
        Op::Set {
            path: l.cluster_state(c),
            data: to_json(&s),
            version: Some(version),
        },
        Op::Create {
            path: l.failover_journal(c),
            data: to_json(&journal),
        },
    ])
    .await
    .map_err(|e| Status::aborted(format!("the cluster changed meanwhile, retry: {e}")))?;
    tracing::warn!(cluster = %c, failover_id = %journal.id, kind = kind.as_str(), epoch = journal.epoch, old_primary = %primary, target = ?journal.target, by, "operator-requested failover started");
    Ok(journal.id)
}

/// A switchover needs a candidate that is running, replicating and close behind.
async fn check_candidates(
    ctx: &Ctx,
    view: &ClusterView,
    waiting: &[String],
    primary: &str,
    target: Option<&str>,
) -> Result<(), Status> {
    let max_lag = ctx.config.orchestrator.switchover_max_lag_s;
    let mut problems = Vec::new();
    for (name, h) in &view.hosts {
        if name == primary || waiting.contains(name) || target.is_some_and(|t| t != name) {
            continue;
        }
        let health = view.health.get(name).map(|r| r.health);
        let snap = async {
            let mut a = agent(&h.agent, Duration::from_secs(1)).await.ok()?;
            a.status(StatusRequest {}).await.ok()?.into_inner().snapshot
        }
        .await;
        let problem = match snap {
            _ if health != Some(Health::Healthy) => {
                Some(health.map_or("unknown".to_owned(), |h| h.to_string()))
            }
            None => Some("its agent does not answer".into()),
            Some(s) if !s.reachable => Some("mysqld is down".into()),
            Some(s) => match s.replication {
                None => Some("not replicating".into()),
                Some(r) if !(r.io_running && r.sql_running) => {
                    Some("replication threads are not running".into())
                }
                Some(r) => match r.seconds_behind {
                    Some(lag) if lag as u64 <= max_lag => None,
                    Some(lag) => Some(format!("lags {lag} s (limit {max_lag} s)")),
                    None => Some("lag unknown".into()),
                },
            },
        };
        match problem {
            None => return Ok(()),
            Some(p) => problems.push(format!("{name}: {p}")),
        }
    }
    Err(precondition(if problems.is_empty() {
        "no replica to switch over to".into()
    } else {
        format!("no eligible candidate: {}", problems.join("; "))
    }))
}

/// Waits for the audit record of failover `id`.
pub async fn await_audit(
    ctx: &Ctx,
    view: &ClusterView,
    id: &str,
    bound: Duration,
) -> Result<FailoverAudit, Status> {
    let path = ctx.zk.layout().history_entry(&view.name, id);
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if let Ok(Some(a)) = ctx.zk.get_record::<FailoverAudit>("audit", &path).await {
            return Ok(a);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Status::deadline_exceeded(format!(
                "failover {id} has not finished after {} s; it goes on: follow it with `altairctl history {}`",
                bound.as_secs(),
                view.name
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records an operator's abort of the failover in progress (the leader's next pass acts
/// on it). Refused when there is none, or when its promotion has started.
pub async fn request_abort(ctx: &Ctx, view: &ClusterView, reason: &str) -> Result<String, Status> {
    let c = &view.name;
    let j = view
        .journal
        .as_ref()
        .ok_or_else(|| precondition(format!("no failover is in progress on {c}")))?;
    if !altair_core::failover::machine::abortable(j) {
        return Err(precondition(format!(
            "failover {} of {c} is at step {}: promotion has started, so it can only go forward (follow it with `altairctl history {c}`)",
            j.id,
            j.step.as_str()
        )));
    }
    let request = altair_core::registry::AbortRequest {
        failover_id: j.id.clone(),
        reason: reason.to_owned(),
        requested_at_ms: now_ms(),
    };
    let path = ctx.zk.layout().failover_abort(c);
    let op = match ctx.zk.exists(&path).await {
        Ok(true) => Op::Set {
            path,
            data: to_json(&request),
            version: None,
        },
        _ => Op::Create {
            path,
            data: to_json(&request),
        },
    };
    ctx.write(&[op])
        .await
        .map_err(|e| Status::aborted(format!("the abort request was not written, retry: {e}")))?;
    tracing::warn!(cluster = %c, failover_id = %j.id, step = j.step.as_str(), reason = %reason, "an operator asked to abort the failover");
    Ok(j.id.clone())
}
