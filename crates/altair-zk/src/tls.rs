//! TLS to ZooKeeper's secure client port (`tls_ca_file`, `tls_cert_file`,
//! `tls_key_file` of `[zookeeper]`). The files are read at start — a bad one stops the
//! service with its key named — and again at every connect, so a renewed certificate is
//! used from the next session on.

use altair_core::config::{ConfigError, ZkConfig};
use altair_svc::tls::MAX_PEM_BYTES;
use zookeeper_client as zk;

/// The client's TLS options for `cfg` (`None`: plaintext). Every server's host must be
/// a name or address a certificate can name (it is checked against the server's).
pub fn tls_options(cfg: &ZkConfig) -> Result<Option<zk::TlsOptions>, ConfigError> {
    let Some(ca_file) = &cfg.tls_ca_file else {
        return Ok(None);
    };
    for (i, server) in cfg.servers.iter().enumerate() {
        let host = server
            .rsplit_once(':')
            .map_or(server.as_str(), |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        if rustls_pki_types::ServerName::try_from(host).is_err() {
            return Err(ConfigError::new(
                format!("zookeeper.servers[{i}]"),
                format!(
                    "{host:?} is not a DNS name or IP address a server certificate can name (needed with zookeeper.tls_ca_file)"
                ),
            ));
        }
    }
    // The client asks rustls for the process's provider.
    altair_svc::crypto::use_ring();
    let ca = read_text(ca_file, "zookeeper.tls_ca_file")?;
    let mut options = zk::TlsOptions::new()
        .with_pem_ca(&ca)
        .map_err(|e| bad(ca_file, "zookeeper.tls_ca_file", &e))?;
    if let (Some(cert_file), Some(key_file)) = (&cfg.tls_cert_file, &cfg.tls_key_file) {
        let cert = read_text(cert_file, "zookeeper.tls_cert_file")?;
        let key = read_text(key_file, "zookeeper.tls_key_file")?;
        // (The crate's errors say what is missing, never the key's bytes.)
        options = options
            .with_pem_identity(&cert, &key)
            .map_err(|e| bad(cert_file, "zookeeper.tls_cert_file", &e))?;
        if !cert.contains("-----BEGIN CERTIFICATE-----") {
            return Err(ConfigError::new(
                "zookeeper.tls_cert_file",
                format!("{} holds no certificate", cert_file.display()),
            ));
        }
    }
    Ok(Some(options))
}

fn read_text(path: &std::path::Path, key: &str) -> Result<String, ConfigError> {
    let bytes = altair_svc::read_bounded(path, key, MAX_PEM_BYTES)?;
    String::from_utf8(bytes)
        .map_err(|_| ConfigError::new(key, format!("{} is not a PEM file", path.display())))
}

fn bad(path: &std::path::Path, key: &str, e: &zk::Error) -> ConfigError {
    ConfigError::new(key, format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &std::path::Path) -> ZkConfig {
        ZkConfig {
            tls_ca_file: Some(dir.join("ca.pem")),
            ..ZkConfig::new(vec!["127.0.0.1:2281".into(), "zk-2.example:2281".into()])
        }
    }

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn plaintext_without_a_ca_file() {
        let plain = ZkConfig::new(vec!["127.0.0.1:2181".into()]);
        assert!(tls_options(&plain).expect("plaintext").is_none());
    }

    #[test]
    fn a_ca_file_turns_tls_on_and_bad_files_name_their_key() {
        let dir = tempfile::tempdir().expect("dir");
        let c = cfg(dir.path());
        let e = tls_options(&c).expect_err("missing CA file");
        assert!(e.to_string().contains("zookeeper.tls_ca_file"), "{e}");

        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").expect("write");
        let e = tls_options(&c).expect_err("no certificate in it");
        assert!(e.to_string().contains("zookeeper.tls_ca_file"), "{e}");

        std::fs::write(dir.path().join("ca.pem"), ca_pem()).expect("write");
        assert!(tls_options(&c).expect("a CA").is_some());

        let secret =
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";
        std::fs::write(dir.path().join("c.key"), secret).expect("write");
        std::fs::write(dir.path().join("c.pem"), "nothing\n").expect("write");
        let mutual = ZkConfig {
            tls_cert_file: Some(dir.path().join("c.pem")),
            tls_key_file: Some(dir.path().join("c.key")),
            ..c.clone()
        };
        let e = tls_options(&mutual)
            .expect_err("no client certificate")
            .to_string();
        assert!(e.contains("zookeeper.tls_cert_file"), "{e}");
        assert!(!e.contains("c2VjcmV0"), "the key leaked into {e}");

        let fifo = ZkConfig {
            tls_ca_file: Some("/dev/zero".into()),
            ..c.clone()
        };
        let e = tls_options(&fifo).expect_err("a device").to_string();
        assert!(e.contains("not a regular file"), "{e}");

        let odd = ZkConfig {
            servers: vec!["zk_1!:2281".into()],
            ..c
        };
        let e = tls_options(&odd).expect_err("a bad name").to_string();
        assert!(e.contains("zookeeper.servers[0]"), "{e}");
    }
}
