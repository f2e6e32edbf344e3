//! Self-fencing: a writable primary that hears no monitor and reaches no replica for
//! `self_fence_after_ms` makes itself read-only and kills client connections, before the
//! orchestrator may promote another host (see `altair_core::selffence`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use altair_core::selffence::self_fence_due;
use altair_proto::v1::{Endpoint, MysqlSnapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::actions::Actions;
use crate::probe::now_ms;

/// When the agent last had contact, ms since the Unix epoch.
#[derive(Debug)]
pub struct Contact {
    /// Any answer from a monitor (accepted or not: the control plane answered).
    pub last_control_ms: AtomicU64,
    /// A TCP connection to one of the primary's replicas.
    pub last_replica_ms: AtomicU64,
    /// When this agent fenced its mysqld itself; 0 = never.
    pub fenced_at_ms: AtomicU64,
}

impl Contact {
    /// Starting counts as contact: a fresh agent gets the full bound.
    pub fn new() -> Self {
        let now = now_ms() as u64;
        Self {
            last_control_ms: AtomicU64::new(now),
            last_replica_ms: AtomicU64::new(now),
            fenced_at_ms: AtomicU64::new(0),
        }
    }

    pub fn control_answered(&self) {
        self.last_control_ms
            .store(now_ms() as u64, Ordering::SeqCst);
    }
}

impl Default for Contact {
    fn default() -> Self {
        Self::new()
    }
}

pub async fn run(
    contact: Arc<Contact>,
    snapshots: watch::Receiver<Arc<MysqlSnapshot>>,
    actions: Arc<Actions>,
    bound_ms: u64,
    every: Duration,
    cancel: CancellationToken,
) {
    let mut replicas: Vec<Endpoint> = Vec::new();
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = cancel.cancelled() => return,
        }
        let snap = snapshots.borrow().clone();
        let writable_primary = snap.reachable && !snap.read_only && snap.replication.is_none();
        if !writable_primary {
            continue;
        }
        let seen: Vec<Endpoint> = snap
            .replicas
            .iter()
            .filter_map(|r| r.endpoint.clone())
            .collect();
        if !seen.is_empty() {
            replicas = seen;
        }
        let timeout = every.min(Duration::from_millis(500));
        for r in &replicas {
            let addr = format!("{}:{}", r.host, r.port);
            if let Ok(Ok(_)) =
                tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await
            {
                contact
                    .last_replica_ms
                    .store(now_ms() as u64, Ordering::SeqCst);
                break;
            }
        }
        let now = now_ms() as u64;
        let due = self_fence_due(
            now,
            true,
            contact.last_control_ms.load(Ordering::SeqCst),
            contact.last_replica_ms.load(Ordering::SeqCst),
            bound_ms,
        );
        if due {
            match actions.fence_read_only().await {
                Ok((killed, gtid)) => {
                    contact.fenced_at_ms.store(now, Ordering::SeqCst);
                    crate::metrics::SELF_FENCES.inc();
                    tracing::error!(
                        bound_ms, connections_killed = killed, gtid = %gtid,
                        "isolated primary: no monitor and no replica reachable; fenced itself (read_only, clients killed)"
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e.message(), "isolated primary could not fence itself")
                }
            }
        }
    }
}
