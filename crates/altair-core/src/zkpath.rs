//! The ZooKeeper layout: every znode altair uses, in one place.
//!
//! ```text
//! <root>/monitors/<monitor-id>                 ephemeral: the monitor's gRPC address
//! <root>/orchestrators/election/n_<seq>        ephemeral sequential: leader election
//! <root>/orchestrators/leader                  ephemeral: the leader's id and address
//! <root>/clusters/<cluster>/state              epoch, primary, topology (compare-and-set on version)
//! <root>/clusters/<cluster>/hosts/<host>       a host's registration (written by its agent)
//! <root>/clusters/<cluster>/health/<host>      the host's health (monitor: transitions only)
//! <root>/clusters/<cluster>/failover           the journal of the failover in progress
//! <root>/clusters/<cluster>/abort              an operator's abort of it (`altairctl abort`)
//! <root>/clusters/<cluster>/history/<id>       one audit record per failover (the newest
//!                                              `orchestrator.history_keep` are kept)
//! <root>/admission                             failover holds by datacenter (admission control)
//! <root>/enrol/<cluster>                       a monitor's request that the leader create a
//!                                              new cluster's nodes (with role identities)
//! ```
//! With separate identities for the two roles (`zookeeper.monitor_id`), monitors may
//! write only the monitors' zone (`monitors_write`): `monitors/`, `enrol/` and each
//! cluster's `hosts/` and `health/`; everything else only orchestrators.
//! Cluster and host names are validated DNS labels, so they cannot escape their segment.

use crate::ids::{ClusterName, HostName};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkLayout {
    root: String,
}

impl ZkLayout {
    /// `root` is a validated absolute path (see `ZkConfig::validate`).
    pub fn new(root: impl Into<String>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    pub fn monitors(&self) -> String {
        format!("{}/monitors", self.root)
    }

    pub fn monitor(&self, id: &HostName) -> String {
        format!("{}/monitors/{id}", self.root)
    }

    pub fn election(&self) -> String {
        format!("{}/orchestrators/election", self.root)
    }

    pub fn election_candidate_prefix(&self) -> String {
        format!("{}/orchestrators/election/n_", self.root)
    }

    pub fn leader(&self) -> String {
        format!("{}/orchestrators/leader", self.root)
    }

    /// The failover holds of admission control (one record for every datacenter).
    pub fn admission(&self) -> String {
        format!("{}/admission", self.root)
    }

    pub fn clusters(&self) -> String {
        format!("{}/clusters", self.root)
    }

    pub fn cluster(&self, c: &ClusterName) -> String {
        format!("{}/clusters/{c}", self.root)
    }

    pub fn cluster_state(&self, c: &ClusterName) -> String {
        format!("{}/state", self.cluster(c))
    }

    pub fn hosts(&self, c: &ClusterName) -> String {
        format!("{}/hosts", self.cluster(c))
    }

    pub fn host(&self, c: &ClusterName, h: &HostName) -> String {
        format!("{}/hosts/{h}", self.cluster(c))
    }

    pub fn health(&self, c: &ClusterName) -> String {
        format!("{}/health", self.cluster(c))
    }

    pub fn host_health(&self, c: &ClusterName, h: &HostName) -> String {
        format!("{}/health/{h}", self.cluster(c))
    }

    pub fn failover_journal(&self, c: &ClusterName) -> String {
        format!("{}/failover", self.cluster(c))
    }

    /// An operator's request to abort the failover in progress (`altairctl abort`).
    pub fn failover_abort(&self, c: &ClusterName) -> String {
        format!("{}/abort", self.cluster(c))
    }

    pub fn history(&self, c: &ClusterName) -> String {
        format!("{}/history", self.cluster(c))
    }

    pub fn history_entry(&self, c: &ClusterName, failover_id: &str) -> String {
        format!("{}/history/{failover_id}", self.cluster(c))
    }

    /// Where monitors ask the leader to create a new cluster's nodes.
    pub fn enrol(&self) -> String {
        format!("{}/enrol", self.root)
    }

    pub fn enrol_request(&self, c: &ClusterName) -> String {
        format!("{}/enrol/{c}", self.root)
    }

    /// Whether `path` lies in the monitors' zone (with separate role identities, monitors
    /// may write there and nowhere else): `monitors` and `enrol` and everything under
    /// them, and each cluster's `hosts` and `health` and everything under them. A
    /// cluster's own node, its state, journal, abort and history are not.
    pub fn monitors_write(&self, path: &str) -> bool {
        let Some(rest) = path
            .strip_prefix(self.root.as_str())
            .and_then(|r| r.strip_prefix('/'))
        else {
            return false;
        };
        let mut segments = rest.split('/');
        match segments.next() {
            Some("monitors" | "enrol") => true,
            Some("clusters") => {
                segments.next().is_some_and(|c| !c.is_empty())
                    && matches!(segments.next(), Some("hosts" | "health"))
            }
            _ => false,
        }
    }

    /// The persistent parents that must exist before any service starts writing.
    pub fn persistent_parents(&self) -> Vec<String> {
        vec![
            self.root.clone(),
            self.monitors(),
            format!("{}/orchestrators", self.root),
            self.election(),
            self.clusters(),
            self.enrol(),
        ]
    }

    /// The persistent parents of one cluster, each under the one before or a sibling
    /// of it (created in this order, the last one existing means all do).
    pub fn cluster_parents(&self, c: &ClusterName) -> Vec<String> {
        vec![
            self.cluster(c),
            self.hosts(c),
            self.health(c),
            self.history(c),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_nest_under_the_root() {
        let l = ZkLayout::new("/altair");
        let c = ClusterName::new("c1").expect("valid");
        let h = HostName::new("db1").expect("valid");
        assert_eq!(l.host_health(&c, &h), "/altair/clusters/c1/health/db1");
        assert_eq!(l.cluster_state(&c), "/altair/clusters/c1/state");
        assert!(
            l.persistent_parents()
                .iter()
                .all(|p| p.starts_with("/altair"))
        );
        assert!(
            l.cluster_parents(&c)
                .iter()
                .all(|p| p.starts_with("/altair/clusters/c1"))
        );
    }

    #[test]
    fn monitors_write_hosts_health_membership_and_requests_only() {
        let l = ZkLayout::new("/altair");
        let c = ClusterName::new("c1").expect("valid");
        let h = HostName::new("db1").expect("valid");
        for yes in [
            l.monitors(),
            l.monitor(&h),
            l.enrol(),
            l.enrol_request(&c),
            l.hosts(&c),
            l.host(&c, &h),
            l.health(&c),
            l.host_health(&c, &h),
        ] {
            assert!(l.monitors_write(&yes), "{yes}");
        }
        for no in [
            l.root().to_owned(),
            l.clusters(),
            l.cluster(&c),
            l.cluster_state(&c),
            l.failover_journal(&c),
            l.failover_abort(&c),
            l.history(&c),
            l.history_entry(&c, "1-a"),
            l.admission(),
            l.leader(),
            l.election(),
            "/altairx/monitors".to_owned(),
            "/other/monitors".to_owned(),
            "/altair/clusters//hosts".to_owned(),
        ] {
            assert!(!l.monitors_write(&no), "{no}");
        }
    }
}
