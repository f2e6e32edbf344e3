//! A recorded primary that is read-only although nothing failed it over is made writable
//! again with the cluster's epoch (the decision: `altair_core::failover::reopen`). Asked
//! on every pass over a cluster whose primary is healthy, with no failover running, not
//! paused and not held: one `Status` call to its agent (and, when it is read-only, one to
//! every other host: none may be ahead of it). Its agent refuses while it holds no lease
//! and does not reach every replica. Audited in the cluster's history.

use std::time::Duration;

use altair_core::failover::reopen::{IdlePrimary, Reopen, hosts_ahead, reopen};
use altair_core::gtid::Flavor;
use altair_core::registry::{ClusterState, HealthRecord, history_to_prune, to_json};
use altair_proto::v1::{SetReadOnlyRequest, StatusRequest, StatusResponse};
use altair_zk::{Op, ZkError};

use crate::agents::agent;
use crate::ctx::{Ctx, now_ms};
use crate::view::ClusterView;

const STATUS_TIMEOUT: Duration = Duration::from_secs(1);
const LIFT_TIMEOUT: Duration = Duration::from_secs(3);

/// What a pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// Writable, or not to be touched.
    Nothing,
    /// Made writable again.
    Reopened,
    /// Read-only and due to be reopened, but the agent did not do it: look again soon.
    Failed,
    /// Read-only, but a replica holds what it lacks: left for a human.
    RefusedAhead,
}

/// After the primary's health recovers from a failure state, its `read_only` is watched
/// for a while: it changes with no ZooKeeper event of its own (a restarted mysqld is
/// probed read-only a moment after it answers again; an agent frozen past its lease
/// fences its primary as it resumes, while its monitor already hears it). Timed on this
/// orchestrator's clock from when the worker first sees the recovery.
///
/// The looks come 0.5, 1.5, 3.5, 7.5, 11.5 and 15.5 s after the arming (their gaps
/// doubling up to 4 s: six looks instead of thirty), whatever other passes an event
/// brings between them: what is watched shows within a probe or two, and a fleet whose
/// hosts all flap back from `suspect` at once (a monitor's blip) must not have the
/// leader ask every primary's agent twice a second (measured at 1,000 clusters:
/// `leader_scale` with `ALTAIR_BENCH_MONITORS_FIRST=1`).
#[derive(Debug, Default)]
pub struct Watch {
    seen_since_ms: Option<u64>,
    seen_fence_ms: Option<u64>,
    until: Option<std::time::Instant>,
    /// The next look, and the gap after it.
    next: Option<(std::time::Instant, Duration)>,
}

const WATCH_FOR: Duration = Duration::from_secs(15);
/// The first look's wait, and the longest.
const FIRST_LOOK: Duration = Duration::from_millis(500);
const LONGEST_LOOK: Duration = Duration::from_secs(4);

impl Watch {
    /// Notes the primary's health record as the worker reads it.
    pub fn note(&mut self, h: &HealthRecord) {
        self.note_at(h, std::time::Instant::now());
    }

    fn note_at(&mut self, h: &HealthRecord, now: std::time::Instant) {
        use altair_core::health::Health;
        let recovered = h.health == Health::Healthy
            && matches!(
                h.previous,
                Some(Health::Suspect | Health::Unreachable | Health::MysqlDown)
            );
        if recovered && self.seen_since_ms != Some(h.since_unix_ms) {
            self.seen_since_ms = Some(h.since_unix_ms);
            self.arm(now);
        }
        // Its agent fenced it in a lapse its monitor never judged (health unchanged):
        // its agent may be out of this leader's reach until the partition heals.
        if h.self_fenced_at_unix_ms.is_some() && self.seen_fence_ms != h.self_fenced_at_unix_ms {
            self.seen_fence_ms = h.self_fenced_at_unix_ms;
            self.arm(now);
        }
    }

    fn arm(&mut self, now: std::time::Instant) {
        self.until = Some(now + WATCH_FOR);
        self.next = Some((now + FIRST_LOOK, FIRST_LOOK * 2));
    }

    #[cfg(test)]
    fn active(&self) -> bool {
        self.until.is_some_and(|u| std::time::Instant::now() < u)
    }

    /// While watched, how soon to look again: the first look of the schedule still to
    /// come (the last one may fall just past the 15 s).
    pub fn next_look(&mut self) -> Option<Duration> {
        self.next_look_at(std::time::Instant::now())
    }

    fn next_look_at(&mut self, now: std::time::Instant) -> Option<Duration> {
        if self.until.is_none_or(|u| now >= u) {
            return None;
        }
        let (mut at, mut gap) = self.next?;
        while at <= now {
            at += gap;
            gap = (gap * 2).min(LONGEST_LOOK);
        }
        self.next = Some((at, gap));
        Some(at - now)
    }

    pub fn stop(&mut self) {
        self.until = None;
    }
}

pub async fn maybe(
    ctx: &Ctx,
    view: &ClusterView,
    state: &ClusterState,
    primary: &str,
    health: &HealthRecord,
) -> Result<Found, ZkError> {
    if state.needs_rejoin.iter().any(|h| h == primary) {
        return Ok(Found::Nothing);
    }
    let Some(st) = status(view, primary).await else {
        return Ok(Found::Nothing);
    };
    let Some(snap) = st.snapshot.as_ref() else {
        return Ok(Found::Nothing);
    };
    let seen = IdlePrimary {
        health: health.health,
        reachable: snap.reachable,
        read_only: snap.read_only,
        replicating: snap.replication.is_some(),
        self_fenced: st.self_fenced,
    };
    let Some(why) = reopen(&seen) else {
        return Ok(Found::Nothing);
    };
    // Every other host that answers, at once: none may hold what the primary lacks.
    let others: Vec<&String> = view
        .hosts
        .keys()
        .filter(|n| n.as_str() != primary && !state.needs_rejoin.contains(n))
        .collect();
    let answers = futures_util::future::join_all(others.iter().map(|n| status(view, n))).await;
    let mut asked = Vec::new();
    let mut unasked = Vec::new();
    for (name, a) in others.iter().zip(answers) {
        match a.and_then(|a| a.snapshot).filter(|s| s.reachable) {
            Some(s) => asked.push(((*name).clone(), s.gtid_executed)),
            None => unasked.push((*name).clone()),
        }
    }
    let flavor = match snap.flavor() {
        altair_proto::v1::Flavor::Mysql => Flavor::Mysql,
        _ => Flavor::MariaDb,
    };
    let ahead = hosts_ahead(flavor, &snap.gtid_executed, &asked);
    if !ahead.is_empty() {
        reopened("refused_replica_ahead");
        tracing::error!(cluster = %view.name, primary, primary_gtid = %snap.gtid_executed, ahead = ?ahead, "the primary is read-only with no failover running, but replicas hold transactions it lacks (its binlog's tail lost in a crash?): left read-only; fail over to the replica ahead (`altairctl failover --force`) after inspection");
        return Ok(Found::RefusedAhead);
    }
    // A restart may have lost the binlog's tail that a host waiting for rejoin holds (it
    // is not asked above): from here the primary may write new transactions under those
    // GTIDs, so the fork points no longer stand for one line of history
    // (`ClusterState::fork_is_current`) — they alone judge such hosts from now on.
    if why == Reopen::Restarted && !state.fork_epoch.is_empty() {
        let Some((_, version)) = view.state.as_ref() else {
            return Ok(Found::Failed);
        };
        let mut next = state.clone();
        next.fork_epoch.clear();
        let l = ctx.zk.layout();
        match ctx
            .write(&[Op::Set {
                path: l.cluster_state(&view.name),
                data: to_json(&next),
                version: Some(*version),
            }])
            .await
        {
            Ok(()) => {}
            Err(ZkError::Conflict { .. }) => return Ok(Found::Failed),
            Err(e) => return Err(e),
        }
    }
    let lifted = async {
        let mut a = agent(&view.hosts[primary].agent, LIFT_TIMEOUT).await?;
        a.set_read_only(SetReadOnlyRequest {
            epoch: state.epoch,
            read_only: false,
        })
        .await
        .map_err(|s| s.message().to_owned())
    }
    .await;
    if let Err(e) = lifted {
        reopened("failed");
        tracing::warn!(cluster = %view.name, primary, epoch = state.epoch, error = %e, "the primary is read-only with no failover running; making it writable failed (asked again shortly)");
        return Ok(Found::Failed);
    }
    reopened("reopened");
    let mut detail = format!(
        "{primary} was read-only with no failover running: {}; made writable again at epoch {} (no replica ahead of it",
        why.describe(),
        state.epoch
    );
    if unasked.is_empty() {
        detail.push(')');
    } else {
        detail.push_str(&format!("; not asked: {})", unasked.join(", ")));
    }
    tracing::warn!(cluster = %view.name, primary, epoch = state.epoch, "{detail}");
    audit(ctx, view, state, &detail).await?;
    Ok(Found::Reopened)
}

async fn status(view: &ClusterView, host: &str) -> Option<StatusResponse> {
    let h = view.hosts.get(host)?;
    let mut a = agent(&h.agent, STATUS_TIMEOUT).await.ok()?;
    a.status(StatusRequest {})
        .await
        .ok()
        .map(tonic::Response::into_inner)
}

/// A history record of the reopening (an automatic action in the failover trail).
async fn audit(
    ctx: &Ctx,
    view: &ClusterView,
    state: &ClusterState,
    detail: &str,
) -> Result<(), ZkError> {
    let now = now_ms();
    let c = &view.name;
    let l = ctx.zk.layout();
    let record = crate::pause::record(c, state, "reopened", detail, now);
    let kept = ctx.zk.children(&l.history(c)).await?;
    let mut ops = vec![Op::Create {
        path: l.history_entry(c, &record.journal.id),
        data: to_json(&record),
    }];
    for id in history_to_prune(&kept, ctx.config.orchestrator.retention(), now, 20) {
        ops.push(Op::Delete {
            path: l.history_entry(c, &id),
            version: None,
        });
    }
    match ctx.write(&ops).await {
        Ok(()) => Ok(()),
        // The history's parent is missing or a record was pruned meanwhile: the action
        // is done and logged; the record is not worth a retry loop.
        Err(ZkError::Conflict { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn reopened(result: &str) {
    use crate::metrics::{REOPENS, labels};
    REOPENS.get_or_create(&labels(&[("result", result)])).inc();
}

#[cfg(test)]
mod tests {
    use altair_core::health::Health;

    use super::*;

    fn record(previous: Health, since: u64, fenced: Option<u64>) -> HealthRecord {
        HealthRecord {
            cluster: "c1".into(),
            host: "db1".into(),
            health: Health::Healthy,
            previous: Some(previous),
            since_unix_ms: since,
            monitor: "m1".into(),
            reason: "heartbeat".into(),
            last_heartbeat_unix_ms: None,
            self_fenced_at_unix_ms: fenced,
        }
    }

    #[test]
    fn a_recovery_or_a_new_self_fence_is_watched_and_nothing_else() {
        let mut w = Watch::default();
        w.note(&record(Health::Healthy, 1_000, None));
        assert!(!w.active(), "a healthy primary that never failed");
        w.note(&record(Health::Unreachable, 2_000, None));
        assert!(w.active(), "recovered");
        w.stop();
        w.note(&record(Health::Unreachable, 2_000, None));
        assert!(!w.active(), "the same recovery again");
        // Fenced by its agent, its health never changed: watched once per fence.
        w.note(&record(Health::Healthy, 2_000, Some(5_000)));
        assert!(w.active(), "a self-fence its monitor never judged");
        w.stop();
        w.note(&record(Health::Healthy, 2_000, Some(5_000)));
        assert!(!w.active(), "the same self-fence again");
        w.note(&record(Health::Healthy, 2_000, Some(9_000)));
        assert!(w.active(), "a second self-fence");
    }

    #[test]
    fn looks_keep_their_schedule_from_the_arming_whatever_passes_come_between() {
        let mut w = Watch::default();
        assert_eq!(w.next_look(), None, "not watched");
        let armed = std::time::Instant::now();
        w.note_at(&record(Health::Suspect, 1_000, None), armed);
        let ms = |d: Duration| d.as_millis() as u64;
        // A timer pass at each look: the gaps double up to 4 s.
        let mut at = armed;
        let mut looks = Vec::new();
        while let Some(d) = w.next_look_at(at) {
            at += d;
            looks.push(ms(at - armed));
        }
        assert_eq!(looks, [500, 1_500, 3_500, 7_500, 11_500, 15_500]);
        // Passes brought by events in between take no look from the schedule.
        let armed = std::time::Instant::now();
        w.note_at(&record(Health::Unreachable, 2_000, None), armed);
        for early in [10, 20, 30, 40] {
            let now = armed + Duration::from_millis(early);
            assert_eq!(w.next_look_at(now).map(|d| ms(now + d - armed)), Some(500));
        }
        let now = armed + Duration::from_millis(600);
        assert_eq!(
            w.next_look_at(now).map(|d| ms(now + d - armed)),
            Some(1_500)
        );
        // A new self-fence starts the schedule over; a stop ends it.
        w.note(&record(Health::Healthy, 2_000, Some(7_000)));
        assert!(
            w.next_look().is_some_and(|d| d <= FIRST_LOOK),
            "armed again"
        );
        w.stop();
        assert_eq!(w.next_look(), None, "stopped");
    }
}
