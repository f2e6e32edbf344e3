//! Old primaries after a failover (DESIGN §6): one that comes back writable is fenced
//! again; one that comes back with nothing the cluster lacks is re-attached as a replica
//! (`orchestrator.auto_rejoin`); one with errant transactions is reported and left out
//! until an operator forces it (`altairctl rejoin HOST --force`). A replica still
//! replicating from an old primary (it was cut off with it when the others were
//! repointed) is queued the same way, with the same fork point: it rejoins when clean, and
//! is reported with its errant GTIDs otherwise — never left diverging silently.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use altair_core::gtid::{Flavor, GtidState, PromotedWrites, errant_for_rejoin, errant_gtids};
use altair_core::registry::{ClusterState, to_json};
use altair_proto::v1::*;
use altair_zk::Op;
use tokio::task::JoinHandle;

use crate::agents::{agent, endpoint, fresh_agent};
use crate::ctx::Ctx;
use crate::metrics::{REJOINS, labels};
use crate::view::ClusterView;

pub(crate) const TEND_EVERY: Duration = Duration::from_secs(1);
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// A re-fence is the agent's whole fence (clients killed, read_only, mysqld killed if it
/// does not answer): it gets the time that takes (tending runs beside the leader's pass).
const REFENCE_TIMEOUT: Duration = Duration::from_secs(3);
/// A forced rejoin's deadline (it may revert errant transactions, a flashback that the
/// agent starts only with 10 s left and never cuts midway); the agent's limit.
const FORCED_REJOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Tending runs beside the leader's pass (a silent agent must not slow failover
/// detection), at most once a second per cluster.
#[derive(Default)]
pub struct Tending {
    running: HashMap<String, (Instant, JoinHandle<()>)>,
}

impl Tending {
    /// Starts a round when one is due; whether the cluster has anything to tend (the
    /// caller looks again within `TEND_EVERY`).
    pub fn maybe_start(&mut self, ctx: &Ctx, view: &ClusterView) -> bool {
        let Some((state, version)) = view.state.clone() else {
            return false;
        };
        // A replica fed by an old primary exists only while one waits for rejoin (its
        // fork point is what that replica is judged by): nothing to tend otherwise.
        if (state.needs_rejoin.is_empty() && state.former_forks.is_empty())
            || view.journal.is_some()
        {
            return false;
        }
        let key = view.name.to_string();
        if let Some((started, handle)) = self.running.get(&key)
            && (!handle.is_finished() || started.elapsed() < TEND_EVERY)
        {
            return true;
        }
        let (ctx, view) = (ctx.clone(), view.clone());
        let handle = tokio::spawn(async move { tend(&ctx, &view, state, version).await });
        self.running.insert(key, (Instant::now(), handle));
        true
    }
}

/// A worker that stops (its leader deposed) stops its tending too.
impl Drop for Tending {
    fn drop(&mut self) {
        for (_, handle) in self.running.values() {
            handle.abort();
        }
    }
}

async fn tend(ctx: &Ctx, view: &ClusterView, state: ClusterState, version: i32) {
    // Before any old primary rejoins (and its fork point goes): replicas still fed by it.
    let strays = queue_stray_replicas(ctx, view, &state, version).await;
    if strays.changed {
        return; // the state changed: the next round reads it afresh
    }
    for name in state.needs_rejoin.clone() {
        // A host its monitor reports healthy whose agent did not answer may be one fed by
        // this old primary: rejoining it now would lose its fork point. Next round.
        if !strays.unasked.is_empty() {
            tracing::debug!(cluster = %view.name, old_primary = %name, unasked = ?strays.unasked, "rejoin waits: a healthy host's agent did not answer");
            break;
        }
        let Some(status) = status_of(view, &name).await else {
            continue;
        };
        let Some(snap) = status.snapshot.filter(|s| s.reachable) else {
            continue;
        };
        if !snap.read_only {
            refence(view, &state, &name).await;
            continue;
        }
        // Re-fencing (above) is safety and goes on; a rejoin is not done during a pause.
        let paused = state
            .paused
            .as_ref()
            .is_some_and(|p| p.active(crate::ctx::now_ms()));
        if !ctx.config.orchestrator.auto_rejoin || paused || state.errant.contains_key(&name) {
            continue;
        }
        // The state may have changed since this round read it (an operator paused the
        // cluster while the agents were asked): rejoin only on the state as it is now.
        let current = ctx
            .zk
            .get_versioned(&ctx.zk.layout().cluster_state(&view.name))
            .await;
        if !matches!(current, Ok(Some((_, v))) if v == version) {
            return; // the next round reads it afresh
        }
        match rejoin_host(ctx, view, &state, version, &name, false).await {
            Ok(_) => return, // the state changed: the next round reads it afresh
            Err(e) => {
                tracing::warn!(cluster = %view.name, host = %name, error = %e, "old primary not rejoined")
            }
        }
    }
}

/// What looking for stray replicas found.
struct Strays {
    /// The cluster state was changed (strays queued).
    changed: bool,
    /// Hosts their monitor reports healthy whose agent did not answer.
    unasked: Vec<String>,
    /// Every host but the primary and those waiting answered.
    all_answered: bool,
}

/// Queues for rejoin every replica that replicates from an old primary waiting for rejoin
/// (not from the primary).
async fn queue_stray_replicas(
    ctx: &Ctx,
    view: &ClusterView,
    state: &ClusterState,
    version: i32,
) -> Strays {
    let mut found = Strays {
        changed: false,
        unasked: Vec::new(),
        all_answered: true,
    };
    let Some(primary) = state.primary.as_ref() else {
        return found;
    };
    let mut s = state.clone();
    for (name, _) in view.hosts.iter() {
        if name == primary || state.needs_rejoin.contains(name) {
            continue;
        }
        let Some(snap) = status_of(view, name)
            .await
            .and_then(|st| st.snapshot)
            .filter(|sn| sn.reachable)
        else {
            found.all_answered = false;
            let healthy = view
                .health
                .get(name)
                .is_some_and(|h| h.health == altair_core::health::Health::Healthy);
            if healthy {
                found.unasked.push(name.clone());
            }
            continue;
        };
        let Some(source) = snap.source_address() else {
            continue;
        };
        let fed_by = view
            .hosts
            .iter()
            .find(|(n, h)| h.mysql == source && *n != primary && state.fork_of(n).is_some())
            .map(|(n, _)| n.clone());
        let Some((old, fork)) = fed_by.and_then(|o| state.fork_of(&o).cloned().map(|f| (o, f)))
        else {
            continue;
        };
        tracing::warn!(cluster = %view.name, host = %name, old_primary = %old, "replica still replicates from an old primary: queued for rejoin with its fork point");
        s.needs_rejoin.push(name.clone());
        s.rejoin_fork.insert(name.clone(), fork);
        match state.fork_epoch.get(&old) {
            Some(epoch) => s.fork_epoch.insert(name.clone(), *epoch),
            None => s.fork_epoch.remove(name),
        };
    }
    if s.needs_rejoin.len() == state.needs_rejoin.len() {
        // Every replica answered and none is fed by a rejoined old primary: forget them.
        if !found.all_answered || state.former_forks.is_empty() {
            return found;
        }
        s.former_forks.clear();
        s.tidy_fork_epochs();
    }
    let written = ctx
        .write(&[Op::Set {
            path: ctx.zk.layout().cluster_state(&view.name),
            data: to_json(&s),
            version: Some(version),
        }])
        .await;
    if let Err(e) = written {
        tracing::warn!(cluster = %view.name, error = %e, "stray replicas not queued (retried)");
    }
    found.changed = true;
    found
}

/// The agent's status; a failed call is tried once more over a fresh connection (the
/// cached one may be what a healed partition left dead).
async fn status_of(view: &ClusterView, name: &str) -> Option<StatusResponse> {
    let h = view.hosts.get(name)?;
    if let Ok(mut a) = agent(&h.agent, STATUS_TIMEOUT).await
        && let Ok(r) = a.status(StatusRequest {}).await
    {
        return Some(r.into_inner());
    }
    let mut a = fresh_agent(&h.agent, STATUS_TIMEOUT, STATUS_TIMEOUT)
        .await
        .ok()?;
    a.status(StatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// A failed-over old primary must never take writes on its own.
async fn refence(view: &ClusterView, state: &ClusterState, name: &str) {
    let Some(h) = view.hosts.get(name) else {
        return;
    };
    let fenced = async {
        let mut a = crate::agents::agent_within(&h.agent, STATUS_TIMEOUT, REFENCE_TIMEOUT).await?;
        a.fence(FenceRequest {
            epoch: state.epoch,
            mode: FenceMode::ReadOnly as i32,
            failover_id: "recover-old-primary".into(),
            allow_kill: true,
        })
        .await
        .map_err(|s| s.message().to_owned())
    }
    .await;
    match fenced {
        Ok(_) => {
            tracing::warn!(cluster = %view.name, host = %name, epoch = state.epoch, "old primary came back writable: fenced it again")
        }
        Err(e) => {
            tracing::error!(cluster = %view.name, host = %name, error = %e, "old primary is writable and could not be fenced")
        }
    }
}

/// What became of a rejoin.
pub struct Outcome {
    pub rejoined: bool,
    pub errant: String,
    pub saved_to: String,
}

/// Re-attaches `name` to the current primary. Without `force`, errant transactions are
/// recorded in the cluster state and the host stays out.
pub async fn rejoin_host(
    ctx: &Ctx,
    view: &ClusterView,
    state: &ClusterState,
    version: i32,
    name: &str,
    force: bool,
) -> Result<Outcome, String> {
    let primary = state.primary.clone().ok_or("the cluster has no primary")?;
    let p = view
        .hosts
        .get(&primary)
        .ok_or_else(|| format!("primary {primary} is not registered"))?;
    let source = endpoint(&p.mysql).ok_or("bad primary address")?;
    let status = status_of(view, name)
        .await
        .ok_or_else(|| format!("the agent of {name} does not answer"))?;
    let snap = status
        .snapshot
        .filter(|s| s.reachable)
        .ok_or_else(|| format!("mysqld on {name} is not running"))?;
    let flavor = if snap.flavor == altair_proto::v1::Flavor::Mysql as i32 {
        Flavor::Mysql
    } else {
        Flavor::MariaDb
    };
    let primary_snap = status_of(view, &primary)
        .await
        .and_then(|s| s.snapshot)
        .filter(|s| s.reachable);
    // MariaDB measures against the fork point recorded at promotion; MySQL (and an old
    // record without one) against the primary's whole history.
    let fork = match state.rejoin_fork.get(name).filter(|f| !f.is_empty()) {
        Some(f) if flavor == Flavor::MariaDb => f.clone(),
        _ => primary_snap
            .as_ref()
            .map(|s| s.gtid_executed.clone())
            .ok_or_else(|| format!("the primary {primary} does not report its GTIDs"))?,
    };
    // While the primary promoted at that fork still is (same epoch), what it wrote past
    // the fork is the cluster's history, not errant (a replica fed by a rejoined old
    // primary holds it).
    let promoted = (flavor == Flavor::MariaDb && state.fork_is_current(name)).then(|| {
        primary_snap
            .as_ref()
            .map(|p| (p.server_id, p.gtid_executed.clone()))
    });
    let parse = |t: &str| GtidState::parse(flavor, t).map_err(|e| e.to_string());
    let host_pos = parse(&snap.gtid_executed)?;
    let fork_pos = parse(&fork)?;
    let by_fork = errant_gtids(&host_pos, &fork_pos).map_err(|e| e.to_string())?;
    let (errant, promoted_id) = match promoted {
        Some(None) => {
            // Judged by the fork alone the agent could refuse it (and park it for good)
            // for what the primary sent it since this snapshot.
            return Err(format!(
                "the primary {primary} does not report its position: {name} is judged again next round"
            ));
        }
        Some(Some((id, pos))) if !by_fork.is_empty() => {
            let pos = parse(&pos)?;
            let judged = errant_for_rejoin(
                &host_pos,
                &fork_pos,
                Some(PromotedWrites {
                    host_state: &snap.gtid_binlog_state,
                    primary_server_id: id,
                    primary_pos: Some(&pos),
                }),
            )
            .map_err(|e| e.to_string())?;
            if judged.errant.is_empty() && !judged.ahead.is_empty() {
                return Err(format!(
                    "{name} holds {} of the primary's, past its last report: judged again next round",
                    judged.ahead
                ));
            }
            (judged.errant, id)
        }
        // Clean so far; the agent judges its newer position the same way.
        Some(Some((id, _))) => (by_fork, id),
        None => (by_fork, 0),
    };
    if !errant.is_empty() && !force {
        return refuse(ctx, view, state, version, name, errant).await;
    }
    // A forced rejoin may revert errant transactions (a flashback): it gets a minute.
    let deadline = if force {
        FORCED_REJOIN_DEADLINE
    } else {
        Duration::from_secs(3)
    };
    let mut a = agent(&view.hosts[name].agent, deadline).await?;
    let done = a
        .rejoin(AgentRejoinRequest {
            epoch: state.epoch,
            source: Some(source),
            fork_gtid: fork,
            revert_errant: force,
            fork_primary_server_id: promoted_id,
        })
        .await
        .map_err(|s| format!("rejoin through the agent of {name}: {}", s.message()))?
        .into_inner();
    // The agent checks again on its own, newer position.
    if !done.rejoined {
        return refuse(ctx, view, state, version, name, done.errant_gtids).await;
    }
    let l = ctx.zk.layout();
    let mut next = state.clone();
    next.rejoined(name);
    ctx.write(&[Op::Set {
        path: l.cluster_state(&view.name),
        data: to_json(&next),
        version: Some(version),
    }])
    .await
    .map_err(|e| e.to_string())?;
    REJOINS
        .get_or_create(&labels(&[(
            "outcome",
            if force { "forced" } else { "rejoined" },
        )]))
        .inc();
    tracing::warn!(cluster = %view.name, host = %name, primary = %primary, errant_reverted = %done.errant_gtids, saved_to = %done.saved_to, "old primary rejoined as a replica");
    Ok(Outcome {
        rejoined: true,
        errant: done.errant_gtids,
        saved_to: done.saved_to,
    })
}

/// Records `errant` for `name` (once) and reports it not rejoined.
async fn refuse(
    ctx: &Ctx,
    view: &ClusterView,
    state: &ClusterState,
    version: i32,
    name: &str,
    errant: String,
) -> Result<Outcome, String> {
    if state.errant.get(name) != Some(&errant) {
        let mut next = state.clone();
        next.errant.insert(name.to_owned(), errant.clone());
        ctx.write(&[Op::Set {
            path: ctx.zk.layout().cluster_state(&view.name),
            data: to_json(&next),
            version: Some(version),
        }])
        .await
        .map_err(|e| e.to_string())?;
        REJOINS
            .get_or_create(&labels(&[("outcome", "refused_errant")]))
            .inc();
        tracing::error!(cluster = %view.name, host = %name, errant = %errant, "old primary has errant transactions: left out until `altairctl rejoin {name} --force`");
    }
    Ok(Outcome {
        rejoined: false,
        errant,
        saved_to: String::new(),
    })
}
