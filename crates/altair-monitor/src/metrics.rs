//! The monitor's Prometheus metrics (`altair_monitor_*`, see `[metrics] listen`).

use std::sync::LazyLock;

use altair_core::readiness::Readiness;
use altair_svc::metrics::{Counter, Family, Gauge, Labels, register};

pub static HEARTBEATS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static PINGS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static LIVENESS_STREAMS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static REGISTRATIONS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static TRANSITIONS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static ZK_WRITE_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static READINESS: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static READINESS_MISSING: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static READINESS_LAG: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static READINESS_ERRANT: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static READINESS_UNASKED: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);
pub static REPLICATION_LAG: LazyLock<Family<Labels, Gauge>> = LazyLock::new(Family::default);

const VERDICTS: [&str; 3] = ["lossless", "lossy", "blocked"];

pub fn init() {
    register(
        "zookeeper_requests",
        altair_zk::REQUESTS_HELP,
        altair_zk::REQUESTS.clone(),
    );
    register(
        "monitor_heartbeats",
        "Heartbeats received from agents",
        HEARTBEATS.clone(),
    );
    register(
        "monitor_pings",
        "Liveness pings received from agents (between their full heartbeats)",
        PINGS.clone(),
    );
    register(
        "monitor_liveness_streams",
        "Liveness streams open: agents sending their pings over one stream each (the rest call Ping once per ping)",
        LIVENESS_STREAMS.clone(),
    );
    register(
        "monitor_registrations",
        "Host registrations asked by agents, by result: written, unchanged (ZooKeeper already held the record), enrolling (a new cluster whose nodes the leader has not created yet), refused (bad record or another host's), failed (ZooKeeper)",
        REGISTRATIONS.clone(),
    );
    for result in ["written", "unchanged", "enrolling", "refused", "failed"] {
        REGISTRATIONS
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(0);
    }
    register(
        "monitor_health_transitions",
        "Health transitions published to ZooKeeper, by new health",
        TRANSITIONS.clone(),
    );
    register(
        "monitor_zookeeper_write_errors",
        "Health publications that failed (and are retried)",
        ZK_WRITE_ERRORS.clone(),
    );
    register(
        "failover_readiness",
        "What a failover of the cluster would do now, judged from heartbeats: 1 for the current verdict (lossless, lossy, blocked), 0 for the others",
        READINESS.clone(),
    );
    register(
        "failover_readiness_missing_transactions",
        "Transactions the cluster's best failover candidate lacks (compared with the primary as of the candidate's snapshot)",
        READINESS_MISSING.clone(),
    );
    register(
        "failover_readiness_candidate_lag_seconds",
        "Replication lag of the cluster's best failover candidate (absent when unknown)",
        READINESS_LAG.clone(),
    );
    register(
        "failover_readiness_errant_replicas",
        "Replicas of the cluster holding transactions they wrote themselves",
        READINESS_ERRANT.clone(),
    );
    register(
        "failover_readiness_unasked_hosts",
        "Hosts of the cluster whose agent is not heard (readiness cannot judge them)",
        READINESS_UNASKED.clone(),
    );
    register(
        "replication_lag_milliseconds",
        "A replica's end-to-end replication lag at its last heartbeat: the age of the oldest transaction the writable primary was seen with that it has not applied (lower bound at heartbeat resolution; absent when unknown)",
        REPLICATION_LAG.clone(),
    );
    for h in altair_core::health::Health::ALL {
        TRANSITIONS
            .get_or_create(&vec![("health", h.as_str().to_owned())])
            .inc_by(0);
    }
}

/// The readiness series of `cluster`; `None` removes them (the cluster is no longer owned).
pub fn readiness(cluster: &str, r: Option<&Readiness>) {
    let one = vec![("cluster", cluster.to_owned())];
    let Some(r) = r else {
        for v in VERDICTS {
            READINESS.remove(&verdict_labels(cluster, v));
        }
        for f in [
            &*READINESS_MISSING,
            &*READINESS_LAG,
            &*READINESS_ERRANT,
            &*READINESS_UNASKED,
        ] {
            f.remove(&one);
        }
        return;
    };
    for v in VERDICTS {
        READINESS
            .get_or_create(&verdict_labels(cluster, v))
            .set(i64::from(r.verdict.as_str() == v));
    }
    READINESS_MISSING
        .get_or_create(&one)
        .set(i64::try_from(r.missing).unwrap_or(i64::MAX));
    match r.candidate_lag_s {
        Some(lag) => {
            READINESS_LAG.get_or_create(&one).set(lag);
        }
        None => {
            READINESS_LAG.remove(&one);
        }
    }
    READINESS_ERRANT
        .get_or_create(&one)
        .set(r.errant.len() as i64);
    READINESS_UNASKED
        .get_or_create(&one)
        .set(r.unasked.len() as i64);
}

fn verdict_labels(cluster: &str, verdict: &str) -> Labels {
    vec![
        ("cluster", cluster.to_owned()),
        ("verdict", verdict.to_owned()),
    ]
}

/// `host`'s end-to-end replication lag; `None` removes the series.
pub fn replication_lag(cluster: &str, host: &str, ms: Option<u64>) {
    let labels = vec![("cluster", cluster.to_owned()), ("host", host.to_owned())];
    match ms {
        Some(ms) => {
            REPLICATION_LAG
                .get_or_create(&labels)
                .set(i64::try_from(ms).unwrap_or(i64::MAX));
        }
        None => {
            REPLICATION_LAG.remove(&labels);
        }
    }
}

pub fn registration(result: &'static str) {
    REGISTRATIONS
        .get_or_create(&vec![("result", result.to_owned())])
        .inc();
}
