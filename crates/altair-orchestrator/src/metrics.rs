//! The orchestrator's Prometheus metrics (`altair_*`, see `[metrics] listen`).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use altair_core::pause::Pause;
use altair_core::registry::FailoverAudit;
use altair_svc::metrics::{Counter, Family, Gauge, Histogram, Labels, duration_family, register};

pub static LEADER: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static FAILOVERS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static STAGE_SECONDS: LazyLock<Family<Labels, Histogram>> = LazyLock::new(duration_family);
pub static FAILOVER_SECONDS: LazyLock<Family<Labels, Histogram>> = LazyLock::new(duration_family);
pub static STEP_ERRORS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static ZK_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static DNS_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static MYSQL_VERIFY_FAILURES: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static REJOINS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static REOPENS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static HOOKS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static JOURNAL_AGE: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static AGENT_CHANNELS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static AGENT_CHANNEL_DROPS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static CLUSTER_WORKERS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static FAILOVERS_RUNNING: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static FAILOVERS_QUEUED: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static VIEW_LOADS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static VIEW_PATCHES: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static WATCH_EVENTS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static PAUSED: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static PAUSE_UNTIL: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static ADMISSION_HOLD: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static ADMISSION_HELD: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static ADMISSION_HOLDS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static OVER_BUDGET: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
/// The `by`/`reason` labels of each cluster's pause series, to remove them at resume.
static PAUSE_LABELS: LazyLock<Mutex<HashMap<String, Labels>>> = LazyLock::new(Default::default);

pub fn init() {
    register(
        "zookeeper_requests",
        altair_zk::REQUESTS_HELP,
        altair_zk::REQUESTS.clone(),
    );
    register(
        "orchestrator_agent_channels",
        "gRPC channels to agents kept open for reuse",
        AGENT_CHANNELS.clone(),
    );
    register(
        "orchestrator_agent_channel_drops",
        "Cached agent channels dropped after a transport failure or an expired deadline",
        AGENT_CHANNEL_DROPS.clone(),
    );
    register(
        "orchestrator_cluster_workers",
        "Clusters the leader has a worker for",
        CLUSTER_WORKERS.clone(),
    );
    register(
        "orchestrator_failovers_running",
        "Failovers being driven now (at most orchestrator.max_parallel_failovers)",
        FAILOVERS_RUNNING.clone(),
    );
    register(
        "orchestrator_failovers_queued",
        "Failovers waiting for a free slot of orchestrator.max_parallel_failovers",
        FAILOVERS_QUEUED.clone(),
    );
    register(
        "orchestrator_view_loads",
        "Cluster views the leader's workers read completely from ZooKeeper",
        VIEW_LOADS.clone(),
    );
    register(
        "orchestrator_view_patches",
        "Cluster views the leader's workers brought up to date from watch events (only the changed znodes read)",
        VIEW_PATCHES.clone(),
    );
    register(
        "orchestrator_watch_events",
        "ZooKeeper watch events received by the leader",
        WATCH_EVENTS.clone(),
    );
    register(
        "orchestrator_leader",
        "1 while this orchestrator is the leader",
        LEADER.clone(),
    );
    register(
        "failovers",
        "Failovers and switchovers by cluster, kind and outcome (succeeded, failed, refused, primary_alive)",
        FAILOVERS.clone(),
    );
    register(
        "failover_stage_seconds",
        "Duration of each failover stage (detect, verify, fence, choose, catch_up, salvage, promote, repoint, publish, record)",
        STAGE_SECONDS.clone(),
    );
    register(
        "failover_seconds",
        "Detection to recorded topology, by kind",
        FAILOVER_SECONDS.clone(),
    );
    register(
        "failover_step_errors",
        "Failover steps that failed (and were retried or rolled back), by step",
        STEP_ERRORS.clone(),
    );
    register(
        "orchestrator_zookeeper_errors",
        "ZooKeeper calls of the leader's passes that failed",
        ZK_ERRORS.clone(),
    );
    register(
        "orchestrator_dns_errors",
        "DNS queries or updates that failed while publishing a primary",
        DNS_ERRORS.clone(),
    );
    register(
        "orchestrator_mysql_verify_failures",
        "Verifications in which the orchestrator's own MySQL connection to the primary failed",
        MYSQL_VERIFY_FAILURES.clone(),
    );
    register(
        "rejoins",
        "Old primaries re-attached as replicas or refused (errant transactions), by outcome",
        REJOINS.clone(),
    );
    register(
        "primary_reopens",
        "Recorded primaries found read-only with no failover running (restarted, or self-fenced in a partition that failed nothing over): made writable again, failed, or left read-only because a replica holds transactions the primary lacks, by result",
        REOPENS.clone(),
    );
    register(
        "hooks",
        "Hook runs by hook (pre_failover, post_failover, fence, admission) and outcome",
        HOOKS.clone(),
    );
    register(
        "failover_journal_age_seconds",
        "Age of the failover in progress by cluster (0 when none): alert when it stays above a few minutes — a stuck failover (`altairctl abort` ends one before promotion)",
        JOURNAL_AGE.clone(),
    );
    register(
        "cluster_paused",
        "1 while a maintenance pause is in force on the cluster (`altairctl pause`), labelled with who paused it and why: no automatic failover happens",
        PAUSED.clone(),
    );
    register(
        "cluster_pause_until_unix_seconds",
        "When the cluster's maintenance pause ends by itself (0: at `altairctl resume`)",
        PAUSE_UNTIL.clone(),
    );
    register(
        "admission_hold",
        "1 for each datacenter whose failovers admission control holds (released=\"yes\" once an operator released it): many of its primaries were lost at once — possibly this observer's own partition. `altairctl release DATACENTER` lets them fail over",
        ADMISSION_HOLD.clone(),
    );
    register(
        "admission_held_failovers",
        "Clusters whose failover is held now by a datacenter's admission hold",
        ADMISSION_HELD.clone(),
    );
    register(
        "admission_holds",
        "Admission holds raised, by datacenter",
        ADMISSION_HOLDS.clone(),
    );
    register(
        "failovers_over_budget",
        "Clusters whose failover waits for its datacenter's budget (admission.max_failovers_per_datacenter)",
        OVER_BUDGET.clone(),
    );
    // Known label values start at 0, so rate() and alerts see them before the first event.
    for step in altair_core::failover::Step::ALL {
        STEP_ERRORS
            .get_or_create(&labels(&[("step", step.as_str())]))
            .inc_by(0);
    }
    for outcome in ["rejoined", "forced", "refused_errant"] {
        REJOINS
            .get_or_create(&labels(&[("outcome", outcome)]))
            .inc_by(0);
    }
    for result in ["reopened", "failed", "refused_replica_ahead"] {
        REOPENS
            .get_or_create(&labels(&[("result", result)]))
            .inc_by(0);
    }
    for hook in ["pre_failover", "post_failover", "fence", "admission"] {
        for outcome in ["ok", "failed"] {
            HOOKS
                .get_or_create(&labels(&[("hook", hook), ("outcome", outcome)]))
                .inc_by(0);
        }
    }
}

pub fn labels(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

/// The age of a cluster's failover journal in milliseconds (0: none).
pub fn journal_age(cluster: &str, age_ms: u64) {
    JOURNAL_AGE
        .get_or_create(&labels(&[("cluster", cluster)]))
        .set(i64::try_from(age_ms / 1000).unwrap_or(i64::MAX));
}

pub fn step_error(step: &str) {
    STEP_ERRORS.get_or_create(&labels(&[("step", step)])).inc();
}

pub fn observe_failover(a: &FailoverAudit) {
    let j = &a.journal;
    FAILOVERS
        .get_or_create(&labels(&[
            ("cluster", &j.cluster),
            ("kind", j.kind.as_str()),
            ("outcome", &a.outcome),
        ]))
        .inc();
    if a.outcome == "succeeded" {
        FAILOVER_SECONDS
            .get_or_create(&labels(&[("kind", j.kind.as_str())]))
            .observe(a.total_ms as f64 / 1000.0);
        for s in &j.stages {
            STAGE_SECONDS
                .get_or_create(&labels(&[("stage", &s.name)]))
                .observe(s.duration_ms as f64 / 1000.0);
        }
    }
}

/// The pause series of a cluster: set while `pause` is in force, removed otherwise.
pub fn paused(cluster: &str, pause: Option<&Pause>) {
    let Ok(mut known) = PAUSE_LABELS.lock() else {
        return;
    };
    let want = pause.map(|p| {
        let reason: String = p.reason.chars().take(80).collect();
        labels(&[("cluster", cluster), ("by", &p.by), ("reason", &reason)])
    });
    if let Some(old) = known.get(cluster)
        && Some(old) != want.as_ref()
    {
        PAUSED.remove(old);
        known.remove(cluster);
    }
    let until = labels(&[("cluster", cluster)]);
    match (pause, want) {
        (Some(p), Some(want)) => {
            PAUSED.get_or_create(&want).set(1);
            known.insert(cluster.to_owned(), want);
            let secs = p.until_ms.map_or(0, |u| u / 1000);
            PAUSE_UNTIL
                .get_or_create(&until)
                .set(i64::try_from(secs).unwrap_or(i64::MAX));
        }
        _ => {
            PAUSE_UNTIL.remove(&until);
        }
    }
}

/// A follower exports no pause series (the leader's are the truth).
pub fn clear_pauses() {
    PAUSED.clear();
    PAUSE_UNTIL.clear();
    if let Ok(mut known) = PAUSE_LABELS.lock() {
        known.clear();
    }
}
