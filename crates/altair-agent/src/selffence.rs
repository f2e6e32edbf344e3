//! Self-fencing (DESIGN §6, `altair_core::selffence`): a writable primary keeps writing
//! only while it holds a control-plane lease (an accepted heartbeat answer) or reaches
//! every replica's agent; without either for `self_fence_after_ms` it fences itself —
//! clients killed, read_only, and if that cannot be done, mysqld killed — before the
//! orchestrator may promote another host.
//!
//! Times are on a monotonic clock (an `Instant` at start), so a wall-clock step can
//! neither delay nor hasten the fence. Every replica is checked in parallel within one
//! deadline; the replicas are the cluster's registered hosts (from ZooKeeper, kept when
//! ZooKeeper is gone) plus any the server reports, so a replica dropping out of
//! `SHOW SLAVE HOSTS` never shrinks "every replica".

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How long the self-fence may spend making mysqld read-only before it stops it: with
/// the wait for its session's kill (`deadline::KILL_WAIT`), well inside
/// `altair_core::selffence::SELF_FENCE_MARGIN_MS`, the slack the orchestrator's promotion
/// bound keeps after the agent's.
const SELF_FENCE_SQL: Duration = Duration::from_millis(400);

use altair_core::selffence::{SELF_FENCE_MARGIN_MS, reached_every_replica, self_fence_due};
use altair_proto::v1::MysqlSnapshot;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::probe::now_ms;

mod io;
#[cfg(test)]
mod tests;

pub use io::FenceIo;

/// A lapse of contact and when a renewal ended it (ms of the agent's monotonic clock).
#[derive(Debug, Default, Clone, Copy)]
struct Lapse {
    ms: u64,
    ended_ms: u64,
}

/// When the agent last had what keeps its primary writable, in ms of its monotonic clock.
#[derive(Debug)]
pub struct Contact {
    start: Instant,
    /// An accepted heartbeat answer (the lease).
    pub last_lease_ms: AtomicU64,
    /// A round of checks that reached every replica's agent.
    pub last_all_replicas_ms: AtomicU64,
    /// When this agent fenced its mysqld itself, ms since the Unix epoch; 0 = never.
    pub fenced_at_ms: AtomicU64,
    /// The longest time without any contact (lease or every replica) that a renewal
    /// ended since the self-fencing loop last took it, and when it ended: a lapse a
    /// renewal must not hide.
    lapse: Mutex<Lapse>,
    /// When this agent last made mysqld writable (a promotion, a lift), ms of its
    /// monotonic clock; 0 = never. A lapse that ended before it was not a primary's: the
    /// failover that made this host writable came after anything the control plane did
    /// during it (seen in chaos: a replica cut from its killed monitor, promoted 23 ms
    /// after contact came back, took that replica's lapse for a primary's and fenced
    /// itself when a partition then hid ZooKeeper, its lease intact). A lapse that ends
    /// after it counts whole, from the last contact, as the orchestrator counts it.
    writable_at_ms: AtomicU64,
    /// `self_fence_after_ms`, once the self-fencing loop runs (0 before: nothing may be
    /// lifted until it does).
    pub bound_ms: AtomicU64,
    /// The other hosts' agent addresses, as registered in ZooKeeper.
    pub peers: Mutex<Vec<String>>,
    /// The mysqld addresses of every host registered in this cluster: the only targets
    /// `CheckReachability` logs in to (the admin credentials never go anywhere else).
    pub cluster_mysql: Mutex<Vec<String>>,
}

impl Contact {
    /// Starting counts as contact: a fresh agent gets the full bound.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            last_lease_ms: AtomicU64::new(0),
            last_all_replicas_ms: AtomicU64::new(0),
            fenced_at_ms: AtomicU64::new(0),
            bound_ms: AtomicU64::new(0),
            lapse: Mutex::new(Lapse::default()),
            writable_at_ms: AtomicU64::new(0),
            peers: Mutex::new(Vec::new()),
            cluster_mysql: Mutex::new(Vec::new()),
        }
    }

    /// Now on the monotonic clock.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Whether this host may be a writable primary now by the self-fencing rule: it holds
    /// a lease or reaches every replica, within the bound. A request to lift read_only
    /// while it may not is refused: the self-fence would undo it, and until then (a leader
    /// acting on a stale view from across a partition) it could take writes while
    /// another host is promoted.
    ///
    /// Unlike the self-fence, which grants a fresh agent the whole bound, this asks for
    /// real contact since the agent started: a host rebooted inside a partition must not
    /// be lifted on the strength of its start alone. (A read-only host refreshes only its
    /// lease: the every-replica round runs while it is writable.)
    pub fn may_be_writable(&self) -> bool {
        let bound = self.bound_ms.load(Ordering::SeqCst);
        let lease = self.last_lease_ms.load(Ordering::SeqCst);
        let replicas = self.last_all_replicas_ms.load(Ordering::SeqCst);
        bound > 0
            && (lease > 0 || replicas > 0)
            && !self_fence_due(self.now(), true, lease, replicas, bound)
    }

    /// The lease from a heartbeat sent at `sent_ms` (monotonic) and accepted.
    pub fn lease_renewed_at(&self, sent_ms: u64) {
        self.note_gap(sent_ms);
        self.last_lease_ms.fetch_max(sent_ms, Ordering::SeqCst);
    }

    /// Records how long contact had lapsed when it is renewed at `at_ms`.
    fn note_gap(&self, at_ms: u64) {
        let last = self
            .last_lease_ms
            .load(Ordering::SeqCst)
            .max(self.last_all_replicas_ms.load(Ordering::SeqCst));
        self.note_lapse(at_ms.saturating_sub(last), at_ms);
    }

    /// Records a lapse of `ms` that ended at `ended_ms`: kept if it is the longest since
    /// the last take, or if the one kept ended before this host was made writable.
    pub(crate) fn note_lapse(&self, ms: u64, ended_ms: u64) {
        let writable_at = self.writable_at_ms.load(Ordering::SeqCst);
        let mut l = self.lapse.lock().unwrap_or_else(PoisonError::into_inner);
        if ms >= l.ms || l.ended_ms < writable_at {
            *l = Lapse { ms, ended_ms };
        }
    }

    /// The longest lapse since the last take, if it ended after this agent last made
    /// mysqld writable (0 otherwise).
    fn take_lapse(&self) -> u64 {
        let writable_at = self.writable_at_ms.load(Ordering::SeqCst);
        let l = std::mem::take(&mut *self.lapse.lock().unwrap_or_else(PoisonError::into_inner));
        if l.ended_ms < writable_at { 0 } else { l.ms }
    }

    /// This agent makes mysqld writable (a promotion, a lift): called before and after
    /// the statements, so a lapse whose renewal was in flight meanwhile is dropped too.
    pub fn made_writable(&self) {
        self.writable_at_ms.store(self.now(), Ordering::SeqCst);
    }

    /// Records that this agent fenced its mysqld itself (status reports when; the metric
    /// counts it).
    fn fenced_itself(&self) {
        self.fenced_at_ms.store(now_ms() as u64, Ordering::SeqCst);
        crate::metrics::SELF_FENCES.inc();
    }

    pub fn set_peers(&self, peers: Vec<String>) {
        if let Ok(mut p) = self.peers.lock() {
            *p = peers;
        }
    }

    pub fn set_cluster_mysql(&self, addresses: Vec<String>) {
        if let Ok(mut m) = self.cluster_mysql.lock() {
            *m = addresses;
        }
    }

    /// Whether `host:port` is the mysqld of a host registered in this cluster.
    pub fn is_cluster_mysql(&self, host: &str, port: u16) -> bool {
        let want = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        self.cluster_mysql
            .lock()
            .map(|m| m.contains(&want))
            .unwrap_or(false)
    }

    fn peers(&self) -> Vec<String> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Default for Contact {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn run<F: FenceIo>(
    contact: Arc<Contact>,
    snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    io: Arc<F>,
    (me, bound_ms): (String, u64),
    every: Duration,
    cancel: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    // After a lapse (the host or this agent frozen, a partition that healed), until when
    // ZooKeeper is asked each round whether a failover started meanwhile.
    contact.bound_ms.store(bound_ms, Ordering::SeqCst);
    let mut lapse_watch_until = 0u64;
    // The last answering probe showed a writable primary: a mysqld that stops answering
    // (frozen, hung) may resume writable, so it stays subject to the rule.
    let mut was_writable = false;
    let mut seen = std::collections::BTreeMap::<String, String>::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => return,
        }
        let snap = snapshots.borrow().clone();
        if snap.reachable {
            was_writable = !snap.read_only && snap.replication.is_none();
        }
        // This round's own view of the gap counts too (a freeze ends with this round).
        contact.note_gap(contact.now());
        if !was_writable {
            // Kept, not taken: a stale read-only snapshot on a resume must not drop the
            // lapse a writable primary had (only making it writable again does).
            lapse_watch_until = 0;
            continue;
        }
        let gap = contact.take_lapse();
        // Every replica: the registered agents, plus every replica the server has shown
        // on a host no registration names (remembered: a cut replica soon drops out of
        // SHOW SLAVE HOSTS, and a registration read can miss a host). More targets only
        // ever make the failsafe harder to claim.
        for r in snap.replicas.iter().filter_map(|r| r.endpoint.as_ref()) {
            seen.insert(r.host.clone(), format!("{}:{}", r.host, r.port));
        }
        let mut targets = contact.peers();
        let peer_hosts: Vec<String> = targets
            .iter()
            .filter_map(|a| a.rsplit_once(':').map(|(h, _)| h.to_owned()))
            .collect();
        targets.extend(
            seen.iter()
                .filter(|(host, _)| !peer_hosts.contains(host))
                .map(|(_, addr)| addr.clone()),
        );
        let deadline = every.min(Duration::from_millis(500));
        // A round that reaches every replica counts from its start: each replica's
        // agent accepted its connection after that, so the orchestrator, told by a
        // replica when it last accepted one from this host, knows a time no round of
        // this host's ended contact after.
        let round_started = contact.now();
        let checks = targets.iter().map(|addr| {
            let io = &io;
            async move {
                tokio::time::timeout(deadline, io.reach(addr))
                    .await
                    .unwrap_or(false)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        if reached_every_replica(&results) {
            contact.note_gap(round_started);
            contact
                .last_all_replicas_ms
                .fetch_max(round_started, Ordering::SeqCst);
        }
        let now = contact.now();
        let mut due = self_fence_due(
            now,
            true,
            contact.last_lease_ms.load(Ordering::SeqCst),
            contact.last_all_replicas_ms.load(Ordering::SeqCst),
            bound_ms,
        );
        // Contact that lapsed for the bound and came back proves nothing about the time
        // in between: the orchestrator may have promoted another host meanwhile (it may
        // once the bound has passed). Until the orchestrator could have finished, ask
        // ZooKeeper each round; a failover under way, another primary or no answer fences.
        if gap >= bound_ms {
            tracing::warn!(
                gap_ms = gap,
                bound_ms,
                "contact lapsed past the self-fencing bound; checking whether a failover started meanwhile"
            );
            lapse_watch_until =
                now + bound_ms + every.as_millis() as u64 + SELF_FENCE_MARGIN_MS + 5_000;
        }
        if !due && now < lapse_watch_until && io.failover_may_have_started(&me).await {
            tracing::error!(
                gap_ms = gap,
                "a failover started while contact had lapsed: fencing this primary"
            );
            due = true;
        }
        if !due {
            continue;
        }
        lapse_watch_until = 0;
        let reached = results.iter().filter(|r| **r).count();
        if !snap.reachable {
            // The last probe got no answer — possibly only because this agent was frozen
            // with its host and the probe's timer fired first on resume. The same bounded
            // attempt at read_only comes first; killing is what is left if it fails.
            tracing::warn!(
                error = %snap.probe_error,
                "the primary to fence did not answer the last probe: trying read_only within the bound before killing it"
            );
        }
        // Bounded well inside the promotion margin; past it, mysqld is stopped instead.
        let sql_deadline = tokio::time::Instant::now() + SELF_FENCE_SQL;
        match io.fence_read_only(sql_deadline).await {
            Ok(f) => {
                contact.fenced_itself();
                was_writable = false;
                tracing::error!(
                    bound_ms, connections_killed = f.killed, gtid = %f.gtid, not_running = f.not_running,
                    replicas_reached = reached, replicas = targets.len(),
                    "primary without a lease and out of reach of some replicas: fenced itself (clients killed, read_only)"
                );
            }
            Err(e) => {
                // It could not be made read-only: stop it rather than stay writable.
                tracing::error!(error = %e.message(), "could not fence the isolated primary read-only: killing mysqld");
                match io.stop_mysqld().await {
                    Ok(()) => {
                        contact.fenced_itself();
                        was_writable = false;
                    }
                    Err(e) => {
                        tracing::error!(error = %e.message(), "isolated primary could not be fenced")
                    }
                }
            }
        }
    }
}
