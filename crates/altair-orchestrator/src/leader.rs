//! Leader election and a cluster's pass. Only the leader acts; a pass rebuilds what it
//! knows of its cluster from ZooKeeper, so a new leader needs no hand-over.

use std::time::Duration;

use altair_core::config::OnWriteStalled;
use altair_core::failover::{
    Journal, LastVerify, Stage, Step, Verdict, failover_blocked, health_fingerprint, verdict,
    verify_due,
};
use altair_core::health::Health;
use altair_core::registry::{
    ClusterState, FailoverAudit, HealthRecord, MonitorRecord, history_to_prune, to_json,
};
use altair_core::topology::{HostView, infer_roles};
use altair_core::{ClusterName, HostName};
use altair_proto::v1::{CheckReachabilityRequest, StatusRequest};
use altair_zk::{Op, Zk, ZkError};
use tokio_util::sync::CancellationToken;

use crate::admission::Decision;
use crate::agents::{agent, endpoint, mysql_reachable};
use crate::ctx::{Ctx, now_ms};
use crate::failover;
use crate::rejoin::{TEND_EVERY, Tending};
use crate::view::ClusterView;
use crate::workers::Slots;

/// Waits until this candidate node is the lowest in the election directory.
pub async fn await_leadership(zk: &Zk, me: &str) -> Result<(), ZkError> {
    let dir = zk.layout().election();
    let my_name = me.rsplit('/').next().unwrap_or_default().to_owned();
    loop {
        let mut children = zk.children(&dir).await?;
        children.sort();
        let Some(pos) = children.iter().position(|c| *c == my_name) else {
            return Err(ZkError::SessionExpired {
                op: "election",
                path: me.to_owned(),
            });
        };
        if pos == 0 {
            return Ok(());
        }
        let predecessor = format!("{dir}/{}", children[pos - 1]);
        tracing::info!(watching = %predecessor, "following; waiting for the leader to go");
        let (exists, watcher) = zk.exists_and_watch(&predecessor).await?;
        if exists {
            watcher.changed().await;
        }
    }
}

/// The leader's work: until leadership or the session is lost. Each cluster has a
/// worker of its own (see `workers`).
pub async fn lead(ctx: Ctx, me: MonitorRecord, cancel: CancellationToken) -> Result<(), ZkError> {
    ctx.zk
        .register_ephemeral(&ctx.zk.layout().leader(), &to_json(&me))
        .await?;
    tracing::warn!(orchestrator = %me.id, "elected leader");
    // Nodes left world-writable (created before digest auth was set, or by an older
    // release) get altair's ACL; in the background, so pickup is not delayed.
    let zk = ctx.zk.clone();
    tokio::spawn(async move {
        match zk.restrict_acls().await {
            Ok(report) => {
                if report.changed > 0 {
                    tracing::warn!(
                        nodes = report.changed,
                        "znodes others could change given altair's ACL"
                    );
                }
                if report.refused_total > 0 {
                    tracing::error!(nodes = report.refused_total, first = ?report.refused, "znodes whose ACL altair may not change: someone else owns them and may change them (fix by hand with zkCli, or rotate with zookeeper.previous_auth_file)");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not restrict the ACLs of existing znodes: someone else may still change them")
            }
        }
    });
    ctx.admission.load(&ctx).await?;
    crate::stall::warn_unknown_clusters(&ctx).await;
    tokio::select! {
        r = crate::workers::supervise(&ctx, &cancel) => r,
        r = crate::enrol::serve(&ctx) => r,
    }
}

/// The shortest wait a pass asks for (a time that just ran out).
const MIN_WAIT: Duration = Duration::from_millis(20);
/// A read-only primary that could not be made writable (its agent holds no lease yet) is
/// asked again this soon.
const REOPEN_RETRY: Duration = Duration::from_secs(2);

/// When a cluster's worker should look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Something is under way (an unhealthy primary, a failover): soon.
    Active,
    /// Something is due within this time (a retry, tending, the end of a block).
    Within(Duration),
    /// Nothing is: at the next watch event or resync.
    Idle,
    /// Its failover is held by admission control: at a hold's change, a watch event, or
    /// the next re-verification.
    Held,
}

impl Pace {
    /// This pace, but looking again within `d` at the latest.
    pub fn at_most(self, d: Duration) -> Pace {
        match self {
            Pace::Within(t) => Pace::Within(t.min(d)),
            _ => Pace::Within(d),
        }
    }
}

/// One look at a cluster, as `view` has it: bootstrap it, drive its failover, or check
/// its primary.
pub(crate) async fn pass(
    ctx: &Ctx,
    view: &ClusterView,
    alive_seen: &mut Option<LastVerify>,
    watch: &mut crate::reopen::Watch,
    tending: &mut Tending,
    slots: &Slots,
) -> Result<Pace, ZkError> {
    let cluster = &view.name;
    if let Some(dc) = ctx.admission.observe(view) {
        ctx.admission.end_if_over(ctx, &dc).await?;
    }
    let Some((state, version)) = view.state.clone() else {
        bootstrap(ctx, view).await?;
        return Ok(Pace::Within(Duration::from_secs(1)));
    };
    let now = now_ms();
    crate::metrics::paused(
        cluster.as_str(),
        state.paused.as_ref().filter(|p| p.active(now)),
    );
    if let Some(journal) = view.journal.clone() {
        crate::metrics::journal_age(
            cluster.as_str(),
            now_ms().saturating_sub(journal.started_at_ms),
        );
        // A journal that only waits (a retry time, the self-fence bound) is looked at
        // again when that time comes, or at an event (an abort, a health change: the
        // watch wakes the worker), or at the resync — not every second: a look at a
        // journal reads the whole cluster, and a storm's failovers stuck on their fences
        // would otherwise cost ~2 reads a second each for as long as they wait.
        if let Some(at) = failover::waits_until(view, &journal) {
            let wait = Duration::from_millis(at.saturating_sub(now_ms()).max(20));
            return Ok(Pace::Within(wait));
        }
        drive(ctx, view, journal, slots).await?;
        return Ok(Pace::Active);
    }
    crate::metrics::journal_age(cluster.as_str(), 0);
    let idle = if tending.maybe_start(ctx, view) {
        Pace::Within(TEND_EVERY)
    } else {
        Pace::Idle
    };
    if let Some(p) = &state.paused {
        if !p.active(now) {
            crate::pause::expire(ctx, cluster).await?;
            return Ok(Pace::Within(Duration::from_millis(100)));
        }
        // Nothing automatic while paused; look again when it ends by itself.
        return Ok(
            match (p.remaining_ms(now).map(Duration::from_millis), idle) {
                (Some(ends), Pace::Within(t)) => Pace::Within(t.min(ends.max(MIN_WAIT))),
                (Some(ends), _) => Pace::Within(ends.max(MIN_WAIT)),
                (None, idle) => idle,
            },
        );
    }
    if state.held {
        return Ok(idle);
    }
    let Some(primary) = state.primary.clone() else {
        return Ok(idle);
    };
    let Some(health) = view.health.get(&primary) else {
        return Ok(idle);
    };
    watch.note(health);
    if health.health == Health::Healthy {
        // Read-only with nothing failing it over (restarted, or self-fenced in a
        // partition that healed): writable again; a failed attempt is retried soon.
        return Ok(
            match crate::reopen::maybe(ctx, view, &state, &primary, health).await? {
                crate::reopen::Found::Failed => idle.at_most(REOPEN_RETRY),
                crate::reopen::Found::Reopened | crate::reopen::Found::RefusedAhead => {
                    watch.stop();
                    idle
                }
                // Watched: looked at again, less often each time (`reopen::Watch`).
                crate::reopen::Found::Nothing => match watch.next_look() {
                    Some(look) => idle.at_most(look),
                    None => idle,
                },
            },
        );
    }
    // Down (verified below), or stalled in a cluster whose policy fails over on it.
    let stalled = health.health == Health::WriteStalled;
    if stalled && ctx.config.write_stall.policy_for(cluster.as_str()) == OnWriteStalled::Alert
        || !stalled && !matches!(health.health, Health::Unreachable | Health::MysqlDown)
    {
        return Ok(idle);
    }
    let period = ctx.config.orchestrator.failover_block_period_s * 1000;
    if let Some(block) = failover_blocked(now, state.last_failover_ms, state.acknowledged, period) {
        if state.failover_blocked.is_none() {
            tracing::error!(cluster = %cluster, primary = %primary, reason = %block, "automatic failover refused (anti-flapping)");
            let mut s = state.clone();
            s.failover_blocked = Some(format!("primary {primary} is {}: {block}", health.health));
            let l = ctx.zk.layout();
            ctx.write(&[Op::Set {
                path: l.cluster_state(cluster),
                data: to_json(&s),
                version: Some(version),
            }])
            .await?;
        }
        let ends = Duration::from_millis(
            (state.last_failover_ms.unwrap_or(0) + period)
                .saturating_sub(now)
                .max(100),
        );
        // Tending (an old primary to re-fence or rejoin) keeps its own pace.
        return Ok(idle.at_most(ends));
    }
    // Verify once per health transition of the primary, again while it stays unhealthy,
    // and at once when any host's health changes.
    let fingerprint = health_fingerprint(
        view.health
            .iter()
            .map(|(n, h)| (n.as_str(), h.health.as_str(), h.since_unix_ms)),
    );
    let datacenter = view
        .hosts
        .get(&primary)
        .map(|h| h.datacenter.clone())
        .unwrap_or_default();
    // The datacenter's failover budget is full: no verification until there is room.
    if !ctx.admission.has_room(cluster.as_str(), &datacenter) {
        return Ok(Pace::Within(BUDGET_EVERY));
    }
    // What a failover of this primary would start from.
    let start = Start {
        state: &state,
        version,
        primary: &primary,
        health,
        datacenter: &datacenter,
    };
    if stalled {
        return crate::stall::pass(ctx, view, start, (now, idle), alive_seen, slots).await;
    }
    if !verify_due(
        now,
        health.since_unix_ms,
        fingerprint,
        alive_seen.as_ref(),
        ctx.config.orchestrator.reverify_interval_ms,
    ) {
        return Ok(Pace::Active);
    }
    let first = alive_seen
        .as_ref()
        .is_none_or(|l| l.since_ms != health.since_unix_ms);
    let verify_started = now_ms();
    let last = LastVerify {
        since_ms: health.since_unix_ms,
        at_ms: verify_started,
        fingerprint,
    };
    let Verification {
        verdict,
        checks,
        failsafe_heard_until_ms,
    } = verify(ctx, view, &primary).await;
    match verdict {
        Verdict::Inconclusive { unknown } => {
            *alive_seen = Some(last);
            tracing::warn!(cluster = %cluster, primary = %primary, unknown = ?unknown, "primary reported {} but no replica's agent answered: cannot tell, verifying again", health.health);
            Ok(Pace::Active)
        }
        Verdict::Alive { seen_by } => {
            *alive_seen = Some(last);
            if !first {
                tracing::info!(cluster = %cluster, primary = %primary, seen_by = %seen_by, "re-verified: still reachable");
                return Ok(Pace::Active);
            }
            tracing::warn!(cluster = %cluster, primary = %primary, seen_by = %seen_by, "primary reported {} but is reachable: no failover", health.health);
            let audit = audit_only(
                cluster,
                &state,
                &primary,
                "primary_alive",
                &format!("reachable from {seen_by}"),
                verify_started,
            );
            let l = ctx.zk.layout();
            // Retention applies to these records too (a flapping monitor link writes
            // one per episode).
            let kept = ctx.zk.children(&l.history(cluster)).await?;
            let mut ops = vec![Op::Create {
                path: l.history_entry(cluster, &audit.journal.id),
                data: to_json(&audit),
            }];
            let retention = ctx.config.orchestrator.retention();
            for id in history_to_prune(&kept, retention, now_ms(), 20) {
                ops.push(Op::Delete {
                    path: l.history_entry(cluster, &id),
                    version: None,
                });
            }
            ctx.write(&ops).await?;
            Ok(Pace::Active)
        }
        Verdict::Dead { unknown } => {
            if !unknown.is_empty() {
                tracing::warn!(cluster = %cluster, primary = %primary, unknown = ?unknown, "replicas whose agent did not answer count as unknown");
            }
            let mut notes = Vec::new();
            if health.health == Health::Unreachable {
                // A replica beside the primary that still answers and cannot reach it:
                // the one evidence a suspected partition of that datacenter cannot fake.
                let witness = checks
                    .iter()
                    .filter(|(n, r)| {
                        *r == Some(false)
                            && view
                                .hosts
                                .get(n)
                                .is_some_and(|h| h.datacenter == datacenter)
                    })
                    .map(|(n, _)| n.as_str())
                    .next();
                let (decision, settled) = ctx
                    .admission
                    .decide(
                        ctx,
                        cluster.as_str(),
                        &datacenter,
                        health.since_unix_ms,
                        witness,
                    )
                    .await?;
                match decision {
                    Decision::Held(_) => {
                        *alive_seen = Some(last);
                        return Ok(Pace::Held);
                    }
                    Decision::Go(note) => notes.extend(note),
                }
                // It waited for the primaries lost with it: is this one still lost?
                if settled && !still_unreachable(ctx, cluster, &primary, health).await? {
                    return Ok(Pace::Active);
                }
            }
            start_failover(
                ctx,
                view,
                start,
                (verify_started, failsafe_heard_until_ms),
                notes,
                slots,
            )
            .await
        }
    }
}

/// What a failover is started from: the cluster's state as read (and its znode version,
/// for the compare-and-set that takes the lock) and its primary's health record.
pub(crate) struct Start<'a> {
    pub state: &'a ClusterState,
    pub version: i32,
    pub primary: &'a str,
    pub health: &'a HealthRecord,
    pub datacenter: &'a str,
}

/// Takes the cluster's failover lock — a new epoch set by compare-and-set on its state,
/// the journal created in the same write — and drives the failover as far as it goes.
pub(crate) async fn start_failover(
    ctx: &Ctx,
    view: &ClusterView,
    start: Start<'_>,
    (verify_started, failsafe_heard_until_ms): (u64, Option<u64>),
    notes: Vec<String>,
    slots: &Slots,
) -> Result<Pace, ZkError> {
    let Start {
        state,
        version,
        primary,
        health,
        datacenter,
    } = start;
    let cluster = &view.name;
    if !ctx.admission.may_start(cluster.as_str(), datacenter) {
        return Ok(Pace::Within(BUDGET_EVERY));
    }
    let verified = now_ms();
    let mut journal = Journal::new(
        failover_id(),
        cluster.to_string(),
        state.epoch + 1,
        primary.to_owned(),
        format!("{primary} {}: {}", health.health, health.reason),
        health.since_unix_ms,
        vec![
            Stage::new("detect", health.since_unix_ms, verify_started),
            Stage::new("verify", verify_started, verified),
        ],
    );
    journal.notes = notes;
    journal.old_primary_answered = health.health == Health::WriteStalled;
    journal.failsafe_heard_until_ms = failsafe_heard_until_ms;
    let mut s = state.clone();
    s.epoch = journal.epoch;
    let l = ctx.zk.layout();
    // Lock + new epoch: compare-and-set on the state, journal created with it.
    let created = ctx
        .write(&[
            Op::Set {
                path: l.cluster_state(cluster),
                data: to_json(&s),
                version: Some(version),
            },
            Op::Create {
                path: l.failover_journal(cluster),
                data: to_json(&journal),
            },
        ])
        .await;
    if let Err(e) = created {
        ctx.admission.not_started(cluster.as_str());
        return Err(e);
    }
    tracing::warn!(cluster = %cluster, failover_id = %journal.id, epoch = journal.epoch, old_primary = %primary, "primary verified {}: failing over", if health.health == Health::WriteStalled { "stalled" } else { "down" });
    // A compare-and-set from `version` leaves the state at the next one.
    let view = view
        .clone()
        .started(&ctx.zk, s, version + 1, journal.clone())
        .await?;
    drive(ctx, &view, journal, slots).await?;
    Ok(Pace::Active)
}

/// Wait before a failover whose journal write failed is driven again.
const JOURNAL_RETRY: Duration = Duration::from_secs(1);

/// Runs a failover as far as it goes now. A deposed leader (its election node gone, its
/// session expired) stops at once instead of driving agents alongside the new one; a
/// failed step waits in the journal for its retry time. At most
/// `orchestrator.max_parallel_failovers` run at once.
async fn drive(
    ctx: &Ctx,
    view: &ClusterView,
    journal: Journal,
    slots: &Slots,
) -> Result<(), ZkError> {
    let slot = slots.acquire().await;
    crate::metrics::FAILOVERS_RUNNING.inc();
    let result = failover::run(ctx, view, journal).await;
    crate::metrics::FAILOVERS_RUNNING.dec();
    drop(slot);
    match result {
        Ok(()) => Ok(()),
        Err(failover::FailoverError::Zk(e))
            if e.is_session_lost() || matches!(e, ZkError::NotLeader { .. }) =>
        {
            tracing::error!(cluster = %view.name, error = %e, "no longer the leader: stepping down mid-failover");
            Err(e)
        }
        Err(e @ failover::FailoverError::Zk(_)) => {
            // The journal write may not have happened: make sure we still lead.
            tracing::error!(cluster = %view.name, error = %e, "failover journal write failed; will retry");
            match ctx.write(&[]).await {
                Err(e @ (ZkError::NotLeader { .. } | ZkError::SessionExpired { .. })) => Err(e),
                _ => {
                    // Not a tight loop of failing writes (this cluster's worker only
                    // waits; the slot is free for other clusters' failovers).
                    tokio::time::sleep(JOURNAL_RETRY).await;
                    Ok(())
                }
            }
        }
        // Logged with its retry time where it failed.
        Err(failover::FailoverError::Step { .. }) => Ok(()),
    }
}

/// How soon a cluster whose datacenter's failover budget is full looks again.
const BUDGET_EVERY: Duration = Duration::from_millis(250);

/// Whether the primary's health record still says what the pass acted on.
async fn still_unreachable(
    ctx: &Ctx,
    cluster: &ClusterName,
    primary: &str,
    seen: &HealthRecord,
) -> Result<bool, ZkError> {
    let Ok(host) = HostName::new(primary.to_owned()) else {
        return Ok(false);
    };
    let path = ctx.zk.layout().host_health(cluster, &host);
    let now = ctx.zk.get_record::<HealthRecord>("health", &path).await?;
    Ok(now.is_some_and(|h| h.health == seen.health && h.since_unix_ms == seen.since_unix_ms))
}

/// A verification: the verdict, and what each replica's agent said (`None`: it did not
/// answer).
pub(crate) struct Verification {
    pub verdict: Verdict,
    pub checks: Vec<(String, Option<bool>)>,
    /// The latest time a replica's agent accepted a connection from the primary's host
    /// (its self-fencing failsafe rounds), as the replicas told it; `None`: none said.
    pub failsafe_heard_until_ms: Option<u64>,
}

/// DESIGN §3: alive if the orchestrator or any replica (through its agent) reaches it.
pub(crate) async fn verify(ctx: &Ctx, view: &ClusterView, primary: &str) -> Verification {
    let Some(p) = view.hosts.get(primary) else {
        return Verification {
            verdict: Verdict::Dead { unknown: vec![] },
            checks: Vec::new(),
            failsafe_heard_until_ms: None,
        };
    };
    let timeout = Duration::from_millis(ctx.config.orchestrator.verify_timeout_ms);
    let per_check = timeout.mul_f64(0.8);
    // The orchestrator's own handshake gets the same deadline as each replica's (which
    // must end well inside their RPC's): a powered-off primary costs that, not more.
    let handshake = per_check.mul_f64(0.7);
    let mine = mysql_reachable(
        &p.mysql,
        &ctx.config.mysql.user,
        &ctx.secrets.mysql_password,
        &ctx.secrets.mysql_tls,
        handshake,
    );
    let target = endpoint(&p.mysql);
    let replicas = view
        .hosts
        .iter()
        .filter(|(n, _)| n.as_str() != primary)
        .map(|(n, h)| {
            let (name, address, target) = (n.clone(), h.agent.clone(), target.clone());
            async move {
                // None: the agent did not answer (unknown, not "cannot reach").
                let answer = async {
                    let mut a = agent(&address, per_check).await.ok()?;
                    // The agent's own check ends well inside the RPC's deadline, so a
                    // primary that hangs reads as "cannot reach", not as a silent agent.
                    let r = a
                        .check_reachability(CheckReachabilityRequest {
                            target,
                            timeout_ms: (handshake.as_millis() as u32).max(1),
                            last_heard_only: false,
                        })
                        .await
                        .ok()?
                        .into_inner();
                    Some((r.reachable, r.last_heard_from_target_unix_ms))
                }
                .await;
                (name, answer)
            }
        });
    let all = async { tokio::join!(mine, futures_util::future::join_all(replicas)) };
    match tokio::time::timeout(timeout, all).await {
        Ok((mine, answers)) => {
            if !mine {
                crate::metrics::MYSQL_VERIFY_FAILURES.inc();
            }
            let failsafe_heard_until_ms = answers
                .iter()
                .filter_map(|(_, a)| a.map(|(_, heard)| heard))
                .filter(|heard| *heard > 0)
                .max();
            let checks: Vec<(String, Option<bool>)> = answers
                .into_iter()
                .map(|(name, a)| (name, a.map(|(reached, _)| reached)))
                .collect();
            Verification {
                verdict: verdict(mine, &checks),
                checks,
                failsafe_heard_until_ms,
            }
        }
        Err(_) => Verification {
            verdict: Verdict::Inconclusive {
                unknown: view
                    .hosts
                    .keys()
                    .filter(|n| n.as_str() != primary)
                    .cloned()
                    .collect(),
            },
            checks: Vec::new(),
            failsafe_heard_until_ms: None,
        },
    }
}

/// When any replica's agent last accepted a connection from `primary`'s host (its
/// self-fencing failsafe rounds), asked of every replica at once without a login
/// (`last_heard_only`); `None` when none says.
pub(crate) async fn failsafe_heard_until(
    view: &ClusterView,
    primary: &str,
    deadline: Duration,
) -> Option<u64> {
    let target = endpoint(&view.hosts.get(primary)?.mysql);
    let asks = view
        .hosts
        .iter()
        .filter(|(n, _)| n.as_str() != primary)
        .map(|(_, h)| {
            let (address, target) = (h.agent.clone(), target.clone());
            async move {
                let mut a = agent(&address, deadline).await.ok()?;
                let r = a
                    .check_reachability(CheckReachabilityRequest {
                        target,
                        timeout_ms: 1,
                        last_heard_only: true,
                    })
                    .await
                    .ok()?;
                Some(r.into_inner().last_heard_from_target_unix_ms)
            }
        });
    let heard = tokio::time::timeout(deadline, futures_util::future::join_all(asks))
        .await
        .ok()?;
    heard.into_iter().flatten().filter(|t| *t > 0).max()
}

/// First pass over a cluster with no state: the primary is the one host that
/// replicates from no one, as the agents report.
async fn bootstrap(ctx: &Ctx, view: &ClusterView) -> Result<(), ZkError> {
    // Every agent at once, one deadline.
    let asks = view.hosts.iter().filter_map(|(name, h)| {
        let host = HostName::new(name.clone()).ok()?;
        Some(async move {
            let mut a = agent(&h.agent, Duration::from_secs(1)).await.ok()?;
            let snap = a
                .status(StatusRequest {})
                .await
                .ok()?
                .into_inner()
                .snapshot?;
            Some(HostView {
                name: host,
                mysql: h.mysql.clone(),
                source: snap.source_address(),
                reachable: snap.reachable && !snap.read_only,
            })
        })
    });
    let views: Vec<HostView> = futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect();
    let (primary, _) = infer_roles(&views);
    let Some(primary) = primary else {
        return Ok(());
    };
    let state = ClusterState {
        epoch: 1,
        primary: Some(primary.to_string()),
        ..ClusterState::default()
    };
    ctx.write(&[Op::Create {
        path: ctx.zk.layout().cluster_state(&view.name),
        data: to_json(&state),
    }])
    .await?;
    tracing::info!(cluster = %view.name, primary = %primary, "cluster state initialised (epoch 1)");
    Ok(())
}

pub(crate) fn failover_id() -> String {
    format!("{}-{:04x}", now_ms(), rand::random::<u16>())
}

pub(crate) fn audit_only(
    cluster: &ClusterName,
    state: &ClusterState,
    primary: &str,
    outcome: &str,
    detail: &str,
    started: u64,
) -> FailoverAudit {
    let now = now_ms();
    FailoverAudit {
        journal: {
            let mut j = Journal::new(
                failover_id(),
                cluster.to_string(),
                state.epoch,
                primary.to_owned(),
                outcome.to_owned(),
                started,
                vec![Stage::new("verify", started, now)],
            );
            j.step = Step::Done;
            j
        },
        outcome: outcome.to_owned(),
        new_primary: None,
        finished_at_ms: now,
        total_ms: now.saturating_sub(started),
        detail: detail.to_owned(),
    }
}
