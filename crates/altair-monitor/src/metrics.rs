//! The monitor's Prometheus metrics (`altair_monitor_*`, see `[metrics] listen`).

use std::sync::LazyLock;

use altair_svc::metrics::{Counter, Family, Labels, register};

pub static HEARTBEATS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static TRANSITIONS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static ZK_WRITE_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);

pub fn init() {
    register(
        "monitor_heartbeats",
        "Heartbeats received from agents",
        HEARTBEATS.clone(),
    );
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
    for h in altair_core::health::Health::ALL {
        TRANSITIONS
            .get_or_create(&vec![("health", h.as_str().to_owned())])
            .inc_by(0);
    }
}
