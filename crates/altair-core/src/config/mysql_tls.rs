//! How altair's own MySQL sessions of one account are secured: `tls` and `tls_ca_file`
//! in `[mysql]`, `[replication]` and `[probe]` (names as MySQL's `--ssl-mode`).

use std::path::PathBuf;

use serde::Deserialize;

use super::Problems;

/// `tls` of a MySQL account's section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MysqlTlsMode {
    /// Plaintext (the default: MariaDB ships without server certificates).
    #[default]
    Disabled,
    /// Encrypted, the server's certificate not checked.
    Required,
    /// Encrypted, the server's certificate signed by `tls_ca_file`.
    VerifyCa,
    /// `verify_ca`, and the certificate names the address dialled.
    VerifyIdentity,
}

impl MysqlTlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Required => "required",
            Self::VerifyCa => "verify_ca",
            Self::VerifyIdentity => "verify_identity",
        }
    }

    /// Whether the server's certificate is checked against a CA.
    pub fn verifies(self) -> bool {
        matches!(self, Self::VerifyCa | Self::VerifyIdentity)
    }
}

/// A section's `tls` and `tls_ca_file` together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MysqlTls {
    pub mode: MysqlTlsMode,
    /// PEM file of the CA that signs the servers' certificates (`verify_*` only).
    pub ca_file: Option<PathBuf>,
}

impl MysqlTls {
    /// `verify_*` needs a CA file; a CA file without verification is a mistake; the file
    /// is named by an absolute path that fits `CHANGE MASTER … MASTER_SSL_CA` and a
    /// client option file as it is.
    pub fn validate(&self, section: &str, p: &mut Problems) {
        if self.mode == MysqlTlsMode::VerifyCa {
            p.add(
                format!("{section}.tls"),
                "\"verify_ca\" is not supported yet: the MySQL driver (mysql_async 0.37.1 with rustls 0.23) checks a certificate's CA only together with its name; use \"verify_identity\" with certificates that name the address dialled, or \"required\"",
            );
        }
        if let Some(path) = &self.ca_file {
            let text = path.to_str();
            let fits = path.is_absolute()
                && text.is_some_and(|t| {
                    !t.chars()
                        .any(|c| c.is_control() || matches!(c, '#' | '\'' | '"' | '\\'))
                });
            p.check(fits, &format!("{section}.tls_ca_file"), || {
                format!(
                    "{} must be an absolute path of UTF-8 text without control characters, '#', quotes or backslashes (mysqld and the client read it as it is)",
                    path.display()
                )
            });
        }
        match (self.mode.verifies(), &self.ca_file) {
            (true, None) => p.add(
                format!("{section}.tls_ca_file"),
                format!(
                    "missing: tls = \"{}\" checks the server's certificate against a CA: name its PEM file",
                    self.mode.as_str()
                ),
            ),
            (false, Some(_)) => p.add(
                format!("{section}.tls_ca_file"),
                format!(
                    "set, but tls = \"{}\" checks no certificate: use \"verify_ca\" or \"verify_identity\", or remove it",
                    self.mode.as_str()
                ),
            ),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(mode: MysqlTlsMode, ca: Option<&str>) -> Vec<String> {
        let mut p = Problems::default();
        MysqlTls {
            mode,
            ca_file: ca.map(PathBuf::from),
        }
        .validate("mysql", &mut p);
        p.0.iter()
            .map(|e| format!("{}: {}", e.key, e.problem))
            .collect()
    }

    #[test]
    fn verification_needs_a_ca_and_a_ca_needs_verification() {
        assert!(problems(MysqlTlsMode::Disabled, None).is_empty());
        assert!(problems(MysqlTlsMode::Required, None).is_empty());
        assert!(problems(MysqlTlsMode::VerifyIdentity, Some("/ca.pem")).is_empty());
        let e = problems(MysqlTlsMode::VerifyIdentity, None);
        assert!(e[0].starts_with("mysql.tls_ca_file: missing"), "{e:?}");
        let e = problems(MysqlTlsMode::Required, Some("/ca.pem"));
        assert!(e[0].contains("checks no certificate"), "{e:?}");
    }

    #[test]
    fn verify_ca_is_refused_until_the_driver_can_check_a_ca_alone() {
        let e = problems(MysqlTlsMode::VerifyCa, Some("/ca.pem"));
        assert!(e[0].starts_with("mysql.tls:"), "{e:?}");
        assert!(e[0].contains("verify_identity"), "{e:?}");
    }

    #[test]
    fn a_ca_path_must_be_absolute_and_plain() {
        for bad in [
            "ca.pem",
            "/etc/a#b.pem",
            "/etc/a'b.pem",
            "/etc/a\\b.pem",
            "/etc/a\nb.pem",
        ] {
            let e = problems(MysqlTlsMode::VerifyIdentity, Some(bad));
            assert!(
                e.iter()
                    .any(|e| e.starts_with("mysql.tls_ca_file: ") && e.contains("absolute path")),
                "{bad:?}: {e:?}"
            );
        }
    }
}
