//! `[write_stall]` of the orchestrator: what a primary reported `write_stalled` (it
//! answers reads but has not committed the agent's write probe for
//! `agent.write_stall_after_ms`) leads to, for every cluster and per cluster.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Problems;
use super::common::check_ms;
use crate::ids::ClusterName;

/// What a cluster does when its primary is reported `write_stalled`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnWriteStalled {
    /// Shown (health, status, metric), never failed over: an operator decides.
    #[default]
    Alert,
    /// Failed over once the report has stood for `failover_after_ms` and the primary's
    /// agent still says so: the old primary is fenced like a dead one (read-only, or
    /// stopped when it cannot be made read-only).
    Failover,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WriteStallConfig {
    /// Every cluster's policy unless `clusters` names it.
    #[serde(default)]
    pub policy: OnWriteStalled,
    /// With `failover`: how long the primary must have been reported `write_stalled`
    /// before its failover starts (a lock held for a moment is not worth a failover).
    #[serde(default = "default_failover_after_ms")]
    pub failover_after_ms: u64,
    /// Per-cluster policy, by cluster name, overriding `policy`.
    #[serde(default)]
    pub clusters: BTreeMap<String, OnWriteStalled>,
}

impl Default for WriteStallConfig {
    fn default() -> Self {
        Self {
            policy: OnWriteStalled::default(),
            failover_after_ms: default_failover_after_ms(),
            clusters: BTreeMap::new(),
        }
    }
}

fn default_failover_after_ms() -> u64 {
    10_000
}

impl WriteStallConfig {
    /// The policy of `cluster`.
    pub fn policy_for(&self, cluster: &str) -> OnWriteStalled {
        self.clusters.get(cluster).copied().unwrap_or(self.policy)
    }

    pub fn validate(&self, p: &mut Problems) {
        check_ms(
            p,
            "write_stall.failover_after_ms",
            self.failover_after_ms,
            0..=3_600_000,
        );
        for name in self.clusters.keys() {
            if let Err(e) = ClusterName::new(name.clone()) {
                p.add(
                    format!("write_stall.clusters.{name}"),
                    format!("not a cluster name: {e}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> WriteStallConfig {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn alert_only_unless_a_cluster_or_the_default_says_failover() {
        let c = WriteStallConfig::default();
        assert_eq!(c.policy_for("orders"), OnWriteStalled::Alert);
        assert_eq!(c.failover_after_ms, 10_000);
        let c = parse("[clusters]\norders = \"failover\"\n");
        assert_eq!(c.policy_for("orders"), OnWriteStalled::Failover);
        assert_eq!(c.policy_for("billing"), OnWriteStalled::Alert);
        let c = parse("policy = \"failover\"\n[clusters]\nreports = \"alert\"\n");
        assert_eq!(c.policy_for("orders"), OnWriteStalled::Failover);
        assert_eq!(c.policy_for("reports"), OnWriteStalled::Alert);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(toml::from_str::<WriteStallConfig>("policy = \"page\"").is_err());
        let c = parse("failover_after_ms = 4000000\n[clusters]\n\"bad name!\" = \"failover\"\n");
        let mut p = Problems::default();
        c.validate(&mut p);
        let text = format!("{:?}", p);
        assert!(text.contains("write_stall.failover_after_ms"), "{text}");
        assert!(text.contains("write_stall.clusters.bad name!"), "{text}");
    }
}
