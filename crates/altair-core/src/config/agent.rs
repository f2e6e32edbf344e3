//! `altair-agent` configuration.

use std::net::SocketAddr;

use serde::Deserialize;

use super::common::{check_host_port, check_ms};
use super::{Credentials, LogConfig, MysqlEndpoint, Problems, Validate, ZkConfig};
use crate::ids::{ClusterName, HostName, PromotionRule};

#[derive(Debug, Clone, Deserialize)]
pub struct AgentConfig {
    /// Mutual TLS on the gRPC API and the calls this process makes.
    #[serde(default)]
    pub tls: super::common::TlsConfig,
    pub agent: AgentSection,
    /// The local mysqld and the admin user the agent probes and acts with.
    pub mysql: MysqlSection,
    /// The replication user written into CHANGE MASTER / CHANGE REPLICATION SOURCE.
    pub replication: Credentials,
    /// The account `CheckReachability` logs in with on the other mysqlds of its cluster:
    /// no privileges needed (`GRANT USAGE`). Without it the admin account is used, and
    /// the agent says so at start.
    pub probe: Option<Credentials>,
    pub zookeeper: ZkConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: super::common::MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AgentSection {
    pub cluster: ClusterName,
    pub host: HostName,
    #[serde(default = "default_datacenter")]
    pub datacenter: String,
    #[serde(default)]
    pub promotion_rule: PromotionRule,
    /// Address the agent's gRPC API binds to.
    pub listen: SocketAddr,
    /// `host:port` others use to reach the API; defaults to `listen`.
    pub advertise: Option<String>,
    #[serde(default = "default_probe_interval_ms")]
    pub probe_interval_ms: u64,
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
    /// A writable primary whose write probe (a non-binlogged row written every probe
    /// interval) has not committed for this long is reported `write_stalled` (alert
    /// only). 0 turns the write probe off.
    #[serde(default = "default_write_stall_after_ms")]
    pub write_stall_after_ms: u64,
    #[serde(default = "default_heartbeat_interval_ms")]
    pub heartbeat_interval_ms: u64,
    /// A small liveness ping to the monitor between full heartbeats: the monitor judges
    /// silence on this interval (a powered-off host is `unreachable` after 3 missed
    /// pings), and an accepted answer renews the primary's lease. 0: no pings (silence is
    /// judged on heartbeats alone).
    #[serde(default = "default_liveness_interval_ms")]
    pub liveness_interval_ms: u64,
    /// A writable primary whose agent hears no monitor and reaches no replica for this
    /// long makes itself read-only. Default: 2 × liveness_interval_ms (2 ×
    /// heartbeat_interval_ms without pings).
    pub self_fence_after_ms: Option<u64>,
    /// Where the agent keeps what it must never lose: the errant transactions of a
    /// forced rejoin, saved before they are reverted.
    #[serde(default = "default_state_dir")]
    pub state_dir: std::path::PathBuf,
    /// `async` (default) or `semi_sync`: every agent of a cluster says the same. In
    /// `semi_sync` the primary acknowledges a commit only once a replica has it
    /// (AFTER_SYNC), so even an isolated primary loses no acknowledged write.
    #[serde(default)]
    pub durability: Durability,
    /// How long a commit waits for a replica's acknowledgement before the primary
    /// degrades to asynchronous. Must exceed the self-fencing bound (an isolated primary
    /// fences itself, killing the waiting sessions, before any commit is acknowledged
    /// without a replica). Default: self_fence_after_ms + 2 × probe_interval_ms + 5 s.
    pub semi_sync_timeout_ms: Option<u64>,
    /// Replica acknowledgements a commit waits for (MySQL 8; MariaDB waits for one).
    #[serde(default = "default_semi_sync_ackers")]
    pub semi_sync_ackers: u32,
}

/// `agent.durability`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    #[default]
    Async,
    SemiSync,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Async => "async",
            Self::SemiSync => "semi_sync",
        }
    }
}

fn default_semi_sync_ackers() -> u32 {
    1
}

fn default_state_dir() -> std::path::PathBuf {
    "/var/lib/altair-agent".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct MysqlSection {
    pub host: String,
    #[serde(default = "default_mysql_port")]
    pub port: u16,
    pub user: String,
    pub password_file: Option<std::path::PathBuf>,
    pub password_env: Option<String>,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `host:port` other hosts and the orchestrator reach this mysqld at; defaults to
    /// `host:port` (set it when the agent connects over 127.0.0.1).
    pub advertise: Option<String>,
    /// How the agent's sessions to its mysqld are secured (see `MysqlTlsMode`).
    #[serde(default)]
    pub tls: super::MysqlTlsMode,
    pub tls_ca_file: Option<std::path::PathBuf>,
}

impl MysqlSection {
    pub fn advertised_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| format!("{}:{}", self.host, self.port))
    }

    pub fn endpoint(&self) -> MysqlEndpoint {
        MysqlEndpoint {
            host: self.host.clone(),
            port: self.port,
        }
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            user: self.user.clone(),
            password_file: self.password_file.clone(),
            password_env: self.password_env.clone(),
            tls: self.tls,
            tls_ca_file: self.tls_ca_file.clone(),
        }
    }
}

fn default_mysql_port() -> u16 {
    3306
}

fn default_datacenter() -> String {
    "default".to_owned()
}
fn default_write_stall_after_ms() -> u64 {
    5_000
}

fn default_probe_interval_ms() -> u64 {
    1_000
}
fn default_probe_timeout_ms() -> u64 {
    800
}
fn default_heartbeat_interval_ms() -> u64 {
    10_000
}
fn default_liveness_interval_ms() -> u64 {
    1_000
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}

impl Validate for AgentConfig {
    fn validate(&self, p: &mut Problems) {
        self.tls.validate(p);
        let a = &self.agent;
        p.check(
            !a.datacenter.is_empty() && a.datacenter.len() <= 63,
            "agent.datacenter",
            || "must be 1 to 63 characters".into(),
        );
        if let Some(adv) = &a.advertise {
            check_host_port(p, "agent.advertise", adv);
        } else {
            p.check(!a.listen.ip().is_unspecified(), "agent.advertise", || {
                format!(
                    "required when agent.listen ({}) is a wildcard address: others need an address to reach this agent",
                    a.listen
                )
            });
        }
        check_ms(
            p,
            "agent.probe_interval_ms",
            a.probe_interval_ms,
            100..=60_000,
        );
        check_ms(p, "agent.probe_timeout_ms", a.probe_timeout_ms, 50..=60_000);
        if a.write_stall_after_ms != 0 {
            check_ms(
                p,
                "agent.write_stall_after_ms",
                a.write_stall_after_ms,
                a.probe_interval_ms..=3_600_000,
            );
        }
        p.check(
            a.probe_timeout_ms < a.probe_interval_ms,
            "agent.probe_timeout_ms",
            || {
                format!(
                    "{} ms must be shorter than agent.probe_interval_ms ({} ms)",
                    a.probe_timeout_ms, a.probe_interval_ms
                )
            },
        );
        check_ms(
            p,
            "agent.heartbeat_interval_ms",
            a.heartbeat_interval_ms,
            100..=300_000,
        );
        p.check(
            a.heartbeat_interval_ms >= a.probe_interval_ms,
            "agent.heartbeat_interval_ms",
            || {
                format!(
                    "{} ms must not be shorter than agent.probe_interval_ms ({} ms)",
                    a.heartbeat_interval_ms, a.probe_interval_ms
                )
            },
        );
        if a.liveness_interval_ms != 0 {
            check_ms(
                p,
                "agent.liveness_interval_ms",
                a.liveness_interval_ms,
                100..=300_000,
            );
            p.check(
                a.liveness_interval_ms <= a.heartbeat_interval_ms,
                "agent.liveness_interval_ms",
                || {
                    format!(
                        "{} ms is longer than agent.heartbeat_interval_ms ({} ms): pings are meant to come between heartbeats (0 turns them off)",
                        a.liveness_interval_ms, a.heartbeat_interval_ms
                    )
                },
            );
        }
        let (renewal, what) = a.lease_renewal();
        p.check(
            a.self_fence_after() >= 2 * renewal,
            "agent.self_fence_after_ms",
            || {
                format!(
                    "{} ms is less than twice agent.{what} ({renewal} ms): one late message would make the primary read-only",
                    a.self_fence_after(),
                )
            },
        );
        if a.durability == Durability::SemiSync {
            // The fence lands at most one probe, one replica check (≤ 500 ms) and the
            // promotion margin after the bound.
            let bound = a.self_fence_after()
                + a.probe_interval_ms
                + a.probe_interval_ms.min(500)
                + crate::selffence::SELF_FENCE_MARGIN_MS;
            p.check(
                a.semi_sync_timeout() > bound,
                "agent.semi_sync_timeout_ms",
                || {
                    format!(
                        "{} ms does not exceed the self-fencing bound ({bound} ms = self_fence_after_ms + probe_interval_ms + the replica check + 1 s): an isolated primary would acknowledge writes no replica has",
                        a.semi_sync_timeout()
                    )
                },
            );
            check_ms(
                p,
                "agent.semi_sync_timeout_ms",
                a.semi_sync_timeout(),
                1..=3_600_000,
            );
            p.check(
                (1..=16).contains(&a.semi_sync_ackers),
                "agent.semi_sync_ackers",
                || format!("{} is outside 1..=16", a.semi_sync_ackers),
            );
        }
        self.mysql.endpoint().validate("mysql", p);
        self.mysql.credentials().validate("mysql", p);
        check_ms(
            p,
            "mysql.connect_timeout_ms",
            self.mysql.connect_timeout_ms,
            50..=60_000,
        );
        self.replication.validate("replication", p);
        if let Some(probe) = &self.probe {
            probe.validate("probe", p);
        }
        self.zookeeper.validate(p);
    }
}

impl AgentSection {
    pub fn self_fence_after(&self) -> u64 {
        self.self_fence_after_ms
            .unwrap_or(2 * self.lease_renewal().0)
    }

    /// How often the lease is renewed (pings, or heartbeats without them), and the key.
    pub fn lease_renewal(&self) -> (u64, &'static str) {
        if self.liveness_interval_ms == 0 {
            (self.heartbeat_interval_ms, "heartbeat_interval_ms")
        } else {
            (self.liveness_interval_ms, "liveness_interval_ms")
        }
    }

    pub fn semi_sync_timeout(&self) -> u64 {
        self.semi_sync_timeout_ms
            .unwrap_or(self.self_fence_after() + 2 * self.probe_interval_ms + 5_000)
    }

    /// The address others reach this agent at.
    pub fn advertised_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigErrors, Loaded, parse};
    use super::*;

    const GOOD: &str = r#"
[agent]
cluster = "c1"
host = "db1"
listen = "127.0.0.1:7400"
[mysql]
host = "127.0.0.1"
user = "altair"
password_env = "ALTAIR_MYSQL_PASSWORD"
[replication]
user = "repl"
password_file = "/etc/altair/repl.password"
[zookeeper]
servers = ["127.0.0.1:2181"]
[tls]
ca_file = "/etc/altair/tls/ca.pem"
cert_file = "/etc/altair/tls/agent.pem"
key_file = "/etc/altair/tls/agent.key"
"#;

    fn load(text: &str) -> Result<Loaded<AgentConfig>, ConfigErrors> {
        parse(text, "ALTAIR_AGENT", Vec::new())
    }

    #[test]
    fn a_probe_account_is_optional_and_checked_when_given() {
        assert!(load(GOOD).expect("valid").config.probe.is_none());
        let with = format!(
            "{GOOD}[probe]\nuser = \"altair_probe\"\npassword_file = \"/etc/altair/probe.password\"\n"
        );
        let probe = load(&with).expect("valid").config.probe.expect("probe");
        assert_eq!(probe.user, "altair_probe");
        let bad = format!("{GOOD}[probe]\nuser = \"altair_probe\"\n");
        let err = load(&bad).expect_err("no password source").to_string();
        assert!(err.contains("probe."), "{err}");
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = load(GOOD).expect("valid").config;
        assert_eq!(c.agent.heartbeat_interval_ms, 10_000);
        assert_eq!(c.agent.probe_interval_ms, 1_000);
        assert_eq!(c.mysql.port, 3306);
        assert_eq!(c.agent.promotion_rule, PromotionRule::Neutral);
        assert_eq!(c.agent.advertised_address(), "127.0.0.1:7400");
        assert_eq!(c.zookeeper.root, "/altair");
        assert_eq!(c.agent.liveness_interval_ms, 1_000);
        assert_eq!(c.agent.self_fence_after(), 2_000, "2 pings");
        let e = load(&GOOD.replace("[agent]", "[agent]\nself_fence_after_ms = 1500"))
            .expect_err("too short");
        assert!(e.to_string().contains("agent.self_fence_after_ms"), "{e}");
        assert!(e.to_string().contains("liveness_interval_ms"), "{e}");
        // Without pings the lease rides on heartbeats, as before.
        let c = load(&GOOD.replace("[agent]", "[agent]\nliveness_interval_ms = 0"))
            .expect("valid")
            .config;
        assert_eq!(c.agent.self_fence_after(), 20_000);
        let e = load(&GOOD.replace(
            "[agent]",
            "[agent]\nliveness_interval_ms = 0\nself_fence_after_ms = 5000",
        ))
        .expect_err("too short");
        assert!(e.to_string().contains("heartbeat_interval_ms"), "{e}");
        let e = load(&GOOD.replace("[agent]", "[agent]\nliveness_interval_ms = 20000"))
            .expect_err("pings slower than heartbeats");
        assert!(e.to_string().contains("agent.liveness_interval_ms"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let bad = GOOD
            .replace(
                "listen = \"127.0.0.1:7400\"",
                "listen = \"0.0.0.0:7400\"\nprobe_timeout_ms = 5000",
            )
            .replace("password_env = \"ALTAIR_MYSQL_PASSWORD\"", "")
            .replace("[\"127.0.0.1:2181\"]", "[\"zk1\"]");
        let err = load(&bad).expect_err("invalid").to_string();
        for key in [
            "agent.advertise",
            "agent.probe_timeout_ms",
            "mysql.password_file",
            "zookeeper.servers[0]",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
    }

    #[test]
    fn the_write_stall_time_is_checked_and_zero_turns_the_probe_off() {
        assert_eq!(
            load(GOOD).expect("valid").config.agent.write_stall_after_ms,
            5_000
        );
        let off = load(&GOOD.replace("[agent]", "[agent]\nwrite_stall_after_ms = 0"));
        assert_eq!(off.expect("0 is off").config.agent.write_stall_after_ms, 0);
        // Shorter than one probe interval: no write could ever be judged.
        let e = load(&GOOD.replace("[agent]", "[agent]\nwrite_stall_after_ms = 500"))
            .expect_err("shorter than a probe interval")
            .to_string();
        assert!(e.contains("agent.write_stall_after_ms"), "{e}");
    }

    #[test]
    fn semi_sync_must_outlast_the_self_fencing_bound() {
        let c = load(&GOOD.replace("[agent]", "[agent]\ndurability = \"semi_sync\""))
            .expect("valid")
            .config;
        assert_eq!(c.agent.durability, Durability::SemiSync);
        assert_eq!(c.agent.semi_sync_timeout(), 2_000 + 2_000 + 5_000);
        let e = load(&GOOD.replace(
            "[agent]",
            "[agent]\ndurability = \"semi_sync\"\nsemi_sync_timeout_ms = 2500",
        ))
        .expect_err("shorter than the bound");
        assert!(e.to_string().contains("agent.semi_sync_timeout_ms"), "{e}");
        let e = load(&GOOD.replace("[agent]", "[agent]\ndurability = \"sync\""))
            .expect_err("unknown mode");
        assert!(e.to_string().contains("sync"), "{e}");
    }

    #[test]
    fn bad_names_are_refused_naming_the_value() {
        let err = load(&GOOD.replace("host = \"db1\"", "host = \"DB_1\"")).expect_err("bad");
        assert!(err.to_string().contains("DB_1"), "{err}");
        let err = load(&GOOD.replace("[agent]", "[agent]\npromotion_rule = \"always\""))
            .expect_err("bad");
        assert!(err.to_string().contains("always"), "{err}");
    }
}
