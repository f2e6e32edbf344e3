//! Secrets (MySQL passwords, TSIG keys, ZooKeeper auth): read from a file or an
//! environment variable, never printed.

use std::fmt;

use altair_core::authz::Identity;
use altair_core::config::{
    ConfigError, ConfigErrors, Credentials, SecretSource, TlsConfig, ZkConfig,
};

use crate::tls::Tls;

/// A secret value. `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must hand it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads a secret. `key` is the config key it came from (`mysql.password_file`), for
/// the error; the error never includes the secret's content.
pub fn read_secret(source: &SecretSource, key: &str) -> Result<Secret, ConfigError> {
    let value = match source {
        SecretSource::File(path) => read_small_file(path, key)?,
        SecretSource::Env(var) => std::env::var(var).map_err(|_| {
            ConfigError::new(
                key,
                format!("environment variable {var} is not set or not UTF-8"),
            )
        })?,
    };
    let value = value.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(ConfigError::new(key, "the secret is empty"));
    }
    Ok(Secret(value))
}

/// A secret file larger than this is refused (a password or a key is a few bytes).
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Reads a regular file of at most `max` bytes, for config key `key`. The file is
/// opened without blocking and checked on the open handle, so a device (`/dev/zero`) or
/// a FIFO is refused: it can neither exhaust memory nor hang the start.
pub fn read_bounded(path: &std::path::Path, key: &str, max: u64) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot =
        |e: std::io::Error| ConfigError::new(key, format!("cannot read {}: {e}", path.display()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        return Err(ConfigError::new(
            key,
            format!("{} is not a regular file", path.display()),
        ));
    }
    if meta.len() > max {
        return Err(ConfigError::new(
            key,
            format!("{} is larger than {max} bytes", path.display()),
        ));
    }
    let mut buf = Vec::new();
    file.take(max + 1).read_to_end(&mut buf).map_err(cannot)?;
    Ok(buf)
}

/// A secret file: at most `MAX_SECRET_BYTES`, UTF-8.
fn read_small_file(path: &std::path::Path, key: &str) -> Result<String, ConfigError> {
    String::from_utf8(read_bounded(path, key, MAX_SECRET_BYTES)?)
        .map_err(|_| ConfigError::new(key, format!("{} is not UTF-8", path.display())))
}

/// Reads several secrets and reports every failure at once.
#[derive(Debug, Default)]
pub struct SecretReader {
    errors: Vec<ConfigError>,
}

impl SecretReader {
    /// The password of `[section]` credentials.
    pub fn password(&mut self, creds: &Credentials, section: &str) -> Secret {
        let (source, key) = match (&creds.password_file, &creds.password_env) {
            (Some(file), _) => (SecretSource::File(file.clone()), "password_file"),
            (None, Some(var)) => (SecretSource::Env(var.clone()), "password_env"),
            (None, None) => {
                self.errors.push(ConfigError::new(
                    format!("{section}.password_file"),
                    "missing: no password source",
                ));
                return Secret::new("");
            }
        };
        self.read(&source, &format!("{section}.{key}"))
    }

    /// Any secret; on failure the error is recorded and a placeholder returned, which
    /// `finish` makes sure is never used.
    pub fn read(&mut self, source: &SecretSource, key: &str) -> Secret {
        read_secret(source, key).unwrap_or_else(|e| {
            self.errors.push(e);
            Secret::new("")
        })
    }

    /// The ZooKeeper digest credentials, when `zookeeper.auth_file` is set.
    pub fn zookeeper_auth(&mut self, zk: &ZkConfig) -> Option<Secret> {
        zk.auth_file
            .as_ref()
            .map(|f| self.read(&SecretSource::File(f.clone()), "zookeeper.auth_file"))
    }

    /// The credential being rotated out (`zookeeper.previous_auth_file`).
    pub fn zookeeper_previous_auth(&mut self, zk: &ZkConfig) -> Option<Secret> {
        zk.previous_auth_file.as_ref().map(|f| {
            self.read(
                &SecretSource::File(f.clone()),
                "zookeeper.previous_auth_file",
            )
        })
    }

    /// The `[tls]` material; `expect` checks the identity the certificate names is this
    /// process's (an agent's certificate must name its own cluster and host).
    pub fn tls(
        &mut self,
        cfg: &TlsConfig,
        expect: impl FnOnce(&Identity) -> Result<(), String>,
    ) -> Tls {
        match Tls::load(cfg) {
            Ok(t) => {
                if let Some(Err(e)) = t.identity().as_ref().map(expect) {
                    self.errors.push(ConfigError::new("tls.cert_file", e));
                }
                t
            }
            Err(ConfigErrors(errs)) => {
                self.errors.extend(errs);
                Tls::Insecure
            }
        }
    }

    /// A check made elsewhere (another crate's files): its failure is reported with
    /// the rest.
    pub fn check<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }

    /// A MySQL account section's TLS, its CA file read and checked (`section` names the
    /// keys in errors).
    pub fn mysql_tls(
        &mut self,
        tls: &altair_core::config::MysqlTls,
        section: &str,
    ) -> crate::mysql_tls::MysqlTlsLoaded {
        crate::mysql_tls::MysqlTlsLoaded::load(tls, section).unwrap_or_else(|e| {
            self.errors.push(e);
            crate::mysql_tls::MysqlTlsLoaded::default()
        })
    }

    /// Records a problem found while checking a secret's content.
    pub fn reject(&mut self, key: &str, problem: impl Into<String>) {
        self.errors.push(ConfigError::new(key, problem));
    }

    /// `Ok(value)` only when every secret was read.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_never_prints_the_value() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").expect("write");
        let s = read_secret(&SecretSource::File(path), "mysql.password_file").expect("read");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").expect("write");
        let e = read_secret(&SecretSource::File(empty), "dns.tsig_secret_file").expect_err("empty");
        assert_eq!(e.key, "dns.tsig_secret_file");

        let e = read_secret(
            &SecretSource::File(dir.path().join("missing")),
            "mysql.password_file",
        )
        .expect_err("missing");
        assert!(
            e.to_string()
                .starts_with("mysql.password_file: cannot read"),
            "{e}"
        );
        let e = read_secret(
            &SecretSource::File("/dev/zero".into()),
            "mysql.password_file",
        )
        .expect_err("a device");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 70_000]).expect("write");
        let e = read_secret(&SecretSource::File(big), "mysql.password_file").expect_err("big");
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = read_secret(
            &SecretSource::Env("ALTAIR_TEST_UNSET_VAR".into()),
            "mysql.password_env",
        )
        .expect_err("unset");
        assert!(e.to_string().contains("ALTAIR_TEST_UNSET_VAR"), "{e}");
    }
}
