//! Requests this process sends to ZooKeeper, counted by operation: each service exports
//! the family as `altair_zookeeper_requests_total{op}` (what a leader or a monitor costs
//! the ensemble, and where a storm's load comes from).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// One label, `op`: `get`, `list`, `exists`, `create`, `set`, `delete`, `multi`,
/// `multi_read`, `watch`, `acl`.
pub type OpLabel = Vec<(&'static str, String)>;

/// The help text of `altair_zookeeper_requests_total`.
pub const REQUESTS_HELP: &str =
    "Requests this process sent to ZooKeeper, by operation (a multi-op counts once)";

/// The counters (a clone shares them: register it in the process's registry).
pub static REQUESTS: LazyLock<Family<OpLabel, Counter>> = LazyLock::new(|| {
    let f = Family::<OpLabel, Counter>::default();
    for op in OPS {
        f.get_or_create(&label(op)).inc_by(0);
    }
    f
});

/// Every operation counted, in the order services export them.
pub const OPS: [&str; 10] = [
    "get",
    "list",
    "exists",
    "create",
    "set",
    "delete",
    "multi",
    "multi_read",
    "watch",
    "acl",
];

fn label(op: &'static str) -> OpLabel {
    vec![("op", op.to_owned())]
}

/// Counts one request of `op` (one of [`OPS`]).
pub(crate) fn count(op: &'static str) {
    debug_assert!(OPS.contains(&op), "unknown op {op}");
    REQUESTS.get_or_create(&label(op)).inc();
}

/// Writes sent under each cluster's node, by cluster name (what a cached view of a
/// cluster must not have missed).
static CLUSTER_WRITES: LazyLock<Mutex<HashMap<String, u64>>> = LazyLock::new(Mutex::default);

/// Counts a write of `path`, if it lies under `clusters` (the layout's clusters node).
pub(crate) fn wrote(clusters: &str, path: &str) {
    let Some(name) = cluster_in(clusters, path) else {
        return;
    };
    let mut writes = CLUSTER_WRITES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *writes.entry(name.to_owned()).or_default() += 1;
}

fn cluster_in<'a>(clusters: &str, path: &'a str) -> Option<&'a str> {
    let rest = path.strip_prefix(clusters)?.strip_prefix('/')?;
    let name = rest.split('/').next()?;
    (!name.is_empty()).then_some(name)
}

/// Writes this process has sent (or tried to) under cluster `name`'s node so far.
pub fn writes_to_cluster(name: &str) -> u64 {
    CLUSTER_WRITES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Requests of `op` counted so far.
pub fn sent(op: &'static str) -> u64 {
    REQUESTS.get_or_create(&label(op)).get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_starts_at_zero_and_counts() {
        assert_eq!(sent("acl"), 0);
        count("acl");
        count("acl");
        assert_eq!(sent("acl"), 2);
        assert_eq!(REQUESTS.clone().get_or_create(&label("acl")).get(), 2);
    }

    #[test]
    fn writes_are_counted_by_the_cluster_they_touch() {
        let root = "/t/clusters";
        wrote(root, "/t/clusters/w1/state");
        wrote(root, "/t/clusters/w1/health/db1");
        wrote(root, "/t/clusters/w2");
        wrote(root, "/t/clusters");
        wrote(root, "/t/clustersX/w1");
        wrote(root, "/t/admission");
        assert_eq!(writes_to_cluster("w1"), 2);
        assert_eq!(writes_to_cluster("w2"), 1);
        assert_eq!(writes_to_cluster("w3"), 0);
    }
}
