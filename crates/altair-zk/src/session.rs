//! Keeping a ZooKeeper session: connect with back-off, run the caller's work for the
//! life of the session, reconnect when it expires.

use std::future::Future;
use std::time::Duration;

use altair_core::config::ZkConfig;
use tokio_util::sync::CancellationToken;

use crate::{SessionState, Zk, ZkError};

/// Reconnects forever (until cancelled), running `work` once per session.
pub struct SessionLoop {
    pub config: ZkConfig,
    pub auth: Option<String>,
    /// The credential being rotated out: the session holds it too.
    pub previous: Option<String>,
    /// A reader's session (`reader`): no credential; it creates nothing.
    pub reader: bool,
    pub cancel: CancellationToken,
}

impl SessionLoop {
    /// Sessions to `config`, with digest `auth` (`user:password`) when given, until
    /// `cancel`.
    pub fn new(config: &ZkConfig, auth: Option<&str>, cancel: CancellationToken) -> Self {
        if auth.is_none() {
            tracing::warn!(
                "zookeeper.auth_file is not set: the znodes this process creates are world-writable (anyone who reaches ZooKeeper can plant a journal or move a host record)"
            );
        }
        Self {
            config: config.clone(),
            auth: auth.map(str::to_owned),
            previous: None,
            reader: false,
            cancel,
        }
    }

    /// Also authenticates with `previous` (`zookeeper.previous_auth_file`): nodes still
    /// owned by the credential being rotated out stay writable, and a leader moves them.
    pub fn with_previous(mut self, previous: Option<&str>) -> Self {
        if previous.is_some() {
            tracing::warn!(
                "zookeeper.previous_auth_file is set: rotating the ZooKeeper credential; remove it once the leader has logged that it moved every node"
            );
        }
        self.previous = previous.map(str::to_owned);
        self
    }

    /// Sessions without any credential, for a process that only reads (an agent):
    /// altair's znodes are world-readable; every write it tried would be refused.
    pub fn reader(config: &ZkConfig, cancel: CancellationToken) -> Self {
        Self {
            config: config.clone(),
            auth: None,
            previous: None,
            reader: true,
            cancel,
        }
    }

    /// Runs `work(zk)` for each session. `work` should return when the session is lost
    /// (any `ZkError::SessionExpired`) or `cancel` fires; a new session starts after it.
    pub async fn run<F, Fut>(self, mut work: F)
    where
        F: FnMut(Zk) -> Fut,
        Fut: Future<Output = Result<(), ZkError>>,
    {
        let mut backoff = Duration::from_millis(200);
        while !self.cancel.is_cancelled() {
            let zk = tokio::select! {
                r = async {
                    if self.reader {
                        Zk::connect_reader(&self.config).await
                    } else {
                        Zk::connect_rotating(
                            &self.config,
                            self.auth.as_deref(),
                            self.previous.as_deref(),
                        )
                        .await
                    }
                } => r,
                () = self.cancel.cancelled() => return,
            };
            match zk {
                Ok(zk) => {
                    tracing::info!(servers = %self.config.servers.join(","), tls = self.config.tls(), "ZooKeeper session established");
                    let began = std::time::Instant::now();
                    match work(zk).await {
                        Ok(()) if self.cancel.is_cancelled() => return,
                        Ok(()) => tracing::warn!("ZooKeeper session ended; reconnecting"),
                        Err(e) => {
                            tracing::warn!(error = %e, "ZooKeeper session lost; reconnecting")
                        }
                    }
                    // Work that fails at once (a node it may not read, say) must not turn
                    // into a new session every few milliseconds: back off as for a
                    // failed connect; a session that lasted resets the back-off.
                    if began.elapsed() < Duration::from_secs(5) {
                        tokio::select! {
                            () = tokio::time::sleep(backoff) => {}
                            () = self.cancel.cancelled() => return,
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    } else {
                        backoff = Duration::from_millis(200);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot reach ZooKeeper");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.cancel.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

/// Resolves when the session reaches a terminal state (expired, closed, auth failed).
pub async fn wait_session_end(zk: &Zk) -> SessionState {
    let mut watcher = zk.state_watcher();
    loop {
        let state = watcher.changed().await;
        if state.is_terminated() {
            return state;
        }
    }
}
