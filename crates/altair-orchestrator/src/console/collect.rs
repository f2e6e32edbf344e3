//! The console's picture of the fleet, read again every `console.refresh_ms` over this
//! orchestrator's ZooKeeper session (leader or follower alike) and the owning monitors,
//! so a page load costs a lookup, not a fleet read. Nobody looking, no load: once no page
//! has asked for [`IDLE_AFTER`], the fleet is read only every [`IDLE_REFRESH`] until the
//! next request wakes the collector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use altair_core::registry::MonitorRecord;
use altair_status::{ClusterSummary, Reader, Status};
use altair_zk::Zk;
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One read of the fleet and its `/api/v1/fleet` answer, rendered once.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub status: Option<Arc<Status>>,
    pub fleet_json: axum::body::Bytes,
    pub collected_at_ms: u64,
}

/// The body of `GET /api/v1/fleet`.
#[derive(Debug, Serialize)]
struct FleetBody<'a> {
    answered_by: &'a str,
    /// `id at address` of the leader, `unknown` when none is elected.
    leader: String,
    /// When this picture was read (this orchestrator's clock).
    collected_at_unix_ms: u64,
    refresh_ms: u64,
    /// Why the last read failed (the picture is then the one before it, if any).
    error: Option<String>,
    /// Clusters by state: every state, most urgent first, zeros included.
    counts: Vec<altair_status::StateCount>,
    holds: &'a [altair_status::HoldStatus],
    clusters: Vec<ClusterSummary>,
}

/// No request for this long: the console is idle.
pub const IDLE_AFTER: Duration = Duration::from_secs(10);
/// How old the picture may grow while idle (the first page after idle shows its age and
/// gets a fresh one within a refresh).
pub const IDLE_REFRESH: Duration = Duration::from_secs(60);

/// When a page last asked, and the collector's wake-up when one asks after a pause.
#[derive(Debug, Default)]
pub struct Demand {
    last_ms: AtomicU64,
    wake: tokio::sync::Notify,
}

impl Demand {
    /// A page asked for the fleet or a cluster.
    pub fn touch(&self) {
        let now = now_ms();
        let before = self.last_ms.swap(now, Ordering::Relaxed);
        if now.saturating_sub(before) >= IDLE_AFTER.as_millis() as u64 {
            self.wake.notify_one();
        }
    }

    fn idle(&self) -> bool {
        now_ms().saturating_sub(self.last_ms.load(Ordering::Relaxed))
            >= IDLE_AFTER.as_millis() as u64
    }
}

pub struct Collector {
    pub session: Arc<Mutex<Option<Zk>>>,
    pub me: String,
    pub reader: Reader,
    pub refresh: Duration,
    pub demand: Arc<Demand>,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Collector {
    /// Reads the fleet until `shutdown`, publishing each picture on `tx`.
    pub async fn run(self, tx: watch::Sender<Arc<Snapshot>>, shutdown: CancellationToken) {
        let mut last_error: Option<String> = None;
        loop {
            let started = Instant::now();
            let (status, leader, error) = self.read_once().await;
            super::metrics::REFRESH_MS.set(started.elapsed().as_millis() as i64);
            super::metrics::REFRESHES.inc();
            if error != last_error {
                match &error {
                    Some(e) => {
                        tracing::warn!(error = %e, "console: reading the fleet failed; pages show the last picture")
                    }
                    None if last_error.is_some() => {
                        tracing::info!("console: reading the fleet again")
                    }
                    None => {}
                }
                last_error = error.clone();
            }
            if error.is_some() {
                super::metrics::REFRESH_ERRORS.inc();
            }
            let status = status.or_else(|| tx.borrow().status.clone());
            let snapshot = self.render(status, leader, error);
            tx.send_replace(Arc::new(snapshot));
            let idle = self.demand.idle();
            super::metrics::IDLE.set(i64::from(idle));
            let every = if idle { IDLE_REFRESH } else { self.refresh };
            let pause = every.saturating_sub(started.elapsed());
            tokio::select! {
                () = tokio::time::sleep(pause.max(Duration::from_millis(50))) => {}
                () = self.demand.wake.notified(), if idle => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn read_once(&self) -> (Option<Arc<Status>>, String, Option<String>) {
        let zk = self.session.lock().ok().and_then(|s| s.clone());
        let Some(zk) = zk else {
            return (
                None,
                "unknown".into(),
                Some("this orchestrator has no ZooKeeper session".into()),
            );
        };
        let leader = match zk
            .get_record::<MonitorRecord>("leader", &zk.layout().leader())
            .await
        {
            Ok(Some(r)) => format!("{} at {}", r.id, r.address),
            _ => "unknown".into(),
        };
        match self.reader.read(&zk, None).await {
            Ok(s) => (Some(Arc::new(s)), leader, None),
            Err(e) => (None, leader, Some(e.to_string())),
        }
    }

    fn render(
        &self,
        status: Option<Arc<Status>>,
        leader: String,
        error: Option<String>,
    ) -> Snapshot {
        let collected_at_ms = now_ms();
        let clusters: Vec<ClusterSummary> = status
            .as_ref()
            .map(|s| s.clusters.iter().map(ClusterSummary::of).collect())
            .unwrap_or_default();
        super::metrics::CLUSTERS.set(clusters.len() as i64);
        let body = FleetBody {
            answered_by: &self.me,
            leader,
            collected_at_unix_ms: collected_at_ms,
            refresh_ms: self.refresh.as_millis() as u64,
            error,
            counts: altair_status::counts(&clusters),
            holds: status.as_ref().map_or(&[], |s| s.holds.as_slice()),
            clusters,
        };
        let fleet_json = serde_json::to_vec(&body).unwrap_or_default().into();
        Snapshot {
            status,
            fleet_json,
            collected_at_ms,
        }
    }
}
