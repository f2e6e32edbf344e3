//! `altair-orchestrator` configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::common::{check_host_port, check_ms};
use super::{Credentials, LogConfig, Problems, Validate, ZkConfig};
use crate::ids::HostName;

#[derive(Debug, Clone, Deserialize)]
pub struct OrchestratorConfig {
    /// Mutual TLS on the gRPC API and the calls this process makes.
    #[serde(default)]
    pub tls: super::common::TlsConfig,
    pub orchestrator: OrchestratorSection,
    /// The admin user the orchestrator verifies primaries with (connect + `SELECT 1`).
    pub mysql: Credentials,
    /// The replication user replicas are repointed with.
    pub replication: Credentials,
    pub dns: DnsConfig,
    pub zookeeper: ZkConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: super::common::MetricsConfig,
    #[serde(default)]
    pub hooks: HooksConfig,
    #[serde(default)]
    pub fence: FenceHookConfig,
    #[serde(default)]
    pub admission: AdmissionConfig,
    #[serde(default)]
    pub console: super::ConsoleConfig,
    /// What a primary reported `write_stalled` leads to, per cluster.
    #[serde(default)]
    pub write_stall: super::WriteStallConfig,
}

/// How an old primary whose host answers is fenced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FenceMode {
    /// read_only=ON and kill client connections (keeps the binlog readable for salvage).
    #[default]
    ReadOnly,
    /// Stop mysqld.
    StopMysqld,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrchestratorSection {
    pub id: HostName,
    pub listen: SocketAddr,
    pub advertise: Option<String>,
    /// Upper bound for verifying that a primary is really down.
    #[serde(default = "default_verify_timeout_ms")]
    pub verify_timeout_ms: u64,
    /// While the primary stays reported unreachable or mysql_down after a verification
    /// found it alive (or could not tell), it is verified again this often — and at once
    /// when any host's health changes.
    #[serde(default = "default_reverify_interval_ms")]
    pub reverify_interval_ms: u64,
    /// No automatic failover of a cluster within this period after its last one.
    #[serde(default = "default_block_period_s")]
    pub failover_block_period_s: u64,
    /// Candidates lagging more than this many seconds are refused.
    #[serde(default = "default_max_lag_s")]
    pub max_candidate_lag_s: u64,
    #[serde(default)]
    pub fence_mode: FenceMode,
    /// Re-attach a returning old primary as a replica on its own when it has no errant
    /// transactions (otherwise it waits for `altairctl rejoin HOST --force`).
    #[serde(default = "yes")]
    pub auto_rejoin: bool,
    /// A planned switchover is refused when the candidate lags more than this.
    #[serde(default = "default_switchover_max_lag_s")]
    pub switchover_max_lag_s: u64,
    /// How long a switchover waits (writes paused) for the candidate to apply everything
    /// the old primary has; past it the switchover is rolled back.
    #[serde(default = "default_switchover_catch_up_ms")]
    pub switchover_catch_up_timeout_ms: u64,
    /// Before a switchover pauses writes, its candidate applies what the primary already
    /// has for at most this long (writes still flow; 0: do not drain first).
    #[serde(default = "default_switchover_drain_ms")]
    pub switchover_drain_timeout_ms: u64,
    /// The drain stops once one round (wait for the primary's position of that instant)
    /// takes less than this: the candidate is that close behind.
    #[serde(default = "default_switchover_drain_close_ms")]
    pub switchover_drain_close_ms: u64,
    /// How long a failover's candidate may take to apply its relay log (sent to its
    /// agent as the wait's bound and the RPC's deadline).
    #[serde(default = "default_catch_up_timeout_ms")]
    pub catch_up_timeout_ms: u64,
    /// How long reading, sending and applying the old primary's unreplicated binlog
    /// events may take, end to end.
    #[serde(default = "default_salvage_timeout_ms")]
    pub salvage_timeout_ms: u64,
    /// What a failover does when a salvage from a host that answers fails or runs out of
    /// time: `promote` (availability first: promote, the journal lists what was lost) or
    /// `wait` (no promotion: the cluster stays without a primary and the step is retried
    /// until salvage succeeds or an operator acts).
    #[serde(default)]
    pub on_salvage_timeout: OnSalvageTimeout,
    /// Audit records kept per cluster in ZooKeeper (`altairctl history`); the oldest are
    /// deleted as new ones are written, so history does not grow without bound.
    #[serde(default = "default_history_keep")]
    pub history_keep: u32,
    /// Audit records older than this many days are deleted as new ones are written
    /// (0: no age limit).
    #[serde(default = "default_history_max_age_days")]
    pub history_max_age_days: u32,
    /// Failovers (and switchovers) the leader drives at the same time, across all
    /// clusters; more wait for a free slot. Detection and verification are never held.
    #[serde(default = "default_max_parallel_failovers")]
    pub max_parallel_failovers: u32,
    /// Besides reacting to ZooKeeper watch events (and re-reading everything after a
    /// reconnect, when events can be lost), every cluster's view is re-read this often:
    /// a safety net that costs 2 ZooKeeper requests (multiRead) per cluster per interval.
    #[serde(default = "default_resync_interval_s")]
    pub resync_interval_s: u64,
}

/// `orchestrator.on_salvage_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSalvageTimeout {
    #[default]
    Promote,
    Wait,
}

/// `[hooks]`: commands run around a failover or switchover, the event as JSON on stdin.
#[derive(Debug, Clone, Deserialize)]
pub struct HooksConfig {
    /// argv of the command run before fencing; empty: none.
    #[serde(default)]
    pub pre_failover: Vec<String>,
    /// argv of the command run after the new topology is recorded; empty: none.
    #[serde(default)]
    pub post_failover: Vec<String>,
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
    /// A pre-failover hook that fails (non-zero exit, timeout) aborts the failover.
    #[serde(default)]
    pub abort_on_pre_failure: bool,
}

impl Default for HooksConfig {
    fn default() -> Self {
        Self {
            pre_failover: Vec::new(),
            post_failover: Vec::new(),
            timeout_ms: default_hook_timeout_ms(),
            abort_on_pre_failure: false,
        }
    }
}

/// `[fence]`: a command that powers off (or otherwise isolates) an old primary whose
/// agent does not answer — IPMI, a cloud API's "stop instance". It gets the host as
/// JSON on stdin; a zero exit within `timeout_ms` means "the host is off" and promotion
/// goes ahead without waiting for the old primary's self-fencing bound.
#[derive(Debug, Clone, Deserialize)]
pub struct FenceHookConfig {
    /// argv; empty: none (promotion waits for the self-fencing bound).
    #[serde(default)]
    pub command: Vec<String>,
    /// The hook is killed after this long, and never outlives the self-fencing bound
    /// (past it promotion needs no hook).
    #[serde(default = "default_hook_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for FenceHookConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            timeout_ms: default_hook_timeout_ms(),
        }
    }
}

/// `[admission]`: failover admission control (see `altair_core::admission`). When more
/// than `share_percent` of one datacenter's primaries — and at least `min_primaries` —
/// become unreachable within `window_s`, their failovers are held until a replica in that
/// datacenter confirms a primary dead, or `altairctl release DATACENTER`.
#[derive(Debug, Clone, Deserialize)]
pub struct AdmissionConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_admission_share")]
    pub share_percent: u32,
    #[serde(default = "default_admission_min")]
    pub min_primaries: u32,
    #[serde(default = "default_admission_window_s")]
    pub window_s: u64,
    /// An unreachable primary's failover starts no sooner than this after it was
    /// reported (it overlaps verification), so primaries lost together are counted
    /// together. Keep it above the agents' `liveness_interval_ms`. It costs nothing
    /// where a datacenter has fewer than `min_primaries` primaries.
    #[serde(default = "default_admission_settle_ms")]
    pub settle_ms: u64,
    /// Automatic failovers running at once whose old primary is in one datacenter
    /// (0: no limit beyond `orchestrator.max_parallel_failovers`).
    #[serde(default)]
    pub max_failovers_per_datacenter: u32,
    /// argv of a command run when a hold is raised (the hold as JSON on stdin,
    /// `hooks.timeout_ms`); empty: none.
    #[serde(default)]
    pub hook: Vec<String>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            share_percent: default_admission_share(),
            min_primaries: default_admission_min(),
            window_s: default_admission_window_s(),
            settle_ms: default_admission_settle_ms(),
            max_failovers_per_datacenter: 0,
            hook: Vec::new(),
        }
    }
}

impl AdmissionConfig {
    pub fn policy(&self) -> crate::admission::Policy {
        crate::admission::Policy {
            share_percent: self.share_percent,
            min_primaries: self.min_primaries,
            window_ms: self.window_s * 1000,
            settle_ms: self.settle_ms,
        }
    }
}

fn default_admission_share() -> u32 {
    30
}
fn default_admission_min() -> u32 {
    3
}
fn default_admission_window_s() -> u64 {
    30
}
fn default_admission_settle_ms() -> u64 {
    // The agents' default liveness interval (1 s: losses seen up to that far apart are
    // one event) and half a second for the monitors to publish.
    1_500
}

fn yes() -> bool {
    true
}
fn default_switchover_max_lag_s() -> u64 {
    10
}
fn default_switchover_catch_up_ms() -> u64 {
    10_000
}
fn default_switchover_drain_ms() -> u64 {
    5_000
}
fn default_switchover_drain_close_ms() -> u64 {
    20
}
fn default_catch_up_timeout_ms() -> u64 {
    30_000
}
fn default_history_keep() -> u32 {
    200
}
fn default_history_max_age_days() -> u32 {
    90
}
fn default_max_parallel_failovers() -> u32 {
    64
}
fn default_resync_interval_s() -> u64 {
    300
}

fn default_salvage_timeout_ms() -> u64 {
    30_000
}
fn default_hook_timeout_ms() -> u64 {
    10_000
}

fn default_reverify_interval_ms() -> u64 {
    2_000
}
fn default_verify_timeout_ms() -> u64 {
    1_000
}
fn default_block_period_s() -> u64 {
    3_600
}
fn default_max_lag_s() -> u64 {
    300
}

/// `[dns]`: the authoritative server that takes RFC 2136 updates for the zone.
#[derive(Debug, Clone, Deserialize)]
pub struct DnsConfig {
    /// `ip:port` of the authoritative server.
    pub server: SocketAddr,
    /// The zone, fully qualified (ending in '.'), e.g. `db.example.com.`.
    pub zone: String,
    #[serde(default = "default_ttl_s")]
    pub ttl_s: u32,
    /// TSIG key name as configured on the server.
    pub tsig_key_name: String,
    #[serde(default = "default_tsig_algorithm")]
    pub tsig_algorithm: String,
    /// File holding the base64 TSIG secret (as in the server's `key` clause).
    pub tsig_secret_file: PathBuf,
}

fn default_ttl_s() -> u32 {
    5
}
fn default_tsig_algorithm() -> String {
    "hmac-sha256".to_owned()
}

/// TSIG algorithms the DNS adapter signs with.
pub const TSIG_ALGORITHMS: &[&str] = &["hmac-sha256", "hmac-sha384", "hmac-sha512"];

impl Validate for OrchestratorConfig {
    fn validate(&self, p: &mut Problems) {
        self.tls.validate(p);
        self.console.validate(self.tls.insecure, p);
        let o = &self.orchestrator;
        match &o.advertise {
            Some(adv) => check_host_port(p, "orchestrator.advertise", adv),
            None => p.check(
                !o.listen.ip().is_unspecified(),
                "orchestrator.advertise",
                || {
                    format!(
                        "required when orchestrator.listen ({}) is a wildcard address",
                        o.listen
                    )
                },
            ),
        }
        check_ms(
            p,
            "orchestrator.verify_timeout_ms",
            o.verify_timeout_ms,
            100..=60_000,
        );
        check_ms(
            p,
            "orchestrator.reverify_interval_ms",
            o.reverify_interval_ms,
            100..=600_000,
        );
        p.check(
            o.failover_block_period_s <= 7 * 24 * 3600,
            "orchestrator.failover_block_period_s",
            || format!("{} s is longer than a week", o.failover_block_period_s),
        );
        check_ms(
            p,
            "orchestrator.switchover_catch_up_timeout_ms",
            o.switchover_catch_up_timeout_ms,
            100..=600_000,
        );
        p.check(
            o.switchover_drain_timeout_ms <= 600_000,
            "orchestrator.switchover_drain_timeout_ms",
            || format!("{} ms is outside 0..=600000", o.switchover_drain_timeout_ms),
        );
        check_ms(
            p,
            "orchestrator.switchover_drain_close_ms",
            o.switchover_drain_close_ms,
            1..=10_000,
        );
        check_ms(
            p,
            "orchestrator.catch_up_timeout_ms",
            o.catch_up_timeout_ms,
            100..=600_000,
        );
        check_ms(
            p,
            "orchestrator.salvage_timeout_ms",
            o.salvage_timeout_ms,
            100..=600_000,
        );
        p.check(
            (1..=100_000).contains(&o.history_keep),
            "orchestrator.history_keep",
            || format!("{} is outside 1..=100000", o.history_keep),
        );
        p.check(
            o.history_max_age_days <= 3_650,
            "orchestrator.history_max_age_days",
            || format!("{} is outside 0..=3650", o.history_max_age_days),
        );
        p.check(
            (1..=10_000).contains(&o.max_parallel_failovers),
            "orchestrator.max_parallel_failovers",
            || format!("{} is outside 1..=10000", o.max_parallel_failovers),
        );
        p.check(
            (1..=3_600).contains(&o.resync_interval_s),
            "orchestrator.resync_interval_s",
            || format!("{} s is outside 1..=3600", o.resync_interval_s),
        );
        self.write_stall.validate(p);
        check_ms(p, "hooks.timeout_ms", self.hooks.timeout_ms, 100..=600_000);
        check_ms(p, "fence.timeout_ms", self.fence.timeout_ms, 100..=600_000);
        let a = &self.admission;
        p.check(
            (1..=100).contains(&a.share_percent),
            "admission.share_percent",
            || format!("{} is outside 1..=100", a.share_percent),
        );
        p.check(
            (1..=100_000).contains(&a.min_primaries),
            "admission.min_primaries",
            || format!("{} is outside 1..=100000", a.min_primaries),
        );
        p.check(
            (1..=3_600).contains(&a.window_s),
            "admission.window_s",
            || format!("{} s is outside 1..=3600", a.window_s),
        );
        check_ms(p, "admission.settle_ms", a.settle_ms, 0..=60_000);
        p.check(
            a.max_failovers_per_datacenter <= 10_000,
            "admission.max_failovers_per_datacenter",
            || format!("{} is more than 10000", a.max_failovers_per_datacenter),
        );
        for (key, argv) in [
            ("admission.hook", &self.admission.hook),
            ("hooks.pre_failover", &self.hooks.pre_failover),
            ("hooks.post_failover", &self.hooks.post_failover),
            ("fence.command", &self.fence.command),
        ] {
            p.check(
                argv.first().is_none_or(|c| !c.trim().is_empty()),
                key,
                || "the command (first element) is empty".into(),
            );
        }
        p.check(
            !self.hooks.abort_on_pre_failure || !self.hooks.pre_failover.is_empty(),
            "hooks.abort_on_pre_failure",
            || "is set but hooks.pre_failover is empty".into(),
        );
        self.mysql.validate("mysql", p);
        self.replication.validate("replication", p);
        p.check(
            self.replication.tls == super::MysqlTlsMode::Disabled
                && self.replication.tls_ca_file.is_none(),
            "replication.tls",
            || "the orchestrator opens no replication session: set tls in the agents' [replication]".into(),
        );
        let d = &self.dns;
        let zone_ok = d.zone.ends_with('.')
            && d.zone.len() > 1
            && super::common::is_host(d.zone.trim_end_matches('.'));
        p.check(zone_ok, "dns.zone", || {
            format!(
                "{:?} is not a fully qualified zone name ending in '.'",
                d.zone
            )
        });
        p.check((1..=86_400).contains(&d.ttl_s), "dns.ttl_s", || {
            format!("{} is outside 1..=86400", d.ttl_s)
        });
        p.check(
            super::common::is_host(d.tsig_key_name.trim_end_matches('.')),
            "dns.tsig_key_name",
            || format!("{:?} is not a DNS name", d.tsig_key_name),
        );
        p.check(
            TSIG_ALGORITHMS.contains(&d.tsig_algorithm.as_str()),
            "dns.tsig_algorithm",
            || {
                format!(
                    "{:?} is not supported (use one of: {})",
                    d.tsig_algorithm,
                    TSIG_ALGORITHMS.join(", ")
                )
            },
        );
        self.zookeeper.validate(p);
    }
}

impl OrchestratorSection {
    /// How many audit records a cluster keeps, and for how long.
    pub fn retention(&self) -> crate::registry::Retention {
        crate::registry::Retention {
            keep: self.history_keep as usize,
            max_age_ms: (self.history_max_age_days > 0)
                .then(|| u64::from(self.history_max_age_days) * 86_400_000),
        }
    }

    pub fn advertised_address(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const GOOD: &str = r#"
[orchestrator]
id = "o1"
listen = "127.0.0.1:7600"
[mysql]
user = "altair"
password_file = "/etc/altair/mysql.password"
[replication]
user = "repl"
password_file = "/etc/altair/repl.password"
[dns]
server = "127.0.0.1:53"
zone = "db.example.com."
tsig_key_name = "altair-key"
tsig_secret_file = "/etc/altair/tsig.secret"
[zookeeper]
servers = ["127.0.0.1:2181"]
[tls]
ca_file = "/etc/altair/tls/ca.pem"
cert_file = "/etc/altair/tls/orchestrator.pem"
key_file = "/etc/altair/tls/orchestrator.key"
"#;

    #[test]
    fn defaults() {
        let c = parse::<OrchestratorConfig>(GOOD, "X", Vec::new())
            .expect("valid")
            .config;
        assert_eq!(c.orchestrator.failover_block_period_s, 3600);
        assert_eq!(c.dns.tsig_algorithm, "hmac-sha256");
        assert_eq!(c.orchestrator.fence_mode, FenceMode::ReadOnly);
        assert_eq!(c.orchestrator.catch_up_timeout_ms, 30_000);
        assert_eq!(c.orchestrator.salvage_timeout_ms, 30_000);
        assert_eq!(c.orchestrator.on_salvage_timeout, OnSalvageTimeout::Promote);
        assert_eq!(c.orchestrator.max_parallel_failovers, 64);
        assert_eq!(c.orchestrator.resync_interval_s, 300);
        assert!(c.fence.command.is_empty());
        assert!(c.admission.enabled);
        assert_eq!(c.admission.share_percent, 30);
        assert_eq!(c.admission.min_primaries, 3);
        assert_eq!(c.admission.max_failovers_per_datacenter, 0);
    }

    #[test]
    fn a_bad_admission_section_is_named() {
        let bad = format!("{GOOD}[admission]\nshare_percent = 0\nwindow_s = 0\nhook = [\"\"]\n");
        let e = parse::<OrchestratorConfig>(&bad, "X", Vec::new()).expect_err("invalid");
        let text = e.to_string();
        for key in [
            "admission.share_percent",
            "admission.window_s",
            "admission.hook",
        ] {
            assert!(text.contains(key), "{key} not named in: {text}");
        }
    }

    #[test]
    fn a_bad_fence_hook_is_named() {
        let bad = format!("{GOOD}[fence]\ncommand = [\" \"]\ntimeout_ms = 5\n");
        let e = parse::<OrchestratorConfig>(&bad, "X", Vec::new()).expect_err("invalid");
        let text = e.to_string();
        assert!(text.contains("fence.command"), "{text}");
        assert!(text.contains("fence.timeout_ms"), "{text}");
        let good = format!("{GOOD}[fence]\ncommand = [\"/usr/local/bin/ipmi-off\"]\n");
        let c = parse::<OrchestratorConfig>(&good, "X", Vec::new())
            .expect("valid")
            .config;
        assert_eq!(c.fence.timeout_ms, 10_000);
    }

    #[test]
    fn worker_limits_are_checked() {
        let bad = GOOD.replace(
            "listen = \"127.0.0.1:7600\"",
            "listen = \"127.0.0.1:7600\"\nmax_parallel_failovers = 0\nresync_interval_s = 0",
        );
        let e = parse::<OrchestratorConfig>(&bad, "X", Vec::new())
            .expect_err("zero limits")
            .to_string();
        assert!(
            e.contains("orchestrator.max_parallel_failovers")
                && e.contains("orchestrator.resync_interval_s"),
            "{e}"
        );
    }

    #[test]
    fn salvage_policy_and_deadlines_are_checked() {
        let wait = GOOD.replace(
            "listen = \"127.0.0.1:7600\"",
            "listen = \"127.0.0.1:7600\"\non_salvage_timeout = \"wait\"\nsalvage_timeout_ms = 5000",
        );
        let c = parse::<OrchestratorConfig>(&wait, "X", Vec::new())
            .expect("valid")
            .config;
        assert_eq!(c.orchestrator.on_salvage_timeout, OnSalvageTimeout::Wait);
        assert_eq!(c.orchestrator.salvage_timeout_ms, 5000);
        let bad = GOOD.replace(
            "listen = \"127.0.0.1:7600\"",
            "listen = \"127.0.0.1:7600\"\non_salvage_timeout = \"hope\"",
        );
        let e = parse::<OrchestratorConfig>(&bad, "X", Vec::new()).expect_err("bad policy");
        assert!(e.to_string().contains("on_salvage_timeout"), "{e}");
        let short = GOOD.replace(
            "listen = \"127.0.0.1:7600\"",
            "listen = \"127.0.0.1:7600\"\ncatch_up_timeout_ms = 5",
        );
        let e = parse::<OrchestratorConfig>(&short, "X", Vec::new()).expect_err("too short");
        assert!(e.to_string().contains("catch_up_timeout_ms"), "{e}");
    }

    #[test]
    fn config_that_makes_verification_or_dns_impossible_is_refused() {
        let no_creds = GOOD.replace(
            "[mysql]\nuser = \"altair\"\npassword_file = \"/etc/altair/mysql.password\"\n",
            "",
        );
        let e = parse::<OrchestratorConfig>(&no_creds, "X", Vec::new()).expect_err("no creds");
        assert!(e.to_string().contains("mysql"), "{e}");
        let no_key = GOOD.replace("tsig_secret_file = \"/etc/altair/tsig.secret\"\n", "");
        let e = parse::<OrchestratorConfig>(&no_key, "X", Vec::new()).expect_err("no key");
        assert!(e.to_string().contains("tsig_secret_file"), "{e}");
        let bad = GOOD
            .replace("db.example.com.", "db.example.com")
            .replace("[dns]", "[dns]\ntsig_algorithm = \"hmac-md5\"");
        let e = parse::<OrchestratorConfig>(&bad, "X", Vec::new())
            .expect_err("bad dns")
            .to_string();
        assert!(
            e.contains("dns.zone") && e.contains("dns.tsig_algorithm"),
            "{e}"
        );
    }
}
