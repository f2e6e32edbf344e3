//! Config sections shared by several services.

use std::path::PathBuf;

use serde::Deserialize;

use super::Problems;

pub const DEFAULT_ZK_ROOT: &str = "/altair";

/// `[zookeeper]`: the ensemble every service shares.
#[derive(Debug, Clone, Deserialize)]
pub struct ZkConfig {
    /// `host:port` of every server of the ensemble.
    pub servers: Vec<String>,
    /// Root znode under which altair keeps all its state.
    #[serde(default = "default_zk_root")]
    pub root: String,
    #[serde(default = "default_session_timeout_ms")]
    pub session_timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// File holding `user:password` for ZooKeeper digest auth (optional; monitors and
    /// orchestrators only: an agent holds no ZooKeeper credential).
    pub auth_file: Option<PathBuf>,
    /// While rotating the credential: the file of the one being replaced. The session
    /// authenticates with both; nodes are created for `auth_file`'s id, and the leader
    /// moves every node still owned by this one to `auth_file`'s. Remove it once the
    /// leader has logged that it moved them.
    #[serde(default)]
    pub previous_auth_file: Option<PathBuf>,
    /// Separate ZooKeeper identities for orchestrators and monitors: the digest ids
    /// (`user:base64(sha1(user:password))`, as `zkCli`'s `addauth` makes them; no
    /// secret) each role's `auth_file` authenticates as. Set both or neither, the same
    /// on every service. Then a monitor may write only what monitors write (host and
    /// health records, its own membership node, a request that a new cluster's nodes be
    /// created); a cluster's state, journal and history only an orchestrator. Unset, both
    /// roles share one credential, which can change everything.
    #[serde(default)]
    pub orchestrator_id: Option<String>,
    /// See `orchestrator_id`.
    #[serde(default)]
    pub monitor_id: Option<String>,
    /// PEM file of the CA that signs the ZooKeeper servers' certificates. Set, every
    /// server in `servers` is dialled over TLS (name its `secureClientPort`) and its
    /// certificate must name the host dialled.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM file of this process's client certificate, for servers that require one
    /// (`ssl.clientAuth=need`); with `tls_key_file`.
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
}

/// `user:base64(sha1(user:password))`: a user without ':' and 28 base64 characters.
fn is_digest_id(id: &str) -> bool {
    id.split_once(':').is_some_and(|(user, hash)| {
        !user.is_empty()
            && user.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            && hash.len() == 28
            && hash.ends_with('=')
            && hash[..27]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    })
}

fn default_zk_root() -> String {
    DEFAULT_ZK_ROOT.to_owned()
}
fn default_session_timeout_ms() -> u64 {
    6_000
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}

impl ZkConfig {
    /// `servers` with every other setting at its default (plaintext, no auth).
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            servers,
            root: default_zk_root(),
            session_timeout_ms: default_session_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            auth_file: None,
            previous_auth_file: None,
            orchestrator_id: None,
            monitor_id: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }

    /// Whether the servers are dialled over TLS.
    pub fn tls(&self) -> bool {
        self.tls_ca_file.is_some()
    }

    pub fn validate(&self, p: &mut Problems) {
        self.validate_tls(p);
        if self.previous_auth_file.is_some() && self.auth_file.is_none() {
            p.add(
                "zookeeper.previous_auth_file",
                "set without zookeeper.auth_file: name the new credential in auth_file, the one being replaced here",
            );
        }
        self.validate_roles(p);
        p.check(!self.servers.is_empty(), "zookeeper.servers", || {
            "list at least one ZooKeeper server as \"host:port\"".into()
        });
        for (i, server) in self.servers.iter().enumerate() {
            check_host_port(p, &format!("zookeeper.servers[{i}]"), server);
        }
        let root_ok = self.root.starts_with('/')
            && self.root.len() > 1
            && !self.root.ends_with('/')
            && self.root[1..].split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            });
        p.check(root_ok, "zookeeper.root", || {
            format!(
                "{:?} is not an absolute znode path like \"/altair\" (letters, digits, '-', '_', '.')",
                self.root
            )
        });
        p.check(
            (2_000..=60_000).contains(&self.session_timeout_ms),
            "zookeeper.session_timeout_ms",
            || format!("{} is outside 2000..=60000", self.session_timeout_ms),
        );
        p.check(
            (100..=60_000).contains(&self.connect_timeout_ms),
            "zookeeper.connect_timeout_ms",
            || format!("{} is outside 100..=60000", self.connect_timeout_ms),
        );
    }
}

impl ZkConfig {
    /// The two roles' digest ids, when they have identities of their own.
    pub fn role_ids(&self) -> Option<(&str, &str)> {
        self.orchestrator_id
            .as_deref()
            .zip(self.monitor_id.as_deref())
    }

    fn validate_roles(&self, p: &mut Problems) {
        for (key, id) in [
            ("zookeeper.orchestrator_id", &self.orchestrator_id),
            ("zookeeper.monitor_id", &self.monitor_id),
        ] {
            if let Some(id) = id {
                // Only the user is named: a credential put here by mistake must not be
                // printed.
                p.check(is_digest_id(id), key, || {
                    let user = id.split_once(':').map_or("", |(u, _)| u);
                    format!("the value for user {user:?} is not a digest id \"user:base64(sha1(user:password))\" (28 base64 characters after the colon; the credential itself never goes here)")
                });
            }
        }
        match (&self.orchestrator_id, &self.monitor_id) {
            (Some(_), None) => p.add(
                "zookeeper.monitor_id",
                "missing: with zookeeper.orchestrator_id set, name the monitors' digest id too",
            ),
            (None, Some(_)) => p.add(
                "zookeeper.orchestrator_id",
                "missing: with zookeeper.monitor_id set, name the orchestrators' digest id too",
            ),
            (Some(o), Some(m)) if o == m => p.add(
                "zookeeper.monitor_id",
                "is zookeeper.orchestrator_id: the two roles need two credentials (or leave both unset to share one)",
            ),
            _ => {}
        }
    }

    /// A client certificate needs its key and a CA to check the servers by: TLS to
    /// ZooKeeper is on only with `tls_ca_file`.
    fn validate_tls(&self, p: &mut Problems) {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(_), None) => p.add(
                "zookeeper.tls_key_file",
                "missing: zookeeper.tls_cert_file is set; name its private key too",
            ),
            (None, Some(_)) => p.add(
                "zookeeper.tls_cert_file",
                "missing: zookeeper.tls_key_file is set; name its certificate too",
            ),
            _ => {}
        }
        if self.tls_ca_file.is_none() && self.tls_cert_file.is_some() {
            p.add(
                "zookeeper.tls_ca_file",
                "missing: a client certificate is set but TLS to ZooKeeper is on only with zookeeper.tls_ca_file (the CA that signs the servers' certificates)",
            );
        }
    }
}

/// `[tls]`: mutual TLS on the service's gRPC API and on every call it makes to another
/// altair service. On by default: plaintext only with `insecure = true`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsConfig {
    /// PEM file of the CA (or CAs) that signs every altair certificate.
    pub ca_file: Option<PathBuf>,
    /// PEM file of this service's certificate (chain): its identity is a SAN URI
    /// (`altair://agent/<cluster>/<host>`, ...) and, for servers, a SAN for the address
    /// others dial.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the certificate's private key.
    pub key_file: Option<PathBuf>,
    /// Plaintext gRPC, nobody authenticated: every caller may do anything. For a
    /// throwaway test only; every start logs a warning.
    #[serde(default)]
    pub insecure: bool,
    /// How often the certificate files are looked at for a renewal, in ms: a change is
    /// loaded as SIGHUP loads it. Unset: 5,000; 0: never (SIGHUP only).
    #[serde(default)]
    pub reload_interval_ms: Option<u64>,
}

/// `tls.reload_interval_ms` when unset.
pub const DEFAULT_TLS_RELOAD_INTERVAL_MS: u64 = 5_000;

impl TlsConfig {
    /// How often the certificate files are looked at for a change; `None`: never.
    pub fn reload_interval(&self) -> Option<std::time::Duration> {
        match self
            .reload_interval_ms
            .unwrap_or(DEFAULT_TLS_RELOAD_INTERVAL_MS)
        {
            0 => None,
            ms => Some(std::time::Duration::from_millis(ms)),
        }
    }

    pub fn validate(&self, p: &mut Problems) {
        if let Some(ms) = self.reload_interval_ms {
            p.check(
                ms == 0 || (100..=86_400_000).contains(&ms),
                "tls.reload_interval_ms",
                || format!("{ms} is out of range: 0 (SIGHUP only) or 100 to 86400000 (a day)"),
            );
        }
        let files = [
            ("tls.ca_file", &self.ca_file),
            ("tls.cert_file", &self.cert_file),
            ("tls.key_file", &self.key_file),
        ];
        if self.insecure {
            for (key, f) in files {
                p.check(f.is_none(), key, || {
                    "set either the certificate files or tls.insecure = true, not both".into()
                });
            }
            return;
        }
        for (key, f) in files {
            p.check(f.is_some(), key, || {
                "missing: mutual TLS is on by default (tls.ca_file, tls.cert_file, tls.key_file); tls.insecure = true turns it off".into()
            });
        }
    }
}

/// Where a secret comes from: never inline in the config file, so it cannot leak through
/// a config dump or a parse error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// A MySQL user and where its password is.
#[derive(Debug, Clone, Deserialize)]
pub struct Credentials {
    pub user: String,
    /// File holding the password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// Name of the environment variable holding the password.
    pub password_env: Option<String>,
    /// How this account's sessions are secured (see `MysqlTlsMode`).
    #[serde(default)]
    pub tls: super::MysqlTlsMode,
    /// PEM file of the CA that signs the servers' certificates (`verify_*`).
    pub tls_ca_file: Option<PathBuf>,
}

impl Credentials {
    /// This account's `tls` settings.
    pub fn tls(&self) -> super::MysqlTls {
        super::MysqlTls {
            mode: self.tls,
            ca_file: self.tls_ca_file.clone(),
        }
    }

    pub fn validate(&self, section: &str, p: &mut Problems) {
        self.tls().validate(section, p);
        p.check(
            !self.user.is_empty() && self.user.len() <= 80,
            &format!("{section}.user"),
            || "must be a MySQL user name of 1 to 80 characters".into(),
        );
        match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => p.add(
                format!("{section}.password_file"),
                format!("set either {section}.password_file or {section}.password_env, not both"),
            ),
            (None, None) => p.add(
                format!("{section}.password_file"),
                format!(
                    "missing: set {section}.password_file (a file holding the password) or {section}.password_env (the variable holding it)"
                ),
            ),
            (None, Some(var)) => p.check(
                !var.is_empty() && !var.contains('='),
                &format!("{section}.password_env"),
                || format!("{var:?} is not an environment variable name"),
            ),
            (Some(_), None) => {}
        }
    }

    /// Where the password comes from (valid only after `validate`).
    pub fn secret_source(&self) -> Option<SecretSource> {
        match (&self.password_file, &self.password_env) {
            (Some(f), None) => Some(SecretSource::File(f.clone())),
            (None, Some(v)) => Some(SecretSource::Env(v.clone())),
            _ => None,
        }
    }
}

/// Host and port of a MySQL server.
#[derive(Debug, Clone, Deserialize)]
pub struct MysqlEndpoint {
    pub host: String,
    #[serde(default = "default_mysql_port")]
    pub port: u16,
}

fn default_mysql_port() -> u16 {
    3306
}

impl MysqlEndpoint {
    pub fn validate(&self, section: &str, p: &mut Problems) {
        p.check(is_host(&self.host), &format!("{section}.host"), || {
            format!("{:?} is not a host name or IP address", self.host)
        });
        p.check(self.port != 0, &format!("{section}.port"), || {
            "must be 1..=65535".into()
        });
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`: how the service logs (to stderr).
#[derive(Debug, Clone, Deserialize)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,altair_agent=debug`. `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}

/// `[metrics]`: where the service serves Prometheus metrics (`GET /metrics`); off when
/// `listen` is not set.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct MetricsConfig {
    pub listen: Option<std::net::SocketAddr>,
}

/// A DNS name or an IP address (v6 without brackets).
pub fn is_host(host: &str) -> bool {
    if host.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `host:port` (IPv6 as `[addr]:port`), port 1..=65535.
pub fn is_host_port(value: &str) -> bool {
    match value.rsplit_once(':') {
        Some((host, port)) => {
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            is_host(host) && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    }
}

/// Checks `host:port` (IPv6 as `[addr]:port`).
pub fn check_host_port(p: &mut Problems, key: &str, value: &str) {
    p.check(is_host_port(value), key, || {
        format!("{value:?} is not \"host:port\"")
    });
}

/// Checks a duration in milliseconds lies in `range`.
pub fn check_ms(p: &mut Problems, key: &str, value: u64, range: std::ops::RangeInclusive<u64>) {
    p.check(range.contains(&value), key, || {
        format!(
            "{value} ms is outside {}..={} ms",
            range.start(),
            range.end()
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(t: &TlsConfig) -> String {
        let mut p = Problems::default();
        t.validate(&mut p);
        p.into_result()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn tls_is_on_unless_explicitly_insecure() {
        let e = problems(&TlsConfig::default());
        for key in ["tls.ca_file", "tls.cert_file", "tls.key_file"] {
            assert!(e.contains(key), "{key} not named in {e}");
        }
        assert!(e.contains("insecure = true"), "{e}");
        let files = TlsConfig {
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/c.pem".into()),
            key_file: Some("/c.key".into()),
            insecure: false,
            reload_interval_ms: None,
        };
        assert_eq!(problems(&files), "");
        let both = TlsConfig {
            insecure: true,
            ..files
        };
        assert!(problems(&both).contains("not both"));
        assert_eq!(
            problems(&TlsConfig {
                insecure: true,
                ..TlsConfig::default()
            }),
            ""
        );
    }

    #[test]
    fn certificate_files_are_looked_at_every_5_s_unless_set_otherwise() {
        let files = TlsConfig {
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/c.pem".into()),
            key_file: Some("/c.key".into()),
            ..TlsConfig::default()
        };
        assert_eq!(
            files.reload_interval(),
            Some(std::time::Duration::from_secs(5))
        );
        let off = TlsConfig {
            reload_interval_ms: Some(0),
            ..files.clone()
        };
        assert_eq!(off.reload_interval(), None);
        assert_eq!(problems(&off), "");
        for bad in [1, 99, 86_400_001] {
            let e = problems(&TlsConfig {
                reload_interval_ms: Some(bad),
                ..files.clone()
            });
            assert!(e.contains("tls.reload_interval_ms"), "{bad}: {e}");
            assert!(e.contains(&bad.to_string()), "{bad}: {e}");
        }
    }

    fn zk_problems(z: &ZkConfig) -> String {
        let mut p = Problems::default();
        z.validate(&mut p);
        p.into_result()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn role_ids_come_in_pairs_of_two_distinct_digest_ids() {
        let plain = ZkConfig::new(vec!["127.0.0.1:2181".into()]);
        assert_eq!(plain.role_ids(), None);
        let o = "altair:DyNYQEQvajljsxlhf5uS4PJ9R28=".to_owned();
        let m = "monitor:AyNYQEQvajljsxlhf5uS4PJ9R28=".to_owned();
        let both = ZkConfig {
            orchestrator_id: Some(o.clone()),
            monitor_id: Some(m.clone()),
            ..plain.clone()
        };
        assert_eq!(zk_problems(&both), "");
        assert_eq!(both.role_ids(), Some((o.as_str(), m.as_str())));
        let one = ZkConfig {
            monitor_id: None,
            ..both.clone()
        };
        assert!(zk_problems(&one).contains("zookeeper.monitor_id"));
        assert_eq!(one.role_ids(), None);
        let same = ZkConfig {
            monitor_id: Some(o.clone()),
            ..both.clone()
        };
        assert!(zk_problems(&same).contains("two credentials"));
        for bad in [
            "monitor",
            "monitor:short=",
            ":AyNYQEQvajljsxlhf5uS4PJ9R28=",
            "m:AyNYQEQvajljsxlhf5uS4PJ9R28",
        ] {
            let cfg = ZkConfig {
                monitor_id: Some(bad.into()),
                ..both.clone()
            };
            assert!(
                zk_problems(&cfg).contains("is not a digest id"),
                "{bad}: {}",
                zk_problems(&cfg)
            );
        }
        // A credential given by mistake is not echoed.
        let leaked = ZkConfig {
            monitor_id: Some("monitor:S3cret-pass".into()),
            ..both
        };
        let problems = zk_problems(&leaked);
        assert!(
            problems.contains("\"monitor\"") && !problems.contains("S3cret"),
            "{problems}"
        );
    }

    #[test]
    fn zookeeper_tls_needs_a_ca_and_a_certificate_needs_its_key() {
        let plain = ZkConfig::new(vec!["127.0.0.1:2181".into()]);
        assert_eq!(zk_problems(&plain), "");
        assert!(!plain.tls());
        let ca = ZkConfig {
            tls_ca_file: Some("/zk-ca.pem".into()),
            ..plain.clone()
        };
        assert_eq!(zk_problems(&ca), "");
        assert!(ca.tls());
        let mutual = ZkConfig {
            tls_cert_file: Some("/c.pem".into()),
            tls_key_file: Some("/c.key".into()),
            ..ca.clone()
        };
        assert_eq!(zk_problems(&mutual), "");
        let no_key = ZkConfig {
            tls_key_file: None,
            ..mutual.clone()
        };
        assert!(zk_problems(&no_key).contains("zookeeper.tls_key_file"));
        let no_cert = ZkConfig {
            tls_cert_file: None,
            ..mutual.clone()
        };
        assert!(zk_problems(&no_cert).contains("zookeeper.tls_cert_file"));
        let no_ca = ZkConfig {
            tls_ca_file: None,
            ..mutual
        };
        assert!(zk_problems(&no_ca).contains("zookeeper.tls_ca_file"));
    }
}
