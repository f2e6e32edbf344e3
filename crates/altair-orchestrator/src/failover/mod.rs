//! Running a failover from its journal (DESIGN §5). Each step is idempotent; the journal
//! is written after each one with a leadership-checked write, so a new leader resumes
//! where the old one stopped and nothing is done twice or left half-done.

use std::time::Duration;

use altair_core::failover::machine::{self, CandidateFence, Next, Outcome};
use altair_core::failover::{Journal, Kind, Step};
use altair_core::health::Health;
use altair_core::registry::{ClusterState, FailoverAudit, HealthRecord, HostRecord, to_json};
use altair_proto::v1::*;
use altair_zk::{Answer, Op, Read, ZkError};

use crate::agents::{AgentRpc, agent, endpoint, fresh_agent};
use crate::ctx::{Ctx, now_ms};
use crate::hooks::FenceHook;
use crate::view::ClusterView;

mod candidate;
mod drain;
mod journal_writer;
mod publish;
mod salvage;

use candidate::{
    candidate_agent, candidate_catch_up, candidate_record, choose_candidate, waiting_for_rejoin,
};
use journal_writer::JournalWriter;
use publish::{publish, reattach_old_primary};

const AGENT_TIMEOUT: Duration = Duration::from_secs(3);
pub(super) const SILENT_AGENT_TIMEOUT: Duration = Duration::from_millis(200);

/// Why a failover pass stopped short of the end.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// A journal or record write failed; `NotLeader` / `SessionExpired` mean this
    /// orchestrator must stop leading.
    #[error("journal: {0}")]
    Zk(#[from] ZkError),
    /// A step failed; the journal says when it is tried again.
    #[error("step {step}: {error}")]
    Step { step: &'static str, error: String },
}

/// Retries of a failing step (see `machine::backoff_ms`), and whether a host can be
/// fenced without its agent.
fn rules(ctx: &Ctx) -> machine::Rules {
    machine::Rules {
        retry_first_ms: 200,
        retry_max_ms: 10_000,
        fence_hook: !ctx.config.fence.command.is_empty(),
    }
}

/// When `run` would find the journal only waiting (its retry time, the self-fence
/// bound): until when, ms since the epoch. `None`: it acts now.
pub fn waits_until(view: &ClusterView, j: &Journal) -> Option<u64> {
    let abort = abort_reason(view, j);
    match machine::before(j, abort.as_deref(), now_ms()) {
        Next::RetryAt { at_ms, .. } => Some(at_ms),
        Next::AwaitSelfFence { until_ms } => Some(until_ms),
        _ => None,
    }
}

fn abort_reason(view: &ClusterView, j: &Journal) -> Option<String> {
    view.abort
        .as_ref()
        .filter(|a| a.failover_id == j.id)
        .map(|a| a.reason.clone())
}

/// Runs `journal` as far as it can go now: to the end, or until a step must wait (its
/// retry time, the old primary's self-fence bound); a later pass of the leader resumes
/// it from the journal. What to do next is decided by `altair_core::failover::machine`.
pub async fn run(ctx: &Ctx, view: &ClusterView, mut j: Journal) -> Result<(), FailoverError> {
    let mut abort = abort_reason(view, &j);
    let mut reread_abort = false;
    let mut journal = JournalWriter::new(ctx, ctx.zk.layout().failover_journal(&view.name));
    loop {
        // A fence hook may have held this pass for seconds, and a hook's success removes
        // the wait that would otherwise end the pass before promotion: an operator's
        // abort made meanwhile is read again after it.
        if std::mem::take(&mut reread_abort) && abort.is_none() {
            let path = ctx.zk.layout().failover_abort(&view.name);
            abort = ctx
                .zk
                .get_record::<altair_core::registry::AbortRequest>("abort request", &path)
                .await?
                .filter(|a| a.failover_id == j.id)
                .map(|a| a.reason);
        }
        let next = machine::before(&j, abort.as_deref(), now_ms());
        // Promotion and every way out run only on a written journal; the record deletes
        // it (a journal kept for it is dropped).
        match next {
            Next::Run(Step::Record) => journal.settle().await?,
            Next::Run(s) if s != Step::Promote => {}
            _ => journal.flush().await?,
        }
        let step = match next {
            Next::Run(step) => step,
            // `before` never asks to choose again; a later pass resumes these.
            Next::RetryAt { .. }
            | Next::AwaitSelfFence { .. }
            | Next::Finish
            | Next::Rechoose { .. }
            | Next::FenceCandidate { .. } => return Ok(()),
            Next::RollBack { reason } => return roll_back(ctx, view, j, reason).await,
            Next::Abort { reason } => return crate::abort::aborted(ctx, view, j, &reason).await,
            Next::Refuse { reason } => return crate::abort::refuse(ctx, view, j, &reason).await,
        };
        if abort.is_some() && !j.notes.iter().any(|n| n.starts_with(ABORT_REFUSED)) {
            j.notes.push(format!(
                "{ABORT_REFUSED}: promotion had started, so the failover goes on"
            ));
        }
        let started = now_ms();
        tracing::info!(cluster = %j.cluster, failover_id = %j.id, epoch = j.epoch, kind = j.kind.as_str(), step = step.as_str(), attempt = j.attempts + 1, "failover step");
        if step == Step::Record {
            return record(ctx, view, j, started).await;
        }
        let outcome = journal.during(run_step(ctx, view, &mut j, step)).await;
        reread_abort =
            step == Step::Fence && j.old_host_unreachable && !ctx.config.fence.command.is_empty();
        let mut now = now_ms();
        let mut next = machine::after(&j, step, &outcome, now, rules(ctx));
        if let Next::FenceCandidate { reason } = &next {
            let fenced = fence_lost_candidate(ctx, view, &mut j, reason).await;
            now = now_ms();
            next = machine::after_candidate_fence(&j, reason, fenced, now, rules(ctx));
        }
        if !matches!(next, Next::Run(_)) {
            journal.flush().await?;
        }
        match next {
            Next::Run(_) => {
                j.advance(step, started, now);
                // Once promoted, the fork point is worth having soon (a successor or a
                // failed record would otherwise redo the promotion); not waited for.
                if step == Step::Promote {
                    journal.submit_now(&j)?;
                } else {
                    journal.submit(&j)?;
                }
                if pause_requested(step) {
                    journal.flush().await?;
                    pause(step).await;
                }
                exit_if_requested(step);
            }
            Next::RetryAt { at_ms, .. } => {
                let error = failure(&outcome);
                crate::metrics::step_error(step.as_str());
                j.attempts += 1;
                j.retry_at_ms = Some(at_ms);
                j.last_error = error.clone();
                write_journal(ctx, view, &j).await?;
                tracing::error!(cluster = %j.cluster, failover_id = %j.id, step = step.as_str(), attempt = j.attempts, retry_in_ms = at_ms.saturating_sub(now), error = %error, "failover step failed; retried later");
                return Err(FailoverError::Step {
                    step: step.as_str(),
                    error,
                });
            }
            Next::RollBack { reason } => {
                crate::metrics::step_error(step.as_str());
                let reason = format!("step {}: {reason}", step.as_str());
                return roll_back(ctx, view, j, reason).await;
            }
            Next::Refuse { reason } => return crate::abort::refuse(ctx, view, j, &reason).await,
            Next::Rechoose { reason } => {
                crate::metrics::step_error(step.as_str());
                let lost = j.candidate.take().unwrap_or_default();
                tracing::error!(cluster = %j.cluster, failover_id = %j.id, step = step.as_str(), candidate = %lost, error = %reason, "candidate lost: choosing another");
                j.notes.push(format!(
                    "{reason} (at step {}): choosing another candidate",
                    step.as_str()
                ));
                j.lost_candidates.push(lost);
                // What the salvage found for the lost candidate is not the next one's.
                j.transactions_salvaged = 0;
                j.gtids_salvaged.clear();
                j.gtids_lost.clear();
                j.old_binlog_end.clear();
                j.step = Step::Choose;
                j.attempts = 0;
                j.retry_at_ms = None;
                j.last_error.clear();
                write_journal(ctx, view, &j).await?;
            }
            Next::Finish
            | Next::Abort { .. }
            | Next::AwaitSelfFence { .. }
            | Next::FenceCandidate { .. } => return Ok(()),
        }
    }
}

/// Runs the fence hook on the candidate lost during its promotion (`reason`), once
/// another host can be chosen in its place: what came of it. The journal's notes say
/// what happened.
async fn fence_lost_candidate(
    ctx: &Ctx,
    view: &ClusterView,
    j: &mut Journal,
    reason: &str,
) -> CandidateFence {
    let (name, record) = match (j.candidate.clone(), candidate_record(view, j)) {
        (Some(name), Ok(record)) => (name, record.clone()),
        _ => return CandidateFence::NotOff,
    };
    // Powering off the only host that could be promoted would leave the cluster without
    // a primary until someone powers it on: its promotion is retried instead.
    let mut without = j.clone();
    without.lost_candidates.push(name.clone());
    if let Err(e) = choose_candidate(ctx, view, &without).await {
        if !j.notes.iter().any(|n| n.starts_with(NO_OTHER_CANDIDATE)) {
            j.notes.push(format!(
                "{NO_OTHER_CANDIDATE} than {name} ({e}): its promotion is retried, the fence hook not run"
            ));
        }
        return CandidateFence::NoOtherCandidate;
    }
    let why = format!("lost during its promotion: {reason}");
    let hook_ms = ctx.config.fence.timeout_ms;
    match crate::hooks::fence_host(ctx, j, &name, &record, &why, hook_ms).await {
        FenceHook::Off { took_ms } => {
            j.notes.push(format!(
                "candidate {name} lost during its promotion; the fence hook powered it off in {took_ms} ms"
            ));
            j.fenced_candidates.push(name);
            CandidateFence::Off
        }
        FenceHook::Failed(e) => {
            j.notes.push(format!(
                "candidate {name} lost during its promotion; fence hook failed: {e}"
            ));
            CandidateFence::NotOff
        }
        FenceHook::None | FenceHook::NotNeeded => CandidateFence::NotOff,
    }
}

const NO_OTHER_CANDIDATE: &str = "no other candidate";

const ABORT_REFUSED: &str = "an operator's abort was refused";

fn failure(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Failed { error } | Outcome::CandidateLost { error, .. } => error.clone(),
        Outcome::Refused { reason } => reason.clone(),
        Outcome::Done => String::new(),
    }
}

/// Runs one step; the pre-failover hook runs once, before the first fence.
async fn run_step(ctx: &Ctx, view: &ClusterView, j: &mut Journal, step: Step) -> Outcome {
    if step == Step::Fence && !j.hook_ran {
        if let Err(reason) = crate::hooks::pre_failover(ctx, j).await {
            return Outcome::Refused { reason };
        }
        j.hook_ran = true;
    }
    match execute(ctx, view, j, step).await {
        Ok(()) => Outcome::Done,
        Err(error) => candidate_lost(view, j, step, error).await,
    }
}

/// A switchover that cannot finish before promotion: journaled as rolling back (so a new
/// leader finishes the roll-back), then the old primary is made writable again.
async fn roll_back(
    ctx: &Ctx,
    view: &ClusterView,
    mut j: Journal,
    reason: String,
) -> Result<(), FailoverError> {
    if j.aborting.is_none() {
        j.aborting = Some(reason);
        write_journal(ctx, view, &j).await?;
    }
    crate::abort::abort(ctx, view, j).await
}

async fn write_journal(ctx: &Ctx, view: &ClusterView, j: &Journal) -> Result<(), ZkError> {
    ctx.write(&[Op::Set {
        path: ctx.zk.layout().failover_journal(&view.name),
        data: to_json(j),
        version: None,
    }])
    .await
}

/// Test-only: `ALTAIR_TEST_PAUSE_AFTER_STEP=fence` holds the failover after that step
/// (for the "leader dies mid-failover" test). Never set in production.
/// A test's pause point after `step` (its journal written first, as a leader that
/// dies there may leave it).
fn pause_requested(step: Step) -> bool {
    std::env::var("ALTAIR_TEST_PAUSE_AFTER_STEP").is_ok_and(|s| s == step.as_str())
}

/// Test-only: `ALTAIR_TEST_EXIT_AFTER_STEP=catch_up` ends the process right after that
/// step, its journal kept but not written: a leader dying inside the window where
/// ZooKeeper's journal is behind the work done. Never set in production.
fn exit_if_requested(step: Step) {
    if std::env::var("ALTAIR_TEST_EXIT_AFTER_STEP").is_ok_and(|s| s == step.as_str()) {
        tracing::warn!(
            step = step.as_str(),
            "test exit point: the process ends now, its journal unwritten"
        );
        std::process::exit(86);
    }
}

async fn pause(step: Step) {
    tracing::warn!(
        step = step.as_str(),
        "test pause point: holding the failover for 120 s"
    );
    tokio::time::sleep(Duration::from_secs(120)).await;
}

/// How long the DNS update sent beside the repoints may take before it is left to the
/// publish step.
const EARLY_PUBLISH: Duration = Duration::from_secs(1);

async fn execute(ctx: &Ctx, view: &ClusterView, j: &mut Journal, step: Step) -> Result<(), String> {
    let old = view
        .hosts
        .get(&j.old_primary)
        .ok_or("the old primary is not registered")?
        .clone();
    match step {
        Step::Fence => {
            let mode = fence_mode(ctx, j);
            if j.kind == Kind::Switchover {
                drain::drain_before_fence(ctx, view, j).await;
            }
            // A silent agent gets a short chance to answer the dial; once connected its
            // fence has the time it needs (cut short, it would be cut short again at
            // every retry).
            match host_agent(view, &j.old_primary, &old.agent, AGENT_TIMEOUT).await {
                Ok(mut a) => {
                    let r = a
                        .fence(FenceRequest {
                            epoch: j.epoch,
                            mode: mode as i32,
                            failover_id: j.id.clone(),
                            // A switchover never kills: it rolls back instead.
                            allow_kill: j.kind != Kind::Switchover,
                        })
                        .await
                        .map_err(|s| {
                            format!(
                                "fence through the agent of {}: {}",
                                j.old_primary,
                                s.message()
                            )
                        })?
                        .into_inner();
                    let how = match FenceOutcome::try_from(r.outcome) {
                        Ok(FenceOutcome::NotRunning) => "mysqld not running".to_owned(),
                        Ok(FenceOutcome::ReadOnly) => format!(
                            "read_only, {} client connections killed",
                            r.connections_killed
                        ),
                        // An agent that does not say what it achieved did not fence.
                        _ => {
                            return Err(format!(
                                "the agent of {} answered the fence without an outcome",
                                j.old_primary
                            ));
                        }
                    };
                    j.notes.push(format!(
                        "{} fenced through its agent ({how})",
                        j.old_primary
                    ));
                    j.fenced_gtid = r.gtid_executed;
                }
                Err(e) if j.kind == Kind::Switchover => return Err(e),
                Err(e) => {
                    // What ZooKeeper says of the old primary now: the view may predate a
                    // later heartbeat (a host whose agent answered then, silent since).
                    let (health, record) = old_primary_now(ctx, view, j).await?;
                    // Its agent still heard by the monitors (a stalled primary, one whose
                    // mysqld looks down to its agent, a link back up) keeps its lease: it
                    // will not fence itself. Only its agent or the fence hook can fence
                    // it; once no monitor hears it, its lease lapses and its record's
                    // last heartbeat dates the self-fencing bound.
                    if let Some(h) = health.as_ref().filter(|h| h.health != Health::Unreachable) {
                        let why = format!(
                            "{e} (its agent is still heard by the monitors, health {}: it keeps its lease and will not fence itself, so its fence is retried, never left to self-fencing)",
                            h.health
                        );
                        let hook_ms = ctx.config.fence.timeout_ms;
                        return match crate::hooks::fence(ctx, j, &old, &e, hook_ms).await {
                            FenceHook::Off { took_ms } => {
                                j.notes.push(format!(
                                    "{e}; the fence hook powered {} off in {took_ms} ms",
                                    j.old_primary
                                ));
                                j.promote_not_before_ms = None;
                                Ok(())
                            }
                            FenceHook::Failed(hook) => {
                                Err(format!("{why}; fence hook failed: {hook}"))
                            }
                            FenceHook::None | FenceHook::NotNeeded => Err(why),
                        };
                    }
                    j.old_host_unreachable = true;
                    // No replica said when it last heard from the old primary's host:
                    // now stands in (each that answered the verification could not
                    // reach it before).
                    let failsafe_until = j.failsafe_heard_until_ms.unwrap_or_else(now_ms);
                    let wait = self_fence_wait(
                        record.as_ref().unwrap_or(&old),
                        health.as_ref(),
                        failsafe_until,
                    );
                    let left = wait.saturating_sub(now_ms());
                    match crate::hooks::fence(ctx, j, &old, &e, left).await {
                        FenceHook::Off { took_ms } => {
                            j.notes.push(format!(
                                "{e}; the fence hook powered {} off in {took_ms} ms: promotion does not wait for its self-fencing",
                                j.old_primary
                            ));
                            j.promote_not_before_ms = None;
                            return Ok(());
                        }
                        FenceHook::Failed(why) => j.notes.push(format!("fence hook failed: {why}")),
                        FenceHook::NotNeeded => j.notes.push(
                            "fence hook not run: the self-fencing bound had already passed".into(),
                        ),
                        FenceHook::None => {}
                    }
                    let left = wait.saturating_sub(now_ms());
                    j.notes.push(format!(
                        "{e}: relying on its self-fencing: promotion held until {wait} ms since the epoch"
                    ));
                    if left > 0 {
                        tracing::warn!(old_primary = %j.old_primary, wait_ms = left, "promotion waits for the old primary's self-fencing bound; choose and catch-up go on meanwhile");
                    }
                    j.promote_not_before_ms = Some(wait);
                }
            }
            Ok(())
        }
        Step::Choose => {
            // A switchover keeps the candidate it drained, if it still qualifies.
            let drained = match (&j.drained, &j.target) {
                (Some(d), None) => {
                    let mut with = j.clone();
                    with.target = Some(d.clone());
                    choose_candidate(ctx, view, &with).await.ok()
                }
                _ => None,
            };
            let chosen = match drained {
                Some(c) => c,
                None => choose_candidate(ctx, view, j).await?,
            };
            j.notes.push(format!("candidate {chosen}"));
            j.candidate = Some(chosen);
            Ok(())
        }
        Step::CatchUp => {
            // A switchover waits for everything the fenced primary has, within its bound.
            let (gtid, timeout) = match j.kind {
                Kind::Switchover => (
                    j.fenced_gtid.clone(),
                    ctx.config.orchestrator.switchover_catch_up_timeout_ms as u32,
                ),
                _ => (
                    String::new(),
                    ctx.config.orchestrator.catch_up_timeout_ms as u32,
                ),
            };
            let r = candidate_catch_up(view, j, &gtid, timeout).await?;
            if r.caught_up {
                Ok(())
            } else {
                Err(format!(
                    "the candidate did not apply {} within {timeout} ms",
                    if gtid.is_empty() {
                        "its relay log".to_owned()
                    } else {
                        gtid
                    }
                ))
            }
        }
        Step::Salvage if j.kind == Kind::Switchover => {
            j.notes
                .push("planned: the candidate has every transaction of the old primary".into());
            Ok(())
        }
        Step::Salvage => salvage::salvage(ctx, view, j).await,
        Step::Promote => {
            if j.old_host_unreachable {
                failsafe_still_quiet(ctx, view, j, &old).await?;
                fence_again_if_back(ctx, view, j, &old.agent).await?;
            }
            let mut c = candidate_agent(view, j).await?;
            let r = c
                .promote(PromoteRequest {
                    epoch: j.epoch,
                    failover_id: j.id.clone(),
                })
                .await
                .map_err(|s| s.message().to_owned())?;
            j.fork_gtid = r.into_inner().gtid_executed;
            Ok(())
        }
        Step::Repoint => {
            let new = candidate_record(view, j)?;
            let source = endpoint(&new.mysql).ok_or("bad candidate address")?;
            let waiting = waiting_for_rejoin(view);
            // Every other replica at once: one that does not answer delays nobody.
            let repoints = view
                .hosts
                .iter()
                .filter(|(name, _)| {
                    **name != j.old_primary
                        && Some(*name) != j.candidate.as_ref()
                        && !waiting.contains(*name)
                })
                .map(|(name, h)| {
                    let (source, epoch) = (source.clone(), j.epoch);
                    async move {
                        let result = async {
                            // Connected, a repoint gets its whole time: cut between
                            // CHANGE MASTER and START SLAVE it would leave replication
                            // stopped.
                            let mut a = host_agent(view, name, &h.agent, AGENT_TIMEOUT).await?;
                            a.repoint(RepointRequest {
                                epoch,
                                source: Some(source),
                                use_current_pos: false,
                            })
                            .await
                            .map_err(|s| s.message().to_owned())
                        }
                        .await;
                        (name, result)
                    }
                });
            // The DNS update goes out beside the repoints, not after them: the new primary
            // is promoted and the old one fenced, so clients may move now (DESIGN §6:
            // "DNS moves only after the old primary is fenced"), and the repoints are
            // off the write-pause path. `Publish` then checks that the name answers the
            // new primary (a few queries when it already does) and retries a failed update.
            // Bounded: a slow DNS server must not hold the repoint step for the whole
            // check loop and then again in `Publish`.
            let mut early = j.clone();
            let (repointed, published) = tokio::join!(
                futures_util::future::join_all(repoints),
                tokio::time::timeout(EARLY_PUBLISH, publish::publish_dns(ctx, view, &mut early))
            );
            let published = published.unwrap_or_else(|_| {
                Err(format!("no answer within {} ms", EARLY_PUBLISH.as_millis()))
            });
            for (name, result) in repointed {
                if let Err(e) = result {
                    j.notes.push(format!("{name} not repointed: {e}"));
                }
            }
            if let Err(e) = published {
                tracing::warn!(cluster = %view.name, error = %e, "the DNS update beside the repoints failed; the publish step retries it");
            }
            Ok(())
        }
        Step::Publish => {
            publish(ctx, view, j).await?;
            // Off the write-pause path: clients already reach the new primary.
            if j.kind == Kind::Switchover {
                reattach_old_primary(view, j, &old).await;
            }
            Ok(())
        }
        Step::Record | Step::Done => Ok(()),
    }
}

/// How the old primary is fenced through its agent (a switchover only ever makes it
/// read-only).
fn fence_mode(ctx: &Ctx, j: &Journal) -> FenceMode {
    match ctx.config.orchestrator.fence_mode {
        _ if j.kind == Kind::Switchover => FenceMode::ReadOnly,
        altair_core::config::FenceMode::ReadOnly => FenceMode::ReadOnly,
        altair_core::config::FenceMode::StopMysqld => FenceMode::StopMysqld,
    }
}

/// Right before promoting around an old primary left to its self-fencing: have its
/// failsafe rounds stopped when the wait assumed? A replica that accepted a connection
/// from its host later than the verification heard (the primary still reaches every
/// replica — its mysqld only looked down — or its cut from a replica healed) moves the
/// wait to that time + the bound; promotion waits again (for as long as it goes on: such a
/// primary is writable and reachable by every replica, the cluster has one).
async fn failsafe_still_quiet(
    ctx: &Ctx,
    view: &ClusterView,
    j: &mut Journal,
    old: &HostRecord,
) -> Result<(), String> {
    let Some(heard) =
        crate::leader::failsafe_heard_until(view, &j.old_primary, SILENT_AGENT_TIMEOUT * 3).await
    else {
        return Ok(());
    };
    if j.failsafe_heard_until_ms.is_some_and(|t| heard <= t) {
        return Ok(());
    }
    let (health, record) = old_primary_now(ctx, view, j).await?;
    let wait = self_fence_wait(record.as_ref().unwrap_or(old), health.as_ref(), heard);
    if wait <= now_ms() {
        j.failsafe_heard_until_ms = Some(heard);
        return Ok(());
    }
    j.failsafe_heard_until_ms = Some(heard);
    j.promote_not_before_ms = Some(wait);
    Err(format!(
        "a replica heard from {}'s host at {heard} ms since the epoch, after the wait began: its self-fencing is counted from then, promotion held until {wait}",
        j.old_primary
    ))
}

/// Right before promoting around an old primary whose agent did not answer its fence:
/// a partition that healed before the old primary's self-fencing bound left it writable
/// (its contact came back in time, so it never fenced). Its agent, answering again, is
/// asked to fence it now, and promotion waits until it has (or until its own status
/// shows it read-only or its mysqld down); only an agent that cannot be dialled is out
/// of reach — it has been without contact past its bound (promotion waited for that)
/// and has fenced itself — and only while no monitor hears it either.
async fn fence_again_if_back(
    ctx: &Ctx,
    view: &ClusterView,
    j: &mut Journal,
    address: &str,
) -> Result<(), String> {
    let Ok(mut a) = host_agent(view, &j.old_primary, address, AGENT_TIMEOUT).await else {
        // Out of reach of the orchestrator: fine while no monitor hears it either (one
        // that does keeps its lease and never fences itself).
        let (health, _) = old_primary_now(ctx, view, j).await?;
        return match health {
            Some(h) if h.health != Health::Unreachable => Err(format!(
                "{} is heard by the monitors again (health {}) but its agent cannot be reached: not promoting",
                j.old_primary, h.health
            )),
            _ => Ok(()),
        };
    };
    let answer = a
        .fence(FenceRequest {
            epoch: j.epoch,
            mode: fence_mode(ctx, j) as i32,
            failover_id: j.id.clone(),
            allow_kill: true,
        })
        .await;
    let refused = match answer {
        Ok(r) => match FenceOutcome::try_from(r.into_inner().outcome) {
            Ok(FenceOutcome::NotRunning | FenceOutcome::ReadOnly) => {
                j.notes.push(format!(
                    "{} answered again before promotion: fenced through its agent then",
                    j.old_primary
                ));
                return Ok(());
            }
            _ => "answered without saying it fenced".to_owned(),
        },
        Err(s) => s.message().to_owned(),
    };
    // It did not fence now (an epoch it cannot check without ZooKeeper, say): fine if it
    // is read-only already (its self-fence fired) or its mysqld is down.
    let fenced = match a.status(StatusRequest {}).await {
        Ok(r) => r
            .into_inner()
            .snapshot
            .is_some_and(|s| !s.reachable || s.read_only),
        Err(_) => false,
    };
    if fenced {
        j.notes.push(format!(
            "{} answered again before promotion, already read-only (its fence: {refused})",
            j.old_primary
        ));
        return Ok(());
    }
    Err(format!(
        "the agent of {} answers again but did not fence it ({refused}): not promoting",
        j.old_primary
    ))
}

/// How long to wait for a host's agent: short for one its monitor already reports silent.
/// The agent of `host` at `address`. One its monitor reports silent gets a short
/// chance only, over a fresh connection: a cached one may be what a partition left
/// dead, on which a request can only time out, while a fresh dial tells "unreachable".
/// `request` is the deadline of a request to a silent one once it is connected.
pub(super) async fn host_agent(
    view: &ClusterView,
    host: &str,
    address: &str,
    request: Duration,
) -> Result<AgentRpc, String> {
    let silent = view
        .health
        .get(host)
        .is_some_and(|h| h.health == altair_core::health::Health::Unreachable);
    if silent {
        fresh_agent(address, SILENT_AGENT_TIMEOUT, request).await
    } else {
        agent(address, AGENT_TIMEOUT).await
    }
}

/// When the isolated old primary has provably fenced itself (`altair_core::selffence`):
/// the later of its last heartbeat (or, when unknown, the monitor's later transition
/// time) and the last connection a replica's agent accepted from its host
/// (`failsafe_until_ms`: its failsafe rounds), + its declared bound + probe + margin. An
/// agent that declares no bound gets a conservative 60 s. `health` is its record read
/// just now: one read when the failover started may predate a later heartbeat (a host
/// whose agent answered then and fell silent since).
fn self_fence_wait(
    host: &HostRecord,
    health: Option<&HealthRecord>,
    failsafe_until_ms: u64,
) -> u64 {
    let last = health
        .and_then(|h| h.last_heartbeat_unix_ms)
        .or(health.map(|h| h.since_unix_ms))
        .unwrap_or_else(now_ms);
    match host.self_fence_after_ms.zip(host.probe_interval_ms) {
        Some((bound, probe)) => {
            altair_core::selffence::earliest_promotion_ms(last, failsafe_until_ms, bound, probe)
        }
        None => last.max(failsafe_until_ms) + 60_000,
    }
}

/// The old primary's health and host records as ZooKeeper has them now (read together).
async fn old_primary_now(
    ctx: &Ctx,
    view: &ClusterView,
    j: &Journal,
) -> Result<(Option<HealthRecord>, Option<HostRecord>), String> {
    let host = altair_core::HostName::new(j.old_primary.clone())
        .map_err(|e| format!("old primary {}: {e}", j.old_primary))?;
    let l = ctx.zk.layout();
    let (health, record) = (l.host_health(&view.name, &host), l.host(&view.name, &host));
    let answers = ctx
        .zk
        .read_all(&[Read::Data(&health), Read::Data(&record)])
        .await
        .map_err(|e: ZkError| format!("reading the records of {}: {e}", j.old_primary))?;
    let mut answers = answers.into_iter();
    let mut next = || answers.next().unwrap_or(Answer::Data(None));
    Ok((
        next().into_record::<HealthRecord>("health", &health),
        next().into_record::<HostRecord>("host", &record),
    ))
}

/// After a failed catch-up, salvage or promotion: is it the candidate that is gone (its
/// agent does not answer a status call)? Then the machine decides (before promotion it
/// chooses another: never asked to promote, it is read-only; during promotion it may be
/// writable, so only a fence without its agent lets it be replaced).
async fn candidate_lost(view: &ClusterView, j: &Journal, step: Step, error: String) -> Outcome {
    if !matches!(step, Step::CatchUp | Step::Salvage | Step::Promote) {
        return Outcome::Failed { error };
    }
    let Some(name) = j.candidate.clone() else {
        return Outcome::Failed { error };
    };
    let address = match candidate_record(view, j) {
        Ok(h) => h.agent.clone(),
        Err(_) => return Outcome::Failed { error },
    };
    let answers = match agent(&address, Duration::from_secs(1)).await {
        Ok(mut a) => a.status(StatusRequest {}).await.is_ok(),
        Err(_) => false,
    };
    if answers {
        return Outcome::Failed { error };
    }
    Outcome::CandidateLost {
        error: format!("candidate {name} does not answer: {error}"),
    }
}

/// The last step: the new topology, the audit record and the end of the journal, in one
/// leadership-checked write.
async fn record(
    ctx: &Ctx,
    view: &ClusterView,
    mut j: Journal,
    started: u64,
) -> Result<(), FailoverError> {
    let now = now_ms();
    j.advance(Step::Record, started, now);
    let audit = FailoverAudit {
        outcome: "succeeded".into(),
        new_primary: j.candidate.clone(),
        finished_at_ms: now,
        total_ms: now.saturating_sub(j.started_at_ms),
        detail: j.notes.join("; "),
        journal: j.clone(),
    };
    // The state as this pass read it, written only if it did not change meanwhile; if
    // it did (an operator's ack during the failover), as it is now.
    let l = ctx.zk.layout();
    let mut tries = 0;
    let mut known = view.state.clone().map(|(s, v)| (s, Some(v)));
    loop {
        let (base, version) = match known.take() {
            Some(known) => known,
            None => match ctx.zk.get_versioned(&l.cluster_state(&view.name)).await? {
                Some((bytes, v)) => (
                    altair_core::registry::from_json::<ClusterState>("cluster state", &bytes)
                        .map_err(|detail| ZkError::Conflict { detail })?,
                    Some(v),
                ),
                None => (ClusterState::default(), None),
            },
        };
        let state = after_failover(&base, &j, now);
        let mut ops = closing_ops(ctx, view, &audit);
        ops.push(match version {
            Some(v) => Op::Set {
                path: l.cluster_state(&view.name),
                data: to_json(&state),
                version: Some(v),
            },
            None => Op::Create {
                path: l.cluster_state(&view.name),
                data: to_json(&state),
            },
        });
        match ctx.write(&ops).await {
            Ok(()) => break,
            // Three tries on a state read afresh, after the one on the state known.
            Err(ZkError::Conflict { .. }) if tries < 4 => {
                tries += 1;
                ensure_history(ctx, view).await?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    tracing::warn!(
        cluster = %view.name, failover_id = %j.id, epoch = j.epoch, kind = j.kind.as_str(),
        old_primary = %j.old_primary, new_primary = ?j.candidate,
        salvaged = j.transactions_salvaged, total_ms = audit.total_ms,
        "failover complete"
    );
    crate::metrics::observe_failover(&audit);
    crate::hooks::post_failover(ctx, &audit).await;
    Ok(())
}

/// The cluster state a finished failover leaves: the new primary and epoch; the old
/// primary waits for rejoin (unless a switchover re-attached it). Only an automatic
/// failover starts the anti-flapping period: operators' actions are deliberate.
fn after_failover(base: &ClusterState, j: &Journal, now: u64) -> ClusterState {
    let mut state = base.clone();
    state.epoch = j.epoch;
    state.primary = j.candidate.clone();
    state.failover_blocked = None;
    if j.kind == Kind::Automatic {
        state.last_failover_ms = Some(now);
        state.acknowledged = false;
    }
    if let Some(new) = &j.candidate {
        state.rejoined(new);
    }
    // A new topology: every replica was repointed; earlier old primaries feed no one.
    state.former_forks.clear();
    if !j.old_primary_rejoined && !state.needs_rejoin.contains(&j.old_primary) {
        state.needs_rejoin.push(j.old_primary.clone());
        state
            .rejoin_fork
            .insert(j.old_primary.clone(), j.fork_gtid.clone());
        state.fork_epoch.insert(j.old_primary.clone(), j.epoch);
    }
    // A candidate powered off during its promotion may have been writable: when it comes
    // back it rejoins from the new primary's fork point, as the old primary does.
    for fenced in &j.fenced_candidates {
        if Some(fenced) != j.candidate.as_ref() && !state.needs_rejoin.contains(fenced) {
            state.needs_rejoin.push(fenced.clone());
            state
                .rejoin_fork
                .insert(fenced.clone(), j.fork_gtid.clone());
            state.fork_epoch.insert(fenced.clone(), j.epoch);
        }
    }
    state.tidy_fork_epochs();
    state
}

/// The end of a failover in ZooKeeper: its audit record written and its journal removed
/// (to be written in one multi-op with whatever else changes).
/// A closing write that conflicted may have found no history parent (a cluster whose
/// parent was removed, or registered by an older layout): create it, so the record is
/// not refused forever. An empty parent is harmless, so no leadership check is needed.
pub(crate) async fn ensure_history(ctx: &Ctx, view: &ClusterView) -> Result<(), ZkError> {
    let path = ctx.zk.layout().history(&view.name);
    if !ctx.zk.exists(&path).await? {
        tracing::warn!(cluster = %view.name, path = %path, "the cluster's history parent is missing: creating it");
        ctx.zk.ensure_path(&path).await?;
    }
    Ok(())
}

pub(crate) fn closing_ops(ctx: &Ctx, view: &ClusterView, audit: &FailoverAudit) -> Vec<Op> {
    let l = ctx.zk.layout();
    let mut ops = vec![
        Op::Create {
            path: l.history_entry(&view.name, &audit.journal.id),
            data: to_json(audit),
        },
        Op::Delete {
            path: l.failover_journal(&view.name),
            version: None,
        },
    ];
    if view.abort.is_some() {
        ops.push(Op::Delete {
            path: l.failover_abort(&view.name),
            version: None,
        });
    }
    let retention = ctx.config.orchestrator.retention();
    for id in altair_core::registry::history_to_prune(&view.history, retention, now_ms(), 20) {
        ops.push(Op::Delete {
            path: l.history_entry(&view.name, &id),
            version: None,
        });
    }
    ops
}
