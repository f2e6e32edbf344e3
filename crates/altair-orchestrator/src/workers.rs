//! The leader's workers: one task per cluster, woken by ZooKeeper watch events.
//!
//! A failover, its hooks and its waits run in their cluster's worker, so they never
//! delay another cluster; at most `orchestrator.max_parallel_failovers` are driven at
//! once (detection and verification never wait for a slot). A worker looks at its
//! cluster when an event under it arrives, while something is under way there (an
//! unhealthy primary, a journal, an old primary to tend) and at least every
//! `orchestrator.resync_interval_s`. A look re-reads only the znodes the events since the
//! last look name, when it can (see `work`), else the whole cluster; an idle fleet costs
//! ZooKeeper no reads between resyncs. The journal + epoch compare-and-set stays the
//! lock between processes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use altair_core::ClusterName;
use altair_zk::{EventType, SessionState, ZkError};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::ctx::Ctx;
use crate::leader::{Pace, pass};
use crate::rejoin::Tending;
use crate::view::ClusterView;
use crate::view_patch::{self, Dirty};

/// How soon a worker looks again while something is under way in its cluster.
const ACTIVE_EVERY: Duration = Duration::from_millis(100);
/// How soon a worker looks again after a pass failed (ZooKeeper connection loss, an
/// unreadable record).
const RETRY_EVERY: Duration = Duration::from_millis(500);
/// A worker that panicked is started again after this (a panic that repeats does not spin).
const PANIC_BACKOFF: Duration = Duration::from_secs(1);

/// Failover slots shared by every worker of this leader.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    fn new(n: u32) -> Self {
        Self(Arc::new(Semaphore::new(n as usize)))
    }

    /// Waits for a free slot; the permit is given back when dropped.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        if let Ok(p) = self.0.clone().try_acquire_owned() {
            return p;
        }
        crate::metrics::FAILOVERS_QUEUED.inc();
        let permit = self.0.clone().acquire_owned().await;
        crate::metrics::FAILOVERS_QUEUED.dec();
        permit.expect("the failover semaphore is never closed")
    }
}

struct Worker {
    wake: Arc<Notify>,
    /// What changed in its cluster since it last looked.
    dirty: Arc<Mutex<Dirty>>,
    stop: CancellationToken,
    task: Option<tokio::task::Id>,
}

/// Runs the workers until leadership or the session is lost (an error) or `cancel`.
/// Dropping the returned future stops every worker.
pub async fn supervise(ctx: &Ctx, cancel: &CancellationToken) -> Result<(), ZkError> {
    let root = ctx.zk.layout().clusters();
    // Watch first, then list: nothing created in between is missed. (Persistent watches
    // need ZooKeeper 3.6 or later.)
    let mut events = loop {
        match ctx.zk.watch_tree(&root).await {
            Ok(w) => break w,
            Err(e) if e.is_retryable() => {
                tracing::warn!(error = %e, "watching the clusters failed; retrying");
                tokio::time::sleep(RETRY_EVERY).await;
            }
            Err(e) => return Err(e),
        }
    };
    let slots = Slots::new(ctx.config.orchestrator.max_parallel_failovers);
    // The watch's epoch: even while it is in place (events arrive), odd from a
    // disconnection until it is set again. A view is kept, and patched, only within one
    // even epoch.
    let live = Arc::new(AtomicU64::new(0));
    let resync = Duration::from_secs(ctx.config.orchestrator.resync_interval_s);
    let mut tasks: JoinSet<(String, Result<(), ZkError>)> = JoinSet::new();
    let mut workers: HashMap<String, Worker> = HashMap::new();
    let mut list = tokio::time::interval(resync);
    let mut disconnected = false;
    // The clusters' watch must be set again (after a reconnection): when to try.
    let mut rewatch_at: Option<tokio::time::Instant> = None;
    let result = loop {
        tokio::select! {
            _ = list.tick() => {
                let names = match ctx.zk.children(&root).await {
                    Ok(names) => names,
                    Err(e) if e.is_session_lost() => break Err(e),
                    Err(e) => {
                        // Listed again soon; the workers go on meanwhile.
                        crate::metrics::ZK_ERRORS.inc();
                        tracing::warn!(error = %e, "listing the clusters failed; retrying");
                        list.reset_after(RETRY_EVERY);
                        continue;
                    }
                };
                ctx.admission.listed(&names);
                workers.retain(|name, w| {
                    let keep = names.contains(name);
                    if !keep {
                        tracing::info!(cluster = %name, "cluster gone from ZooKeeper: its worker stops");
                        w.stop.cancel();
                        crate::metrics::paused(name, None);
                    }
                    keep
                });
                for name in names {
                    start(ctx, &slots, &live, &mut tasks, &mut workers, &name, Duration::ZERO);
                }
            }
            event = events.changed() => {
                crate::metrics::WATCH_EVENTS.inc();
                if event.event_type == EventType::Session {
                    match event.session_state {
                        s if s.is_terminated() => {
                            break Err(ZkError::SessionExpired { op: "watch", path: root.clone() });
                        }
                        SessionState::Disconnected => {
                            // Events of the gap may be lost: no patching until the watch
                            // is set again, and every view read whole after.
                            disconnected = true;
                            if live.load(Ordering::SeqCst).is_multiple_of(2) {
                                live.fetch_add(1, Ordering::SeqCst);
                            }
                            for w in workers.values() {
                                w.mark_all();
                            }
                        }
                        SessionState::SyncConnected if disconnected => {
                            // zookeeper-client 0.11 does not send persistent watches
                            // again on a reconnection (its SetWatches request carries
                            // only the one-shot kinds), and the server forgets a watch
                            // with the connection that set it: without this the workers
                            // were never woken again (found by the soak: a dead primary
                            // not failed over after a ZooKeeper quorum loss). Set again
                            // first, then every worker re-reads (events of the gap may
                            // be lost).
                            disconnected = false;
                            rewatch_at = Some(tokio::time::Instant::now());
                        }
                        _ => {}
                    }
                    continue;
                }
                if let Some((name, relative)) = cluster_of(&root, &event.path) {
                    // A deletion wakes a worker but never starts one (the cluster may
                    // be the thing deleted; the next listing stops its worker).
                    if event.event_type != EventType::NodeDeleted {
                        start(ctx, &slots, &live, &mut tasks, &mut workers, name, Duration::ZERO);
                    }
                    if let Some(w) = workers.get(name) {
                        let structural = matches!(
                            event.event_type,
                            EventType::NodeCreated | EventType::NodeDeleted
                        );
                        w.note(Some((relative, structural)));
                    }
                }
            }
            () = tokio::time::sleep_until(rewatch_at.unwrap_or_else(tokio::time::Instant::now)), if rewatch_at.is_some() => {
                match ctx.zk.watch_tree(&root).await {
                    Ok(w) => {
                        // The old watcher goes after the new one is set (dropping it
                        // then removes nothing on the server).
                        events = w;
                        rewatch_at = None;
                        if live.load(Ordering::SeqCst) % 2 == 1 {
                            live.fetch_add(1, Ordering::SeqCst);
                        }
                        tracing::info!(clusters = workers.len(), "ZooKeeper reconnected: clusters watched again, re-reading every cluster");
                        for w in workers.values() {
                            w.note(None);
                        }
                        // A cluster created in the gap has no worker yet.
                        list.reset_immediately();
                    }
                    Err(e) if e.is_session_lost() => break Err(e),
                    Err(e) => {
                        // The workers go on meanwhile (and poll while anything is under
                        // way); the watch is tried again shortly.
                        crate::metrics::ZK_ERRORS.inc();
                        tracing::warn!(error = %e, "watching the clusters again failed; retrying");
                        rewatch_at = Some(tokio::time::Instant::now() + RETRY_EVERY);
                    }
                }
            }
            Some(done) = tasks.join_next() => match done {
                // A worker ends on its own only when this orchestrator must stop leading.
                Ok((_, Err(e))) => break Err(e),
                // Stopped: it was removed when its cluster went.
                Ok((_, Ok(()))) => {}
                Err(e) => {
                    let mut lost = Vec::new();
                    workers.retain(|name, w| {
                        let gone = w.task == Some(e.id());
                        if gone {
                            tracing::error!(cluster = %name, error = %e, "a cluster worker panicked; restarting it");
                            lost.push(name.clone());
                        }
                        !gone
                    });
                    for name in lost {
                        start(ctx, &slots, &live, &mut tasks, &mut workers, &name, PANIC_BACKOFF);
                    }
                }
            },
            () = cancel.cancelled() => break Ok(()),
        }
        crate::metrics::CLUSTER_WORKERS.set(workers.len() as i64);
    };
    crate::metrics::CLUSTER_WORKERS.set(0);
    result
}

impl Worker {
    /// Its next look reads the whole cluster (without waking it).
    fn mark_all(&self) {
        match self.dirty.lock() {
            Ok(mut d) => d.everything(),
            Err(poisoned) => poisoned.into_inner().everything(),
        }
    }

    /// Records a change at `relative` (`None`: events may have been lost) and wakes it.
    fn note(&self, change: Option<(&str, bool)>) {
        match change {
            Some((relative, structural)) => match self.dirty.lock() {
                Ok(mut d) => d.note(relative, structural),
                Err(poisoned) => poisoned.into_inner().everything(),
            },
            None => self.mark_all(),
        }
        self.wake.notify_one();
    }
}

/// The cluster an event path under `root` (`<root>/<cluster>/…`) belongs to, and the
/// path under the cluster's node (`""` for the node itself).
fn cluster_of<'a>(root: &str, path: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = path.strip_prefix(root)?.strip_prefix('/')?;
    let (name, relative) = rest.split_once('/').unwrap_or((rest, ""));
    (!name.is_empty()).then_some((name, relative))
}

fn start(
    ctx: &Ctx,
    slots: &Slots,
    live: &Arc<AtomicU64>,
    tasks: &mut JoinSet<(String, Result<(), ZkError>)>,
    workers: &mut HashMap<String, Worker>,
    name: &str,
    first_after: Duration,
) {
    if workers.contains_key(name) {
        return;
    }
    let Ok(cluster) = ClusterName::new(name.to_owned()) else {
        return;
    };
    let mut worker = Worker {
        wake: Arc::new(Notify::new()),
        dirty: Arc::default(),
        stop: CancellationToken::new(),
        task: None,
    };
    let (ctx, slots, wake, dirty, live, stop) = (
        ctx.clone(),
        slots.clone(),
        worker.wake.clone(),
        worker.dirty.clone(),
        live.clone(),
        worker.stop.clone(),
    );
    let handle = tasks.spawn(async move {
        let result = tokio::select! {
            biased;
            () = stop.cancelled() => Ok(()),
            r = async {
                tokio::time::sleep(first_after).await;
                work(&ctx, &cluster, &slots, &wake, &dirty, &live).await
            } => r,
        };
        (cluster.to_string(), result)
    });
    worker.task = Some(handle.id());
    workers.insert(name.to_owned(), worker);
}

/// One cluster's loop; returns only when this orchestrator must stop leading.
///
/// A look patches the view the last one kept with what changed since (`view_patch`)
/// when that view has no journal, this process has written nothing under the cluster
/// since that look began, the watch has stayed in place since and the view was read
/// whole less than `resync_interval_s` ago; every other look — the first, a resync,
/// one after a write or during a failover, one after a reconnection — reads the whole
/// cluster.
async fn work(
    ctx: &Ctx,
    cluster: &ClusterName,
    slots: &Slots,
    wake: &Notify,
    dirty: &Mutex<Dirty>,
    live: &AtomicU64,
) -> Result<(), ZkError> {
    let resync = Duration::from_secs(ctx.config.orchestrator.resync_interval_s);
    let reverify = Duration::from_millis(ctx.config.orchestrator.reverify_interval_ms);
    let mut alive_seen = None;
    let mut watch = crate::reopen::Watch::default();
    let mut tending = Tending::default();
    let mut holds = ctx.admission.subscribe();
    let mut kept: Option<Kept> = None;
    loop {
        holds.mark_unchanged();
        let mut held = false;
        // Taken before anything is read: an event arriving from here on is for the next
        // look.
        let changed = take(dirty);
        let writes = altair_zk::writes_to_cluster(cluster.as_str());
        let epoch = live.load(Ordering::SeqCst);
        let usable = kept
            .take()
            .filter(|k| k.writes == writes && k.epoch == epoch && k.loaded_at.elapsed() < resync);
        let looked = async {
            let (view, loaded_at) = current_view(ctx, cluster, usable, &changed).await?;
            let pace = pass(ctx, &view, &mut alive_seen, &mut watch, &mut tending, slots).await?;
            Ok::<_, ZkError>((view, loaded_at, pace))
        }
        .await;
        let looked = looked.map(|(view, loaded_at, pace)| {
            // A look that wrote under its cluster keeps nothing (its own write's event
            // may reach the next look late).
            if view.journal.is_none()
                && altair_zk::writes_to_cluster(cluster.as_str()) == writes
                && epoch.is_multiple_of(2)
                && live.load(Ordering::SeqCst) == epoch
            {
                kept = Some(Kept {
                    view,
                    loaded_at,
                    writes,
                    epoch,
                });
            }
            pace
        });
        let idle = matches!(looked, Ok(Pace::Idle));
        let wait = match looked {
            Ok(Pace::Active) => ACTIVE_EVERY,
            Ok(Pace::Held) => {
                held = true;
                reverify
            }
            Ok(Pace::Within(d)) => d.min(resync),
            // Spread the resyncs of a fleet over time.
            Ok(Pace::Idle) => resync.mul_f64(0.75 + rand::random::<f64>() * 0.5),
            Err(e @ (ZkError::NotLeader { .. } | ZkError::SessionExpired { .. })) => {
                return Err(e);
            }
            Err(e) => {
                crate::metrics::ZK_ERRORS.inc();
                tracing::warn!(cluster = %cluster, error = %e, "cluster pass failed; retrying");
                RETRY_EVERY
            }
        };
        tokio::select! {
            // An idle cluster's timer is its resync: read whole.
            () = tokio::time::sleep(wait) => if idle {
                kept = None;
            },
            () = wake.notified() => {}
            // A held failover is decided again at once when a hold changes (released).
            Ok(()) = holds.changed(), if held => alive_seen = None,
        }
    }
}

/// The view a look kept for the next one.
struct Kept {
    view: ClusterView,
    /// When it was last read whole.
    loaded_at: Instant,
    /// This process's writes under the cluster when the look that kept it began.
    writes: u64,
    /// The watch's epoch it was kept in (events of another may be lost).
    epoch: u64,
}

/// What changed since the last look (a poisoned lock: possibly anything).
fn take(dirty: &Mutex<Dirty>) -> Dirty {
    match dirty.lock() {
        Ok(mut d) => std::mem::take(&mut *d),
        Err(poisoned) => {
            let mut d = std::mem::take(&mut *poisoned.into_inner());
            dirty.clear_poison();
            d.everything();
            d
        }
    }
}

/// The cluster as it is now, and when it was last read whole: `kept` patched with what
/// `changed` since, or read whole now.
async fn current_view(
    ctx: &Ctx,
    cluster: &ClusterName,
    kept: Option<Kept>,
    changed: &Dirty,
) -> Result<(ClusterView, Instant), ZkError> {
    if let Some(Kept {
        view, loaded_at, ..
    }) = kept
        && let Some(reads) = view_patch::plan(changed, |h| view.hosts.contains_key(h))
        && let Some(view) = view_patch::apply(&ctx.zk, view, reads).await?
    {
        crate::metrics::VIEW_PATCHES.inc();
        return Ok((view, loaded_at));
    }
    let loaded_at = Instant::now();
    let view = ClusterView::load(&ctx.zk, cluster).await?;
    crate::metrics::VIEW_LOADS.inc();
    Ok((view, loaded_at))
}

#[cfg(test)]
mod tests {
    use super::cluster_of;

    #[test]
    fn events_are_routed_to_their_cluster() {
        let root = "/altair/clusters";
        assert_eq!(
            cluster_of(root, "/altair/clusters/c1/state"),
            Some(("c1", "state"))
        );
        assert_eq!(cluster_of(root, "/altair/clusters/c1"), Some(("c1", "")));
        assert_eq!(
            cluster_of(root, "/altair/clusters/c2/health/h1"),
            Some(("c2", "health/h1"))
        );
        assert_eq!(cluster_of(root, "/altair/clusters"), None);
        assert_eq!(cluster_of(root, "/altair/clustersX/c1"), None);
        assert_eq!(cluster_of(root, "/other/c1"), None);
    }
}
