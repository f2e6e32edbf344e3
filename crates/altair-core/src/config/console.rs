//! `[console]`: the orchestrator's read-only web console and its JSON API.

use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::Problems;
use super::common::check_ms;

/// How the console knows who is asking.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleAuth {
    /// HTTPS with the process's `[tls]` certificate; the browser presents a client
    /// certificate the CA signed, naming an operator identity (any role).
    #[default]
    ClientCertificate,
    /// Plain HTTP behind an authenticating reverse proxy: the user is the value of
    /// `proxy_header`, believed only on connections from `trusted_proxies`.
    ProxyHeader,
}

/// `[console]`; off when `listen` is not set.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsoleConfig {
    pub listen: Option<SocketAddr>,
    #[serde(default)]
    pub auth: ConsoleAuth,
    /// The header the proxy puts the authenticated user in.
    #[serde(default = "default_proxy_header")]
    pub proxy_header: String,
    /// Addresses the proxy connects from; a request from any other address is refused.
    #[serde(default)]
    pub trusted_proxies: Vec<IpAddr>,
    /// How often the fleet is read again (ZooKeeper and the owning monitors); pages
    /// poll the API at this rate.
    #[serde(default = "default_refresh_ms")]
    pub refresh_ms: u64,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            listen: None,
            auth: ConsoleAuth::default(),
            proxy_header: default_proxy_header(),
            trusted_proxies: Vec::new(),
            refresh_ms: default_refresh_ms(),
        }
    }
}

fn default_proxy_header() -> String {
    "X-Remote-User".to_owned()
}

fn default_refresh_ms() -> u64 {
    1_000
}

/// An HTTP header name: RFC 9110 token characters.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl ConsoleConfig {
    /// `tls_insecure`: the process runs without `[tls]` (no certificate to serve HTTPS with).
    pub fn validate(&self, tls_insecure: bool, p: &mut Problems) {
        check_ms(p, "console.refresh_ms", self.refresh_ms, 200..=60_000);
        if self.listen.is_none() {
            return;
        }
        match self.auth {
            ConsoleAuth::ClientCertificate => p.check(!tls_insecure, "console.auth", || {
                "client_certificate needs [tls] (tls.insecure = true has no certificate to serve HTTPS with); use proxy_header behind an authenticating proxy".into()
            }),
            ConsoleAuth::ProxyHeader => {
                p.check(
                    is_header_name(&self.proxy_header),
                    "console.proxy_header",
                    || format!("{:?} is not an HTTP header name", self.proxy_header),
                );
                p.check(
                    !self.trusted_proxies.is_empty(),
                    "console.trusted_proxies",
                    || {
                        "required with auth = \"proxy_header\": the addresses the proxy connects from (anyone else could send the header)".into()
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(c: &ConsoleConfig, insecure: bool) -> String {
        let mut p = Problems::default();
        c.validate(insecure, &mut p);
        p.into_result()
            .map_err(|e| e.to_string())
            .err()
            .unwrap_or_default()
    }

    #[test]
    fn off_by_default_and_each_mode_names_what_it_lacks() {
        assert_eq!(problems(&ConsoleConfig::default(), true), "");
        let on = ConsoleConfig {
            listen: Some("127.0.0.1:8443".parse().expect("addr")),
            ..ConsoleConfig::default()
        };
        assert_eq!(problems(&on, false), "");
        assert!(problems(&on, true).starts_with("console.auth:"));
        let proxy = ConsoleConfig {
            auth: ConsoleAuth::ProxyHeader,
            proxy_header: "X Bad".into(),
            ..on.clone()
        };
        let e = problems(&proxy, true);
        assert!(e.contains("console.proxy_header"), "{e}");
        assert!(e.contains("console.trusted_proxies"), "{e}");
        let ok = ConsoleConfig {
            proxy_header: "X-Forwarded-User".into(),
            trusted_proxies: vec!["127.0.0.1".parse().expect("ip")],
            ..proxy
        };
        assert_eq!(problems(&ok, true), "");
        let fast = ConsoleConfig {
            refresh_ms: 10,
            ..ok
        };
        assert!(problems(&fast, true).starts_with("console.refresh_ms:"));
    }
}
