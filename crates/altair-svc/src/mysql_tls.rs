//! TLS of altair's own MySQL sessions (`tls`, `tls_ca_file` of a MySQL account's
//! section), loaded once at start: the CA file is read and checked then, so a bad one
//! stops the service with the key named instead of failing every session later.

use altair_core::config::{ConfigError, MysqlTls, MysqlTlsMode};
use mysql_async::SslOpts;

/// A section's MySQL TLS, its CA read.
#[derive(Clone, Default)]
pub struct MysqlTlsLoaded {
    pub mode: MysqlTlsMode,
    /// The CA's PEM (`verify_*`).
    ca_pem: Option<Vec<u8>>,
    /// Where it was read from (for tools that take a path: `CHANGE MASTER`, the client).
    pub ca_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for MysqlTlsLoaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlTlsLoaded")
            .field("mode", &self.mode)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl MysqlTlsLoaded {
    /// Reads `tls`'s CA file (a regular PEM file of at most 1 MiB holding a certificate);
    /// `section` names the keys in errors.
    pub fn load(tls: &MysqlTls, section: &str) -> Result<Self, ConfigError> {
        let key = format!("{section}.tls_ca_file");
        let ca_pem = match (&tls.ca_file, tls.mode.verifies()) {
            (Some(path), true) => {
                let pem = crate::secret::read_bounded(path, &key, crate::tls::MAX_PEM_BYTES)?;
                // Each certificate must be one rustls takes as a trust anchor (otherwise
                // every session would fail its handshake, read as "mysqld answered").
                let mut roots = rustls::RootCertStore::empty();
                for cert in crate::tls::certs(&pem, &key, path)? {
                    roots.add(cert).map_err(|e| {
                        ConfigError::new(
                            &key,
                            format!("{}: not a usable CA certificate: {e}", path.display()),
                        )
                    })?;
                }
                Some(pem)
            }
            _ => None,
        };
        Ok(Self {
            mode: tls.mode,
            ca_pem,
            ca_file: tls.ca_file.clone(),
        })
    }

    /// The driver's options for this mode (`None`: plaintext).
    pub fn ssl_opts(&self) -> Option<SslOpts> {
        // The driver asks rustls for the process's provider.
        crate::crypto::use_ring();
        let opts = SslOpts::default();
        match self.mode {
            MysqlTlsMode::Disabled => None,
            MysqlTlsMode::Required => Some(
                opts.with_danger_accept_invalid_certs(true)
                    .with_danger_skip_domain_validation(true),
            ),
            MysqlTlsMode::VerifyCa | MysqlTlsMode::VerifyIdentity => {
                let roots = self
                    .ca_pem
                    .clone()
                    .map(|p| vec![p.into()])
                    .unwrap_or_default();
                Some(
                    opts.with_root_certs(roots)
                        .with_disable_built_in_roots(true)
                        .with_danger_skip_domain_validation(self.mode == MysqlTlsMode::VerifyCa),
                )
            }
        }
    }
}

/// Whether a session that failed to open was answered by mysqld all the same: it sent
/// its greeting (which comes before TLS starts) and then refused — a server error (an
/// account refused, too many connections, insecure transport refused), a TLS handshake
/// that failed, or no TLS offered by a server TLS was required of. It is up: a setting
/// or a certificate to fix, never a dead server.
pub fn answered(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Server(_) => true,
        mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer) => true,
        mysql_async::Error::Io(mysql_async::IoError::Tls(_)) => true,
        mysql_async::Error::Io(mysql_async::IoError::Io(io)) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_certificate_less_ca_file_is_refused_naming_its_key() {
        let dir = tempfile::tempdir().expect("dir");
        let tls = |p: &std::path::Path| MysqlTls {
            mode: MysqlTlsMode::VerifyIdentity,
            ca_file: Some(p.to_owned()),
        };
        let missing = dir.path().join("nope.pem");
        let e = MysqlTlsLoaded::load(&tls(&missing), "mysql").expect_err("missing");
        assert_eq!(e.key, "mysql.tls_ca_file");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let e = MysqlTlsLoaded::load(&tls(&empty), "probe").expect_err("no certificate");
        assert_eq!(e.key, "probe.tls_ca_file");
        let off = MysqlTlsLoaded::load(&MysqlTls::default(), "mysql").expect("off");
        assert!(off.ssl_opts().is_none());
        let required = MysqlTls {
            mode: MysqlTlsMode::Required,
            ca_file: None,
        };
        assert!(
            MysqlTlsLoaded::load(&required, "mysql")
                .expect("required")
                .ssl_opts()
                .is_some()
        );
    }
}
