//! Real components for altair's end-to-end tests and for the local sandbox.
//!
//! Everything here starts real processes: `mariadbd` instances with GTID replication,
//! ZooKeeper (standalone or a 3-node ensemble), BIND 9 taking TSIG-signed updates, and
//! hosts as network namespaces with faults made by nft rules and link state. A missing
//! component is an error naming the package to install, never a silent skip.
//!
//! Every handle kills its processes and removes its files and namespaces when dropped,
//! also when a test panics; children also get `SIGKILL` if the test process dies
//! (`PR_SET_PDEATHSIG`).

pub mod bind;
pub mod browser;
pub mod checker;
pub mod console_proxy;
pub mod fleet;
pub mod haproxy;
pub mod mariadb;
pub mod netns;
pub mod pki;
pub mod ports;
pub mod process;
pub mod sandbox;
mod tools;
pub mod zookeeper;

use std::time::Duration;

pub use tools::{is_root, require_tool};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{tool}` is not installed (Debian package {package}); run `make deps` (or deploy/dev/install-deps.sh as root)"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },
    #[error("{what} needs root (network namespaces and nft rules)")]
    NotRoot { what: &'static str },
    #[error("{what} was not ready after {waited:?}: {detail}")]
    NotReady {
        what: String,
        waited: Duration,
        detail: String,
    },
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    /// A server exited while it was starting (it crashed in recovery, say).
    #[error("{what} exited while starting: {detail}")]
    Exited { what: String, detail: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {}", mariadb::sql::error_text(source))]
    Mysql {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

pub(crate) fn mysql_err(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> Error {
    let what = what.into();
    move |source| Error::Mysql { what, source }
}

/// Polls `check` every `every` until it returns `Ok(Some(_))` or `timeout` passes; the
/// last `Err`/`None` reason goes into the `NotReady` error.
pub(crate) async fn wait_for<T, F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<Option<T>, String>>,
{
    let start = tokio::time::Instant::now();
    let mut last = String::from("no answer yet");
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(reason) => last = reason,
        }
        if start.elapsed() >= timeout {
            return Err(Error::NotReady {
                what: what.to_owned(),
                waited: timeout,
                detail: last,
            });
        }
        tokio::time::sleep(every).await;
    }
}

/// Adds `tail` (a component's log) to a `NotReady` error, so a start-up failure says why.
pub(crate) fn with_log_tail<T>(result: Result<T>, tail: impl FnOnce() -> String) -> Result<T> {
    match result {
        Err(Error::NotReady {
            what,
            waited,
            detail,
        }) => Err(Error::NotReady {
            what,
            waited,
            detail: format!("{detail}; log tail:\n{}", tail()),
        }),
        other => other,
    }
}

/// A random alphanumeric secret for generated credentials.
pub fn random_secret(len: usize) -> String {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// Where temp dirs go: `$ALTAIR_TESTKIT_TMP` or the system temp dir.
pub(crate) fn temp_dir(prefix: &str) -> Result<tempfile::TempDir> {
    let base = std::env::var_os("ALTAIR_TESTKIT_TMP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).map_err(io_err(format!("create {}", base.display())))?;
    // ALTAIR_TESTKIT_KEEP=1 leaves every directory (logs, data) behind to inspect.
    let keep = std::env::var_os("ALTAIR_TESTKIT_KEEP").is_some_and(|v| v == "1");
    tempfile::Builder::new()
        .prefix(prefix)
        .disable_cleanup(keep)
        .tempdir_in(&base)
        .map_err(io_err("create a temp dir"))
}
