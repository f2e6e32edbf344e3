//! `altair-monitor` configuration.

use std::net::SocketAddr;

use serde::Deserialize;

use super::common::{check_host_port, check_ms};
use super::{LogConfig, Problems, Validate, ZkConfig};
use crate::ids::HostName;

#[derive(Debug, Clone, Deserialize)]
pub struct MonitorConfig {
    /// Mutual TLS on the gRPC API and the calls this process makes.
    #[serde(default)]
    pub tls: super::common::TlsConfig,
    pub monitor: MonitorSection,
    pub zookeeper: ZkConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: super::common::MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MonitorSection {
    /// Unique id of this monitor in the fleet (DNS-label characters).
    pub id: HostName,
    /// Address the monitor's gRPC API binds to.
    pub listen: SocketAddr,
    /// `host:port` agents and the orchestrator use; defaults to `listen`.
    pub advertise: Option<String>,
    /// Consecutive missed heartbeats before a host is `unreachable`.
    #[serde(default = "default_misses")]
    pub unreachable_after_misses: u32,
    /// Heartbeat interval assumed for an agent until its first heartbeat says otherwise.
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// How late a heartbeat may arrive before it counts as missed.
    #[serde(default = "default_miss_grace_ms")]
    pub miss_grace_ms: u64,
    /// How often the readiness metrics of the owned clusters are recomputed (0: never;
    /// `ClusterHealth` and `altairctl readiness` still judge on demand).
    #[serde(default = "default_readiness_interval_ms")]
    pub readiness_interval_ms: u64,
}

fn default_readiness_interval_ms() -> u64 {
    5_000
}

fn default_miss_grace_ms() -> u64 {
    50
}

fn default_misses() -> u32 {
    3
}
fn default_heartbeat_interval_ms() -> u64 {
    10_000
}

impl MonitorSection {
    pub fn advertised_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

impl Validate for MonitorConfig {
    fn validate(&self, p: &mut Problems) {
        self.tls.validate(p);
        let m = &self.monitor;
        match &m.advertise {
            Some(adv) => check_host_port(p, "monitor.advertise", adv),
            None => p.check(!m.listen.ip().is_unspecified(), "monitor.advertise", || {
                format!(
                    "required when monitor.listen ({}) is a wildcard address",
                    m.listen
                )
            }),
        }
        p.check(
            (1..=100).contains(&m.unreachable_after_misses),
            "monitor.unreachable_after_misses",
            || format!("{} is outside 1..=100", m.unreachable_after_misses),
        );
        p.check(
            m.readiness_interval_ms == 0 || (1_000..=600_000).contains(&m.readiness_interval_ms),
            "monitor.readiness_interval_ms",
            || {
                format!(
                    "{} ms is neither 0 (off) nor within 1000..=600000",
                    m.readiness_interval_ms
                )
            },
        );

        check_ms(
            p,
            "monitor.heartbeat_interval_ms",
            m.heartbeat_interval_ms,
            100..=300_000,
        );
        check_ms(p, "monitor.miss_grace_ms", m.miss_grace_ms, 0..=60_000);
        self.zookeeper.validate(p);
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let good = "[monitor]\nid = \"m1\"\nlisten = \"127.0.0.1:7500\"\n[zookeeper]\nservers = [\"127.0.0.1:2181\"]\n[tls]\ninsecure = true\n";
        let c = parse::<MonitorConfig>(good, "ALTAIR_MONITOR", Vec::new())
            .expect("valid")
            .config;
        assert_eq!(c.monitor.unreachable_after_misses, 3);
        let bad = good.replace("[monitor]", "[monitor]\nunreachable_after_misses = 0");
        let e = parse::<MonitorConfig>(&bad, "ALTAIR_MONITOR", Vec::new()).expect_err("bad");
        assert!(
            e.to_string().contains("monitor.unreachable_after_misses"),
            "{e}"
        );
        let bad = good.replace(
            "[monitor]",
            "[monitor]\nmiss_grace_ms = 9223372036854775807",
        );
        let e = parse::<MonitorConfig>(&bad, "ALTAIR_MONITOR", Vec::new()).expect_err("bad");
        assert!(e.to_string().contains("monitor.miss_grace_ms"), "{e}");
    }
}
