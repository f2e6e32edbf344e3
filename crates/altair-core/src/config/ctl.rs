//! `altairctl` configuration: where the orchestrators are.

use serde::Deserialize;

use super::common::{check_host_port, check_ms};
use super::{Problems, Validate, ZkConfig};

#[derive(Debug, Clone, Deserialize)]
pub struct CtlConfig {
    /// Mutual TLS on the gRPC API and the calls this process makes.
    #[serde(default)]
    pub tls: super::common::TlsConfig,
    /// `host:port` of every orchestrator; altairctl asks them in order and follows the leader.
    pub orchestrators: Vec<String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Optional: lets `altairctl` read state straight from ZooKeeper when no orchestrator answers.
    pub zookeeper: Option<ZkConfig>,
}

fn default_timeout_ms() -> u64 {
    5_000
}

impl Validate for CtlConfig {
    fn validate(&self, p: &mut Problems) {
        self.tls.validate(p);
        p.check(!self.orchestrators.is_empty(), "orchestrators", || {
            "list at least one orchestrator as \"host:port\"".into()
        });
        for (i, o) in self.orchestrators.iter().enumerate() {
            check_host_port(p, &format!("orchestrators[{i}]"), o);
        }
        check_ms(p, "timeout_ms", self.timeout_ms, 100..=600_000);
        if let Some(zk) = &self.zookeeper {
            zk.validate(p);
        }
    }
}
