//! The console's metrics: requests by route and status, and the cost of each refresh.

use std::sync::LazyLock;

use altair_svc::metrics::{Counter, Family, Gauge, Labels, register};
use axum::http::StatusCode;

static REQUESTS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
pub static REFRESH_MS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static REFRESH_ERRORS: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static CLUSTERS: LazyLock<Gauge> = LazyLock::new(Gauge::default);
pub static REFRESHES: LazyLock<Counter> = LazyLock::new(Counter::default);
pub static IDLE: LazyLock<Gauge> = LazyLock::new(Gauge::default);

pub fn init() {
    register(
        "console_requests",
        "Web console requests by route (fleet, cluster, failover, asset, other) and HTTP status",
        REQUESTS.clone(),
    );
    register(
        "console_refresh_milliseconds",
        "How long the last read of the fleet for the console took",
        REFRESH_MS.clone(),
    );
    register(
        "console_refresh_errors",
        "Reads of the fleet for the console that failed (ZooKeeper unreachable)",
        REFRESH_ERRORS.clone(),
    );
    register(
        "console_refreshes",
        "Reads of the fleet for the console (every refresh_ms while pages ask, rarely when none does)",
        REFRESHES.clone(),
    );
    register(
        "console_idle",
        "1 while no console page has asked for 10 s (the fleet is then read once a minute)",
        IDLE.clone(),
    );
    register(
        "console_clusters",
        "Clusters in the console's last read of the fleet",
        CLUSTERS.clone(),
    );
}

/// A bounded label for a request path.
pub fn route(path: &str) -> &'static str {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        [""] | ["console.js"] | ["console.css"] => "asset",
        ["api", "v1", "fleet"] => "fleet",
        ["api", "v1", "whoami"] => "whoami",
        ["api", "v1", "clusters", _] => "cluster",
        ["api", "v1", "clusters", _, "failovers", _] => "failover",
        _ => "other",
    }
}

pub fn request(route: &'static str, code: StatusCode) {
    REQUESTS
        .get_or_create(&vec![
            ("route", route.to_owned()),
            ("code", code.as_u16().to_string()),
        ])
        .inc();
}
