//! Failover admission control, the leader's side (decisions in `altair_core::admission`).
//!
//! Every worker tells this what its cluster's primary looks like after each pass; a
//! worker whose unreachable primary was verified dead asks it whether to go ahead. A
//! mass loss in one datacenter raises a hold, stored in ZooKeeper (`<root>/admission`,
//! one compare-and-set record, written by the leader only), which a new leader finds;
//! the hold ends by itself once none of that datacenter's primaries is unreachable, or
//! an operator releases it (`altairctl release DATACENTER`). The per-datacenter budget
//! of running failovers is kept here too (in memory: a new leader counts journals as its
//! workers read them).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use altair_core::admission::{
    Admit, Census, Hold, Holds, Policy, PrimarySeen, Release, admit, census, hold_over,
    within_budget,
};
use altair_core::config::AdmissionConfig;
use altair_core::health::Health;
use altair_core::registry::{from_json, to_json};
use altair_zk::{Op, ZkError};
use tokio::sync::watch;

use crate::ctx::{Ctx, now_ms};
use crate::view::ClusterView;

/// A hold's compare-and-set lost to a concurrent change is retried this many times.
const ATTEMPTS: usize = 5;

/// What a worker may do with its verified-dead, unreachable primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the note (if any) goes into the failover's journal.
    Go(Option<String>),
    /// Held: the hold's description.
    Held(String),
}

#[derive(Debug, Default)]
struct Seen {
    primary: Option<PrimarySeen>,
    /// The old primary's datacenter while a failover of this cluster runs.
    failover_in: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashMap<String, Seen>,
    /// The clusters the leader listed; a hold may end only once each has been seen.
    listed: Option<BTreeSet<String>>,
    holds: Holds,
    /// The record's znode version; `None`: no record.
    version: Option<i32>,
    /// Clusters held now (they asked and were held), by datacenter.
    held: HashMap<String, BTreeSet<String>>,
    /// Clusters waiting for their datacenter's budget.
    over_budget: HashMap<String, BTreeSet<String>>,
}

pub struct Admission {
    enabled: bool,
    policy: Policy,
    budget: u32,
    hook: Vec<String>,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("enabled", &self.enabled)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// How a datacenter is shown when a host did not say (an old agent's registration).
fn dc_name(dc: &str) -> &str {
    if dc.is_empty() { "(none)" } else { dc }
}

impl Admission {
    pub fn new(cfg: &AdmissionConfig) -> Self {
        Self {
            enabled: cfg.enabled,
            policy: cfg.policy(),
            budget: cfg.max_failovers_per_datacenter,
            hook: cfg.hook.clone(),
            inner: Mutex::new(Inner::default()),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A worker that panicked holding the lock left counts, nothing half-written.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes whenever a hold is raised, released or ended.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// Reads the holds a previous leader left (at election).
    pub async fn load(&self, ctx: &Ctx) -> Result<(), ZkError> {
        let path = ctx.zk.layout().admission();
        let (holds, version) = match ctx.zk.get_versioned(&path).await? {
            Some((bytes, v)) => match from_json::<Holds>("admission holds", &bytes) {
                Ok(h) => (h, Some(v)),
                Err(e) => {
                    // Unreadable: start afresh (the next write replaces it) rather than
                    // refuse every failover.
                    tracing::error!(error = %e, "the admission holds record is unreadable: treating it as empty");
                    (Holds::default(), Some(v))
                }
            },
            None => (Holds::default(), None),
        };
        for (dc, h) in &holds.holds {
            tracing::warn!(datacenter = %dc_name(dc), hold = %h.describe(dc), "failover hold in force (left by a previous leader)");
        }
        let mut i = self.lock();
        i.holds = holds;
        i.version = version;
        publish_metrics(&i);
        Ok(())
    }

    /// The clusters the leader lists now.
    pub fn listed(&self, names: &[String]) {
        let mut i = self.lock();
        let names: BTreeSet<String> = names.iter().cloned().collect();
        i.seen.retain(|c, _| names.contains(c));
        for held in i.held.values_mut() {
            held.retain(|c| names.contains(c));
        }
        i.listed = Some(names);
    }

    /// Records what a pass saw; returns a datacenter whose hold is over (its primaries
    /// all reachable again or replaced), for the caller to end.
    pub fn observe(&self, view: &ClusterView) -> Option<String> {
        let dc_of = |host: &str| view.hosts.get(host).map(|h| h.datacenter.clone());
        let state = view.state.as_ref().map(|(s, _)| s);
        let primary = state.and_then(|s| s.primary.clone()).and_then(|p| {
            let datacenter = dc_of(&p)?;
            let unreachable_since_ms = view
                .health
                .get(&p)
                .filter(|h| h.health == Health::Unreachable)
                .map(|h| h.since_unix_ms);
            Some(PrimarySeen {
                datacenter,
                unreachable_since_ms,
            })
        });
        let failover_in = view
            .journal
            .as_ref()
            .map(|j| dc_of(&j.old_primary).unwrap_or_default());
        let cluster = view.name.to_string();
        let mut i = self.lock();
        let reachable = primary
            .as_ref()
            .is_none_or(|p| p.unreachable_since_ms.is_none());
        if reachable {
            for held in i.held.values_mut() {
                held.remove(&cluster);
            }
        }
        if failover_in.is_some() {
            for waiting in i.over_budget.values_mut() {
                waiting.remove(&cluster);
            }
        }
        let dc = primary.as_ref().map(|p| p.datacenter.clone());
        let seen = i.seen.entry(cluster).or_default();
        let was = seen.primary.as_ref().map(|p| p.datacenter.clone());
        seen.primary = primary;
        seen.failover_in = failover_in;
        publish_metrics(&i);
        // Only a datacenter this cluster's primary is (or was) in can have changed.
        [dc, was]
            .into_iter()
            .flatten()
            .find(|dc| i.holds.holds.contains_key(dc) && self.over(&i, dc))
    }

    fn over(&self, i: &Inner, dc: &str) -> bool {
        let every_one_seen = i
            .listed
            .as_ref()
            .is_some_and(|l| l.iter().all(|c| i.seen.contains_key(c)));
        every_one_seen && hold_over(&self.census(i, dc, now_ms()))
    }

    fn census(&self, i: &Inner, dc: &str, now: u64) -> Census {
        census(
            i.seen
                .iter()
                .filter_map(|(c, s)| s.primary.as_ref().map(|p| (c, p))),
            dc,
            now,
            self.policy.window_ms,
        )
    }

    /// Ends `dc`'s hold if it is still over.
    pub async fn end_if_over(&self, ctx: &Ctx, dc: &str) -> Result<(), ZkError> {
        let ended = self
            .change(ctx, |i, holds| {
                if !self.over(i, dc) {
                    return None;
                }
                holds.holds.remove(dc)
            })
            .await?;
        if let Some(h) = ended {
            tracing::warn!(datacenter = %dc_name(dc), hold = %h.describe(dc), "failover hold ended: none of the datacenter's primaries is unreachable any more");
            self.lock().held.remove(dc);
            self.bump();
        }
        Ok(())
    }

    /// Applies `f` to the holds record with a compare-and-set (retried on conflict); `f`
    /// returns `None` for "nothing to change". Returns what `f` returned.
    async fn change<T>(
        &self,
        ctx: &Ctx,
        mut f: impl FnMut(&Inner, &mut Holds) -> Option<T>,
    ) -> Result<Option<T>, ZkError> {
        let path = ctx.zk.layout().admission();
        for _ in 0..ATTEMPTS {
            let (mut holds, version) = {
                let i = self.lock();
                (i.holds.clone(), i.version)
            };
            let Some(out) = ({
                let i = self.lock();
                f(&i, &mut holds)
            }) else {
                return Ok(None);
            };
            let op = match version {
                Some(v) => Op::Set {
                    path: path.clone(),
                    data: to_json(&holds),
                    version: Some(v),
                },
                None => Op::Create {
                    path: path.clone(),
                    data: to_json(&holds),
                },
            };
            match ctx.write(&[op]).await {
                Ok(()) => {
                    let mut i = self.lock();
                    i.holds = holds;
                    i.version = Some(version.map_or(0, |v| v + 1));
                    publish_metrics(&i);
                    return Ok(Some(out));
                }
                Err(ZkError::Conflict { .. }) => {
                    // Only the leader writes it: someone changed it by hand, or a write
                    // of ours whose answer was lost landed. Read it again.
                    self.load(ctx).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(ZkError::Conflict {
            detail: format!("{path}: kept changing"),
        })
    }

    fn running_in(i: &Inner, cluster: &str, dc: &str) -> u32 {
        i.seen
            .iter()
            .filter(|(c, s)| c.as_str() != cluster && s.failover_in.as_deref() == Some(dc))
            .count() as u32
    }

    /// Whether the datacenter's budget has room for one more failover (nothing reserved).
    pub fn has_room(&self, cluster: &str, dc: &str) -> bool {
        let i = self.lock();
        within_budget(Self::running_in(&i, cluster, dc), self.budget)
    }

    /// Whether a failover whose old primary is in `dc` may start now (the datacenter's
    /// budget); if so it counts as running from now.
    pub fn may_start(&self, cluster: &str, dc: &str) -> bool {
        let mut i = self.lock();
        let running = Self::running_in(&i, cluster, dc);
        let ok = within_budget(running, self.budget);
        if ok {
            i.seen.entry(cluster.to_owned()).or_default().failover_in = Some(dc.to_owned());
            for waiting in i.over_budget.values_mut() {
                waiting.remove(cluster);
            }
        } else {
            let new = i
                .over_budget
                .entry(dc.to_owned())
                .or_default()
                .insert(cluster.to_owned());
            if new {
                tracing::warn!(cluster = %cluster, datacenter = %dc_name(dc), running, budget = self.budget, "failover waits: the datacenter's failover budget (admission.max_failovers_per_datacenter) is used up");
            }
        }
        publish_metrics(&i);
        ok
    }

    /// A failover that was allowed to start did not (its journal write failed).
    pub fn not_started(&self, cluster: &str) {
        if let Some(s) = self.lock().seen.get_mut(cluster) {
            s.failover_in = None;
        }
    }

    /// Whether the failover of `cluster`'s primary (in `dc`, unreachable since
    /// `since_ms`, verified dead; `witness`: a replica in `dc` whose agent answered and
    /// could not reach it) may go ahead. Waits out the settling time first (then says
    /// so: the caller checks the primary is still lost); raises a hold when this is a
    /// mass loss.
    pub async fn decide(
        &self,
        ctx: &Ctx,
        cluster: &str,
        dc: &str,
        since_ms: u64,
        witness: Option<&str>,
    ) -> Result<(Decision, bool), ZkError> {
        if !self.enabled {
            return Ok((Decision::Go(None), false));
        }
        let mut settled = false;
        loop {
            let now = now_ms();
            let (decision, raise, census, hold) = {
                let i = self.lock();
                let census = self.census(&i, dc, now);
                let hold = i.holds.holds.get(dc).cloned();
                let (d, raise) =
                    admit(&self.policy, hold.as_ref(), &census, since_ms, now, witness);
                (d, raise, census, hold)
            };
            if raise {
                self.raise(ctx, dc, &census).await?;
                // Decide again against the hold now stored.
                continue;
            }
            let described = || hold.as_ref().map(|h| h.describe(dc)).unwrap_or_default();
            let decision = match decision {
                Admit::Go => Decision::Go(None),
                Admit::Settle { until_ms } => {
                    tokio::time::sleep(Duration::from_millis(until_ms.saturating_sub(now))).await;
                    settled = true;
                    continue;
                }
                Admit::Held => {
                    let mut i = self.lock();
                    let new = i
                        .held
                        .entry(dc.to_owned())
                        .or_default()
                        .insert(cluster.to_owned());
                    publish_metrics(&i);
                    drop(i);
                    if new {
                        tracing::error!(cluster = %cluster, datacenter = %dc_name(dc), hold = %described(), "failover held by admission control: no replica in the datacenter confirms the primary dead (`altairctl release {dc}` lets it go)");
                    }
                    Decision::Held(described())
                }
                Admit::Witnessed { witness } => {
                    self.unhold(cluster);
                    tracing::warn!(cluster = %cluster, datacenter = %dc_name(dc), witness = %witness, "datacenter held, but a replica there confirms the primary dead: failing over");
                    Decision::Go(Some(format!(
                        "admission control held {} ({}); this failover went ahead: {witness}, in the same datacenter, could not reach the primary",
                        dc_name(dc),
                        described()
                    )))
                }
                Admit::Released { by } => {
                    self.unhold(cluster);
                    tracing::warn!(cluster = %cluster, datacenter = %dc_name(dc), released_by = %by, "failover hold released: failing over");
                    Decision::Go(Some(format!(
                        "admission control held this failover ({})",
                        described()
                    )))
                }
            };
            return Ok((decision, settled));
        }
    }

    fn unhold(&self, cluster: &str) {
        let mut i = self.lock();
        for held in i.held.values_mut() {
            held.remove(cluster);
        }
        publish_metrics(&i);
    }

    async fn raise(&self, ctx: &Ctx, dc: &str, census: &Census) -> Result<(), ZkError> {
        let hold = Hold {
            raised_at_ms: now_ms(),
            primaries: census.primaries,
            unreachable: census.recent.clone(),
            released: None,
        };
        let raised = self
            .change(ctx, |_, holds| {
                if holds.holds.contains_key(dc) {
                    return None;
                }
                holds.holds.insert(dc.to_owned(), hold.clone());
                Some(())
            })
            .await?;
        if raised.is_none() {
            return Ok(());
        }
        crate::metrics::ADMISSION_HOLDS
            .get_or_create(&crate::metrics::labels(&[("datacenter", dc)]))
            .inc();
        tracing::error!(datacenter = %dc_name(dc), hold = %hold.describe(dc), window_s = self.policy.window_ms / 1000, "failover hold raised: so many primaries of one datacenter lost at once looks like this observer's own partition; their failovers wait for a replica in that datacenter to confirm, or `altairctl release {dc}`");
        self.bump();
        if !self.hook.is_empty() {
            let event = serde_json::json!({
                "event": "admission_hold",
                "datacenter": dc,
                "raised_at_ms": hold.raised_at_ms,
                "primaries": hold.primaries,
                "unreachable": hold.unreachable,
                "window_s": self.policy.window_ms / 1000,
            });
            let (argv, timeout) = (self.hook.clone(), ctx.config.hooks.timeout_ms);
            let dc = dc.to_owned();
            // Beside the decisions: a slow hook delays nothing.
            tokio::spawn(async move {
                if let Err(e) = crate::hooks::run("admission", &argv, &event, timeout).await {
                    tracing::warn!(datacenter = %dc_name(&dc), error = %e, "admission hook failed");
                }
            });
        }
        Ok(())
    }

    /// An operator's release of `dc`'s hold: the clusters held there now.
    pub async fn release(
        &self,
        ctx: &Ctx,
        dc: &str,
        release: Release,
    ) -> Result<Result<Vec<String>, String>, ZkError> {
        let done = self
            .change(ctx, |_, holds| {
                let h = holds.holds.get_mut(dc)?;
                h.released.is_none().then(|| {
                    h.released = Some(release.clone());
                })
            })
            .await?;
        let (exists, held) = {
            let i = self.lock();
            (
                i.holds.holds.contains_key(dc),
                i.held
                    .get(dc)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default(),
            )
        };
        if !exists {
            return Ok(Err(format!(
                "no failover hold on datacenter {dc} (`altairctl status` lists the holds)"
            )));
        }
        if done.is_some() {
            tracing::warn!(datacenter = %dc_name(dc), released_by = %release.by, reason = %release.reason, held = ?held, "failover hold released by an operator");
            self.bump();
        }
        Ok(Ok(held))
    }
}

fn publish_metrics(i: &Inner) {
    use crate::metrics::{ADMISSION_HELD, ADMISSION_HOLD, OVER_BUDGET, labels};
    ADMISSION_HOLD.clear();
    for (dc, h) in &i.holds.holds {
        ADMISSION_HOLD
            .get_or_create(&labels(&[
                ("datacenter", dc),
                ("released", if h.released.is_some() { "yes" } else { "no" }),
            ]))
            .set(1);
    }
    ADMISSION_HELD.clear();
    for (dc, held) in &i.held {
        if !held.is_empty() {
            ADMISSION_HELD
                .get_or_create(&labels(&[("datacenter", dc)]))
                .set(held.len() as i64);
        }
    }
    OVER_BUDGET.clear();
    for (dc, waiting) in &i.over_budget {
        if !waiting.is_empty() {
            OVER_BUDGET
                .get_or_create(&labels(&[("datacenter", dc)]))
                .set(waiting.len() as i64);
        }
    }
}

/// A follower exports no admission series (the leader's are the truth).
pub fn clear_metrics() {
    crate::metrics::ADMISSION_HOLD.clear();
    crate::metrics::ADMISSION_HELD.clear();
    crate::metrics::OVER_BUDGET.clear();
}
