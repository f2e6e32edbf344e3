//! Running a failover from its journal (DESIGN §5). Each step is idempotent; the journal
//! is written after each one with a leadership-checked write, so a new leader resumes
//! where the old one stopped and nothing is done twice or left half-done.

use std::net::Ipv4Addr;
use std::time::Duration;

use altair_core::failover::{Candidate, CandidateRules, Journal, Kind, Step, choose};
use altair_core::gtid::{Flavor, GtidState};
use altair_core::registry::{ClusterState, FailoverAudit, to_json};
use altair_proto::v1::*;
use altair_zk::Op;

use crate::agents::{agent, endpoint};
use crate::ctx::{Ctx, now_ms};
use crate::view::ClusterView;

const AGENT_TIMEOUT: Duration = Duration::from_secs(3);
const SILENT_AGENT_TIMEOUT: Duration = Duration::from_millis(500);
const CATCH_UP_TIMEOUT_MS: u32 = 30_000;

/// Runs `journal` to the end. An error leaves the journal at the failed step; the
/// leader retries it on its next pass.
pub async fn run(ctx: &Ctx, view: &ClusterView, mut journal: Journal) -> Result<(), String> {
    if journal.aborting.is_some() {
        return crate::abort::abort(ctx, view, journal).await;
    }
    while journal.step != Step::Done {
        let step = journal.step;
        let started = now_ms();
        tracing::info!(cluster = %journal.cluster, failover_id = %journal.id, epoch = journal.epoch, kind = journal.kind.as_str(), step = step.as_str(), "failover step");
        if step == Step::Record {
            return record(ctx, view, journal, started).await;
        }
        if step == Step::Fence
            && let Err(e) = crate::hooks::pre_failover(ctx, &journal).await
        {
            return crate::abort::refuse(ctx, view, journal, &e).await;
        }
        if let Err(e) = execute(ctx, view, &mut journal, step).await {
            let e = format!("step {}: {e}", step.as_str());
            crate::metrics::step_error(step.as_str());
            // A switchover not yet promoted is rolled back rather than retried: the
            // primary must not stay read-only for long.
            if journal.kind == Kind::Switchover && step < Step::Promote {
                journal.aborting = Some(e);
                ctx.write(&[Op::Set {
                    path: ctx.zk.layout().failover_journal(&view.name),
                    data: to_json(&journal),
                    version: None,
                }])
                .await
                .map_err(|e| format!("journal: {e}"))?;
                return crate::abort::abort(ctx, view, journal).await;
            }
            return Err(e);
        }
        journal.advance(step, started, now_ms());
        ctx.write(&[Op::Set {
            path: ctx.zk.layout().failover_journal(&view.name),
            data: to_json(&journal),
            version: None,
        }])
        .await
        .map_err(|e| format!("journal step {}: {e}", step.as_str()))?;
        pause_point(step).await;
    }
    Ok(())
}

/// Test-only: `ALTAIR_TEST_PAUSE_AFTER_STEP=fence` holds the failover after that step
/// (for the "leader dies mid-failover" test). Never set in production.
async fn pause_point(step: Step) {
    if std::env::var("ALTAIR_TEST_PAUSE_AFTER_STEP").is_ok_and(|s| s == step.as_str()) {
        tracing::warn!(
            step = step.as_str(),
            "test pause point: holding the failover for 120 s"
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
}

async fn execute(ctx: &Ctx, view: &ClusterView, j: &mut Journal, step: Step) -> Result<(), String> {
    let old = view
        .hosts
        .get(&j.old_primary)
        .ok_or("the old primary is not registered")?
        .clone();
    match step {
        Step::Fence => {
            let mode = match ctx.config.orchestrator.fence_mode {
                _ if j.kind == Kind::Switchover => FenceMode::ReadOnly,
                altair_core::config::FenceMode::ReadOnly => FenceMode::ReadOnly,
                altair_core::config::FenceMode::StopMysqld => FenceMode::StopMysqld,
            };
            // An agent its monitor already reports silent gets a short chance only.
            let silent = view
                .health
                .get(&j.old_primary)
                .is_some_and(|h| h.health == altair_core::health::Health::Unreachable);
            let timeout = if silent {
                SILENT_AGENT_TIMEOUT
            } else {
                AGENT_TIMEOUT
            };
            match agent(&old.agent, timeout).await {
                Ok(mut a) => {
                    let r = a
                        .fence(FenceRequest {
                            epoch: j.epoch,
                            mode: mode as i32,
                            failover_id: j.id.clone(),
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
                    j.notes.push(format!(
                        "{} fenced through its agent ({} client connections killed)",
                        j.old_primary, r.connections_killed
                    ));
                    j.fenced_gtid = r.gtid_executed;
                }
                Err(e) if j.kind == Kind::Switchover => return Err(e),
                Err(e) => {
                    j.old_host_unreachable = true;
                    let wait = self_fence_wait(view, j);
                    j.notes.push(format!(
                        "{e}: relying on its self-fencing: promotion held until {} ms since the epoch",
                        wait
                    ));
                    let left = wait.saturating_sub(now_ms());
                    if left > 0 {
                        tracing::warn!(old_primary = %j.old_primary, wait_ms = left, "waiting for the old primary's self-fencing bound");
                        tokio::time::sleep(Duration::from_millis(left)).await;
                    }
                }
            }
            Ok(())
        }
        Step::Choose => {
            let chosen = choose_candidate(ctx, view, j).await?;
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
                _ => (String::new(), CATCH_UP_TIMEOUT_MS),
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
        Step::Salvage => salvage(view, j).await,
        Step::Promote => {
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
            for (name, h) in &view.hosts {
                if *name == j.old_primary
                    || Some(name) == j.candidate.as_ref()
                    || waiting.contains(name)
                {
                    continue;
                }
                let result = async {
                    let mut a = agent(&h.agent, AGENT_TIMEOUT).await?;
                    a.repoint(RepointRequest {
                        epoch: j.epoch,
                        source: Some(source.clone()),
                        use_current_pos: false,
                    })
                    .await
                    .map_err(|s| s.message().to_owned())
                }
                .await;
                if let Err(e) = result {
                    j.notes.push(format!("{name} not repointed: {e}"));
                }
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

/// A switchover's old primary becomes a replica of the new one (errant check first);
/// when it cannot, it waits for rejoin like a failed-over one.
async fn reattach_old_primary(
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

/// When the isolated old primary has provably fenced itself: its last heartbeat (or, when
/// unknown, the monitor's later transition time) + its declared bound + probe + margin.
/// An agent that declares no bound gets a conservative 60 s.
fn self_fence_wait(view: &ClusterView, j: &Journal) -> u64 {
    let health = view.health.get(&j.old_primary);
    let last = health
        .and_then(|h| h.last_heartbeat_unix_ms)
        .or(health.map(|h| h.since_unix_ms))
        .unwrap_or_else(now_ms);
    let host = view.hosts.get(&j.old_primary);
    match host.and_then(|h| h.self_fence_after_ms.zip(h.probe_interval_ms)) {
        Some((bound, probe)) => altair_core::selffence::earliest_promotion_ms(last, bound, probe),
        None => last + 60_000,
    }
}

fn candidate_record<'a>(
    view: &'a ClusterView,
    j: &Journal,
) -> Result<&'a altair_core::registry::HostRecord, String> {
    let name = j.candidate.as_ref().ok_or("no candidate chosen")?;
    view.hosts
        .get(name)
        .ok_or_else(|| format!("candidate {name} is not registered"))
}

async fn candidate_agent(
    view: &ClusterView,
    j: &Journal,
) -> Result<agent_client::AgentClient<tonic::transport::Channel>, String> {
    agent(&candidate_record(view, j)?.agent, AGENT_TIMEOUT).await
}

/// Asks the candidate to apply everything it received (idempotent: a caught-up candidate
/// answers at once with its position).
async fn candidate_catch_up(
    view: &ClusterView,
    j: &Journal,
    gtid: &str,
    timeout_ms: u32,
) -> Result<CatchUpResponse, String> {
    let mut c = candidate_agent(view, j).await?;
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
fn waiting_for_rejoin(view: &ClusterView) -> Vec<String> {
    view.state
        .as_ref()
        .map(|(s, _)| s.needs_rejoin.clone())
        .unwrap_or_default()
}

async fn choose_candidate(ctx: &Ctx, view: &ClusterView, j: &Journal) -> Result<String, String> {
    let old = &view.hosts[&j.old_primary];
    let waiting = waiting_for_rejoin(view);
    if let Some(t) = &j.target
        && (!view.hosts.contains_key(t) || *t == j.old_primary || waiting.contains(t))
    {
        return Err(format!("{t} is not a replica of this cluster"));
    }
    let mut candidates = Vec::new();
    let eligible = view.hosts.iter().filter(|(n, _)| {
        **n != j.old_primary && !waiting.contains(n) && j.target.as_ref().is_none_or(|t| t == *n)
    });
    for (name, h) in eligible {
        let status = match agent(&h.agent, AGENT_TIMEOUT).await {
            Ok(mut a) => a
                .status(StatusRequest {})
                .await
                .ok()
                .map(tonic::Response::into_inner),
            Err(_) => None,
        };
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

async fn salvage(view: &ClusterView, j: &mut Journal) -> Result<(), String> {
    let old = &view.hosts[&j.old_primary];
    // The candidate's position now (catch-up again returns it at once: it is caught up).
    let pos = candidate_catch_up(view, j, "", CATCH_UP_TIMEOUT_MS)
        .await?
        .gtid_executed;
    let mut c = candidate_agent(view, j).await?;
    if j.old_host_unreachable {
        j.gtids_lost = "unknown: the old primary's host is unreachable".into();
        j.notes
            .push("no salvage: the old primary's host did not answer when fencing".into());
        return Ok(());
    }
    let mut old_agent = match agent(&old.agent, AGENT_TIMEOUT).await {
        Ok(a) => a,
        Err(e) => {
            j.gtids_lost = "unknown: the old primary's host is unreachable".into();
            j.notes.push(format!("no salvage: {e}"));
            return Ok(());
        }
    };
    if pos.is_empty() {
        j.notes
            .push("no salvage: the candidate reports no GTID position".into());
        return Ok(());
    }
    let s = match old_agent
        .salvage_binlog(SalvageBinlogRequest {
            epoch: j.epoch,
            after_gtid: pos.clone(),
            failover_id: j.id.clone(),
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(st) => {
            j.gtids_lost = format!("unknown: salvage failed: {}", st.message());
            j.notes.push(format!(
                "salvage from {} failed: {}",
                j.old_primary,
                st.message()
            ));
            return Ok(());
        }
    };
    if s.transaction_count > 0 {
        c.apply_salvage(ApplySalvageRequest {
            epoch: j.epoch,
            events: s.events,
            gtids: s.gtids.clone(),
            failover_id: j.id.clone(),
        })
        .await
        .map_err(|st| format!("apply salvaged transactions: {}", st.message()))?;
    }
    j.transactions_salvaged = s.transaction_count;
    j.gtids_salvaged = if s.transaction_count > 0 {
        format!("after {pos} up to {}", s.gtids)
    } else {
        String::new()
    };
    Ok(())
}

fn ipv4(mysql: &str) -> Option<Ipv4Addr> {
    mysql.rsplit_once(':')?.0.parse().ok()
}

async fn publish(ctx: &Ctx, view: &ClusterView, j: &mut Journal) -> Result<(), String> {
    publish_dns(ctx, view, j).await.inspect_err(|_| {
        crate::metrics::DNS_ERRORS.inc();
    })
}

async fn publish_dns(ctx: &Ctx, view: &ClusterView, j: &mut Journal) -> Result<(), String> {
    let new = candidate_record(view, j)?;
    let new_ip = ipv4(&new.mysql).ok_or_else(|| format!("{} is not an IPv4 address", new.mysql))?;
    let label = format!("primary.{}", view.name);
    let current = ctx.dns.query_a(&label).await.map_err(|e| e.to_string())?;
    if current != [new_ip] {
        ctx.dns
            .compare_and_swap_a(&label, &current, &[new_ip], ctx.config.dns.ttl_s)
            .await
            .map_err(|e| e.to_string())?;
    }
    // Check with an uncached query that the server answers the new address.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if ctx.dns.query_a(&label).await.map_err(|e| e.to_string())? == [new_ip] {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("{label} does not answer {new_ip} after the update"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // replicas.<cluster>: every host but the old and the new primary.
    let mut replicas: Vec<Ipv4Addr> = view
        .hosts
        .iter()
        .filter(|(n, _)| **n != j.old_primary && Some(*n) != j.candidate.as_ref())
        .filter_map(|(_, h)| ipv4(&h.mysql))
        .collect();
    replicas.sort_unstable();
    let rlabel = format!("replicas.{}", view.name);
    let current = ctx.dns.query_a(&rlabel).await.map_err(|e| e.to_string())?;
    if current != replicas && !replicas.is_empty() {
        let updated = ctx
            .dns
            .compare_and_swap_a(&rlabel, &current, &replicas, ctx.config.dns.ttl_s)
            .await;
        if let Err(e) = updated {
            j.notes.push(format!("{rlabel} not updated: {e}"));
        }
    }
    Ok(())
}

/// The last step: the new topology, the audit record and the end of the journal, in one
/// leadership-checked write.
async fn record(ctx: &Ctx, view: &ClusterView, mut j: Journal, started: u64) -> Result<(), String> {
    let now = now_ms();
    j.advance(Step::Record, started, now);
    let state = after_failover(view, &j, now);
    let audit = FailoverAudit {
        outcome: "succeeded".into(),
        new_primary: j.candidate.clone(),
        finished_at_ms: now,
        total_ms: now.saturating_sub(j.started_at_ms),
        detail: j.notes.join("; "),
        journal: j.clone(),
    };
    let l = ctx.zk.layout();
    ctx.write(&[
        Op::Set {
            path: l.cluster_state(&view.name),
            data: to_json(&state),
            version: None,
        },
        Op::Create {
            path: l.history_entry(&view.name, &j.id),
            data: to_json(&audit),
        },
        Op::Delete {
            path: l.failover_journal(&view.name),
            version: None,
        },
    ])
    .await
    .map_err(|e| format!("record: {e}"))?;
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
fn after_failover(view: &ClusterView, j: &Journal, now: u64) -> ClusterState {
    let mut state = view
        .state
        .as_ref()
        .map(|(s, _)| s.clone())
        .unwrap_or_default();
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
    if !j.old_primary_rejoined && !state.needs_rejoin.contains(&j.old_primary) {
        state.needs_rejoin.push(j.old_primary.clone());
        state
            .rejoin_fork
            .insert(j.old_primary.clone(), j.fork_gtid.clone());
    }
    state
}
