//! Requests this process sends to ZooKeeper, counted by operation: each service exports
//! the family as `altair_zookeeper_requests_total{op}` (what a leader or a monitor costs
//! the ensemble, and where a storm's load comes from).

use std::sync::LazyLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// One label, `op`: `get`, `list`, `exists`, `create`, `set`, `delete`, `multi`,
/// `watch`, `acl`.
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

const OPS: [&str; 9] = [
    "get", "list", "exists", "create", "set", "delete", "multi", "watch", "acl",
];

fn label(op: &'static str) -> OpLabel {
    vec![("op", op.to_owned())]
}

/// Counts one request of `op` (one of [`OPS`]).
pub(crate) fn count(op: &'static str) {
    debug_assert!(OPS.contains(&op), "unknown op {op}");
    REQUESTS.get_or_create(&label(op)).inc();
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
}
