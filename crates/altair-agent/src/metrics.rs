//! The agent's Prometheus metrics (`altair_agent_*`, see `[metrics] listen`).

use std::sync::LazyLock;

use altair_svc::metrics::{Counter, Family, Gauge, Labels, register};

pub static PROBES: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static MYSQL_UP: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static HEARTBEATS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static PINGS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static SELF_FENCES: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static SEMI_SYNC_DEGRADED: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static WRITE_STALLED: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static STALE_REQUESTS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static REQUEST_AGE_MS: LazyLock<Gauge> = LazyLock::new(Gauge::default);

pub fn init() {
    register(
        "zookeeper_requests",
        altair_zk::REQUESTS_HELP,
        altair_zk::REQUESTS.clone(),
    );
    register(
        "agent_probes",
        "Probes of the local mysqld, by result (ok, failed)",
        PROBES.clone(),
    );
    register(
        "agent_mysql_up",
        "1 when the last probe reached mysqld",
        MYSQL_UP.clone(),
    );
    register(
        "agent_heartbeats",
        "Heartbeats sent to the owning monitor, by result (accepted, redirected, failed, timeout)",
        HEARTBEATS.clone(),
    );
    register(
        "agent_pings",
        "Liveness pings sent to the owning monitor between heartbeats, by result (accepted, redirected, failed, timeout)",
        PINGS.clone(),
    );
    register(
        "agent_self_fences",
        "Times this agent fenced its isolated primary itself",
        SELF_FENCES.clone(),
    );
    register(
        "agent_semi_sync_degraded",
        "1 while this host is a writable primary of a semi-synchronous cluster that commits without waiting for a replica (ack timeout expired)",
        SEMI_SYNC_DEGRADED.clone(),
    );
    register(
        "agent_write_stalled",
        "1 while this host is a writable primary whose write probe has not committed for agent.write_stall_after_ms (reads answer, writes do not)",
        WRITE_STALLED.clone(),
    );
    register(
        "agent_stale_requests",
        "Actions refused because they waited out their caller's deadline before this agent read them (a frozen agent, a stalled network, or this host's clock ahead), by rpc",
        STALE_REQUESTS.clone(),
    );
    register(
        "agent_request_age_ms",
        "Age of the last stamped request when this agent read it, by the caller's clock against this host's: transit plus clock offset (alert when far from 0)",
        REQUEST_AGE_MS.clone(),
    );
    for result in ["ok", "failed"] {
        PROBES
            .get_or_create(&vec![("result", result.to_owned())])
            .inc_by(0);
    }
    for result in ["accepted", "redirected", "failed", "timeout"] {
        for family in [&*HEARTBEATS, &*PINGS] {
            family
                .get_or_create(&vec![("result", result.to_owned())])
                .inc_by(0);
        }
    }
}

pub fn count(family: &Family<Labels, Counter>, key: &'static str, value: &str) {
    family.get_or_create(&vec![(key, value.to_owned())]).inc();
}
