//! A switchover's drain before the write pause: the candidate applies what the primary
//! has while writes still flow, in rounds (wait for the primary's position of that
//! instant), until one round is short — then fencing leaves only a small rest to apply
//! with writes paused. Best effort: a failure here only means a longer pause later.

use std::time::{Duration, Instant};

use altair_core::failover::Journal;
use altair_proto::v1::CatchUpRequest;

use super::candidate::choose_candidate;
use crate::agents::agent;
use crate::ctx::Ctx;
use crate::view::ClusterView;

/// Rounds at most: under a write rate the candidate cannot keep up with, stop anyway.
const MAX_ROUNDS: u32 = 6;

pub(super) async fn drain_before_fence(ctx: &Ctx, view: &ClusterView, j: &mut Journal) {
    let o = &ctx.config.orchestrator;
    let budget = Duration::from_millis(o.switchover_drain_timeout_ms);
    if budget.is_zero() {
        return;
    }
    let chosen = match choose_candidate(ctx, view, j).await {
        Ok(c) => c,
        Err(e) => {
            j.notes.push(format!("no drain before fencing: {e}"));
            return;
        }
    };
    let close = Duration::from_millis(o.switchover_drain_close_ms);
    let started = Instant::now();
    let mut rounds = 0;
    let outcome = loop {
        let left = budget.saturating_sub(started.elapsed());
        if left.is_zero() || rounds == MAX_ROUNDS {
            break "its budget ran out";
        }
        rounds += 1;
        let round = Instant::now();
        let Ok(pos) = position(view, j, &j.old_primary, "", 1_000).await else {
            break "the primary's position could not be read";
        };
        let wait_ms = left.as_millis().clamp(1, 600_000) as u32;
        match position(view, j, &chosen, &pos, wait_ms).await {
            Ok(_) if round.elapsed() < close => break "it is close behind",
            Ok(_) => {}
            Err(_) => break "the candidate did not catch up in time",
        }
    };
    j.notes.push(format!(
        "drained {chosen} before fencing: {rounds} round(s) in {} ms, stopped because {outcome}",
        started.elapsed().as_millis()
    ));
    j.drained = Some(chosen);
}

/// `host` waits until it applied `gtid` (empty: answers its position at once).
async fn position(
    view: &ClusterView,
    j: &Journal,
    host: &str,
    gtid: &str,
    timeout_ms: u32,
) -> Result<String, String> {
    let h = view.hosts.get(host).ok_or("not registered")?;
    let deadline = Duration::from_millis(u64::from(timeout_ms) + 2_000);
    let mut a = agent(&h.agent, deadline).await?;
    let r = a
        .catch_up(CatchUpRequest {
            epoch: j.epoch,
            gtid: gtid.to_owned(),
            timeout_ms,
        })
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    if r.caught_up {
        Ok(r.gtid_executed)
    } else {
        Err("not caught up".into())
    }
}
