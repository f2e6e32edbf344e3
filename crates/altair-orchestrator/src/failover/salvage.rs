//! Salvaging the old primary's unreplicated binlog events onto the candidate (DESIGN §5
//! step 4): the old agent's stream is forwarded chunk by chunk into the candidate's apply
//! stream, so memory is constant whatever the tail's size, and both ends stop at the one
//! deadline `salvage_timeout_ms`. The journal states the exact lost set whenever the old
//! host answered.

use std::time::Duration;

use altair_core::failover::Journal;
use altair_core::failover::salvage::{
    AfterSalvageFailure, after_salvage_failure, lost_gtids, unknown_loss,
};
use altair_proto::v1::*;
use tokio_stream::wrappers::ReceiverStream;

use super::candidate::{candidate_catch_up, candidate_record};
use crate::agents::agent;
use crate::ctx::Ctx;
use crate::view::ClusterView;

/// What a finished transfer leaves: the plan and, when events were applied, the
/// candidate's position after them.
struct Transfer {
    plan: SalvagePlan,
    applied: Option<String>,
}

/// A failed transfer: the plan when the old agent sent one, and why.
struct Failed {
    plan: Option<Box<SalvagePlan>>,
    error: String,
    /// The candidate had moved past the planned position (its IO thread was still
    /// receiving what the dead primary's socket had sent): plan again from where it is.
    replan: bool,
}

/// Plans at most this many times (the candidate's replication is stopped by the first
/// apply, so the second plan holds).
const PLANS: usize = 3;

pub(super) async fn salvage(ctx: &Ctx, view: &ClusterView, j: &mut Journal) -> Result<(), String> {
    let o = &ctx.config.orchestrator;
    let catch_up_ms = o.catch_up_timeout_ms as u32;
    // The candidate's position now (catch-up again returns it at once: it is caught up).
    let pos = candidate_catch_up(view, j, "", catch_up_ms)
        .await?
        .gtid_executed;
    if j.old_host_unreachable {
        j.gtids_lost = unknown_loss(&pos, last_heard(view, j));
        j.notes
            .push("no salvage: the old primary's host did not answer when fencing".into());
        return Ok(());
    }
    if pos.is_empty() {
        j.notes
            .push("no salvage: the candidate reports no GTID position".into());
        return Ok(());
    }
    let timeout = Duration::from_millis(o.salvage_timeout_ms);
    // One deadline for the whole transfer; the plan survives it running out.
    let deadline = tokio::time::Instant::now() + timeout;
    let mut planned = None;
    let mut pos = pos;
    let mut outcome = None;
    for attempt in 1..=PLANS {
        let r = match tokio::time::timeout_at(
            deadline + Duration::from_secs(1),
            transfer(view, j, &pos, deadline, &mut planned),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(Failed {
                plan: planned.clone().map(Box::new),
                error: format!("salvage did not finish within {} ms", o.salvage_timeout_ms),
                replan: false,
            }),
        };
        match r {
            Err(f) if f.replan && attempt < PLANS => {
                let now = candidate_catch_up(view, j, "", catch_up_ms).await?;
                j.notes.push(format!(
                    "the candidate moved from {pos} to {} while salvage was planned: planned again",
                    now.gtid_executed
                ));
                pos = now.gtid_executed;
            }
            r => {
                outcome = Some(r);
                break;
            }
        }
    }
    let outcome = outcome.unwrap_or_else(|| {
        Err(Failed {
            plan: None,
            error: "salvage planned too often".into(),
            replan: false,
        })
    });
    match outcome {
        Ok(Transfer { plan, applied }) => {
            let after = applied.clone().unwrap_or_else(|| pos.clone());
            record_plan(j, &plan);
            if applied.is_some() {
                j.transactions_salvaged = plan.transaction_count;
                j.gtids_salvaged = plan.missing_gtids.clone();
            }
            j.gtids_lost = if plan.scanned {
                lost_gtids(&plan.end_gtid, &after)?
            } else {
                String::new()
            };
            Ok(())
        }
        Err(Failed { plan, error, .. }) => {
            let error = format!("salvage from {}: {error}", j.old_primary);
            tracing::error!(cluster = %view.name, failover_id = %j.id, %error, "salvage failed");
            if let AfterSalvageFailure::Hold(why) =
                after_salvage_failure(o.on_salvage_timeout, &error)
            {
                return Err(why);
            }
            // Availability first: promote, and say exactly what is lost when the plan
            // (the old binlog's end) is known. Not a candidate that stopped answering
            // (it died while applying): the step fails, and a candidate that does not
            // answer is replaced before anyone is asked to promote.
            let now = candidate_catch_up(view, j, "", catch_up_ms)
                .await
                .map_err(|e| format!("{error}; the candidate does not answer after it: {e}"))?
                .gtid_executed;
            j.gtids_lost = match &plan {
                Some(p) if p.scanned => {
                    let p = &**p;
                    record_plan(j, p);
                    lost_gtids(&p.end_gtid, &now)?
                }
                _ => format!("unknown: the old primary's binlog could not be read: {error}"),
            };
            j.notes.push(format!(
                "{error}; promoting anyway (on_salvage_timeout = \"promote\")"
            ));
            Ok(())
        }
    }
}

fn record_plan(j: &mut Journal, plan: &SalvagePlan) {
    j.old_binlog_end = plan.end_gtid.clone();
    let mut note = format!(
        "salvage: {} transaction(s) missing{}, read from {} ({} binlog bytes)",
        plan.transaction_count,
        if plan.missing_gtids.is_empty() {
            String::new()
        } else {
            format!(" ({})", plan.missing_gtids)
        },
        plan.start,
        plan.bytes
    );
    if !plan.torn_gtid.is_empty() {
        note.push_str(&format!(
            "; {} was cut by the crash before its end (never committed): not salvaged",
            plan.torn_gtid
        ));
    }
    j.notes.push(note);
}

/// Streams the old agent's salvage into the candidate's apply.
async fn transfer(
    view: &ClusterView,
    j: &Journal,
    pos: &str,
    deadline: tokio::time::Instant,
    planned: &mut Option<SalvagePlan>,
) -> Result<Transfer, Failed> {
    let fail = |plan: Option<&SalvagePlan>, error: String| Failed {
        plan: plan.cloned().map(Box::new),
        error,
        replan: false,
    };
    let old = &view.hosts[&j.old_primary];
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    let timeout = left();
    let timeout_ms = (timeout.as_millis() as u32).max(1);
    let mut old_agent = agent(&old.agent, timeout)
        .await
        .map_err(|e| fail(None, e))?;
    let mut stream = old_agent
        .salvage_binlog(SalvageBinlogRequest {
            epoch: j.epoch,
            after_gtid: pos.to_owned(),
            failover_id: j.id.clone(),
            timeout_ms,
        })
        .await
        .map_err(|s| fail(None, s.message().to_owned()))?
        .into_inner();
    let plan = match stream.message().await {
        Ok(Some(SalvageChunk { plan: Some(p), .. })) => p,
        Ok(_) => {
            return Err(fail(
                None,
                "the salvage stream did not open with its plan".into(),
            ));
        }
        Err(s) => return Err(fail(None, s.message().to_owned())),
    };
    *planned = Some(plan.clone());
    if plan.scanned && plan.transaction_count == 0 {
        return Ok(Transfer {
            plan,
            applied: None,
        });
    }
    let candidate = candidate_record(view, j).map_err(|e| fail(Some(&plan), e))?;
    let mut cand = agent(&candidate.agent, left())
        .await
        .map_err(|e| fail(Some(&plan), e))?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let header = ApplySalvageChunk {
        epoch: j.epoch,
        failover_id: j.id.clone(),
        gtids: plan.missing_gtids.clone(),
        timeout_ms: (left().as_millis() as u32).max(1),
        after_gtid: pos.to_owned(),
        transaction_count: if plan.scanned {
            plan.transaction_count
        } else {
            0
        },
        events: Vec::new(),
    };
    let forward = async move {
        tx.send(header)
            .await
            .map_err(|_| "the candidate closed the apply stream".to_owned())?;
        let mut bytes = 0u64;
        while let Some(chunk) = stream.message().await.map_err(|s| s.message().to_owned())? {
            bytes += chunk.events.len() as u64;
            let events = ApplySalvageChunk {
                events: chunk.events,
                ..ApplySalvageChunk::default()
            };
            if tx.send(events).await.is_err() {
                break;
            }
        }
        Ok::<u64, String>(bytes)
    };
    let apply = cand.apply_salvage(ReceiverStream::new(rx));
    tokio::pin!(forward, apply);
    let mut forwarded = None;
    loop {
        tokio::select! {
            r = &mut forward, if forwarded.is_none() => match r {
                Ok(bytes) => forwarded = Some(bytes),
                // Dropping the apply cancels it: the candidate's client is killed and an
                // unfinished transaction rolls back.
                Err(e) => return Err(fail(Some(&plan), e)),
            },
            r = &mut apply => {
                return match (r, forwarded) {
                    (Ok(resp), Some(bytes)) => {
                        tracing::warn!(cluster = %view.name, failover_id = %j.id, bytes, transactions = plan.transaction_count, "salvaged events applied on the candidate");
                        Ok(Transfer { plan, applied: Some(resp.into_inner().gtid_executed) })
                    }
                    (Ok(_), None) => Err(fail(Some(&plan), "the candidate answered before the stream ended".into())),
                    (Err(s), _) => Err(Failed {
                        replan: s.code() == tonic::Code::FailedPrecondition
                            && s.message().contains("plan it again"),
                        ..fail(Some(&plan), format!("apply on the candidate: {}", s.message()))
                    }),
                };
            }
        }
    }
}

/// When the old primary's agent was last heard (its last heartbeat, or the monitor's
/// transition time).
fn last_heard(view: &ClusterView, j: &Journal) -> Option<u64> {
    let h = view.health.get(&j.old_primary)?;
    h.last_heartbeat_unix_ms.or(Some(h.since_unix_ms))
}
